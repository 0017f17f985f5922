"""PVE API shapes served by pvesim, exercised through proxmoxer and raw requests over verified HTTPS."""

from __future__ import annotations

import pytest

from pvesim_testlib import FAST, ROOT_PASSWORD, ROOT_TOKEN

proxmoxer = pytest.importorskip("proxmoxer")
requests = pytest.importorskip("requests")
ResourceException = proxmoxer.core.ResourceException


def _login(sim) -> dict:
    resp = requests.post(sim.url + "/api2/json/access/ticket", data={"username": "root@pam", "password": ROOT_PASSWORD},
                         verify=sim.ca_path, timeout=10)
    assert resp.status_code == 200
    return resp.json()["data"]


def test_password_and_token_auth_read_the_same_cluster(root_api, token_api):
    assert root_api.version.get()["version"] == "9.0.3"
    assert token_api.version.get()["release"] == "9.0"
    names_pw = sorted(n["node"] for n in root_api.nodes.get())
    names_tok = sorted(n["node"] for n in token_api.nodes.get())
    assert names_pw == names_tok == ["pve1", "pve2", "pve3", "pve4", "pve5"]


def test_ticket_shape(sim):
    data = _login(sim)
    assert data["username"] == "root@pam"
    assert data["ticket"].startswith("PVE:root@pam:")
    stamp, signature = data["CSRFPreventionToken"].split(":")
    assert len(stamp) == 8 and len(signature) == 43
    assert set(data["cap"]) == {"vms", "storage", "nodes", "access", "dc", "sdn", "mapping"}
    assert data["cap"]["vms"]["VM.Migrate"] == 1
    assert data["clustername"] == "democluster"


def test_bad_password_is_401_with_message(sim):
    resp = requests.post(sim.url + "/api2/json/access/ticket", data={"username": "root@pam", "password": "nope"},
                         verify=sim.ca_path, timeout=10)
    assert resp.status_code == 401
    assert resp.reason == "authentication failure"
    assert resp.json() == {"data": None, "message": "authentication failure\n"}
    with pytest.raises(proxmoxer.AuthenticationError):
        proxmoxer.ProxmoxAPI("%s:%d" % (sim.host, sim.port), user="root@pam", password="nope", verify_ssl=sim.ca_path)


def test_missing_auth_is_401_with_empty_body(sim):
    resp = requests.get(sim.url + "/api2/json/nodes", verify=sim.ca_path, timeout=10)
    assert resp.status_code == 401
    assert resp.reason == "No ticket"
    assert resp.content == b""
    resp = requests.get(sim.url + "/api2/json/nodes", headers={"Authorization": "PVEAPIToken=root@pam!proxlb=wrong"},
                        verify=sim.ca_path, timeout=10)
    assert resp.status_code == 401 and resp.content == b""


def test_csrf_token_required_for_ticket_writes(sim):
    data = _login(sim)
    cookies = {"PVEAuthCookie": data["ticket"]}
    url = sim.url + "/api2/json/nodes/pve1/qemu/100/migrate"
    resp = requests.post(url, data={"target": "pve2", "online": 1}, cookies=cookies, verify=sim.ca_path, timeout=10)
    assert resp.status_code == 401
    assert resp.reason == "Permission denied - invalid csrf token"
    assert resp.content == b""
    # GET needs no CSRF token.
    assert requests.get(sim.url + "/api2/json/version", cookies=cookies, verify=sim.ca_path, timeout=10).status_code == 200
    # With the token the write goes through.
    resp = requests.post(url, data={"target": "pve2", "online": 1}, cookies=cookies,
                         headers={"CSRFPreventionToken": data["CSRFPreventionToken"]}, verify=sim.ca_path, timeout=10)
    assert resp.status_code == 200
    assert resp.json()["data"].startswith("UPID:pve1:")


def test_token_needs_no_csrf(sim):
    header = {"Authorization": "PVEAPIToken=root@pam!%s=%s" % ROOT_TOKEN}
    resp = requests.post(sim.url + "/api2/json/nodes/pve1/qemu/100/migrate", data={"target": "pve2", "online": 1},
                         headers=header, verify=sim.ca_path, timeout=10)
    assert resp.status_code == 200
    assert resp.json()["data"].endswith(":qmigrate:100:root@pam!proxlb:")


def test_audit_token_gets_403_on_migrate(audit_api, sim):
    assert len(audit_api.cluster.resources.get(type="vm")) == 40
    with pytest.raises(ResourceException) as err:
        audit_api.nodes("pve1").qemu(100).migrate.post(target="pve2", online=1)
    assert err.value.status_code == 403
    assert err.value.content == "Permission check failed (/vms/100, VM.Migrate)"
    header = {"Authorization": "PVEAPIToken=audit@pve!ro=00000000-0000-4000-8000-000000000002"}
    resp = requests.post(sim.url + "/api2/json/nodes/pve1/qemu/100/migrate", data={"target": "pve2"},
                         headers=header, verify=sim.ca_path, timeout=10)
    assert resp.status_code == 403
    assert resp.reason == "Permission check failed (/vms/100, VM.Migrate)"
    assert resp.json() == {"data": None, "message": "Permission check failed (/vms/100, VM.Migrate)\n"}


def test_unknown_path_is_501(root_api, sim):
    with pytest.raises(ResourceException) as err:
        root_api.nodes("pve1").nonsense.get()
    assert err.value.status_code == 501
    assert err.value.content == "Method 'GET /nodes/pve1/nonsense' not implemented"
    header = {"Authorization": "PVEAPIToken=root@pam!%s=%s" % ROOT_TOKEN}
    resp = requests.post(sim.url + "/api2/json/version", headers=header, verify=sim.ca_path, timeout=10)
    assert resp.status_code == 501
    assert resp.json()["message"] == "Method 'POST /version' not implemented\n"


def test_parameter_errors_are_400_with_errors(token_api):
    with pytest.raises(ResourceException) as err:
        token_api.cluster.resources.get(type="pool")
    assert err.value.status_code == 400
    assert err.value.errors == {"type": "value 'pool' does not have a value in the enumeration 'vm, storage, node, sdn'"}
    with pytest.raises(ResourceException) as err:
        token_api.nodes("pve1").qemu(100).migrate.post(online=1)
    assert err.value.errors == {"target": "property is missing and it is not optional"}
    with pytest.raises(ResourceException) as err:
        token_api.nodes("pve1").qemu(100).migrate.post(target="pve2", online="true")
    assert err.value.errors == {"online": "type check ('boolean') failed - got 'true'"}


def test_cluster_resources_shapes(token_api):
    resources = token_api.cluster.resources.get()
    kinds = [r["type"] for r in resources]
    # PVE order: pools, guests, nodes, storages, sdn.
    assert kinds.index("pool") < kinds.index("qemu") < kinds.index("node") < kinds.index("storage") < kinds.index("sdn")
    guests = [r for r in resources if r["type"] in ("qemu", "lxc")]
    assert [str(g["vmid"]) for g in guests] == sorted(str(g["vmid"]) for g in guests)
    by_vmid = {g["vmid"]: g for g in guests}
    web01 = by_vmid[100]
    assert web01["id"] == "qemu/100" and web01["tags"] == "plb_affinity_web;prod" and web01["pool"] == "prod"
    assert web01["memhost"] == web01["mem"] > 0 and web01["maxcpu"] == 2
    assert by_vmid[110]["hastate"] == "started"
    assert by_vmid[190]["template"] == 1 and by_vmid[190]["mem"] == 0 and by_vmid[190]["cpu"] == 0
    assert by_vmid[161]["lock"] == "backup"
    assert by_vmid[150]["type"] == "lxc" and by_vmid[150]["memhost"] == 0
    nodes = {r["node"]: r for r in resources if r["type"] == "node"}
    assert nodes["pve1"]["hastate"] == "online" and nodes["pve1"]["cgroup-mode"] == 2
    assert nodes["pve1"]["mem"] / nodes["pve1"]["maxmem"] > 0.8
    assert all(r["type"] == "qemu" or r["type"] == "lxc" for r in token_api.cluster.resources.get(type="vm"))
    storages = token_api.cluster.resources.get(type="storage")
    fast = [s for s in storages if s["storage"] == "fast-nvme"]
    assert sorted(s["node"] for s in fast) == ["pve1", "pve2"]
    assert all(s["shared"] == 1 for s in storages if s["storage"] == "ceph-vm")


def test_node_memory_is_derived_from_guests(token_api, sim):
    state = sim.state()
    expected = 6 * 1024 ** 3 + sum(g["mem"] for g in state["guests"].values() if g["node"] == "pve1")
    node = [n for n in token_api.nodes.get() if n["node"] == "pve1"][0]
    assert node["mem"] == expected == state["nodes"]["pve1"]["mem"]


def test_node_status_and_rrddata(token_api):
    status = token_api.nodes("pve1").status.get()
    assert isinstance(status["loadavg"][0], str)
    assert status["cpuinfo"]["cpus"] == 32 and status["memory"]["total"] == 128 * 1024 ** 3
    assert "available" in status["memory"]
    rows = token_api.nodes("pve1").rrddata.get(timeframe="hour")
    assert len(rows) == 60
    for key in ("pressurecpusome", "pressureiosome", "pressureiofull", "pressurememorysome", "pressurememoryfull", "memused"):
        assert key in rows[-1]
    assert rows == token_api.nodes("pve1").rrddata.get(timeframe="hour")
    vm_rows = token_api.nodes("pve1").qemu(100).rrddata.get(timeframe="hour")
    assert len(vm_rows) == 60 and "memhost" in vm_rows[-1] and "pressurecpufull" in vm_rows[-1]
    with pytest.raises(ResourceException) as err:
        token_api.nodes("pve1").rrddata.get()
    assert err.value.errors == {"timeframe": "property is missing and it is not optional"}


def test_guest_lists_config_and_status(token_api):
    qemu = {g["vmid"]: g for g in token_api.nodes("pve1").qemu.get()}
    assert set(qemu) == {100, 101, 110, 120, 121, 130, 140, 141, 160}
    assert qemu[100]["pressurecpusome"] >= 0 and qemu[160]["status"] == "stopped"
    lxc = token_api.nodes("pve1").lxc.get()
    assert lxc[0]["vmid"] == 150 and isinstance(lxc[0]["pressurecpusome"], str)
    config = token_api.nodes("pve1").qemu(140).config.get()
    assert config["memory"] == "16384" and config["scsi1"].startswith("local-lvm:vm-140-disk-1")
    assert len(config["digest"]) == 40
    current = token_api.nodes("pve1").qemu(110).status.current.get()
    assert current["ha"] == {"managed": 1, "state": "started"} and current["qmpstatus"] == "running"
    with pytest.raises(ResourceException) as err:
        token_api.nodes("pve2").qemu(100).config.get()
    assert err.value.status_code == 500
    assert err.value.content == "Configuration file 'nodes/pve2/qemu-server/100.conf' does not exist"


def test_migrate_preconditions(token_api):
    data = token_api.nodes("pve1").qemu(130).migrate.get()
    assert data["running"] == 1
    assert data["allowed_nodes"] == ["pve2"]
    assert data["not_allowed_nodes"]["pve2"] == {}
    assert data["not_allowed_nodes"]["pve3"] == {"unavailable_storages": ["fast-nvme"]}
    assert [d["volid"] for d in data["local_disks"]] == ["fast-nvme:vm-130-disk-1"]
    gpu = token_api.nodes("pve2").qemu(170).migrate.get()
    assert gpu["local_resources"] == ["hostpci0"]
    ha = token_api.nodes("pve1").qemu(110).migrate.get()
    assert ha["not_allowed_nodes"]["pve2"] == {"blocking-ha-resources": [{"sid": "vm:111", "cause": "resource-affinity"}]}
    assert ha["dependent-ha-resources"] == []
    ct = token_api.nodes("pve1").lxc(150).migrate.get()
    assert ct["running"] == 1 and "pve2" in ct["allowed-nodes"] and ct["not-allowed-nodes"] == {}


def test_ha_endpoints_pve9(token_api):
    rules = token_api.cluster.ha.rules.get()
    assert [r["order"] for r in rules] == list(range(1, len(rules) + 1))
    node_rules = token_api.cluster.ha.rules.get(type="node-affinity")
    assert {r["type"] for r in node_rules} == {"node-affinity"}
    strict = [r for r in node_rules if r["rule"] == "queue-nodes"][0]
    assert strict["strict"] == 1 and strict["nodes"] == "pve3:2,pve4:1"
    with pytest.raises(ResourceException) as err:
        token_api.cluster.ha.groups.get()
    assert err.value.status_code == 500
    assert err.value.content == "cannot index groups: ha groups have been migrated to rules"
    resources = token_api.cluster.ha.resources.get()
    assert all("group" not in r for r in resources) and {r["sid"] for r in resources} >= {"vm:110", "ct:153"}
    status = token_api.cluster.ha.status.current.get()
    assert status[0]["type"] == "quorum" and status[1]["type"] == "master"
    assert "static load CRS" in status[1]["status"]
    assert any(s["id"] == "service:vm:110" and s["state"] == "started" for s in status)
    manager = token_api.cluster.ha.status.manager_status.get()
    assert manager["manager_status"]["node_status"]["pve1"] == "online"
    assert token_api.cluster.options.get()["crs"] == {"ha": "static", "ha-rebalance-on-start": 1}


def test_pools_and_storage(token_api):
    assert {p["poolid"] for p in token_api.pools.get()} == {"prod", "infra", "dev"}
    prod = token_api.pools.get(poolid="prod")[0]
    assert {m["vmid"] for m in prod["members"]} >= {100, 101, 110}
    assert "tags" not in prod["members"][0]
    assert token_api.pools("prod").get()["poolid"] == "prod"
    config = {s["storage"]: s for s in token_api.storage.get()}
    assert config["ceph-vm"]["shared"] == 1 and "shared" not in config["local-lvm"]
    assert config["fast-nvme"]["nodes"] == "pve1,pve2"
    node_storage = {s["storage"]: s for s in token_api.nodes("pve3").storage.get()}
    assert "fast-nvme" not in node_storage and node_storage["local-lvm"]["used"] == 32 * 1024 ** 3
    content = token_api.nodes("pve1").storage("local-lvm").content.get()
    assert [(c["volid"], c["vmid"]) for c in content] == [("local-lvm:vm-140-disk-1", 140)]


def test_permissions_endpoint(audit_api, token_api):
    assert token_api.access.permissions.get()["/"]["VM.Migrate"] == 1
    audit = audit_api.access.permissions.get()
    assert set(audit["/vms"]) == {"Sys.Audit", "VM.Audit", "Datastore.Audit", "Pool.Audit"}


def test_pve8_quirks(sim, token_api):
    sim.reset(scenario="pve8", speed=FAST)
    assert token_api.version.get()["version"] == "8.2.4"
    nodes = token_api.cluster.resources.get(type="node")
    assert all("hastate" not in n for n in nodes)
    vms = token_api.cluster.resources.get(type="vm")
    assert all("memhost" not in v for v in vms)
    groups = token_api.cluster.ha.groups.get()
    assert {g["group"] for g in groups} == {"db", "prefer-pve2"}
    assert [r for r in token_api.cluster.ha.resources.get() if r["sid"] == "vm:102"][0]["group"] == "db"
    with pytest.raises(ResourceException) as err:
        token_api.cluster.ha.rules.get()
    assert err.value.status_code == 501
    with pytest.raises(ResourceException) as err:
        token_api.nodes("pve3").lxc(110).migrate.get()
    assert err.value.status_code == 501
    with pytest.raises(ResourceException) as err:
        token_api.nodes("pve1").qemu(100).migrate.post(target="pve2", online=1, **{"with-conntrack-state": 1})
    assert err.value.status_code == 400 and "with-conntrack-state" in err.value.errors
    # Running VM on PVE < 8.4: no allowed_nodes in the precondition answer.
    assert "allowed_nodes" not in token_api.nodes("pve1").qemu(100).migrate.get()
    header = {"Authorization": "PVEAPIToken=root@pam!%s=%s" % ROOT_TOKEN}
    resp = requests.get(sim.url + "/api2/json/nodes/pve1/qemu/999/config", headers=header, verify=sim.ca_path, timeout=10)
    assert resp.status_code == 500 and resp.json() == {"data": None}
    assert token_api.nodes("pve1").rrddata.get(timeframe="hour")[-1].get("pressurecpusome") is None


def test_pve9_2_crs(sim, token_api):
    sim.reset(scenario="pve9", speed=FAST)
    assert token_api.cluster.options.get()["crs"]["ha-auto-rebalance"] == 1
    services = [s for s in token_api.cluster.ha.status.current.get() if s["type"] == "service"]
    assert all("auto-rebalance" in s for s in services)
    row = token_api.nodes("pve1").rrddata.get(timeframe="hour")[-1]
    assert row["pressurememorysome"] == 2.4
