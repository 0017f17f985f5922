# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Constraints from every source of rules: options, ProxLB tags, pools, PVE HA rules and groups, and their conflicts."""

from __future__ import annotations

import pytest

from ansible_collections.proxlb.balancer.plugins.module_utils import planner, rules
from ansible_collections.proxlb.balancer.plugins.module_utils.snapshot import HaGroup, HaRule
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.cluster_builder import cluster, guest, hot_cluster, node, settings


def test_ignore_guests_by_name_wildcard():
    snap = hot_cluster([guest(200, "pve1", 16, name="veeam-worker-1")])
    result = planner.plan(snap, settings(ignore_guests=["veeam-*"]))
    assert 200 not in {m.vmid for m in result.moves}


def test_affinity_merges_transitively():
    tags = {100: ["plb_affinity_a"], 101: ["plb_affinity_a", "plb_affinity_b"], 102: ["plb_affinity_b"]}
    snap = cluster([node("pve1"), node("pve2")], [guest(v, "pve1", 2, tags=t) for v, t in tags.items()])
    constraints = rules.build(snap, settings())
    assert [100, 101, 102] in constraints.units


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


def build(nodes, guests, **options):
    cluster_kw = {k: options.pop(k) for k in ("version", "ha_rules", "ha_groups", "crs") if k in options}
    return rules.build(cluster(nodes, guests, **cluster_kw), settings(**options))


THREE = [node("pve1"), node("pve2"), node("pve3")]
HA = {"state": "started"}


# -- node roles ------------------------------------------------------------------------------------
def test_node_roles():
    nodes = [node("pve1"), node("pve2", ha_maintenance=True), node("pve3", status="offline"), node("pve4"), node("pve5")]
    constraints = build(nodes, [], maintenance_nodes=["pve5"], ignore_nodes=["pve4"])
    assert constraints.eligible == ["pve1"]
    assert constraints.maintenance == {"pve2", "pve5"} and constraints.ignored_nodes == {"pve4"}
    assert constraints.warnings == ["node pve2 is in PVE HA maintenance mode: treated as a maintenance node"]


# -- options and states that leave a guest alone -------------------------------------------------------
@pytest.mark.parametrize("extra, options, reason", [
    (dict(name="backup-proxy"), dict(ignore_guests=["BACKUP-*"]), "ignored"),
    (dict(), dict(ignore_guests=["1?0"]), "ignored"),
    (dict(template=True, status="stopped"), dict(), "template"),
    (dict(kind="lxc"), dict(guest_types=["vm"]), "type_excluded"),
    (dict(lock="migrate"), dict(), "locked:migrate"),
    (dict(status="paused"), dict(), "status:paused"),
    (dict(status="stopped"), dict(include_stopped=False), "stopped"),
    (dict(tags=["PLB_IGNORE_VM"], lock="backup"), dict(), "ignored"),
])
def test_guests_left_alone_and_why(extra, options, reason):
    constraints = build(THREE, [guest(100, "pve1", **extra), guest(101, "pve1")], **options)
    assert constraints.immovable == {100: reason}


def test_guests_on_ignored_or_offline_nodes_stay():
    nodes = [node("pve1"), node("pve2", status="offline"), node("pve3")]
    constraints = build(nodes, [guest(100, "pve1"), guest(101, "pve2"), guest(102, "pve3")], ignore_nodes=["pve3"])
    assert constraints.immovable == {101: "node_offline", 102: "ignored_node"}


def test_pve92_auto_rebalance_leaves_only_ha_resources_that_pve_balances():
    guests = [guest(100, "pve1", ha=dict(HA, sid="vm:100")), guest(101, "pve1", ha=dict(HA, sid="vm:101", auto_rebalance=False)),
              guest(102, "pve1")]
    constraints = build(THREE, guests, version="9.2.1", crs={"ha-auto-rebalance": 1})
    assert constraints.immovable == {100: "ha_managed_by_pve"}
    assert constraints.warnings[0].startswith("PVE CRS ha-auto-rebalance is on")
    assert build(THREE, guests, version="9.1.0", crs={"ha-auto-rebalance": 1}).immovable == {}


# -- ProxLB tags ---------------------------------------------------------------------------------------
def test_tag_rules_are_case_insensitive_and_know_the_older_names():
    found = rules.tag_rules([" PLB_Affinity_Web", "plb_include_app", "plb_exclude_db", "plb_anti_affinity_x", "plb_pin_PVE2", "prod"])
    assert found.affinity == ["plb_affinity_web", "plb_include_app"]
    assert found.anti_affinity == ["plb_exclude_db", "plb_anti_affinity_x"]
    assert found.pins == ["pve2"] and found.ignored is False
    assert rules.tag_rules(["plb_ignore_vm"]).ignored is True


def test_pins_restrict_to_the_named_nodes_whatever_their_case():
    nodes = [node("PVE1"), node("pve2"), node("pve3")]
    constraints = build(nodes, [guest(100, "pve2", tags=["plb_pin_pve1", "plb_pin_pve2"])])
    assert constraints.allowed == {100: {"PVE1", "pve2"}} and constraints.allowed_why == {100: "rule:pin"}


def test_tags_make_units_and_anti_affinity_groups():
    guests = [guest(100, "pve1", tags=["plb_affinity_web"]), guest(101, "pve2", tags=["plb_affinity_web"]),
              guest(102, "pve1", tags=["plb_anti_affinity_db"]), guest(103, "pve1", tags=["plb_anti_affinity_db"])]
    constraints = build(THREE, guests)
    assert constraints.units == [[100, 101], [102], [103]]
    assert constraints.unit_names == {0: "plb_affinity_web"}
    assert [(g.name, g.members, g.limit) for g in constraints.anti_groups] == [("plb_anti_affinity_db", {102, 103}, 1)]


# -- pools -----------------------------------------------------------------------------------------------
def test_pool_rules():
    guests = [guest(100, "pve1", pool="web"), guest(101, "pve2", pool="web"), guest(102, "pve1", pool="db"),
              guest(103, "pve2", pool="db"), guest(104, "pve3", pool="edge")]
    pools = {"web": {"type": "affinity", "pin": ["PVE1", "pve2"]}, "db": {"type": "anti-affinity"},
             "edge": {"pin": ["pve3"], "strict": False}, "empty": {"type": "affinity"}}
    constraints = build(THREE, guests, pools=pools)
    assert [100, 101] in constraints.units and constraints.unit_names[constraints.units.index([100, 101])] == "pool:web"
    assert constraints.allowed[100] == constraints.allowed[101] == {"pve1", "pve2"}
    assert constraints.allowed_why[100] == "rule:pool-pin:web"
    assert [(g.name, g.members) for g in constraints.anti_groups] == [("pool:db", {102, 103})]
    assert constraints.preferred == {104: {"pve3"}} and 104 not in constraints.allowed
    assert constraints.warnings == ["pool empty from the pools option has no guests in this cluster"]


def test_every_rule_that_restricts_a_guest_is_named_in_order():
    group = HaGroup(group="g", nodes={"pve1": 1, "pve2": 1}, restricted=True, nofailback=True)
    guests = [guest(100, "pve1", tags=["plb_pin_pve1", "plb_pin_pve2"], pool="db", ha=dict(HA, sid="vm:100", group="g"))]
    constraints = build(THREE, guests, version="8.2.4", ha_groups=[group], pools={"db": {"pin": ["pve1", "pve3"]}})
    assert constraints.allowed == {100: {"pve1"}}
    assert constraints.allowed_why == {100: "rule:pin, rule:pool-pin:db, rule:ha-group:g"}


# -- PVE 9 HA rules --------------------------------------------------------------------------------------
def test_ha_node_affinity_strict_and_failback():
    guests = [guest(100, "pve3", ha=dict(HA, sid="vm:100")), guest(101, "pve3", ha=dict(HA, sid="vm:101")), guest(102, "pve3")]
    ha_rules = [HaRule(rule="strict", type="node-affinity", resources=["vm:100"], nodes={"pve1": 1, "pve2": 1}, strict=True),
                HaRule(rule="prio", type="node-affinity", resources=["vm:101", "vm:102"], nodes={"pve2": 2, "pve3": 1}),
                HaRule(rule="off", type="node-affinity", resources=["vm:102"], nodes={"pve1": 1}, strict=True, disabled=True)]
    constraints = build(THREE, guests, ha_rules=ha_rules)
    # strict: only its nodes; failback: HA puts 101 back on its top tier; 102 is not HA-managed, so only prefers it
    assert constraints.allowed == {100: {"pve1", "pve2"}, 101: {"pve2"}}
    assert {vmid: set(why.split(", ")) for vmid, why in constraints.allowed_why.items()} == {
        100: {"rule:ha-node-affinity:strict"}, 101: {"rule:ha-node-affinity:prio"}}
    assert constraints.preferred == {102: {"pve2"}}


def test_ha_resource_affinity_and_resources_named_by_id():
    guests = [guest(100, "pve1", ha=dict(HA, sid="vm:100")), guest(101, "pve2", kind="lxc", ha=dict(HA, sid="ct:101")),
              guest(102, "pve1"), guest(103, "pve2")]
    ha_rules = [HaRule(rule="together", type="resource-affinity", resources=["vm:100", "ct:101", "vm:999"], affinity="positive"),
                HaRule(rule="apart", type="resource-affinity", resources=["vm:102", "103"], affinity="negative")]
    constraints = build(THREE, guests, ha_rules=ha_rules)
    assert [100, 101] in constraints.units
    assert [(g.name, g.members) for g in constraints.anti_groups] == [("ha:apart", {102, 103})]


def test_failback_yields_to_anti_affinity_with_a_warning():
    # Both prefer pve1 alone: kept there by failback, they could never be apart.
    guests = [guest(100, "pve1", ha=dict(HA, sid="vm:100")), guest(101, "pve2", ha=dict(HA, sid="vm:101"))]
    ha_rules = [HaRule(rule="prio", type="node-affinity", resources=["vm:100", "vm:101"], nodes={"pve1": 2, "pve2": 1}),
                HaRule(rule="apart", type="resource-affinity", resources=["vm:100", "vm:101"], affinity="negative")]
    constraints = build(THREE, guests, ha_rules=ha_rules)
    assert constraints.allowed == {} and constraints.preferred == {100: {"pve1"}, 101: {"pve1"}}
    assert constraints.warnings == ["HA resources 100, 101 may leave their highest-priority nodes to keep anti-affinity group ha:apart"]
    assert [g.name for g in constraints.anti_groups] == ["ha:apart"]


# -- PVE 8 HA groups ---------------------------------------------------------------------------------------
def test_ha_groups_apply_to_ha_managed_guests_only():
    groups = [HaGroup(group="loose", nodes={"pve1": 2, "pve2": 1}), HaGroup(group="nofb", nodes={"pve3": 1}, nofailback=True)]
    guests = [guest(100, "pve2", ha=dict(HA, sid="vm:100", group="loose")), guest(101, "pve1", ha=dict(HA, sid="vm:101", group="nofb")),
              guest(102, "pve1", ha=dict(sid="vm:102", state="ignored", group="loose"))]
    constraints = build(THREE, guests, version="8.2.4", ha_groups=groups)
    assert constraints.allowed == {100: {"pve1"}} and constraints.allowed_why == {100: "rule:ha-group:loose"}
    assert constraints.preferred == {101: {"pve3"}}


# -- conflicts -----------------------------------------------------------------------------------------------
def test_affinity_group_pinned_to_disjoint_nodes_stays_where_it_is():
    guests = [guest(100, "pve1", tags=["plb_affinity_app", "plb_pin_pve1"]), guest(101, "pve2", tags=["plb_affinity_app", "plb_pin_pve2"])]
    constraints = build(THREE, guests)
    assert [c["kind"] for c in constraints.conflicts] == ["affinity_pins_disjoint"]
    assert constraints.immovable == {100: "rule_conflict", 101: "rule_conflict"}


def test_anti_affinity_group_larger_than_the_usable_nodes_gets_a_limit():
    guests = [guest(100 + i, "pve1", tags=["plb_anti_affinity_web"]) for i in range(7)]
    constraints = build(THREE, guests)
    assert constraints.anti_groups[0].limit == 3
    assert constraints.warnings == ["anti-affinity group plb_anti_affinity_web has 7 guests but only 3 usable nodes: "
                                    "spread evenly, at most 3 per node"]
