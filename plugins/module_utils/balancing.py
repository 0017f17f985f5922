# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Balancing: when the cluster is out of balance, moves that pay for themselves.

``balance_trigger`` decides whether to balance at all: the spread (percentage points between
the most and the least loaded eligible node) is above ``balanciness`` and, when a threshold is
set for the method, the hottest node is above it.

``improve_balance`` then moves one unit at a time from one of the hottest to one of the coldest
nodes, until the spread is within ``target_spread`` (half of ``balanciness``: hysteresis, so a
plan made on the result finds nothing to do), no move pays for itself, or ``max_moves`` is spent.

The objective is the capacity-weighted sum of squared node loads, sum(C_i/C_mean * L_i^2) with
L_i in percent: its minimum has every node at the same percentage, also when nodes differ in
size (an unweighted sum would push big nodes to higher percentages). A move pays for itself
when it lowers the objective by at least ``MARGIN_PER_GIB`` for every GiB it moves plus a fixed
per-migration overhead (``MOVE_OVERHEAD_GIB``).
"""

from __future__ import annotations

import bisect

MARGIN_PER_GIB = 0.25          # pp^2 of objective a move must gain per GiB it moves
MOVE_OVERHEAD_GIB = 24.0       # a migration's fixed cost (downtime blip, task, risk) in GiB-equivalents
PREFERENCE_PENALTY_GIB = 8.0   # leaving a preferred node is as costly as moving this much more
CANDIDATE_NODES = 6            # hottest x coldest nodes examined per improving step
CANDIDATE_SCAN = 6             # units examined each side of the ideal size per node pair


def balance_trigger(state):
    """Whether to balance, and why: dict(triggered, reason, spread_pp, max_pct, ...)."""
    pcts = [state.model.pct(i) for i in state.eligible]
    if len(pcts) < 2:
        return dict(triggered=False, reason="fewer_than_two_nodes", spread_pp=0.0, max_pct=max(pcts or [0.0]))
    spread = max(pcts) - min(pcts)
    threshold = state.settings.threshold
    result = dict(spread_pp=round(spread, 2), max_pct=round(max(pcts), 2), balanciness=state.settings.balanciness,
                  threshold=threshold, triggered=False)
    if spread <= state.settings.balanciness:
        result["reason"] = "balanced"
    elif threshold is not None and max(pcts) < threshold:
        result["reason"] = "below_threshold"
    else:
        result["triggered"] = True
        result["reason"] = "spread_above_balanciness"
    return result


def improve_balance(state):
    """Apply improving moves on ``state``; returns why it stopped (target_reached, no_gain, max_moves)."""
    model = state.model
    budget = state.settings.max_moves
    by_node = {i: [] for i in state.eligible}     # node -> sorted (weight, uid) of the units that may leave it
    for unit in state.units:
        here = state.node_of(unit)
        if here in by_node and state.movable(unit) and unit.weight > 0:
            by_node[here].append((unit.weight, unit.uid))
    for entries in by_node.values():
        entries.sort()
    pair_count = min(CANDIDATE_NODES, len(state.eligible))
    cap_mean = sum(model.cap[i] for i in state.eligible) / len(state.eligible)
    while True:
        order = sorted(state.eligible, key=lambda i: (model.pct(i), model.names[i]))
        spread = model.pct(order[-1]) - model.pct(order[0])
        if spread <= state.settings.target_spread:
            return "target_reached"
        best = None
        for hot in reversed(order[-pair_count:]):
            load_hot = model.pct(hot)
            for cold in order[:pair_count]:
                load_cold = model.pct(cold)
                if load_hot - load_cold <= 1e-9:
                    continue
                best = best_pair_move(state, by_node[hot], hot, cold, load_hot, load_cold, best, cap_mean)
        if best is None:
            return "no_gain"
        _score, unit, target = best
        if budget is not None and state.balance_moves + len(unit.members) > budget:
            return "max_moves"
        source = state.node_of(unit)
        by_node[source].remove((unit.weight, unit.uid))
        bisect.insort(by_node[target], (unit.weight, unit.uid))
        state.apply(unit.members, target, "balance", False)
        state.balance_moves += len(unit.members)


def best_pair_move(state, entries, hot, cold, load_hot, load_cold, best, cap_mean):
    """Best move of one unit from ``hot`` to ``cold``, scanning units around the size that would even them.

    ``entries``: sorted (weight, uid) of the units on ``hot``; ``best``: the best (score, unit,
    target) found so far, returned unless a better move is found here.
    """
    model = state.model
    if not entries or model.cap[hot] <= 0 or model.cap[cold] <= 0:
        return best
    ideal = (load_hot - load_cold) / (100.0 / model.cap[hot] + 100.0 / model.cap[cold])
    pos = bisect.bisect_left(entries, (ideal, -1))
    lo, hi = pos - 1, pos
    examined = 0
    while examined < 2 * CANDIDATE_SCAN and (lo >= 0 or hi < len(entries)):
        if hi < len(entries) and (lo < 0 or entries[hi][0] - ideal <= ideal - entries[lo][0]):
            weight, uid = entries[hi]
            hi += 1
        else:
            weight, uid = entries[lo]
            lo -= 1
        examined += 1
        unit = state.units[uid]
        gain = objective_gain(model, hot, cold, weight, load_hot, load_cold, cap_mean)
        cost = move_cost_gib(unit, hot, cold)
        if gain < MARGIN_PER_GIB * cost:
            continue
        score = (gain / cost, -unit.uid)
        if best is not None and score <= best[0]:
            continue
        if state.can_place(unit.members, cold) is None:
            best = (score, unit, cold)
    return best


def move_cost_gib(unit, source, target):
    """What moving ``unit`` costs in GiB-equivalents: its memory and local disk, the fixed overhead,
    and the penalty for leaving a node its rules prefer for one they do not."""
    cost = unit.cost_gib + MOVE_OVERHEAD_GIB
    if unit.preferred and source in unit.preferred and target not in unit.preferred:
        cost += PREFERENCE_PENALTY_GIB
    return cost


def objective_gain(model, hot, cold, weight, load_hot, load_cold, cap_mean):
    """Drop of the objective when ``weight`` moves from ``hot`` to ``cold`` (loads in percent).

    C_h*(lh^2 - (lh-dh)^2) + C_c*(lc^2 - (lc+dc)^2) with C*d = 100*weight simplifies to
    100*weight*(2*(lh - lc) - dh - dc): positive exactly when the move narrows the gap.
    """
    drop_hot = weight * 100.0 / model.cap[hot]
    rise_cold = weight * 100.0 / model.cap[cold]
    return 100.0 * weight * (2.0 * (load_hot - load_cold) - drop_hot - rise_cold) / cap_mean
