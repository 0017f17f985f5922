# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Greedy baseline: ProxLB's hot -> cold pass, made fair.

Each step takes the most loaded node and moves its largest movable guest to the least loaded
node where it fits, until the spread reaches a target, no move is possible, or an iteration
limit is hit. That is the shape of ProxLB's relocation loop (with ``largest_first=False`` the
smallest guest goes first, ProxLB's default order); unlike ProxLB it

- checks fit exactly as the planner does (memory the guest may grow to, vCPU overcommit,
  local disk), using the same ``metrics.Model`` and the same reserves;
- respects the same rules: ignored, locked and template guests stay, pins restrict targets,
  affinity groups move together, anti-affinity groups stay on distinct nodes;
- never moves a guest onto a node that would end up at or above the load the source had before
  the move (that would only move the hot spot), and then tries the next smaller guest.

Loads, capacities and the spread are the planner's (``metrics.Model``), so "the same final
spread" means the same number for both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

from proxlb_import import metrics, rules

EPSILON = 1e-9


@dataclass
class GreedyMove:
    vmid: int
    source: str
    target: str
    mem_bytes: int


@dataclass
class GreedyResult:
    moves: List[GreedyMove]     # one per guest that ends on another node (chains collapsed)
    steps: int                  # migrations the loop decided before collapsing
    spread_pp: float            # spread in the model when the loop stopped
    stop_reason: str            # target_reached | no_move | iteration_limit


@dataclass
class _Unit:
    uid: int
    members: List[int]
    weight: float
    mem_need: float
    mem_use: float
    vcpus: float
    disk: float
    allowed: object             # set of node indices, or None for any node


class _Greedy:
    def __init__(self, snapshot, settings, largest_first):
        self.snapshot = snapshot
        self.sign = -1 if largest_first else 1
        self.model = metrics.Model(snapshot, settings)
        cons = rules.build(snapshot, settings)
        index = self.model.index
        self.eligible = [index[name] for name in cons.eligible]
        self.loc = {vmid: index.get(guest.node) for vmid, guest in snapshot.guests.items()}
        self.by_node = {i: [] for i in self.eligible}
        for uid, members in enumerate(cons.units):
            unit = self._unit(uid, members, cons)
            if unit is not None:
                self.by_node[self.loc[members[0]]].append(unit)
        self.anti = []
        self.groups_of = {}
        for gi, group in enumerate(cons.anti_groups):
            counts = [0] * len(self.model.names)
            for vmid in group.members:
                self.groups_of.setdefault(vmid, []).append(gi)
                if self.loc[vmid] is not None:
                    counts[self.loc[vmid]] += 1
            self.anti.append((group.limit, counts))
        self.steps = []

    def _unit(self, uid, members, cons):
        if any(vmid in cons.immovable for vmid in members):
            return None
        homes = {self.loc[vmid] for vmid in members}
        if len(homes) != 1 or next(iter(homes)) not in self.by_node:
            return None
        guests = [self.snapshot.guests[vmid] for vmid in members]
        weight = sum(self.model.weights[vmid] for vmid in members)
        if weight <= 0:
            return None
        allowed = None
        for vmid in members:
            if vmid in cons.allowed:
                nodes = {self.model.index[n] for n in cons.allowed[vmid] if n in self.model.index}
                allowed = nodes if allowed is None else allowed & nodes
        return _Unit(uid=uid, members=list(members), weight=weight,
                     mem_need=sum(metrics.memory_need(g) for g in guests), mem_use=sum(metrics.memory_use(g) for g in guests),
                     vcpus=sum(metrics.vcpus(g) for g in guests), disk=sum(g.local_disk_bytes or 0 for g in guests),
                     allowed=allowed)

    def order(self):
        return sorted(self.eligible, key=lambda i: (self.model.pct(i), self.model.names[i]))

    def can_take(self, unit, b):
        if unit.allowed is not None and b not in unit.allowed:
            return False
        if not self.model.fits(b, unit.mem_need, unit.vcpus, unit.disk):
            return False
        arriving = {}
        for vmid in unit.members:
            for gi in self.groups_of.get(vmid, ()):
                arriving[gi] = arriving.get(gi, 0) + 1
        return all(self.anti[gi][1][b] + count <= self.anti[gi][0] for gi, count in arriving.items())

    def pick(self, order):
        """(unit, target) for the hottest node, or None."""
        a = order[-1]
        hot = self.model.pct(a)
        for unit in sorted(self.by_node[a], key=lambda u: (self.sign * u.weight, u.uid)):
            for b in order[:-1]:
                if self.model.pct_after(b, unit.weight) >= hot - EPSILON:
                    break
                if self.can_take(unit, b):
                    return unit, b
        return None

    def move(self, unit, b):
        a = self.loc[unit.members[0]]
        self.model.depart(a, unit.weight, unit.mem_use, unit.vcpus, unit.disk)
        self.model.arrive(b, unit.weight, unit.mem_use, unit.vcpus, unit.disk)
        for vmid in unit.members:
            for gi in self.groups_of.get(vmid, ()):
                self.anti[gi][1][a] -= 1
                self.anti[gi][1][b] += 1
            self.loc[vmid] = b
            self.steps.append((vmid, a, b))
        self.by_node[a].remove(unit)
        self.by_node[b].append(unit)

    def collapsed(self):
        first, last = {}, {}
        for vmid, a, b in self.steps:
            first.setdefault(vmid, a)
            last[vmid] = b
        moves = []
        for vmid, a in first.items():
            if last[vmid] == a:
                continue
            guest = self.snapshot.guests[vmid]
            moves.append(GreedyMove(vmid=vmid, source=self.model.names[a], target=self.model.names[last[vmid]],
                                    mem_bytes=metrics.memory_use(guest) or guest.maxmem_bytes))
        return moves


def balance(snapshot, settings, target_spread, max_steps=None, largest_first=True):
    """Run the greedy pass on ``snapshot`` until the spread is <= ``target_spread`` (pp)."""
    state = _Greedy(snapshot, settings, largest_first)
    limit = 5 * len(snapshot.guests) if max_steps is None else max_steps
    spread = 0.0
    while True:
        order = state.order()
        if len(order) < 2:
            reason = "target_reached"
            break
        spread = state.model.pct(order[-1]) - state.model.pct(order[0])
        if spread <= target_spread + EPSILON:
            reason = "target_reached"
            break
        if len(state.steps) >= limit:
            reason = "iteration_limit"
            break
        choice = state.pick(order)
        if choice is None:
            reason = "no_move"
            break
        state.move(*choice)
    return GreedyResult(moves=state.collapsed(), steps=len(state.steps), spread_pp=spread, stop_reason=reason)
