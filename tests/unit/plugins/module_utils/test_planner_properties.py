# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Properties every plan must have, on seeded random clusters.

The checks here are written independently of the planner's model: memory is tracked the way
PVE live migration uses it (while a guest is copied both nodes hold its memory, and the target
must have room for the guest to grow to its configured size), and a guest in flight counts on both nodes for rules.
"""

from __future__ import annotations

import json

from hypothesis import given, settings as hyp_settings, strategies as st, HealthCheck

from ansible_collections.proxlb.balancer.plugins.module_utils import planner
from ansible_collections.proxlb.balancer.plugins.module_utils.settings import GIB
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.cluster_builder import (
    apply_moves, random_cluster, settings)

SETTINGS = [dict(), dict(method="cpu"), dict(mode="assigned", balanciness=5), dict(max_moves_per_node=2),
            dict(node_resource_reserve={"defaults": {"memory": 4}}), dict(maintenance_nodes=["n00"])]

RUNS = dict(max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def _anti_groups(snapshot):
    groups = {}
    for g in snapshot.guests.values():
        for tag in g.tags:
            if tag.startswith("plb_anti_affinity"):
                groups.setdefault(tag, set()).add(g.vmid)
    return groups


def check_waves(snapshot, options, result):
    """Every state during and after every wave keeps capacity and anti-affinity."""
    reserve = options.get("node_resource_reserve", {}).get("defaults", {}).get("memory", 0) * GIB
    cap = {n.name: n.maxmem_bytes - reserve for n in snapshot.nodes.values()}
    used = {n.name: n.mem_bytes for n in snapshot.nodes.values()}
    where = {v: g.node for v, g in snapshot.guests.items()}
    usable = len([n for n in snapshot.nodes.values() if n.online]) - len(options.get("maintenance_nodes", []))
    groups = _anti_groups(snapshot)
    conflicted = {v for c in result.data["rule_conflicts"] for v in c["guests"]}
    for number, wave in enumerate(result.waves, 1):
        assert all(m.wave == number for m in wave)
        for move in wave:
            g = snapshot.guests[move.vmid]
            assert where[move.vmid] == move.source
            if g.status == "running":
                # The arriving guest may grow to its configured size; it uses what it uses.
                assert used[move.target] + max(g.maxmem_bytes, g.mem_bytes) <= cap[move.target], \
                    "wave %d overfills %s" % (number, move.target)
                used[move.target] += g.mem_bytes
        present = {}
        for v, node in where.items():
            present.setdefault(v, set()).add(node)
        for move in wave:
            present[move.vmid].add(move.target)
        for name, members in groups.items():
            if members & conflicted:
                continue
            limit = -(-len(members) // max(1, usable))
            for node in {m.target for m in wave if m.vmid in members}:
                count = sum(1 for v in members if node in present[v])
                assert count <= max(limit, 1), "wave %d: group %s has %d on %s" % (number, name, count, node)
        for move in wave:
            g = snapshot.guests[move.vmid]
            if g.status == "running":
                used[move.source] -= g.mem_bytes
            where[move.vmid] = move.target
    return where


@hyp_settings(**RUNS)
@given(seed=st.integers(min_value=0, max_value=10 ** 6), which=st.integers(min_value=0, max_value=len(SETTINGS) - 1))
def test_plans_are_safe_deterministic_and_stable(seed, which):
    snapshot = random_cluster(seed)
    options = SETTINGS[which]
    result = planner.plan(snapshot, settings(**options))
    again = planner.plan(snapshot, settings(**options))
    assert json.dumps(result.to_dict(), sort_keys=True) == json.dumps(again.to_dict(), sort_keys=True)

    where = check_waves(snapshot, options, result)
    for g in snapshot.guests.values():
        lowered = [t.lower() for t in g.tags]
        if "plb_ignore" in lowered or g.template or g.lock:
            assert where[g.vmid] == g.node
        pins = [t[len("plb_pin_"):] for t in lowered if t.startswith("plb_pin_")]
        if pins and where[g.vmid] != g.node:
            assert where[g.vmid] in pins

    replanned = planner.plan(apply_moves(snapshot, result.moves), settings(**options))
    assert replanned.moves == [], replanned.data["summary"]


@hyp_settings(**RUNS)
@given(seed=st.integers(min_value=0, max_value=10 ** 6))
def test_balancing_never_raises_the_hottest_node(seed):
    snapshot = random_cluster(seed)
    result = planner.plan(snapshot, settings())
    before, after = result.data["metrics"]["before"], result.data["metrics"]["after"]
    if result.data["mandatory_count"] == 0:
        assert after["max_pct"] <= before["max_pct"] + 1e-6
        assert after["spread_pp"] <= before["spread_pp"] + 1e-6
