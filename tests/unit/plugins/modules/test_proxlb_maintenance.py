# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""proxlb_maintenance: request checks and classification on plain data, PVE's migration check on
canned answers, and whole drains and returns through the module against the HTTPS simulator."""

from __future__ import annotations

import json
import os
import sys

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.proxlb.balancer.plugins.module_utils import planner, pve_api
from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ConfigError, PveApiError
from ansible_collections.proxlb.balancer.plugins.module_utils.planner import Move
from ansible_collections.proxlb.balancer.plugins.module_utils import maintenance as maint
from ansible_collections.proxlb.balancer.plugins.modules import proxlb_maintenance as module
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.cluster_builder import (
    cluster, guest, node, settings)

TOOLS_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "tools"))
SCENARIOS = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "integration", "targets",
                                         "proxlb_maintenance_scenarios", "files"))
TOKEN = ("proxlb", "00000000-0000-4000-8000-000000000001")


def scenario(name):
    with open(os.path.join(SCENARIOS, name + ".json")) as handle:
        return json.load(handle)


# -- the request ------------------------------------------------------------------------------

def four_nodes(**states):
    return cluster([node(n, **states.get(n, {})) for n in ("pve1", "pve2", "pve3", "pve4")],
                   [guest(101, "pve1"), guest(102, "pve2")])


def test_nodes_are_deduplicated_and_must_exist():
    snap = four_nodes()
    assert maint.requested_nodes({"nodes": ["pve1", " pve1", "pve2"]}, snap) == ["pve1", "pve2"]
    with pytest.raises(ConfigError, match=r"^nodes: is empty"):
        maint.requested_nodes({"nodes": []}, snap)
    with pytest.raises(ConfigError, match=r"unknown node\(s\) pve7; the cluster has pve1, pve2, pve3, pve4"):
        maint.requested_nodes({"nodes": ["pve1", "pve7"]}, snap)


def test_drain_of_every_node_is_refused():
    snap = four_nodes()
    with pytest.raises(ConfigError, match="would drain every node of the cluster"):
        maint.check_drain(["pve1", "pve2", "pve3", "pve4"], snap, settings())


def test_drain_without_a_receiving_node_is_refused_with_each_nodes_reason():
    snap = four_nodes(pve3=dict(status="offline"), pve4=dict(ha_maintenance=True))
    with pytest.raises(ConfigError) as err:
        maint.check_drain(["pve1", "pve2"], snap, settings())
    assert "pve3: offline" in str(err.value) and "pve4: in PVE HA maintenance" in str(err.value)
    with pytest.raises(ConfigError, match="^ignore_nodes:"):
        maint.check_drain(["pve1"], four_nodes(), settings(ignore_nodes=["pve1"]))
    maint.check_drain(["pve1"], snap, settings())


def test_return_list_keeps_entries_of_the_nodes_and_reports_vanished_guests():
    snap = four_nodes()
    wanted, gone = maint.wanted_placements({"return_guests": [
        {"vmid": 101, "name": "g101", "from": "pve3", "to": "pve1"},
        {"vmid": "102", "from": "pve4"},
        {"vmid": 999, "name": "gone", "from": "pve3", "to": "pve2"}]}, ["pve3"], snap)
    assert wanted == {101: "pve3"}
    assert gone == [dict(vmid=999, name="gone", node=None, wanted="pve3", reason="guest no longer exists")]
    with pytest.raises(ConfigError, match=r"^return_guests\[0\]: needs vmid and from"):
        maint.wanted_placements({"return_guests": [{"vmid": "x", "from": "pve1"}]}, ["pve1"], snap)


# -- what stays on a drained node ---------------------------------------------------------------

def test_classification_of_what_stays():
    snap = cluster([node("pve1"), node("pve2"), node("pve3")], [
        guest(101, "pve1", tags=["plb_pin_pve1"]),                       # pinned here only
        guest(102, "pve1", tags=["plb_ignore"]),                         # ignored
        guest(103, "pve1", tags=["plb_affinity_x"]),                     # partner of an ignored guest
        guest(104, "pve1", tags=["plb_affinity_x", "plb_ignore_me"]),
        guest(105, "pve1", status="stopped"),
        guest(106, "pve1", template=True, status="stopped", tags=["plb_pin_pve1"]),
        guest(107, "pve1", mem_gib=200),                                 # fits nowhere
        guest(108, "pve1"),                                              # moves
    ])
    conf = settings(maintenance_nodes=["pve1"], include_stopped=False)
    plan = planner.plan(snap, conf, balance=False)
    blocking, staying, nowhere = maint.remaining_on(snap, conf, ["pve1"], plan)
    reasons = {e["vmid"]: e["reason"] for e in blocking}
    assert reasons[101] == "may only run on pve1 (rule:pin)"
    assert reasons[102] == "ignored" and reasons[104] == "ignored"
    assert reasons[103].startswith("affinity with 104 (g104), which stays: ignored")
    assert {e["vmid"]: e["reason"] for e in staying} == {105: "stopped", 106: "template"}
    assert [e["vmid"] for e in nowhere] == [107]
    assert "memory" in nowhere[0]["detail"] and nowhere[0]["rule"] == "maintenance"
    assert [m.vmid for m in plan.moves] == [108]


# -- PVE's migration check ----------------------------------------------------------------------

class Answers:
    """A client that answers the migration check from a dict and counts the requests."""

    def __init__(self, answers):
        self.answers = answers
        self.asked = []

    def get(self, path, **params):
        self.asked.append((path, params))
        answer = self.answers[path]
        if isinstance(answer, Exception):
            raise answer
        return answer


def move(vmid, kind="qemu", target="pve2"):
    return Move(vmid=vmid, name="g%d" % vmid, kind="vm" if kind == "qemu" else "ct", type=kind, source="pve1",
                target=target, reason="maintenance", mandatory=True)


def test_pve_check_tells_whole_guest_refusals_from_refused_nodes():
    snap = four_nodes()
    client = Answers({
        "nodes/pve1/qemu/101/migrate": {"running": 1, "local_resources": ["hostpci0"], "allowed_nodes": ["pve2"],
                                        "not_allowed_nodes": {"pve2": {}}},
        "nodes/pve1/qemu/102/migrate": {"running": 1, "local_resources": [], "allowed_nodes": ["pve2"],
                                        "not_allowed_nodes": {"pve2": {}, "pve3": {"unavailable_storages": ["fast"]},
                                                              "pve4": {"blocking-ha-resources": [
                                                                  {"sid": "vm:9", "cause": "resource-affinity"}]}}},
        "nodes/pve1/qemu/103/migrate": PveApiError("500", kind="http", status=500, pve_message="VM is locked (backup)"),
    })
    whole, nodes = maint.pve_check(client, snap, move(101), True)
    assert whole == "PVE: local resources pin the VM to its node: hostpci0" and nodes == {}
    whole, nodes = maint.pve_check(client, snap, move(102), True)
    assert whole is None
    assert nodes == {"pve3": "PVE: target pve3 not allowed (storages not available there: fast)",
                     "pve4": "PVE: target pve4 not allowed (blocked by HA rules: vm:9 (resource-affinity))"}
    whole, nodes = maint.pve_check(client, snap, move(103), True)
    assert whole == "PVE refused the migration check: VM is locked (backup)"
    assert client.asked[0] == ("nodes/pve1/qemu/101/migrate", {"target": "pve2"})


def test_pve8_containers_are_not_asked():
    snap = four_nodes()
    snap.pve_version = "8.2.4"
    client = Answers({})
    assert maint.pve_check(client, snap, move(101, kind="lxc"), True) == (None, {})
    assert client.asked == []


def test_plan_goes_around_nodes_pve_refuses():
    snap = cluster([node("pve1"), node("pve2"), node("pve3")], [guest(101, "pve1")])
    conf = settings(maintenance_nodes=["pve1"])
    first = planner.plan(snap, conf, balance=False)
    refused_node = first.moves[0].target
    other = ({"pve2", "pve3"} - {refused_node}).pop()
    again = planner.plan(snap, conf, balance=False, forbidden={101: {refused_node: "PVE: no storage"}})
    assert [(m.vmid, m.target) for m in again.moves] == [(101, other)]
    stuck = planner.plan(snap, conf, balance=False, forbidden={101: {"pve2": "PVE: no storage", "pve3": "PVE: no bridge"}})
    assert stuck.moves == []
    assert stuck.data["failures"][0]["detail"] == "pve2: PVE: no storage; pve3: PVE: no bridge"


# -- the module against the simulator ---------------------------------------------------------

@pytest.fixture(scope="module")
def simulator(tmp_path_factory):
    pytest.importorskip("cryptography")
    pytest.importorskip("proxmoxer")
    if TOOLS_DIR not in sys.path:
        sys.path.insert(0, TOOLS_DIR)
    from pvesim import Simulator  # pylint: disable=import-outside-toplevel
    sim = Simulator(scenario=scenario("drain"), port=0, cert_dir=str(tmp_path_factory.mktemp("pvesim")), speed=100.0)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def sim(simulator):
    simulator.reset(scenario=scenario("drain"), speed=100.0)
    simulator.set_faults()
    yield simulator
    simulator.set_faults()


def placements(sim):
    return {int(v): g["node"] for v, g in sim.state()["guests"].items()}


def writes(sim):
    return [key for key in sim.calls()["by_endpoint"] if not key.startswith("GET ")]


def client_for(sim):
    return pve_api.open_client(pve_api.ConnectionSettings(
        hosts=["127.0.0.1:%d" % sim.port], user="root@pam", token_id=TOKEN[0], token_secret=TOKEN[1],
        validate_certs=True, ca_path=sim.ca_path, timeout=10))


def params(**args):
    """Module parameters as AnsibleModule would pass them: every option, defaults filled in."""
    values = {key: spec.get("default") for key, spec in module.argument_spec().items()}
    values.update(args)
    return values


def run_module(sim, monkeypatch, capsys, check=False, diff=False, **args):
    """Run the module's main() with a real client to the simulator; (failed, result)."""
    monkeypatch.setattr(module, "connect", lambda _module: client_for(sim))
    args = dict(args, api_host=["127.0.0.1"], api_token_id=TOKEN[0], api_token_secret=TOKEN[1],
                _ansible_check_mode=check, _ansible_diff=diff)
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    result = json.loads(capsys.readouterr().out)
    return bool(result.get("failed")), result


def test_check_mode_plans_and_sends_no_write(sim, monkeypatch, capsys):
    start = placements(sim)
    sim.reset_calls()
    failed, result = run_module(sim, monkeypatch, capsys, check=True, diff=True, nodes=["pve1"], state="drained")
    assert not failed and result["changed"]
    assert {m["status"] for m in result["moves"]} == {"planned"}
    assert sorted(e["vmid"] for e in result["evacuated"]) == [101, 102, 111, 121, 131, 141, 151]
    assert result["diff"]["before"]["101/web-a"] == "pve1"
    assert writes(sim) == [] and placements(sim) == start


def test_drain_keeps_rules_and_return_restores_placements(sim, monkeypatch, capsys):
    start = placements(sim)
    failed, drained = run_module(sim, monkeypatch, capsys, nodes=["pve1"], state="drained", max_moves_per_node=2,
                                 parallel_migrations=2)
    assert not failed and drained["changed"]
    now = placements(sim)
    assert [v for v, n in now.items() if n == "pve1"] == [191]
    assert now[101] == now[102] and now[121] == "pve3"
    assert len({now[111], now[112], now[113]}) == 3
    assert {e["vmid"]: e["to"] for e in drained["evacuated"]} == {v: now[v] for v in (101, 102, 111, 121, 131, 141, 151)}
    assert sim.state()["guests"]["141"]["status"] == "stopped"

    failed, again = run_module(sim, monkeypatch, capsys, nodes=["pve1"], state="drained")
    assert not failed and not again["changed"] and again["evacuated"] == []

    failed, back = run_module(sim, monkeypatch, capsys, nodes=["pve1"], state="active", return_guests=drained["evacuated"])
    assert not failed and back["changed"]
    assert placements(sim) == start
    assert back["not_returned"] == []


def test_no_room_fails_before_any_migration(sim, monkeypatch, capsys):
    sim.reset(scenario=scenario("no_room"), speed=100.0)
    start = placements(sim)
    sim.reset_calls()
    failed, result = run_module(sim, monkeypatch, capsys, nodes=["pve1"], state="drained")
    assert failed
    assert result["msg"].startswith("cannot drain pve1, nothing was migrated: 1 guest(s) have nowhere to go: 161 (big-1)")
    assert [e["vmid"] for e in result["nowhere_to_go"]] == [161]
    assert writes(sim) == [] and placements(sim) == start


def test_blocking_guests_fail_unless_allowed(sim, monkeypatch, capsys):
    sim.reset(scenario=scenario("blocking"), speed=100.0)
    sim.reset_calls()
    failed, result = run_module(sim, monkeypatch, capsys, nodes=["pve1"], state="drained")
    assert failed and "allow_blocking" in result["msg"] and writes(sim) == []
    assert [(e["vmid"], e["reason"]) for e in result["blocking"]] == [
        (171, "ignored"), (172, "PVE: local resources pin the VM to its node: hostpci0")]
    result, failure, warnings = maint.maintenance(client_for(sim), params(nodes=["pve1"], state="drained", allow_blocking=True))
    assert failure is None and [e["vmid"] for e in result["blocking"]] == [171, 172]
    assert sorted(v for v, n in placements(sim).items() if n == "pve1") == [171, 172, 191]
    assert warnings == ["171 (keep-1) stays on pve1: ignored",
                        "172 (gpu-1) stays on pve1: PVE: local resources pin the VM to its node: hostpci0"]


def test_failed_migration_fails_the_task_and_says_what_is_left(sim, monkeypatch, capsys):
    sim.set_faults(migration_failure_rate=1.0)
    failed, result = run_module(sim, monkeypatch, capsys, nodes=["pve1"], state="drained")
    assert failed
    assert "1 of 1 migration(s) failed" in result["msg"] and "Still on pve1:" in result["msg"]
    assert result["evacuated"] == []
    assert [m["status"] for m in result["moves"]][:1] == ["failed"]
    reasons = [e["reason"] for e in result["blocking"]]
    assert sum(1 for r in reasons if r.startswith("migration failed")) == 1
    assert all(r.startswith("not moved: the run stopped (on_failure=stop") for r in reasons if not r.startswith("migration"))


def test_nodes_in_ha_maintenance_take_no_guest_and_get_none_back(sim, monkeypatch, capsys):
    sim.ha_maintenance("pve4", True)
    failed, drained = run_module(sim, monkeypatch, capsys, nodes=["pve1"], state="drained")
    assert not failed
    assert "pve4" not in {e["to"] for e in drained["evacuated"]}
    sim.ha_maintenance("pve1", True)
    request = params(nodes=["pve1"], state="active", return_guests=drained["evacuated"])
    back, failure, warnings = maint.maintenance(client_for(sim), request)
    assert failure is None and not back["changed"]
    assert len(back["not_returned"]) == len(drained["evacuated"])
    assert {e["reason"] for e in back["not_returned"]} == {"pve1: not a target (offline, maintenance or ignored)"}
    assert warnings[0].startswith("node pve1 is still in PVE HA maintenance")
    sim.ha_maintenance("pve1", False)
    sim.ha_maintenance("pve4", False)


def test_bad_state_is_refused_by_the_argument_spec(sim, monkeypatch, capsys):
    sim.reset_calls()
    failed, result = run_module(sim, monkeypatch, capsys, nodes=["pve1"], state="emptied")
    assert failed and "value of state must be one of: drained, active, got: emptied" in result["msg"]
    assert sim.calls()["total"] == 0
