# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lower bounds: how good any plan could be, so a plan can say how far it is from that.

A plan reports ``metrics.lower_bound`` (max_pct, spread_pp) and its gap to the bound. No plan
gets below the bound, whatever it moves: the load that cannot leave a node (host overhead,
guests that may not move, units with only one node to go to) stays, the average cannot be
beaten, and the largest movable unit lands somewhere. A small gap means the plan is close to
the best possible; a large one means the bound is loose or the planner stopped early.
"""

from __future__ import annotations

from ansible_collections.proxlb.balancer.plugins.module_utils import metrics


def plan_lower_bound(state):
    """The lower bound for the cluster as ``state`` has it, over its eligible nodes."""
    fixed_load, movable_items = bound_inputs(state)
    return lower_bounds(state.model, state.eligible, fixed_load, movable_items)


def bound_inputs(state):
    """Load no plan can take off each node, and the units that may move with the nodes they could use.

    A unit can only end on an allowed node whose memory, less what cannot leave it, holds the
    unit; a unit with one such node is fixed there, one with none stays where it is.
    Returns (fixed_load {node index: load}, movable_items [(weight, [node indices])]).
    """
    model = state.model
    fixed = {i: model.load[i] for i in state.eligible}
    fixed_mem = {i: model.mem_need[i] for i in state.eligible}
    movable = []
    for unit in state.units:
        homes = {state.location[v] for v in unit.members}
        if not state.movable(unit) or not homes <= set(fixed):
            continue
        for vmid in unit.members:
            fixed[state.location[vmid]] -= model.weights[vmid]
            fixed_mem[state.location[vmid]] -= metrics.memory_use(state.guest(vmid))
        movable.append((unit, state.node_of(unit)))
    items = []
    for unit, here in movable:
        need = sum(metrics.memory_need(state.guest(v)) for v in unit.members)
        allowed = state.eligible if unit.allowed is None else [i for i in state.eligible if i in unit.allowed]
        usable = [i for i in allowed if i == here or fixed_mem[i] + need <= model.mem_cap[i]]
        if len(usable) == 1 or (not usable and here is not None):
            home = usable[0] if usable else here
            fixed[home] += unit.weight
            fixed_mem[home] += unit.mem_use_bytes
        elif not usable:
            continue   # a split group with nowhere to gather: no bound from it
        else:
            items.append((unit.weight, usable))
    return fixed, items


def lower_bounds(model, nodes, fixed_load, movable_items):
    """Lower bounds on the best achievable max load and spread over ``nodes`` (indices).

    fixed_load: index -> load that cannot leave the node (host overhead, immovable guests).
    movable_items: list of (weight, [node indices it could end on]) for units that may move.
    Returns dict(max_pct, spread_pp, average_pct, binding) where ``binding`` names the bound
    that decides (average, largest_item, fixed_load).
    """
    if not nodes:
        return dict(max_pct=0.0, spread_pp=0.0, average_pct=0.0, binding="average")
    total_cap = sum(model.cap[i] for i in nodes)
    total_load = sum(model.load[i] for i in nodes)
    average = total_load * 100.0 / total_cap if total_cap > 0 else 0.0
    candidates = [("average", average)]
    fixed = max((fixed_load.get(i, 0.0) * 100.0 / model.cap[i] for i in nodes if model.cap[i] > 0), default=0.0)
    candidates.append(("fixed_load", fixed))
    item = 0.0
    for weight, allowed in movable_items:
        # Wherever the unit ends, that node carries its fixed load plus the unit.
        landing = [(fixed_load.get(i, 0.0) + weight) * 100.0 / model.cap[i] for i in allowed if model.cap[i] > 0]
        if landing:
            item = max(item, min(landing))
    candidates.append(("largest_item", item))
    binding, best = max(candidates, key=lambda c: c[1])
    # The least loaded node carries at most the average; and when node k cannot go below
    # fixed_k, the others share what is left, so the minimum is at most their average.
    spread = best - average
    for k in nodes:
        rest_cap = total_cap - model.cap[k]
        if model.cap[k] <= 0 or rest_cap <= 0:
            continue
        floor_k = fixed_load.get(k, 0.0) * 100.0 / model.cap[k]
        rest_average = (total_load * 100.0 - floor_k * model.cap[k]) / rest_cap
        spread = max(spread, floor_k - rest_average)
    return dict(
        max_pct=round(best, 2),
        spread_pp=round(max(0.0, spread), 2),
        average_pct=round(average, 2),
        binding=binding,
    )
