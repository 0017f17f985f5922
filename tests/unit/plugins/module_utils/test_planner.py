# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plan orchestration: mandatory then balancing to a fixed point, the Plan result, summary, validation."""

from __future__ import annotations

from ansible_collections.proxlb.balancer.plugins.module_utils import planner
from ansible_collections.proxlb.balancer.plugins.module_utils.settings import GIB
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.cluster_builder import (
    apply_moves, cluster, guest, hot_cluster, node, settings)


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


def test_evacuation_only_plans_no_balancing():
    snap = hot_cluster([guest(200, "pve2", 4)])
    result = planner.plan(snap, settings(maintenance_nodes=["pve2"]), balance=False)
    assert [(m.vmid, m.reason) for m in result.moves] == [(200, "maintenance")]


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


def test_mandatory_moves_come_first_and_failures_are_left_alone_with_their_rule():
    nodes = [node("pve1", 128), node("pve2", 128), node("pve3", 16)]
    guests = [guest(100 + i, "pve1", 8, used=0.9) for i in range(8)] + [guest(200, "pve3", 4), guest(201, "pve3", 40, used=0.3)]
    snap = cluster(nodes, guests)
    snap.guests[201].maxmem_bytes = 130 * GIB    # may grow beyond what any other node has free
    result = planner.plan(snap, settings(maintenance_nodes=["pve3"]))
    reasons = [m.reason for m in result.moves]
    assert reasons[0] == "maintenance" and "balance" in reasons
    assert reasons.index("balance") > max(i for i, r in enumerate(reasons) if r == "maintenance")
    no_fit = [x for x in result.data["left_alone"] if x["reason"] == "no_fit"]
    assert [(x["vmid"], x["rule"]) for x in no_fit] == [(201, "maintenance")]
    assert result.data["mandatory_count"] == reasons.count("maintenance")


def test_summary_shows_loads_moves_and_warnings():
    snap = hot_cluster([guest(300, "pve2", 1, tags=["plb_pin_pve9"])])
    result = planner.plan(snap, settings())
    text = planner.summary(result)
    assert text == result.data["summary"] == planner.summary(result.to_dict())
    lines = text.splitlines()
    assert lines[0].startswith("memory (used): spread 56.2 -> ")
    assert lines[1].split() == ["node", "role", "before", "after", "in", "out"]
    assert lines[2].split()[:3] == ["pve1", "balanced", "57.8%"]
    first = result.moves[0]
    assert "wave 1   %-5d %-20s pve1 -> %s" % (first.vmid, first.name, first.target) in text
    assert text.endswith("conflict: guest g300 (300) is pinned to unknown node(s) pve9; those pins are ignored")


def test_summary_of_an_empty_plan_says_why():
    snap = cluster([node("pve1"), node("pve2")], [guest(100, "pve1", 8), guest(101, "pve2", 8)])
    assert planner.summary(planner.plan(snap, settings())).splitlines()[-1] == "no moves: balanced"
