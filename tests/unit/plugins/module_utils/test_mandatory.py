# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mandatory moves: maintenance drain, rule repairs and capacity relief, and what they report when they cannot."""

from __future__ import annotations

from ansible_collections.proxlb.balancer.plugins.module_utils import mandatory, planner
from ansible_collections.proxlb.balancer.plugins.module_utils.plan_state import PlanningState
from ansible_collections.proxlb.balancer.plugins.module_utils.snapshot import HaGroup, HaRule
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.cluster_builder import cluster, guest, node, placements, settings


def test_anti_affinity_repair_considers_load_and_fit():
    nodes = [node("pve1", 128), node("pve2", 32), node("pve3", 128), node("pve4", 128)]
    guests = [guest(100 + i, "pve1", 8, tags=["plb_anti_affinity_db"]) for i in range(3)]
    guests += [guest(110 + i, "pve3", 16, used=1.0) for i in range(6)]   # pve3 is busy
    guests += [guest(120, "pve2", 24, used=1.0)]                          # pve2 has no room left
    result = planner.plan(cluster(nodes, guests), settings(balanciness=100))
    where = placements(cluster(nodes, guests), result)
    db_nodes = [where[100 + i] for i in range(3)]
    assert len(set(db_nodes)) == 3
    assert "pve2" not in db_nodes
    assert all(m.reason == "rule:anti-affinity:plb_anti_affinity_db" for m in result.moves)


def test_anti_affinity_group_larger_than_nodes_spreads_evenly():
    nodes = [node("pve1"), node("pve2")]
    guests = [guest(100 + i, "pve1", 2, tags=["plb_anti_affinity_web"]) for i in range(5)]
    result = planner.plan(cluster(nodes, guests), settings(balanciness=100))
    where = placements(cluster(nodes, guests), result)
    counts = [list(where.values()).count(n) for n in ("pve1", "pve2")]
    assert max(counts) == 3
    assert any("at most 3 per node" in w for w in result.data["warnings"])


def test_affinity_group_moves_as_one_and_is_repaired_when_split():
    nodes = [node("pve1", 128), node("pve2", 128), node("pve3", 128)]
    guests = [guest(100, "pve1", 8, tags=["plb_affinity_web"]), guest(101, "pve2", 8, tags=["plb_affinity_web"])]
    result = planner.plan(cluster(nodes, guests), settings())
    where = placements(cluster(nodes, guests), result)
    assert where[100] == where[101]
    assert [m.reason for m in result.moves] == ["rule:affinity:plb_affinity_web"]


def test_strict_pin_violation_is_repaired_and_several_pins_form_a_set():
    nodes = [node("pve1"), node("pve2"), node("pve3")]
    guests = [guest(100, "pve1", 4, tags=["plb_pin_pve2", "plb_pin_PVE3"])]
    snap = cluster(nodes, guests)
    result = planner.plan(snap, settings())
    assert len(result.moves) == 1 and result.moves[0].target in ("pve2", "pve3")
    assert result.moves[0].reason == "rule:pin" and result.moves[0].mandatory


def test_strict_pool_pin_and_anti_affinity_pool():
    nodes = [node("pve1"), node("pve2"), node("pve3")]
    guests = [guest(100, "pve1", 2, pool="db"), guest(101, "pve1", 2, pool="db")]
    result = planner.plan(cluster(nodes, guests), settings(pools={"db": {"type": "anti-affinity", "pin": ["pve1", "pve2"]}}))
    where = placements(cluster(nodes, guests), result)
    assert sorted([where[100], where[101]]) == ["pve1", "pve2"]


def test_maintenance_drain_respects_affinity_anti_affinity_and_pins():
    nodes = [node("pve1", 128), node("pve2", 128), node("pve3", 128)]
    guests = [guest(100, "pve1", 8, tags=["plb_affinity_app"]), guest(101, "pve1", 8, tags=["plb_affinity_app"]),
              guest(102, "pve1", 4, tags=["plb_anti_affinity_db"]), guest(103, "pve2", 4, tags=["plb_anti_affinity_db"]),
              guest(104, "pve1", 4, tags=["plb_pin_pve1", "plb_pin_pve3"]), guest(105, "pve1", 2, status="stopped")]
    snap = cluster(nodes, guests)
    result = planner.plan(snap, settings(maintenance_nodes=["pve1"]))
    where = placements(snap, result)
    assert "pve1" not in [where[v] for v in (100, 101, 102, 104, 105)]
    assert where[100] == where[101]
    assert where[102] != where[103]
    assert where[104] == "pve3"
    assert all(m.mandatory and m.reason == "maintenance" for m in result.moves)
    assert result.data["nodes"]["pve1"]["role"] == "maintenance"


def test_drain_that_cannot_fit_reports_no_fit_and_leaves_guest():
    nodes = [node("pve1", 128), node("pve2", 16)]
    guests = [guest(100, "pve1", 64, used=1.0)]
    result = planner.plan(cluster(nodes, guests), settings(maintenance_nodes=["pve1"]))
    assert result.moves == []
    no_fit = [x for x in result.data["left_alone"] if x["reason"] == "no_fit"]
    assert no_fit and no_fit[0]["vmid"] == 100 and "memory" in no_fit[0]["detail"]


def test_ha_maintenance_node_is_drained_and_never_a_target():
    nodes = [node("pve1", 128), node("pve2", 128, ha_maintenance=True), node("pve3", 128)]
    guests = [guest(100 + i, "pve1", 8, used=0.9) for i in range(10)] + [guest(200, "pve2", 4)]
    result = planner.plan(cluster(nodes, guests), settings())
    assert all(m.target != "pve2" for m in result.moves)
    assert any(m.vmid == 200 and m.reason == "maintenance" for m in result.moves)


def test_over_capacity_node_is_relieved():
    nodes = [node("pve1", 64), node("pve2", 128)]
    guests = [guest(100 + i, "pve1", 16, used=1.0) for i in range(4)]
    # 2 GiB host + 64 GiB guests on a 64 GiB node with an 8 GiB reserve: over capacity.
    result = planner.plan(cluster(nodes, guests), settings(node_resource_reserve={"defaults": {"memory": 8}}))
    assert any(m.reason == "capacity" for m in result.moves)


def test_pve9_ha_node_affinity_and_resource_affinity():
    nodes = [node("pve1", 128), node("pve2", 128), node("pve3", 128)]
    ha = {"state": "started", "failback": True}
    guests = [guest(100, "pve1", 8, ha=dict(ha, sid="vm:100")), guest(101, "pve2", 8, ha=dict(ha, sid="vm:101")),
              guest(102, "pve3", 8, ha=dict(ha, sid="vm:102")), guest(103, "pve3", 8, ha=dict(ha, sid="vm:103"))]
    ha_rules = [HaRule(rule="prefer-3", type="node-affinity", resources=["vm:100"], nodes={"pve3": 2, "pve2": 1}),
                HaRule(rule="together", type="resource-affinity", resources=["vm:101", "vm:102"], affinity="positive"),
                HaRule(rule="apart", type="resource-affinity", resources=["vm:102", "vm:103"], affinity="negative"),
                HaRule(rule="off", type="resource-affinity", resources=["vm:100", "vm:103"], affinity="negative", disabled=True)]
    snap = cluster(nodes, guests, ha_rules=ha_rules)
    result = planner.plan(snap, settings())
    where = placements(snap, result)
    assert where[100] == "pve3"          # HA would fail it back to its top-priority node
    assert where[101] == where[102]
    assert where[102] != where[103]


def test_pve8_restricted_ha_group_is_a_hard_set():
    nodes = [node("pve1"), node("pve2"), node("pve3")]
    guests = [guest(100, "pve1", 4, ha={"sid": "vm:100", "state": "started", "group": "g"})]
    group = HaGroup(group="g", nodes={"pve2": 0, "pve3": 0}, restricted=True, nofailback=True)
    snap = cluster(nodes, guests, version="8.2.4", ha_groups=[group])
    result = planner.plan(snap, settings())
    assert result.moves[0].target in ("pve2", "pve3") and result.moves[0].reason == "rule:ha-group:g"


def test_ha_failback_tier_yields_to_ha_negative_affinity_on_drain():
    # Both databases prefer pve1/pve2 (priority 2) over pve3 (1) and must stay apart. With pve1 drained,
    # PVE would put db01 on pve3, not next to db02 on pve2.
    nodes = [node("pve1", 128), node("pve2", 128), node("pve3", 128)]
    ha = {"state": "started", "failback": True}
    guests = [guest(110, "pve1", 16, ha=dict(ha, sid="vm:110")), guest(111, "pve2", 16, ha=dict(ha, sid="vm:111"))]
    ha_rules = [HaRule(rule="db-nodes", type="node-affinity", resources=["vm:110", "vm:111"], nodes={"pve1": 2, "pve2": 2, "pve3": 1}),
                HaRule(rule="dbs-apart", type="resource-affinity", resources=["vm:110", "vm:111"], affinity="negative")]
    snap = cluster(nodes, guests, ha_rules=ha_rules)
    result = planner.plan(snap, settings(maintenance_nodes=["pve1"]))
    assert [(m.vmid, m.target) for m in result.moves] == [(110, "pve3")]
    assert not result.data["rule_conflicts"]
    # Without maintenance, failback keeps db01 on its top tier.
    assert planner.plan(snap, settings()).moves == []


# -- the kinds on a planning state -------------------------------------------------------------------
def test_kinds_run_in_order_drain_first():
    nodes = [node("pve1"), node("pve2"), node("pve3")]
    guests = [guest(100, "pve1", 4), guest(101, "pve2", 4, tags=["plb_affinity_app"]), guest(102, "pve3", 4, tags=["plb_affinity_app"]),
              guest(103, "pve2", 4, tags=["plb_pin_pve3"])]
    state = PlanningState(cluster(nodes, guests), settings(maintenance_nodes=["pve1"]))
    assert mandatory.plan_mandatory_moves(state) == []
    assert [reason for _vmid, _a, _b, reason, _m in state.steps] == ["maintenance", "rule:affinity:plb_affinity_app", "rule:pin"]
    assert [step[0] for step in state.steps][::2] == [100, 103]
    assert all(is_mandatory for *_rest, is_mandatory in state.steps)


def test_a_drain_failure_names_every_node_and_why():
    nodes = [node("pve1", 128), node("pve2", 16), node("pve3", 16)]
    state = PlanningState(cluster(nodes, [guest(100, "pve1", 20)]), settings(maintenance_nodes=["pve1"]))
    failures = mandatory.plan_mandatory_moves(state)
    assert failures == [dict(vmids=[100], node="pve1", reason="maintenance",
                             detail="pve2: memory: needs 20.0 GiB, 14.0 GiB free after reserve; "
                                    "pve3: memory: needs 20.0 GiB, 14.0 GiB free after reserve")]
    assert state.steps == []


def test_anti_affinity_that_cannot_be_repaired_is_a_failure():
    # pve2 has no room for a second database; pve3 is ignored.
    nodes = [node("pve1", 64), node("pve2", 16), node("pve3", 64)]
    guests = [guest(100, "pve1", 8, tags=["plb_anti_affinity_db"]), guest(101, "pve1", 8, tags=["plb_anti_affinity_db"]),
              guest(102, "pve2", 12)]
    state = PlanningState(cluster(nodes, guests), settings(ignore_nodes=["pve3"]))
    failures = mandatory.plan_mandatory_moves(state)
    assert failures == [dict(vmids=[100, 101], node="pve1", reason="rule:anti-affinity:plb_anti_affinity_db",
                             detail="no node can take another member without breaking capacity or rules")]


def test_capacity_that_cannot_be_relieved_is_a_failure():
    # Over capacity, but the only guest is pinned there.
    nodes = [node("pve1", 32), node("pve2", 128)]
    state = PlanningState(cluster(nodes, [guest(100, "pve1", 31, tags=["plb_pin_pve1"])]), settings())
    failures = mandatory.plan_mandatory_moves(state)
    assert failures == [dict(vmids=[], node="pve1", reason="capacity",
                             detail="memory stays over capacity: no guest on it can move anywhere it fits")]


def test_guests_that_must_stay_are_not_drained():
    nodes = [node("pve1"), node("pve2")]
    state = PlanningState(cluster(nodes, [guest(100, "pve1", 4), guest(101, "pve1", 4, lock="backup")]),
                          settings(maintenance_nodes=["pve1"]))
    assert mandatory.plan_mandatory_moves(state) == []
    assert [step[0] for step in state.steps] == [100]


def test_the_largest_guests_leave_first_while_there_is_most_room():
    # Small first would put the 4 GiB guest on pve2 and leave the 20 GiB one without a node.
    nodes = [node("pve1", 64), node("pve2", 24), node("pve3", 16)]
    state = PlanningState(cluster(nodes, [guest(100, "pve1", 4), guest(101, "pve1", 20)]), settings(maintenance_nodes=["pve1"]))
    assert mandatory.plan_mandatory_moves(state) == []
    assert [(vmid, state.model.names[target]) for vmid, _source, target, _r, _m in state.steps] == [(101, "pve2"), (100, "pve3")]
