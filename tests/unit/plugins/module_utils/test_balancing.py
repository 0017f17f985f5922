# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Balancing: when it starts, what it moves, and the cost of a move."""

from __future__ import annotations

import pytest

from ansible_collections.proxlb.balancer.plugins.module_utils import balancing, planner
from ansible_collections.proxlb.balancer.plugins.module_utils.plan_state import PlanningState
from ansible_collections.proxlb.balancer.plugins.module_utils.settings import GIB
from ansible_collections.proxlb.balancer.plugins.module_utils.snapshot import Storage
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.cluster_builder import cluster, guest, hot_cluster, node, settings


def test_no_move_onto_a_node_it_would_overfill():
    # pve2 is nearly empty in percent but small: a 24 GiB guest must not land there.
    nodes = [node("pve1", 128), node("pve2", 16, base_gib=1)]
    guests = [guest(100 + i, "pve1", mem_gib=24, used=1.0) for i in range(4)]
    result = planner.plan(cluster(nodes, guests), settings())
    assert all(m.target != "pve2" for m in result.moves)


def test_reserve_is_respected():
    nodes = [node("pve1", 64), node("pve2", 64)]
    guests = [guest(100 + i, "pve1", mem_gib=8, used=1.0) for i in range(6)]
    result = planner.plan(cluster(nodes, guests), settings(node_resource_reserve={"pve2": {"memory": 50}}))
    # pve2 keeps 50 GiB back: 64 - 50 - 2 (host) leaves room for one 8 GiB guest only.
    assert sum(1 for m in result.moves if m.target == "pve2") <= 1


def test_ignored_guests_stay_and_their_load_counts():
    big = guest(200, "pve1", mem_gib=48, used=1.0, tags=["plb_ignore"])
    snap = hot_cluster([big])
    result = planner.plan(snap, settings())
    assert 200 not in {m.vmid for m in result.moves}
    assert {"vmid": 200, "name": "g200", "node": "pve1", "reason": "ignored"} in result.data["left_alone"]
    # The ignored guest's 48 GiB stays in pve1's load after the plan.
    assert result.data["nodes"]["pve1"]["after_pct"] > 48 / 128 * 100


def test_thresholds_gate_balancing():
    snap = hot_cluster()
    assert planner.plan(snap, settings(memory_threshold=80)).moves == []
    assert planner.plan(snap, settings(memory_threshold=50)).moves


def test_non_strict_pool_pin_prefers_but_does_not_force():
    nodes = [node("pve1", 128), node("pve2", 128), node("pve3", 128)]
    guests = [guest(100 + i, "pve1", 8, used=0.9, pool="web") for i in range(10)]
    snap = cluster(nodes, guests)
    pools = {"web": {"pin": ["pve3"], "strict": False}}
    result = planner.plan(snap, settings(pools=pools))
    targets = [m.target for m in result.moves]
    assert targets and "pve3" in targets
    # Balanced already: a preference alone moves nothing.
    calm = cluster(nodes, [guest(100, "pve1", 8, pool="web"), guest(101, "pve2", 8, pool="web")])
    assert planner.plan(calm, settings(pools=pools)).moves == []


def test_cpu_method_balances_busy_cores():
    nodes = [node("pve1", 256, threads=32), node("pve2", 256, threads=32)]
    guests = [guest(100 + i, "pve1", 4, cores=8, cpu=0.7) for i in range(4)]   # 22.4 cores busy on pve1
    result = planner.plan(cluster(nodes, guests), settings(method="cpu"))
    assert len(result.moves) == 2


def test_assigned_mode_counts_configured_sizes():
    snap = cluster([node("pve1"), node("pve2")], [guest(100 + i, "pve1", 8, used=0.1) for i in range(4)])
    assert planner.plan(snap, settings(mode="used")).moves == []   # 3.2 GiB used: below balanciness
    assert planner.plan(snap, settings(mode="assigned")).moves


def test_disk_method_balances_local_storage():
    nodes = [node("pve1"), node("pve2")]
    guests = [guest(100 + i, "pve1", 2, local_disk_bytes=100 * GIB) for i in range(4)]
    storages = [Storage(storage="local-lvm", node=n, plugintype="lvmthin", content=["images", "rootdir"], status="available",
                        disk_bytes=(400 if n == "pve1" else 0) * GIB, maxdisk_bytes=1000 * GIB) for n in ("pve1", "pve2")]
    result = planner.plan(cluster(nodes, guests, storages=storages), settings(method="disk"))
    assert len(result.moves) == 2


def test_psi_balances_pressure():
    nodes = [node("pve1", 128, pressure={"memory_some": 20.0}), node("pve2", 128, pressure={"memory_some": 1.0})]
    guests = [guest(100 + i, "pve1", 8) for i in range(6)] + [guest(110, "pve2", 8)]
    result = planner.plan(cluster(nodes, guests), settings(mode="psi"))
    assert result.moves and all(m.target == "pve2" for m in result.moves)


# -- the trigger -----------------------------------------------------------------------------------
@pytest.mark.parametrize("options, reason, triggered", [
    (dict(), "spread_above_balanciness", True),
    (dict(balanciness=60), "balanced", False),
    (dict(memory_threshold=80), "below_threshold", False),
    (dict(memory_threshold=50), "spread_above_balanciness", True),
    (dict(ignore_nodes=["pve2", "pve3"]), "fewer_than_two_nodes", False),
])
def test_trigger_says_whether_and_why(options, reason, triggered):
    # pve1 at 57.8 %, pve2 and pve3 at 1.6 %
    trigger = balancing.balance_trigger(PlanningState(hot_cluster(), settings(**options)))
    assert (trigger["reason"], trigger["triggered"]) == (reason, triggered)
    if reason != "fewer_than_two_nodes":
        assert trigger["spread_pp"] == pytest.approx(56.25, abs=0.01) and trigger["max_pct"] == pytest.approx(57.81, abs=0.01)


# -- the search ------------------------------------------------------------------------------------
def test_balancing_stops_within_half_of_balanciness():
    state = PlanningState(hot_cluster(), settings(balanciness=20))
    assert balancing.improve_balance(state) == "target_reached"
    pcts = [state.model.pct(i) for i in state.eligible]
    assert max(pcts) - min(pcts) <= 10
    assert state.steps and all(step[3] == "balance" and step[4] is False for step in state.steps)


def test_max_moves_is_a_budget_of_migrations():
    state = PlanningState(hot_cluster(), settings(max_moves=2))
    assert balancing.improve_balance(state) == "max_moves"
    assert len(state.steps) == 2 and state.balance_moves == 2


def test_a_move_that_does_not_pay_for_itself_is_not_made():
    # The spread (11 pp) is host overhead; the only guest that could move (0.25 GiB) gains less than a migration costs.
    nodes = [node("pve1", 128, base_gib=16), node("pve2", 128)]
    snap = cluster(nodes, [guest(100, "pve1", 0.25)])
    result = planner.plan(snap, settings())
    assert result.data["trigger"]["triggered"] and result.data["stop_reason"] == "no_gain"
    assert result.moves == []


def objective(model, nodes):
    """sum(C_i / C_mean * L_i^2) over ``nodes``, computed from scratch."""
    cap_mean = sum(model.cap[i] for i in nodes) / len(nodes)
    return sum(model.cap[i] / cap_mean * model.pct(i) ** 2 for i in nodes)


@pytest.mark.parametrize("guest_gib", [1, 8, 24, 40, 70])
def test_objective_gain_is_the_drop_of_the_objective(guest_gib):
    # Nodes of different size: the gain must weigh each node by its capacity.
    snap = cluster([node("pve1", 128), node("pve2", 64)], [guest(100, "pve1", 70), guest(101, "pve1", guest_gib)])
    state = PlanningState(snap, settings())
    hot, cold = state.node_index["pve1"], state.node_index["pve2"]
    model = state.model
    before = objective(model, state.eligible)
    cap_mean = sum(model.cap[i] for i in state.eligible) / len(state.eligible)
    gain = balancing.objective_gain(model, hot, cold, model.weights[101], model.pct(hot), model.pct(cold), cap_mean)
    state.apply([101], cold, "balance", False)
    assert gain == pytest.approx(before - objective(model, state.eligible))


def test_move_cost_counts_memory_local_disk_overhead_and_leaving_a_preferred_node():
    snap = cluster([node("pve1"), node("pve2"), node("pve3")], [guest(100, "pve1", 8, local_disk_bytes=4 * GIB, pool="web")])
    state = PlanningState(snap, settings(pools={"web": {"pin": ["pve1", "pve2"], "strict": False}}))
    unit = state.unit_of[100]
    pve1, pve2, pve3 = (state.node_index[n] for n in ("pve1", "pve2", "pve3"))
    plain = 8 + 4 + balancing.MOVE_OVERHEAD_GIB
    assert balancing.move_cost_gib(unit, pve1, pve2) == pytest.approx(plain)
    assert balancing.move_cost_gib(unit, pve1, pve3) == pytest.approx(plain + balancing.PREFERENCE_PENALTY_GIB)
    assert balancing.move_cost_gib(unit, pve3, pve1) == pytest.approx(plain)
