"""Scenario options and per-scenario quirks."""

from __future__ import annotations

import time

import pytest

from pvesim_testlib import FAST

proxmoxer = pytest.importorskip("proxmoxer")
requests = pytest.importorskip("requests")

GIB = 1024 ** 3


def _tiny(**options):
    return {
        "name": "tiny", "version": "8.0.4", "options": dict(options),
        "nodes": [{"name": "a", "maxmem_gib": 32, "base_mem_gib": 1, "base_cpu": 0.5, "maxcpu": 8},
                  {"name": "b", "maxmem_gib": 32, "status": "offline"}],
        "guests": [
            {"vmid": 100, "node": "a", "memory": 2048, "mem_gib": 3, "cores": 2, "cpu": 0.5},
            {"vmid": 101, "node": "a", "type": "lxc", "memory": 512, "mem_fraction": 0.5},
            {"vmid": 102, "node": "b", "memory": 1024, "tags": ["x", "y"], "pool": "p1"},
        ],
    }


def test_quirk_options(sim, token_api):
    sim.reset(scenario=_tiny(lxc_vmid_string=True), speed=FAST)
    lxc = token_api.nodes("a").lxc.get()
    assert lxc[0]["vmid"] == "101"
    guests = {g["vmid"]: g for g in token_api.cluster.resources.get(type="vm")}
    # mem above maxmem is passed through, as PVE sometimes reports it.
    assert guests[100]["mem"] == 3 * GIB > guests[100]["maxmem"]
    assert guests[102] == {"id": "qemu/102", "vmid": 102, "node": "b", "type": "qemu", "status": "unknown",
                           "tags": "x;y", "pool": "p1"}
    nodes = {n["node"]: n for n in token_api.nodes.get()}
    assert set(nodes["b"]) == {"id", "node", "type", "status", "ssl_fingerprint"} and nodes["b"]["status"] == "offline"
    node_a = nodes["a"]
    assert node_a["mem"] == 1 * GIB + 3 * GIB + 256 * 1024 ** 2
    assert node_a["cpu"] == pytest.approx((0.5 + 0.5 * 2 + 0.03 * 1) / 8)
    # PVE 8.0: config memory is still an integer, no message in error bodies.
    assert token_api.nodes("a").qemu(100).config.get()["memory"] == 2048
    header = {"Authorization": "PVEAPIToken=root@pam!proxlb=00000000-0000-4000-8000-000000000001"}
    resp = requests.get(sim.url + "/api2/json/cluster/resources?type=pool", headers=header, verify=sim.ca_path, timeout=10)
    assert resp.status_code == 400 and "message" not in resp.json() and "type" in resp.json()["errors"]


def test_auth_failure_delay(sim):
    sim.reset(scenario=_tiny(auth_failure_delay_s=0.3), speed=FAST)
    start = time.monotonic()
    resp = requests.get(sim.url + "/api2/json/version", verify=sim.ca_path, timeout=10)
    assert resp.status_code == 401 and time.monotonic() - start >= 0.3


def test_error_body_option(sim, token_api):
    sim.reset(scenario=_tiny(error_message_body=True), speed=FAST)
    header = {"Authorization": "PVEAPIToken=root@pam!proxlb=00000000-0000-4000-8000-000000000001"}
    resp = requests.get(sim.url + "/api2/json/nodes/a/qemu/555/config", headers=header, verify=sim.ca_path, timeout=10)
    assert resp.json() == {"data": None, "message": "Configuration file 'nodes/a/qemu-server/555.conf' does not exist\n"}
    assert token_api.nodes("a").qemu(100).status.current.get()["ha"] == {"managed": 0}


def test_custom_users(sim):
    scenario = _tiny()
    scenario["users"] = [{"userid": "lb@pve", "password": "secret", "privs": ["VM.Audit", "Sys.Audit"],
                          "tokens": [{"tokenid": "t1", "secret": "abc"}]}]
    sim.reset(scenario=scenario, speed=FAST)
    api = proxmoxer.ProxmoxAPI("%s:%d" % (sim.host, sim.port), user="lb@pve", password="secret", verify_ssl=sim.ca_path)
    assert len(api.cluster.resources.get(type="vm")) == 3
    with pytest.raises(proxmoxer.AuthenticationError):
        proxmoxer.ProxmoxAPI("%s:%d" % (sim.host, sim.port), user="root@pam", password="pvesim", verify_ssl=sim.ca_path)
    with pytest.raises(proxmoxer.core.ResourceException) as err:
        api.nodes("a").qemu(100).migrate.post(target="b")
    assert err.value.status_code == 403
