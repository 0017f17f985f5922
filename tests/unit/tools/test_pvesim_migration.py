"""Migration behaviour of pvesim: synchronous checks, task lifecycle, logs, HA hand-off."""

from __future__ import annotations

import time

import pytest

from pvesim_testlib import wait_for, wait_task

proxmoxer = pytest.importorskip("proxmoxer")
ResourceException = proxmoxer.core.ResourceException


def _log(api, node, upid):
    return [line["t"] for line in api.nodes(node).tasks(upid).log.get()]


def test_live_migration_runs_to_completion(sim, token_api):
    sim.reset(speed=20)
    before = sim.state()
    mem = before["guests"]["100"]["mem"]
    upid = token_api.nodes("pve1").qemu(100).migrate.post(target="pve2", online=1)
    parts = upid.split(":")
    # UPID:<node>:<pid>:<pstart>:<starttime>:<type>:<id>:<user>: (trailing colon)
    assert len(parts) == 9 and parts[8] == "" and parts[0] == "UPID" and parts[1] == "pve1" and parts[5] == "qmigrate"
    assert parts[6] == "100" and parts[7] == "root@pam!proxlb" and upid.endswith(":")
    assert all(len(p) == 8 for p in parts[2:5])
    # The config lock is taken synchronously and visible everywhere while the task runs.
    assert sim.state()["guests"]["100"]["lock"] == "migrate"
    entry = [r for r in token_api.cluster.resources.get(type="vm") if r["vmid"] == 100][0]
    assert entry["lock"] == "migrate" and entry["node"] == "pve1"
    running = token_api.nodes("pve1").tasks(upid).status.get()
    assert running["status"] == "running" and running["user"] == "root@pam" and running["tokenid"] == "proxlb"
    assert running["id"] == "100" and "exitstatus" not in running
    # The receiving QEMU process on the target already uses memory during a live migration.
    assert sim.state()["nodes"]["pve2"]["mem"] == before["nodes"]["pve2"]["mem"] + mem
    with pytest.raises(ResourceException) as err:
        token_api.nodes("pve1").qemu(100).migrate.post(target="pve3", online=1)
    assert err.value.content == "VM is locked (migrate)"

    status = wait_task(token_api, "pve1", upid)
    assert status["exitstatus"] == "OK"
    after = sim.state()
    assert after["guests"]["100"]["node"] == "pve2" and after["guests"]["100"]["lock"] is None
    assert after["nodes"]["pve1"]["mem"] == before["nodes"]["pve1"]["mem"] - mem
    assert after["nodes"]["pve2"]["mem"] == before["nodes"]["pve2"]["mem"] + mem
    log = _log(token_api, "pve1", upid)
    assert "starting migration of VM 100 to node 'pve2' (10.0.0.12)" in log[0]
    assert any("migration finished successfully" in line for line in log)
    assert log[-1] == "TASK OK"
    entry = token_api.nodes("pve1").tasks.get(typefilter="qmigrate", vmid=100)[0]
    assert entry["upid"] == upid and entry["status"] == "OK" and "endtime" in entry
    assert token_api.nodes("pve2").qemu(100).status.current.get()["status"] == "running"
    task = [t for t in after["tasks"] if t["upid"] == upid][0]
    assert task["status"] == "stopped" and task["exitstatus"] == "OK" and task["target"] == "pve2"


def test_offline_migration_of_stopped_vm(sim, token_api):
    upid = token_api.nodes("pve4").qemu(162).migrate.post(target="pve3")
    assert wait_task(token_api, "pve4", upid)["exitstatus"] == "OK"
    guest = sim.state()["guests"]["162"]
    assert guest["node"] == "pve3" and guest["status"] == "stopped"
    storage = {s["storage"]: s for s in token_api.nodes("pve3").storage.get()}
    assert storage["local-lvm"]["used"] == (32 + 50) * 1024 ** 3


@pytest.mark.parametrize("node,vmid,params,status,message", [
    ("pve1", 100, {"target": "pve1", "online": 1}, 400, "Parameter verification failed."),
    ("pve1", 100, {"target": "pve9", "online": 1}, 500, "no such cluster node 'pve9'"),
    ("pve2", 100, {"target": "pve3", "online": 1}, 500, "Configuration file 'nodes/pve2/qemu-server/100.conf' does not exist"),
    ("pve2", 161, {"target": "pve3"}, 500, "VM is locked (backup)"),
    ("pve1", 100, {"target": "pve2"}, 500, "can't migrate running VM without --online"),
    ("pve1", 130, {"target": "pve3", "online": 1, "with-local-disks": 1}, 500, "storage 'fast-nvme' is not available on node 'pve3'"),
])
def test_synchronous_migration_errors(token_api, node, vmid, params, status, message):
    with pytest.raises(ResourceException) as err:
        token_api.nodes(node).qemu(vmid).migrate.post(**params)
    assert err.value.status_code == status
    assert err.value.content == message
    if status == 400:
        assert err.value.errors == {"target": "target is local node."}


def test_local_disk_without_flag_fails_inside_the_task(sim, token_api):
    upid = token_api.nodes("pve1").qemu(140).migrate.post(target="pve2", online=1)
    status = wait_task(token_api, "pve1", upid)
    assert status["exitstatus"] == "migration aborted"
    log = _log(token_api, "pve1", upid)
    assert any("can't live migrate attached local disks without with-local-disks option" in line for line in log)
    assert log[-1] == "TASK ERROR: migration aborted"
    assert sim.state()["guests"]["140"]["node"] == "pve1"
    upid = token_api.nodes("pve1").qemu(140).migrate.post(target="pve2", online=1, **{"with-local-disks": 1})
    assert wait_task(token_api, "pve1", upid)["exitstatus"] == "OK"
    assert sim.state()["guests"]["140"]["node"] == "pve2"


def test_local_device_blocks_migration(sim, token_api):
    upid = token_api.nodes("pve2").qemu(170).migrate.post(target="pve1", online=1)
    assert wait_task(token_api, "pve2", upid)["exitstatus"] == "migration aborted"
    assert any("can't migrate VM which uses local devices: hostpci0" in line for line in _log(token_api, "pve2", upid))
    assert sim.state()["guests"]["170"]["node"] == "pve2"


def test_target_offline_fails_in_task(sim, token_api):
    sim.node_offline("pve3")
    upid = token_api.nodes("pve1").qemu(101).migrate.post(target="pve3", online=1)
    assert wait_task(token_api, "pve1", upid)["exitstatus"] == "migration aborted"
    assert sim.state()["guests"]["101"]["node"] == "pve1"
    assert any("No route to host" in line for line in _log(token_api, "pve1", upid))


def test_lxc_migration_modes(sim, token_api):
    with pytest.raises(ResourceException) as err:
        token_api.nodes("pve1").lxc(150).migrate.post(target="pve2")
    assert err.value.content == "can't migrate running container without --online or --restart"
    upid = token_api.nodes("pve1").lxc(150).migrate.post(target="pve2", online=1)
    assert ":vzmigrate:150:" in upid
    assert wait_task(token_api, "pve1", upid)["exitstatus"] == "migration aborted"
    assert any("lxc live migration is currently not implemented" in line for line in _log(token_api, "pve1", upid))
    upid = token_api.nodes("pve1").lxc(150).migrate.post(target="pve2", restart=1)
    # Restart mode shuts the container down for the move.
    assert sim.state()["guests"]["150"]["status"] == "stopped"
    assert wait_task(token_api, "pve1", upid)["exitstatus"] == "OK"
    guest = sim.state()["guests"]["150"]
    assert guest["node"] == "pve2" and guest["status"] == "running"
    log = _log(token_api, "pve1", upid)
    assert "shutdown CT 150" in log[0] and any("start container on target node" in line for line in log)


def test_locked_container_fails_in_task(sim, token_api):
    sim.lock_guest(152, "backup")
    upid = token_api.nodes("pve4").lxc(152).migrate.post(target="pve3", restart=1)
    assert wait_task(token_api, "pve4", upid)["exitstatus"] == "migration aborted"
    assert any("CT is locked (backup)" in line for line in _log(token_api, "pve4", upid))
    assert sim.state()["guests"]["152"]["lock"] == "backup"


def test_ha_managed_vm_uses_hamigrate_then_qmigrate(sim, token_api):
    since = int(time.time()) - 1
    upid = token_api.nodes("pve1").qemu(120).migrate.post(target="pve3", online=1)
    assert ":hamigrate:120:" in upid
    assert wait_task(token_api, "pve1", upid)["exitstatus"] == "OK"
    log = _log(token_api, "pve1", upid)
    assert log[0] == "Requesting HA migration for VM 120 to node pve3"
    # Positive affinity: the partner moves along.
    assert any("also migrate resource 'vm:121'" in line for line in log)

    def find():
        return token_api.nodes("pve1").tasks.get(typefilter="qmigrate", vmid=120, since=since, source="all")

    tasks = wait_for(find)
    assert tasks[0]["user"] == "root@pam" and "tokenid" not in tasks[0]
    assert wait_task(token_api, "pve1", tasks[0]["upid"])["exitstatus"] == "OK"
    wait_for(lambda: sim.state()["guests"]["121"]["node"] == "pve3")
    state = sim.state()
    assert state["guests"]["120"]["node"] == "pve3" and state["guests"]["120"]["hastate"] == "started"
    services = {s["sid"]: s for s in token_api.cluster.ha.status.current.get() if s["type"] == "service"}
    assert services["vm:120"]["node"] == "pve3"


def test_ha_state_shows_migrate_while_moving(sim, token_api):
    sim.reset(speed=5)
    token_api.nodes("pve4").qemu(125).migrate.post(target="pve3", online=1)
    entry = [r for r in token_api.cluster.resources.get(type="vm") if r["vmid"] == 125][0]
    assert entry["hastate"] == "migrate"
    manager = token_api.cluster.ha.status.manager_status.get()["manager_status"]
    assert manager["service_status"]["vm:125"]["target"] == "pve3"


def test_ha_rules_can_refuse(sim, token_api):
    # vm:123 has a strict node-affinity rule for pve3/pve4.
    upid = token_api.nodes("pve3").qemu(123).migrate.post(target="pve1", online=1)
    status = wait_task(token_api, "pve3", upid)
    assert status["exitstatus"] == "command 'ha-manager migrate vm:123 pve1' failed: exit code 255"
    time.sleep(0.1)
    assert sim.state()["guests"]["123"]["node"] == "pve3"


def test_ha_container_is_relocated(sim, token_api):
    upid = token_api.nodes("pve5").lxc(153).migrate.post(target="pve4", restart=1)
    assert ":hamigrate:153:" in upid
    wait_for(lambda: sim.state()["guests"]["153"]["node"] == "pve4")
    tasks = token_api.nodes("pve5").tasks.get(typefilter="vzmigrate", vmid=153, source="all")
    assert tasks and tasks[0]["status"] == "OK"
    assert sim.state()["guests"]["153"]["status"] == "running"


def test_task_errors(token_api):
    with pytest.raises(ResourceException) as err:
        token_api.nodes("pve1").tasks("garbage").status.get()
    assert err.value.errors == {"upid": "unable to parse worker upid"}
    with pytest.raises(ResourceException) as err:
        token_api.nodes("pve1").tasks("UPID:pve1:00000001:00000001:00000001:qmigrate:100:root@pam:").status.get()
    assert err.value.errors == {"upid": "no such task"}


def test_running_tasks_only_listed_with_source_active_or_all(sim, token_api):
    sim.reset(speed=2)
    upid = token_api.nodes("pve1").qemu(101).migrate.post(target="pve2", online=1)
    assert token_api.nodes("pve1").tasks.get(typefilter="qmigrate") == []
    active = token_api.nodes("pve1").tasks.get(source="active")
    assert active[0]["upid"] == upid and active[0]["status"] == "RUNNING" and "endtime" not in active[0]


def test_no_quorum_blocks_migration(sim, token_api):
    for node in ("pve3", "pve4", "pve5"):
        sim.node_offline(node)
    with pytest.raises(ResourceException) as err:
        token_api.nodes("pve1").qemu(100).migrate.post(target="pve2", online=1)
    assert err.value.status_code == 500 and err.value.content == "cluster not ready - no quorum?"
    assert [e for e in token_api.cluster.status.get() if e["type"] == "cluster"][0]["quorate"] == 0
