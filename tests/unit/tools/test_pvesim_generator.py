"""The scenario generator and scenario validation."""

from __future__ import annotations

import json

import pytest

from pvesim import ScenarioError, generate, load_scenario
from pvesim.scenarios import shipped_scenarios
from pvesim.units import GIB
from pvesim_testlib import FAST

proxmoxer = pytest.importorskip("proxmoxer")


def test_generator_is_deterministic():
    assert json.dumps(generate(8, 300, 42), sort_keys=True) == json.dumps(generate(8, 300, 42), sort_keys=True)
    assert json.dumps(generate(8, 300, 42), sort_keys=True) != json.dumps(generate(8, 300, 43), sort_keys=True)


def test_generator_mix_and_load():
    scenario = load_scenario(generate(32, 3000, 7))
    guests = scenario["guests"]
    assert len(guests) == 3000 and len(scenario["nodes"]) == 32
    vms = [g for g in guests if g["type"] == "qemu"]
    cts = [g for g in guests if g["type"] == "lxc"]
    assert 0.06 < len(cts) / len(guests) < 0.14
    small = [g for g in vms if g["maxcpu"] == 1 and g["maxmem"] == 1792 * 1024 ** 2]
    big = [g for g in vms if g["maxmem"] == 56 * GIB]
    assert 0.40 < len(small) / len(vms) < 0.56
    assert 0.02 < len(big) / len(vms) < 0.07
    assert len({n["maxmem"] for n in scenario["nodes"]}) >= 3
    used = {n["name"]: n["base_mem"] for n in scenario["nodes"]}
    for guest in guests:
        if guest["status"] == "running":
            used[guest["node"]] += guest["mem"]
    total = sum(n["maxmem"] for n in scenario["nodes"])
    assert 0.55 <= sum(used.values()) / total <= 0.65
    loads = sorted(used[n["name"]] / n["maxmem"] for n in scenario["nodes"])
    assert loads[-1] - loads[0] > 0.15        # uneven on purpose
    cpus = sorted(g["cpu"] for g in guests)
    assert cpus[len(cpus) // 2] < 0.05 and cpus[-1] > 0.3     # low median, heavy tail
    assert any("plb_anti_affinity" in g["tags"] for g in guests)
    assert scenario["ha"]["resources"] and scenario["ha"]["rules"]


def test_generator_pve8_uses_groups():
    scenario = load_scenario(generate(4, 200, 1, version="8.2.4"))
    assert scenario["ha"]["groups"] and not scenario["ha"]["rules"]


def test_generator_limits():
    with pytest.raises(ValueError):
        generate(65, 10, 1)
    with pytest.raises(ValueError):
        generate(4, 6001, 1)


def test_six_thousand_guests_served(sim, token_api):
    sim.reset(scenario="gen:64:6000:1", speed=FAST)
    resources = token_api.cluster.resources.get()
    guests = [r for r in resources if r["type"] in ("qemu", "lxc")]
    nodes = [r for r in resources if r["type"] == "node"]
    assert len(guests) == 6000 and len(nodes) == 64
    assert len({g["vmid"] for g in guests}) == 6000
    state = sim.state()
    for node in nodes:
        assert node["mem"] == state["nodes"][node["node"]]["mem"]
    assert len(token_api.cluster.resources.get(type="vm")) == 6000


def test_shipped_scenarios_load():
    assert {"demo", "pve8", "pve9"} <= set(shipped_scenarios())
    for name in shipped_scenarios():
        scenario = load_scenario(name)
        assert scenario["nodes"] and scenario["guests"]


def test_demo_has_every_rule_kind():
    demo = load_scenario("demo")
    tags = ";".join(g["tags"] for g in demo["guests"])
    assert tags.count("plb_affinity_web") == 2 and tags.count("plb_anti_affinity_db") == 3
    assert "plb_pin_pve3" in tags and "plb_ignore" in tags
    anti_nodes = {g["node"] for g in demo["guests"] if "plb_anti_affinity_db" in g["tags"]}
    assert len(anti_nodes) == 3
    kinds = {(r["type"], r.get("affinity"), r.get("strict")) for r in demo["ha"]["rules"]}
    assert ("node-affinity", None, 1) in kinds and ("node-affinity", None, 0) in kinds
    assert ("resource-affinity", "positive", None) in kinds and ("resource-affinity", "negative", None) in kinds
    assert any(g["template"] for g in demo["guests"]) and any(g["type"] == "lxc" for g in demo["guests"])


@pytest.mark.parametrize("raw,message", [
    ({"nodes": []}, "at least one node"),
    ({"nodes": [{"name": "a"}], "guests": [{"vmid": 100, "node": "b"}]}, "not a scenario node"),
    ({"nodes": [{"name": "a"}], "guests": [{"vmid": 100, "node": "a"}, {"vmid": 100, "node": "a"}]}, "duplicate vmid"),
    ({"nodes": [{"name": "a"}], "guests": [{"vmid": 100, "node": "a", "type": "lxc"}],
      "ha": {"resources": [{"sid": "vm:100"}]}}, "does not match"),
    ({"nodes": [{"name": "a"}], "options": {"bogus": 1}}, "unknown options"),
    ({"nodes": [{"name": "a", "maxmem_gb": 4}]}, "nodes[0].unknown keys: maxmem_gb"),
    ({"nodes": [{"name": "a"}], "guests": [{"vmid": 100, "node": "a", "tag": "x"}]}, "guests[0].unknown keys: tag"),
])
def test_invalid_scenarios(raw, message):
    with pytest.raises(ScenarioError) as err:
        load_scenario(raw)
    assert message in str(err.value)


def test_size_suffixes_and_defaults():
    scenario = load_scenario({"nodes": [{"name": "n1", "maxmem_gib": 64, "base_mem_mib": 2048}],
                              "guests": [{"vmid": 100, "node": "n1", "maxmem_gib": 4, "mem_fraction": 0.5}]})
    node = scenario["nodes"][0]
    guest = scenario["guests"][0]
    assert node["maxmem"] == 64 * GIB and node["base_mem"] == 2 * GIB
    assert guest["maxmem"] == 4 * GIB and guest["mem"] == 2 * GIB and guest["status"] == "running"
    assert guest["disks"][0]["volid"] == "ceph-vm:vm-100-disk-0"


def test_import_of_a_cluster_resources_dump(sim, token_api, tmp_path):
    dump = token_api.cluster.resources.get()
    before = sim.state()
    path = tmp_path / "mycluster.json"
    path.write_text(json.dumps({"data": dump}))
    sim.reset(scenario=str(path), speed=FAST)
    after = sim.state()
    assert after["scenario"] == "mycluster"
    assert set(after["guests"]) == set(before["guests"])
    for name, node in before["nodes"].items():
        assert after["nodes"][name]["mem"] == node["mem"]
        assert abs(after["nodes"][name]["cpu"] - node["cpu"]) < 1e-9
    assert after["guests"]["110"]["ha"] is True and after["guests"]["100"]["tags"] == "plb_affinity_web;prod"
    assert after["nodes"]["pve1"]["maxmem"] == 128 * GIB
