# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planner behaviour on hand-built clusters, including the failures users reported against ProxLB."""

from __future__ import annotations

import pytest

from ansible_collections.proxlb.balancer.plugins.module_utils import metrics, placement, planner, rules, sequencer
from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ConfigError
from ansible_collections.proxlb.balancer.plugins.module_utils.plan_state import PlanningState
from ansible_collections.proxlb.balancer.plugins.module_utils.settings import GIB
from ansible_collections.proxlb.balancer.plugins.module_utils.snapshot import HaGroup, HaRule, Storage
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.cluster_builder import (
    apply_moves, cluster, guest, node, settings)


def placements(snapshot, plan):
    where = {vmid: g.node for vmid, g in snapshot.guests.items()}
    for move in plan.moves:
        where[move.vmid] = move.target
    return where


def hot_cluster(extra_guests=(), **node_kw):
    """pve1 carries ten 8 GiB guests, pve2 and pve3 almost nothing."""
    nodes = [node("pve1", 128, **node_kw), node("pve2", 128), node("pve3", 128)]
    guests = [guest(100 + i, "pve1", mem_gib=8, used=0.9) for i in range(10)] + list(extra_guests)
    return cluster(nodes, guests)


def test_balanced_cluster_plans_nothing():
    snap = cluster([node("pve1"), node("pve2")], [guest(100, "pve1", 8), guest(101, "pve2", 8)])
    result = planner.plan(snap, settings())
    assert result.moves == []
    assert result.data["stop_reason"] == "balanced"


def test_hot_node_is_relieved_and_replanning_plans_nothing():
    snap = hot_cluster()
    result = planner.plan(snap, settings())
    assert result.moves and all(m.source == "pve1" and m.reason == "balance" for m in result.moves)
    assert result.data["metrics"]["after"]["spread_pp"] <= 10
    again = planner.plan(apply_moves(snap, result.moves), settings())
    assert again.moves == []


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


def test_ignore_guests_by_name_wildcard():
    snap = hot_cluster([guest(200, "pve1", 16, name="veeam-worker-1")])
    result = planner.plan(snap, settings(ignore_guests=["veeam-*"]))
    assert 200 not in {m.vmid for m in result.moves}


def test_thresholds_gate_balancing():
    snap = hot_cluster()
    assert planner.plan(snap, settings(memory_threshold=80)).moves == []
    assert planner.plan(snap, settings(memory_threshold=50)).moves


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


def test_affinity_merges_transitively():
    tags = {100: ["plb_affinity_a"], 101: ["plb_affinity_a", "plb_affinity_b"], 102: ["plb_affinity_b"]}
    snap = cluster([node("pve1"), node("pve2")], [guest(v, "pve1", 2, tags=t) for v, t in tags.items()])
    constraints = rules.build(snap, settings())
    assert [100, 101, 102] in constraints.units


def test_strict_pin_violation_is_repaired_and_several_pins_form_a_set():
    nodes = [node("pve1"), node("pve2"), node("pve3")]
    guests = [guest(100, "pve1", 4, tags=["plb_pin_pve2", "plb_pin_PVE3"])]
    snap = cluster(nodes, guests)
    result = planner.plan(snap, settings())
    assert len(result.moves) == 1 and result.moves[0].target in ("pve2", "pve3")
    assert result.moves[0].reason == "rule:pin" and result.moves[0].mandatory


def test_pin_to_unknown_node_is_a_conflict_not_a_failure():
    snap = cluster([node("pve1"), node("pve2")], [guest(100, "pve1", 4, tags=["plb_pin_pve9"])])
    result = planner.plan(snap, settings())
    assert result.moves == []
    assert result.data["rule_conflicts"][0]["kind"] == "pin_unknown_node"
    assert result.data["rule_conflicts"][0]["guests"] == [100]


def test_affinity_and_anti_affinity_on_same_pair_is_reported():
    tags = ["plb_affinity_x", "plb_anti_affinity_x"]
    snap = cluster([node("pve1"), node("pve2")], [guest(100, "pve1", 2, tags=tags), guest(101, "pve1", 2, tags=tags)])
    result = planner.plan(snap, settings())
    assert result.moves == []
    assert result.data["rule_conflicts"][0]["kind"] == "affinity_and_anti_affinity"


def test_pinned_where_anti_affinity_peer_must_not_be_is_reported():
    tags = ["plb_anti_affinity_x", "plb_pin_pve1"]
    snap = cluster([node("pve1"), node("pve2")], [guest(100, "pve1", 2, tags=tags), guest(101, "pve1", 2, tags=tags)])
    result = planner.plan(snap, settings())
    assert result.data["rule_conflicts"][0]["kind"] == "pin_and_anti_affinity"
    assert result.moves == []


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


def test_pve92_auto_rebalance_leaves_ha_resources_to_pve():
    ha = {"sid": "vm:%d", "state": "started", "auto_rebalance": True}
    guests = [guest(100 + i, "pve1", 8, used=0.9, ha=dict(ha, sid="vm:%d" % (100 + i))) for i in range(10)]
    snap = cluster([node("pve1", 128), node("pve2", 128)], guests, version="9.2.1", crs={"ha": "dynamic", "ha-auto-rebalance": 1})
    left_to_pve = planner.plan(snap, settings())
    assert left_to_pve.moves == []
    assert {x["reason"] for x in left_to_pve.data["left_alone"]} == {"ha_managed_by_pve"}
    assert planner.plan(snap, settings(manage_ha_resources=True)).moves


def test_locked_templates_and_excluded_types_stay():
    extra = [guest(200, "pve1", 16, lock="backup"), guest(201, "pve1", 16, template=True, status="stopped"),
             guest(202, "pve1", 16, kind="lxc")]
    result = planner.plan(hot_cluster(extra), settings(guest_types=["vm"]))
    moved = {m.vmid for m in result.moves}
    assert not moved & {200, 201, 202}
    reasons = {x["vmid"]: x["reason"] for x in result.data["left_alone"]}
    assert reasons[200] == "locked:backup" and reasons[201] == "template" and reasons[202] == "type_excluded"


def test_cpu_method_uses_cores_not_fractions():
    nodes = [node("pve1", 256, threads=32), node("pve2", 256, threads=32)]
    guests = [guest(100 + i, "pve1", 4, cores=8, cpu=0.7) for i in range(4)]   # 22.4 cores busy on pve1
    snap = cluster(nodes, guests)
    model = metrics.Model(snap, settings(method="cpu"))
    assert model.load[0] == pytest.approx(22.4, rel=0.01)
    result = planner.plan(snap, settings(method="cpu"))
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


def test_psi_is_refused_on_pve8():
    snap = cluster([node("pve1"), node("pve2")], [guest(100, "pve1")], version="8.2.4")
    with pytest.raises(ConfigError, match="psi needs PVE 9"):
        planner.plan(snap, settings(mode="psi"))


def test_psi_balances_pressure():
    nodes = [node("pve1", 128, pressure={"memory_some": 20.0}), node("pve2", 128, pressure={"memory_some": 1.0})]
    guests = [guest(100 + i, "pve1", 8) for i in range(6)] + [guest(110, "pve2", 8)]
    result = planner.plan(cluster(nodes, guests), settings(mode="psi"))
    assert result.moves and all(m.target == "pve2" for m in result.moves)


@pytest.mark.parametrize("options, option", [
    ({"method": "network"}, "method"), ({"mode": "busy"}, "mode"), ({"balanciness": -1}, "balanciness"),
    ({"pools": {"web": {"type": "together"}}}, "pools.web.type"), ({"pools": {"web": ["pve1"]}}, "pools.web"),
    ({"pools": {"web": {"pin": "pve1", "color": "red"}}}, "pools.web"), ({"max_moves_per_node": 0}, "max_moves_per_node"),
    ({"node_resource_reserve": {"defaults": {"memory": -2}}}, "node_resource_reserve.defaults"),
    ({"guest_types": []}, "guest_types"), ({"memory_threshold": 150}, "memory_threshold"),
])
def test_bad_settings_name_the_option(options, option):
    with pytest.raises(ConfigError) as err:
        settings(**options)
    assert str(err.value).startswith(option + ":")


@pytest.mark.parametrize("options, option", [
    ({"pools": {"web": {"pin": ["pve9"]}}}, "pools.web.pin"), ({"maintenance_nodes": ["pve9"]}, "maintenance_nodes"),
    ({"ignore_nodes": ["nope"]}, "ignore_nodes"), ({"node_resource_reserve": {"pve7": {"memory": 1}}}, "node_resource_reserve"),
])
def test_unknown_nodes_in_options_are_refused(options, option):
    with pytest.raises(ConfigError) as err:
        planner.plan(hot_cluster(), settings(**options))
    assert str(err.value).startswith(option + ":")


def test_swap_that_needs_parking():
    # Two full nodes must swap guests that neither can take first; pve3 has room to park one.
    nodes = [node("pve1", 32, base_gib=1), node("pve2", 32, base_gib=1), node("pve3", 32, base_gib=1)]
    snap = cluster(nodes, [guest(100, "pve1", 24, used=1.0), guest(101, "pve2", 24, used=1.0)])
    swap = [planner.Move(100, "g100", "vm", "qemu", "pve1", "pve2", "balance", False),
            planner.Move(101, "g101", "vm", "qemu", "pve2", "pve1", "balance", False)]
    seq = sequencer.sequence(PlanningState(snap, settings()), swap, 1)
    assert not seq.unsequenced
    assert [m.reason for m in seq.moves].count("parking") == 1
    where = {100: "pve1", 101: "pve2"}
    for move in seq.moves:
        assert where[move.vmid] == move.source
        where[move.vmid] = move.target
    assert where == {100: "pve2", 101: "pve1"}


def test_unorderable_moves_are_reported_not_dropped():
    nodes = [node("pve1", 32, base_gib=1), node("pve2", 32, base_gib=1)]
    snap = cluster(nodes, [guest(100, "pve1", 24, used=1.0), guest(101, "pve2", 24, used=1.0)])
    swap = [planner.Move(100, "g100", "vm", "qemu", "pve1", "pve2", "balance", False),
            planner.Move(101, "g101", "vm", "qemu", "pve2", "pve1", "balance", False)]
    seq = sequencer.sequence(PlanningState(snap, settings()), swap, 1)
    assert [m.vmid for m in seq.unsequenced] == [100, 101]
    assert seq.warnings


def test_plan_is_deterministic_and_json_ready():
    import json
    snap = hot_cluster([guest(300, "pve2", 4, tags=["plb_anti_affinity_x"]), guest(301, "pve2", 4, tags=["plb_anti_affinity_x"])])
    first = planner.plan(snap, settings()).to_dict()
    second = planner.plan(snap, settings()).to_dict()
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    assert first["moves"][0].keys() == {"vmid", "name", "type", "from", "to", "reason", "mandatory", "wave", "mem_bytes"}


def test_validate_moves_flags_drift():
    snap = hot_cluster()
    result = planner.plan(snap, settings())
    moved = apply_moves(snap, result.moves[:1])
    invalid = planner.validate_moves(moved, settings(), result.moves)
    assert list(invalid) == [result.moves[0].vmid]
    moved.guests[result.moves[1].vmid].lock = "backup"
    assert "locked" in planner.validate_moves(moved, settings(), result.moves[1:])[result.moves[1].vmid]


def test_best_node_accounts_size_rules_and_count():
    nodes = [node("pve1", 128), node("pve2", 16, base_gib=1), node("pve3", 128), node("pve4", 128)]
    guests = [guest(100, "pve1", 60), guest(101, "pve3", 40), guest(102, "pve4", 30, tags=["plb_anti_affinity_web"])]
    snap = cluster(nodes, guests)
    request = placement.NewGuest(memory_bytes=32 * GIB, cores=4, tags=["plb_anti_affinity_web"])
    chosen, ranking = placement.place_new_guests(snap, settings(), request, count=2)
    # pve2 is the emptiest but too small; pve4 holds an anti-affinity peer.
    assert chosen == ["pve3", "pve1"]
    rows = {r["node"]: r for r in ranking}
    assert not rows["pve2"]["fits"] and "memory" in rows["pve2"]["reasons"][0]
    assert not rows["pve4"]["fits"] and "anti-affinity" in rows["pve4"]["reasons"][0]


def test_evacuation_only_plans_no_balancing():
    snap = hot_cluster([guest(200, "pve2", 4)])
    result = planner.plan(snap, settings(maintenance_nodes=["pve2"]), balance=False)
    assert [(m.vmid, m.reason) for m in result.moves] == [(200, "maintenance")]


def test_return_placements_where_they_still_fit():
    nodes = [node("pve1", 64), node("pve2", 64), node("pve3", 32, base_gib=1)]
    guests = [guest(100, "pve1", 8), guest(101, "pve1", 24, used=1.0), guest(102, "pve2", 24, used=1.0)]
    snap = cluster(nodes, guests)
    wanted = {100: "pve3", 101: "pve3", 102: "pve2"}
    result = placement.plan_placements(snap, settings(), wanted)
    assert [(m.vmid, m.target) for m in result.moves] == [(101, "pve3")]
    assert result.data["failures"][0]["vmids"] == [100] and "memory" in result.data["failures"][0]["detail"]


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
