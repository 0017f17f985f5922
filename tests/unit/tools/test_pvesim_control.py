"""The /_sim control interface and the Python control methods: faults, node outages, reset, counters, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from pvesim_testlib import FAST, api_host, wait_for, wait_task

proxmoxer = pytest.importorskip("proxmoxer")
requests = pytest.importorskip("requests")
ResourceException = proxmoxer.core.ResourceException

TOOLS_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "tools"))


def _control(sim, method, path, body=None):
    resp = requests.request(method, sim.url + "/_sim" + path, json=body, verify=sim.ca_path, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_state_shape(sim):
    state = _control(sim, "GET", "/state")
    assert state["version"] == "9.0.3"
    assert set(state["nodes"]["pve1"]) >= {"status", "mem", "maxmem", "cpu", "maxcpu", "hastate"}
    guest = state["guests"]["100"]
    assert set(guest) >= {"vmid", "name", "type", "node", "status", "lock", "mem", "maxmem", "maxcpu", "tags", "pool", "ha"}
    assert guest["type"] == "qemu" and state["guests"]["150"]["type"] == "lxc"
    assert state["guests"]["110"]["ha"] is True and guest["ha"] is False
    assert state["tasks"] == []
    assert len(state["guests"]) == 40


def test_call_counting(sim, token_api):
    _control(sim, "POST", "/calls/reset")
    token_api.cluster.resources.get()
    token_api.cluster.resources.get(type="vm")
    token_api.nodes("pve1").qemu(100).config.get()
    token_api.nodes("pve2").qemu(102).config.get()
    upid = token_api.nodes("pve1").qemu(100).migrate.post(target="pve2", online=1)
    wait_task(token_api, "pve1", upid)
    calls = _control(sim, "GET", "/calls")
    assert calls["by_endpoint"]["GET /cluster/resources"] == 2
    assert calls["by_endpoint"]["GET /nodes/{node}/qemu/{vmid}/config"] == 2
    assert calls["by_endpoint"]["POST /nodes/{node}/qemu/{vmid}/migrate"] == 1
    assert calls["by_endpoint"]["GET /nodes/{node}/tasks/{upid}/status"] >= 1
    assert calls["total"] == sum(calls["by_endpoint"].values())
    # Control calls are never counted.
    _control(sim, "GET", "/state")
    assert _control(sim, "GET", "/calls")["total"] == calls["total"]
    assert sim.reset_calls()["total"] == 0


def test_ticket_logins_are_counted_separately(sim):
    sim.reset_calls()
    proxmoxer.ProxmoxAPI(api_host(sim), user="root@pam", password="pvesim", verify_ssl=sim.ca_path)
    calls = sim.calls()
    assert calls["total"] == 0 and calls["auth"] == 1


def _migration_outcomes(sim, api, count):
    outcomes = []
    for vmid, node, target in [(100, "pve1", "pve2"), (101, "pve1", "pve2"), (141, "pve1", "pve4"), (104, "pve3", "pve5"),
                               (105, "pve4", "pve5"), (106, "pve5", "pve2"), (107, "pve5", "pve3"), (103, "pve2", "pve4")][:count]:
        upid = api.nodes(node).qemu(vmid).migrate.post(target=target, online=1)
        outcomes.append(wait_task(api, node, upid)["exitstatus"])
        guest = sim.state()["guests"][str(vmid)]
        # A failed migration leaves the guest running on its source, never lost or duplicated.
        assert guest["node"] == (target if outcomes[-1] == "OK" else node)
        assert guest["status"] == "running" and guest["lock"] is None
    return outcomes


def test_migration_failures_are_deterministic(sim, token_api):
    _control(sim, "POST", "/faults", {"migration_failure_rate": 0.5, "seed": 7})
    first = _migration_outcomes(sim, token_api, 8)
    sim.reset(speed=FAST)
    sim.set_faults(migration_failure_rate=0.5, seed=7)
    second = _migration_outcomes(sim, token_api, 8)
    assert first == second
    assert "OK" in first and "migration aborted" in first
    assert len(sim.state()["guests"]) == 40


def test_failed_migration_log(sim, token_api):
    sim.set_faults(migration_failure_rate=1.0, seed=1)
    upid = token_api.nodes("pve1").qemu(100).migrate.post(target="pve2", online=1)
    assert wait_task(token_api, "pve1", upid)["exitstatus"] == "migration aborted"
    log = [line["t"] for line in token_api.nodes("pve1").tasks(upid).log.get()]
    assert log[-1] == "TASK ERROR: migration aborted"
    assert any(line.endswith("aborting phase 2 - cleanup resources") for line in log)


def test_http_500_faults_only_hit_api_gets_and_are_deterministic(sim, token_api):
    def run():
        results = []
        for _attempt in range(40):
            try:
                token_api.version.get()
                results.append(200)
            except ResourceException as err:
                assert err.status_code == 500
                results.append(500)
        return results

    sim.set_faults(http_500_rate=0.3, seed=3)
    first = run()
    _control(sim, "GET", "/state")  # control calls never fail
    sim.set_faults(http_500_rate=0.3, seed=3)
    second = run()
    assert first == second and 500 in first and 200 in first
    sim.set_faults(http_500_rate=1.0, seed=3)
    upid = token_api.nodes("pve1").qemu(100).migrate.post(target="pve2", online=1)
    assert upid.startswith("UPID:")
    assert _control(sim, "POST", "/faults", {}) == {"migration_failure_rate": 0.0, "http_500_rate": 0.0, "latency_s": 0.0, "seed": 0,
                                                    "disk_move_failure_rate": 0.0}


def test_latency(sim, token_api):
    sim.set_faults(latency_s=0.05)
    start = time.monotonic()
    for _attempt in range(3):
        token_api.version.get()
    assert time.monotonic() - start >= 0.15


def test_node_offline_and_online(sim, token_api):
    _control(sim, "POST", "/nodes/pve3/offline", {})
    with pytest.raises(ResourceException) as err:
        token_api.nodes("pve3").qemu.get()
    assert err.value.status_code == 595
    resp = requests.get(sim.url + "/api2/json/nodes/pve3/status", verify=sim.ca_path, timeout=10,
                        headers={"Authorization": "PVEAPIToken=root@pam!proxlb=00000000-0000-4000-8000-000000000001"})
    assert resp.status_code == 595 and resp.reason == "No route to host" and resp.content == b""
    nodes = {n["node"]: n for n in token_api.cluster.resources.get(type="node")}
    assert nodes["pve3"] == {"id": "node/pve3", "node": "pve3", "type": "node", "status": "offline"}
    guests = {g["vmid"]: g for g in token_api.cluster.resources.get(type="vm")}
    assert guests[112]["status"] == "unknown" and guests[112]["node"] == "pve3"
    assert sim.state()["guests"]["112"]["node"] == "pve3"
    cluster = {e["id"]: e for e in token_api.cluster.status.get()}
    assert cluster["node/pve3"]["online"] == 0 and cluster["cluster"]["quorate"] == 1
    lrm = {e["id"]: e for e in token_api.cluster.ha.status.current.get()}
    assert "old timestamp - dead?" in lrm["lrm:pve3"]["status"]
    _control(sim, "POST", "/nodes/pve3/online")
    assert len(token_api.nodes("pve3").qemu.get()) == 4


def test_timed_offline_and_reboot(sim, token_api):
    sim.node_offline("pve4", duration_s=0.3)
    assert sim.state()["nodes"]["pve4"]["status"] == "offline"
    wait_for(lambda: sim.state()["nodes"]["pve4"]["status"] == "online", timeout=5)
    _control(sim, "POST", "/nodes/pve5/reboot", {"duration_s": 0.3})
    assert sim.state()["nodes"]["pve5"]["status"] == "offline"
    wait_for(lambda: sim.state()["nodes"]["pve5"]["status"] == "online", timeout=5)
    assert token_api.nodes("pve5").status.get()["uptime"] < 10
    assert sim.state()["guests"]["106"]["status"] == "running"


def test_running_migration_fails_when_node_goes_offline(sim, token_api):
    sim.reset(speed=1)
    upid = token_api.nodes("pve1").qemu(100).migrate.post(target="pve2", online=1)
    sim.node_offline("pve2")
    status = wait_task(token_api, "pve1", upid, timeout=5)
    assert status["exitstatus"] == "migration aborted"
    guest = sim.state()["guests"]["100"]
    assert guest["node"] == "pve1" and guest["lock"] is None


def test_ha_maintenance(sim, token_api):
    _control(sim, "POST", "/nodes/pve2/ha-maintenance", {"enable": True})
    nodes = {n["node"]: n for n in token_api.cluster.resources.get(type="node")}
    assert nodes["pve2"]["hastate"] == "maintenance"
    lrm = {e["id"]: e for e in token_api.cluster.ha.status.current.get()}
    assert "maintenance mode" in lrm["lrm:pve2"]["status"]
    manager = token_api.cluster.ha.status.manager_status.get()["manager_status"]
    assert manager["node_status"]["pve2"] == "maintenance" and manager["node_request"] == {"pve2": {"maintenance": 1}}
    # Nothing is moved automatically.
    assert sim.state()["guests"]["111"]["node"] == "pve2"
    sim.ha_maintenance("pve2", False)
    assert sim.state()["nodes"]["pve2"]["hastate"] == "online"


def test_guest_lock_control(sim, token_api):
    _control(sim, "POST", "/guests/100/lock", {"lock": "backup"})
    with pytest.raises(ResourceException) as err:
        token_api.nodes("pve1").qemu(100).migrate.post(target="pve2", online=1)
    assert err.value.content == "VM is locked (backup)"
    _control(sim, "POST", "/guests/100/lock", {"lock": None})
    assert sim.state()["guests"]["100"]["lock"] is None


def test_reset_restores_scenario_and_clears_everything(sim, token_api):
    upid = token_api.nodes("pve1").qemu(100).migrate.post(target="pve2", online=1)
    wait_task(token_api, "pve1", upid)
    sim.set_faults(http_500_rate=0.5, seed=1)
    sim.node_offline("pve5")
    result = _control(sim, "POST", "/reset", {"speed": 50})
    assert result["speed"] == 50
    state = sim.state()
    assert state["guests"]["100"]["node"] == "pve1" and state["tasks"] == []
    assert state["nodes"]["pve5"]["status"] == "online" and state["faults"]["http_500_rate"] == 0
    assert sim.calls()["total"] == 0
    _control(sim, "POST", "/reset", {"scenario": "gen:3:30:5"})
    assert len(sim.state()["guests"]) == 30
    inline = {"name": "tiny", "nodes": [{"name": "a"}, {"name": "b"}],
              "guests": [{"vmid": 100, "node": "a", "memory": 1024}]}
    _control(sim, "POST", "/reset", {"scenario": inline})
    assert list(sim.state()["guests"]) == ["100"]
    resp = requests.post(sim.url + "/_sim/reset", json={"scenario": "does-not-exist"}, verify=sim.ca_path, timeout=10)
    assert resp.status_code == 400 and "unknown scenario" in resp.json()["error"]


def test_unknown_control_endpoint(sim):
    resp = requests.post(sim.url + "/_sim/nodes/pve9/offline", json={}, verify=sim.ca_path, timeout=10)
    assert resp.status_code == 404
    resp = requests.get(sim.url + "/_sim/nope", verify=sim.ca_path, timeout=10)
    assert resp.status_code == 404


def test_refuses_non_loopback():
    from pvesim import Simulator  # pylint: disable=import-outside-toplevel
    with pytest.raises(ValueError):
        Simulator(host="0.0.0.0")


def test_cli_ready_file_and_sigterm(tmp_path):
    ready = tmp_path / "ready.json"
    cert_dir = tmp_path / "certs"
    env = dict(os.environ, PYTHONPATH=TOOLS_DIR)
    cmd = [sys.executable, "-m", "pvesim", "--port", "0", "--cert-dir", str(cert_dir)]
    with subprocess.Popen(cmd + ["--scenario", "pve8", "--speed", "20", "--ready-file", str(ready)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            line = proc.stdout.readline()
            assert line.startswith("pvesim ready on https://127.0.0.1:")
            info = json.loads(ready.read_text())
            assert info["pid"] == proc.pid and info["ca_path"] == str(cert_dir / "ca.pem")
            assert line.strip().endswith(info["url"])
            api = proxmoxer.ProxmoxAPI("127.0.0.1:%d" % info["port"], user="root@pam", password="pvesim",
                                       verify_ssl=info["ca_path"])
            assert api.version.get()["version"] == "8.2.4"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
            assert not ready.exists()
        finally:
            if proc.poll() is None:
                proc.kill()
    ca_before = (cert_dir / "ca.pem").read_bytes()
    # A second start reuses the still valid certificates.
    with subprocess.Popen(cmd + ["--scenario", "demo"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout.readline().startswith("pvesim ready on ")
            assert (cert_dir / "ca.pem").read_bytes() == ca_before
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=10)
