# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""proxlb_rebalance without Ansible: the given plan option, re-planning within the move budget,
and runs through a ``Request`` against the HTTPS simulator."""

from __future__ import annotations

import pytest

from ansible_collections.proxlb.balancer.plugins.module_utils import planner
from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ConfigError, RunFailed
from ansible_collections.proxlb.balancer.plugins.module_utils.executor import MOVED_IN_THIS_RUN
from ansible_collections.proxlb.balancer.plugins.module_utils.rebalance_runner import (
    given_plan, moves_from_plan, replanner, run_rebalance)
from ansible_collections.proxlb.balancer.plugins.module_utils.request import Request
from ansible_collections.proxlb.balancer.plugins.modules import proxlb_rebalance
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.cluster_builder import (
    cluster, guest, node, settings)
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.fake_pve import FakePve
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.pvesim_client import (
    client_for, defaults, placements, writes)


def test_moves_from_plan_keeps_waves_and_drops_what_is_done():
    pve = FakePve(guests={100: {}, 101: {"node": "pve2"}, 102: {}})
    data = {"moves": [dict(vmid=100, name="g100", type="vm", **{"from": "pve1", "to": "pve2"}, wave=1),
                      dict(vmid=101, name="g101", type="vm", **{"from": "pve1", "to": "pve2"}, wave=1),
                      dict(vmid=102, name="g102", type="vm", **{"from": "pve1", "to": "pve3"}, wave=2)]}
    waves = moves_from_plan(data, pve.snapshot())
    assert [[m.vmid for m in w] for w in waves] == [[100], [102]]
    assert waves[1][0].type == "qemu" and waves[1][0].running
    with pytest.raises(ConfigError):
        moves_from_plan({"moves": [{"vmid": 1}]}, pve.snapshot())


def test_given_plan_keeps_the_reviewed_data_and_names_bad_entries():
    pve = FakePve(guests={100: {}, 200: {"type": "lxc"}})
    data = {"moves": [{"vmid": 200, "from": "pve1", "to": "pve3", "wave": 1}], "summary": "reviewed"}
    todo = given_plan(data, pve.snapshot())
    assert [(m.vmid, m.kind, m.type, m.reason) for m in todo.moves] == [(200, "ct", "lxc", "balance")]
    assert todo.data == data and todo.waves == [todo.moves]
    with pytest.raises(ConfigError) as err:
        given_plan({"moves": [{"vmid": 100, "from": "pve1", "to": "pve2"}, "junk"]}, pve.snapshot())
    assert err.value.option == "plan.moves[1]"
    with pytest.raises(ConfigError) as err:
        given_plan([], pve.snapshot())
    assert err.value.option == "plan"


def test_replanning_spends_only_what_is_left_of_the_move_budget():
    snap = cluster([node("pve1"), node("pve2"), node("pve3")], [guest(100 + i, "pve1", mem_gib=6) for i in range(8)])
    budget = settings(max_moves=3, balanciness=1)
    assert len(planner.plan(snap, budget).moves) == 3
    replan = replanner(budget)
    assert len(replan(snap, {}).moves) == 3
    moved = {100: MOVED_IN_THIS_RUN, 101: MOVED_IN_THIS_RUN, 102: "locked (backup)"}
    again = replan(snap, moved)
    assert len(again.moves) == 1 and not {m.vmid for m in again.moves} & set(moved)


# -- runs against the simulator ---------------------------------------------------------------

def request(sim, check_mode=False, **params):
    return Request(dict(defaults(proxlb_rebalance), **params), lambda: client_for(sim), check_mode=check_mode)


def test_check_mode_with_max_waves_plans_the_first_waves_and_defers_the_rest(sim):
    sim.reset_calls()
    result = run_rebalance(request(sim, check_mode=True, max_waves=1))
    waves = result["plan"]["waves"]
    assert waves >= 2 and result["changed"]
    assert {m["wave"] for m in result["moves"]} == {1} and {m["status"] for m in result["moves"]} == {"planned"}
    assert result["remaining"]["waves"] == waves - 1
    assert sorted(m["vmid"] for m in result["moves"] + result["remaining"]["moves"]) == \
        sorted(m["vmid"] for m in result["plan"]["moves"])
    assert writes(sim) == []


def test_a_failed_run_raises_with_everything_but_the_plan(sim):
    sim.set_faults(migration_failure_rate=1.0)
    start = placements(sim)
    req = request(sim, on_failure="continue")
    with pytest.raises(RunFailed) as err:
        run_rebalance(req)
    result = err.value.result
    failed = [m for m in result["moves"] if m["status"] == "failed"]
    skipped = [m for m in result["moves"] if m["status"] == "skipped"]
    assert failed and len(failed) + len(skipped) == len(result["moves"]) and not result["stopped"]
    assert str(err.value).startswith("%d of %d migration(s) failed" % (len(failed), len(failed)))
    # with on_failure=continue the rest is re-planned around each failed guest; what it drops is a warning
    assert req.warnings == ["skipped %d (%s) %s -> %s: %s" % (m["vmid"], m["name"], m["from"], m["to"], m["error"])
                            for m in skipped]
    assert "plan" not in result and "summary" not in result
    assert result["changed"] is False and placements(sim) == start
    assert result["api_calls"]["execute"] > 0


def test_option_errors_come_before_the_connection(sim):
    def no_connection():
        raise AssertionError("options are checked before the first request")

    for bad in (dict(migration_timeout=-5), dict(max_waves=0), dict(balanciness="lots")):
        with pytest.raises(ConfigError) as err:
            run_rebalance(Request(dict(defaults(proxlb_rebalance), **bad), no_connection))
        assert err.value.option == next(iter(bad))
    with pytest.raises(ConfigError) as err:
        run_rebalance(request(sim, maintenance_nodes=["pve-nope"]))
    assert err.value.option == "maintenance_nodes" and not [w for w in writes(sim) if "migrate" in w]
