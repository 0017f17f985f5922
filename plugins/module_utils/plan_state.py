# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The state a plan is built in: where every guest is, and what a placement would break.

Every planning stage (mandatory moves, balancing, placement of new guests, sequencing) works on
one ``PlanningState``: the per-node loads of ``metrics.Model``, the ``rules.build`` constraints,
the node each guest is on and how many members of each anti-affinity group every node holds.
Guests move in ``MoveUnit``s: an affinity unit (guests that must share a node) or a single guest.
Each placement is checked against the state reached so far (``can_place``) before it is applied,
so no intermediate state overfills a node or breaks a rule.
"""

from __future__ import annotations

from ansible_collections.proxlb.balancer.plugins.module_utils import metrics, rules
from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ConfigError
from ansible_collections.proxlb.balancer.plugins.module_utils.settings import GIB, check_nodes_known
from ansible_collections.proxlb.balancer.plugins.module_utils.snapshot import version_tuple


class MoveUnit:
    """Guests that move together: the members of one affinity unit, or one guest on its own.

    ``weight`` is the members' balanced load, ``mem_use_bytes`` the memory they free where they
    leave, ``cost_gib`` what moving them costs (memory plus local disk). ``allowed`` (node
    indices, None = any) and ``preferred`` come from the rules of every member; ``fixed`` holds
    the nodes of members that may not move at all (a unit with such a member stays).
    """

    __slots__ = ("uid", "members", "label", "weight", "mem_use_bytes", "cost_gib", "allowed", "preferred", "fixed")

    def __init__(self, uid, members, label):
        self.uid = uid
        self.members = members
        self.label = label


class PlanningState:
    """The model plus where every guest is and how anti-affinity groups are spread.

    ``immovable``: {vmid: reason} of guests that must stay on top of what the rules say.
    ``forbidden``: {vmid: {node: reason}} of targets PVE's own migration check refused.
    """

    def __init__(self, snapshot, settings, immovable=None, forbidden=None):
        check_nodes_known(settings, snapshot.nodes)
        if settings.mode == "psi" and version_tuple(snapshot.pve_version) < (9, 0, 0):
            raise ConfigError("mode", "psi needs PVE 9 pressure data; this cluster runs PVE %s, use mode used or assigned"
                              % snapshot.pve_version)
        self.snapshot = snapshot
        self.settings = settings
        self.constraints = rules.build(snapshot, settings)
        for vmid, reason in (immovable or {}).items():
            if vmid in snapshot.guests:
                self.constraints.immovable[vmid] = reason
        self.model = metrics.Model(snapshot, settings)
        self.node_index = self.model.index
        self.forbidden = {vmid: {self.node_index[n]: why for n, why in nodes.items() if n in self.node_index}
                          for vmid, nodes in (forbidden or {}).items() if vmid in snapshot.guests}
        self.eligible = [self.node_index[n] for n in self.constraints.eligible]
        self.eligible_set = set(self.eligible)
        self.location = {vmid: self.node_index.get(g.node) for vmid, g in snapshot.guests.items()}
        self.anti_groups_of = {}     # vmid -> indices of its anti-affinity groups
        self.anti_counts = []        # per group: members on each node
        for group_number, group in enumerate(self.constraints.anti_groups):
            counts = [0] * len(self.model.names)
            for vmid in group.members:
                self.anti_groups_of.setdefault(vmid, []).append(group_number)
                if self.location[vmid] is not None:
                    counts[self.location[vmid]] += 1
            self.anti_counts.append(counts)
        self.units = []
        self.unit_of = {}
        for uid, members in enumerate(self.constraints.units):
            unit = self._unit(uid, members)
            self.units.append(unit)
            for vmid in members:
                self.unit_of[vmid] = unit
        self.steps = []          # (vmid, from index, to index, reason, mandatory) in planning order
        self.balance_moves = 0   # migrations spent on balancing, counted against max_moves

    def _unit(self, uid, members):
        constraints = self.constraints
        unit = MoveUnit(uid, members, constraints.unit_names.get(uid, ""))
        guests = [self.snapshot.guests[v] for v in members]
        unit.weight = sum(self.model.weights[v] for v in members)
        unit.mem_use_bytes = sum(metrics.memory_use(g) for g in guests)
        unit.cost_gib = sum(metrics.memory_use(g) + (g.local_disk_bytes or 0) for g in guests) / GIB
        allowed = None
        for vmid in members:
            if vmid in constraints.allowed:
                allowed = set(constraints.allowed[vmid]) if allowed is None else allowed & constraints.allowed[vmid]
        unit.allowed = None if allowed is None else {self.node_index[n] for n in allowed if n in self.node_index}
        unit.preferred = {self.node_index[n] for v in members for n in constraints.preferred.get(v, ()) if n in self.node_index}
        unit.fixed = {self.location[v] for v in members if v in constraints.immovable}
        return unit

    # -- facts about guests and units ---------------------------------------------------------
    def guest(self, vmid):
        return self.snapshot.guests[vmid]

    def node_of(self, unit):
        """The node a unit sits on, or None when its members are split."""
        nodes = {self.location[v] for v in unit.members}
        return nodes.pop() if len(nodes) == 1 else None

    def movable(self, unit):
        return not unit.fixed

    # -- placement checks ------------------------------------------------------------------
    def can_place(self, vmids, target):
        """Can these guests (moving together) go to node index ``target``? Returns None or a reason."""
        if target not in self.eligible_set:
            return "not a target (offline, maintenance or ignored)"
        moving = [v for v in vmids if self.location[v] != target]
        if not moving:
            return None
        unit = self.unit_of[moving[0]]
        for vmid in moving if self.forbidden else ():
            if target in self.forbidden.get(vmid, ()):
                return self.forbidden[vmid][target]
        if unit.allowed is not None and target not in unit.allowed:
            return "not allowed by %s" % self.constraints.allowed_why.get(moving[0], "rules")
        guests = [self.guest(v) for v in moving]
        why = self.model.why_not_fit(target, sum(metrics.memory_need(g) for g in guests), sum(metrics.vcpus(g) for g in guests),
                                     sum(g.local_disk_bytes or 0 for g in guests))
        if why:
            return why
        arriving = {}
        for vmid in moving:
            for group_number in self.anti_groups_of.get(vmid, ()):
                arriving[group_number] = arriving.get(group_number, 0) + 1
        for group_number, count in arriving.items():
            group = self.constraints.anti_groups[group_number]
            if self.anti_counts[group_number][target] + count > group.limit:
                return "anti-affinity group %s already has %d guest(s) there" % (group.name, self.anti_counts[group_number][target])
        return None

    def best_target(self, vmids, exclude=(), preferred=()):
        """Least-loaded feasible node after placement; preferred nodes first. (node, reasons)"""
        weight = sum(self.model.weights[v] for v in vmids if self.location[v] is not None)
        choice, reasons = None, {}
        for target in self.eligible:
            if target in exclude or all(self.location[v] == target for v in vmids):
                continue
            why = self.can_place(vmids, target)
            if why:
                reasons[self.model.names[target]] = why
                continue
            key = (0 if target in preferred else 1, self.model.pct_after(target, weight), self.model.names[target])
            if choice is None or key < choice[0]:
                choice = (key, target)
        return (choice[1] if choice else None), reasons

    # -- updates ---------------------------------------------------------------------------
    def arrive(self, vmid, node):
        """The guest counts on ``node``: its load, memory, vCPUs, local disk and anti-affinity groups."""
        guest = self.guest(vmid)
        self.model.arrive(node, self.model.weights[vmid], metrics.memory_use(guest), metrics.vcpus(guest), guest.local_disk_bytes or 0)
        for group_number in self.anti_groups_of.get(vmid, ()):
            self.anti_counts[group_number][node] += 1

    def depart(self, vmid, node):
        """The guest no longer counts on ``node``."""
        guest = self.guest(vmid)
        self.model.depart(node, self.model.weights[vmid], metrics.memory_use(guest), metrics.vcpus(guest), guest.local_disk_bytes or 0)
        for group_number in self.anti_groups_of.get(vmid, ()):
            self.anti_counts[group_number][node] -= 1

    def apply(self, vmids, target, reason, mandatory):
        """Move the guests to node index ``target`` and record the step (checked by the caller)."""
        for vmid in vmids:
            source = self.location[vmid]
            if source == target:
                continue
            if source is not None:
                self.depart(vmid, source)
            self.arrive(vmid, target)
            self.location[vmid] = target
            self.steps.append((vmid, source, target, reason, mandatory))
