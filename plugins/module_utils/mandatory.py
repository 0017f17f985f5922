# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mandatory moves: the ones a plan makes whatever the balance, before any balancing move.

One function per kind, run in this order by ``plan_mandatory_moves``:
1. ``drain_maintenance``: every guest off a maintenance node (reason ``maintenance``);
2. ``repair_affinity``: a split affinity group gathered on one node (``rule:affinity:<group>``);
3. ``repair_allowed_nodes``: a guest outside its allowed nodes - pins, strict pool pins, HA
   node-affinity and restricted groups - moved inside them (``rule:pin`` or the rule's name);
4. ``repair_anti_affinity``: members of an anti-affinity group that share a node spread out
   (``rule:anti-affinity:<group>``);
5. ``relieve_capacity``: a node whose memory is over capacity relieved (``capacity``).

None of them is limited by ``max_moves``. What cannot be done is recorded as a failure
(``failure_record``): the guests, their node, the reason of the move that was wanted and why
every node refused it; the guests stay where they are.
"""

from __future__ import annotations

from ansible_collections.proxlb.balancer.plugins.module_utils import metrics


def failure_record(vmids, node, reason, detail):
    """A mandatory move that could not be made: the plan's ``failures`` and ``no_fit`` entries."""
    return dict(vmids=vmids, node=node, reason=reason, detail=detail)


def unit_failure(state, unit, reason, refusals):
    """The failure of moving ``unit`` for ``reason``, with every node's refusal ({node: why})."""
    here = state.location[unit.members[0]]
    return failure_record(list(unit.members), state.model.names[here] if here is not None else None, reason,
                          "; ".join("%s: %s" % (n, r) for n, r in sorted(refusals.items())) or "no eligible node")


def plan_mandatory_moves(state):
    """Apply every mandatory move kind in order on ``state``; returns the failures."""
    failures = []
    drain_maintenance(state, failures)
    repair_affinity(state, failures)
    repair_allowed_nodes(state, failures)
    repair_anti_affinity(state, failures)
    relieve_capacity(state, failures)
    return failures


def drain_maintenance(state, failures):
    """Largest units first, each to the least-loaded node that takes it (preferred nodes first)."""
    maintenance = {state.node_index[n] for n in state.constraints.maintenance if n in state.node_index}
    if not maintenance:
        return
    units = [u for u in state.units if any(state.location[v] in maintenance for v in u.members)]
    units.sort(key=lambda u: (-u.mem_use_bytes, u.uid))
    for unit in units:
        if not state.movable(unit):
            continue
        target, refusals = state.best_target(unit.members, exclude=maintenance, preferred=unit.preferred)
        if target is None:
            failures.append(unit_failure(state, unit, "maintenance", refusals))
            continue
        state.apply(unit.members, target, "maintenance", True)


def repair_affinity(state, failures):
    """Gather a split unit where the least memory has to move (on the node of a member that cannot move, if any)."""
    for unit in state.units:
        if len(unit.members) < 2 or state.node_of(unit) is not None:
            continue
        if len(unit.fixed) > 1:
            continue   # members that cannot move sit on different nodes; reported by rules as a conflict
        candidates = sorted(unit.fixed) if unit.fixed else state.eligible
        best, refusals = None, {}
        for target in candidates:
            why = state.can_place(unit.members, target)
            if why:
                refusals[state.model.names[target]] = why
                continue
            moved_bytes = sum(metrics.memory_use(state.guest(v)) for v in unit.members if state.location[v] != target)
            key = (moved_bytes, state.model.pct(target), state.model.names[target])
            if best is None or key < best[0]:
                best = (key, target)
        reason = "rule:affinity:%s" % unit.label
        if best is None:
            failures.append(unit_failure(state, unit, reason, refusals))
            continue
        state.apply(unit.members, best[1], reason, True)


def repair_allowed_nodes(state, failures):
    """A unit on a node its rules do not allow moves to one they do; the first rule names the move."""
    for unit in state.units:
        here = state.node_of(unit)
        if here is None or unit.allowed is None or here in unit.allowed or not state.movable(unit):
            continue
        why = state.constraints.allowed_why.get(unit.members[0], "rule:pin")
        target, refusals = state.best_target(unit.members, preferred=unit.preferred)
        if target is None:
            failures.append(unit_failure(state, unit, why, refusals))
            continue
        state.apply(unit.members, target, why.split(", ")[0], True)


def repair_anti_affinity(state, failures):
    """On each node holding more members of a group than its limit, the smallest of them leave."""
    for group_number, group in enumerate(state.constraints.anti_groups):
        reason = "rule:anti-affinity:%s" % group.name
        for node in range(len(state.model.names)):
            excess = state.anti_counts[group_number][node] - group.limit
            if excess <= 0:
                continue
            here = sorted((state.unit_of[v] for v in group.members if state.location[v] == node),
                          key=lambda u: (u.mem_use_bytes, u.uid))
            for unit in here:
                if excess <= 0:
                    break
                if not state.movable(unit) or state.node_of(unit) != node:
                    continue
                target, _refusals = state.best_target(unit.members, preferred=unit.preferred)
                if target is None:
                    continue
                state.apply(unit.members, target, reason, True)
                excess -= 1
            if excess > 0:
                failures.append(failure_record(sorted(v for v in group.members if state.location[v] == node),
                                               state.model.names[node], reason,
                                               "no node can take another member without breaking capacity or rules"))


def relieve_capacity(state, failures):
    """Largest units first off a node whose memory need exceeds its capacity, until it fits."""
    for node in state.eligible:
        if not state.model.over_capacity(node):
            continue
        units = [u for u in state.units if state.node_of(u) == node and state.movable(u) and u.mem_use_bytes > 0]
        units.sort(key=lambda u: (-u.mem_use_bytes, u.uid))
        for unit in units:
            if not state.model.over_capacity(node):
                break
            target, _refusals = state.best_target(unit.members, exclude={node}, preferred=unit.preferred)
            if target is not None:
                state.apply(unit.members, target, "capacity", True)
        if state.model.over_capacity(node):
            failures.append(failure_record([], state.model.names[node], "capacity",
                                           "memory stays over capacity: no guest on it can move anywhere it fits"))
