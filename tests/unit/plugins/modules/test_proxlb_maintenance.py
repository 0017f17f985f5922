# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""proxlb_maintenance: whole drains and returns through the module (and its runner) against the
HTTPS simulator."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.proxlb.balancer.plugins.module_utils import maintenance as maint
from ansible_collections.proxlb.balancer.plugins.module_utils.request import Request
from ansible_collections.proxlb.balancer.plugins.modules import proxlb_maintenance as module
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils import pvesim_client
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.pvesim_client import (
    client_for, defaults, placements, writes)

SCENARIOS = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "integration", "targets",
                                         "proxlb_maintenance_scenarios", "files"))


def scenario(name):
    with open(os.path.join(SCENARIOS, name + ".json")) as handle:
        return json.load(handle)


# -- the module against the simulator ---------------------------------------------------------

@pytest.fixture
def sim(pvesim):
    pvesim.reset(scenario=scenario("drain"), speed=100.0)
    pvesim.set_faults()
    yield pvesim
    pvesim.set_faults()


def params(**args):
    return dict(defaults(module), **args)


def run_module(sim, monkeypatch, capsys, check=False, diff=False, **args):
    return pvesim_client.run_module(module, sim, monkeypatch, capsys, check=check, diff=diff, **args)


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
    request = Request(params(nodes=["pve1"], state="drained", allow_blocking=True), lambda: client_for(sim))
    result = maint.run_maintenance(request)     # no RunFailed: the blocking guests are allowed
    assert [e["vmid"] for e in result["blocking"]] == [171, 172]
    assert sorted(v for v, n in placements(sim).items() if n == "pve1") == [171, 172, 191]
    assert request.warnings == ["171 (keep-1) stays on pve1: ignored",
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
    request = Request(params(nodes=["pve1"], state="active", return_guests=drained["evacuated"]), lambda: client_for(sim))
    back = maint.run_maintenance(request)       # no RunFailed
    warnings = request.warnings
    assert not back["changed"]
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
