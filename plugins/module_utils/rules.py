# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Placement rules: ProxLB tags, pools, PVE HA rules and groups, ignore lists -> constraints.

The result is plain data the planner checks every placement against:
- which guests may not move at all, and why;
- which nodes a guest may run on (hard) and which it prefers (soft);
- affinity units: guests that must share a node (merged transitively, moved as one);
- anti-affinity groups: guests that must be on different nodes, at most ``limit`` per node;
- conflicts between rules, reported with the guests involved; the rest proceeds.

``build`` runs one function per source of rules, each adding to the ``Constraints``: node roles
(maintenance, ignored), the options that leave guests alone (``ignore_guests``, ``guest_types``,
``include_stopped``, ...), ProxLB tags, pools, PVE 9 HA rules and PVE 8 HA groups. What they ask
for is then settled: HA failback tiers against anti-affinity, affinity units, anti-affinity groups.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Dict, List, NamedTuple, Set

from ansible_collections.proxlb.balancer.plugins.module_utils.snapshot import version_tuple

MOVABLE_STATUS = ("running", "stopped")


@dataclass
class AntiGroup:
    name: str
    members: Set[int]
    limit: int = 1


@dataclass
class Constraints:
    eligible: List[str]                                    # nodes that may receive guests
    maintenance: Set[str]
    ignored_nodes: Set[str]
    immovable: Dict[int, str] = field(default_factory=dict)         # vmid -> reason
    allowed: Dict[int, Set[str]] = field(default_factory=dict)      # vmid -> hard allowed nodes
    allowed_why: Dict[int, str] = field(default_factory=dict)       # vmid -> rule that restricts it
    preferred: Dict[int, Set[str]] = field(default_factory=dict)    # vmid -> soft preferred nodes
    units: List[List[int]] = field(default_factory=list)            # affinity units (sorted vmids), singletons included
    unit_names: Dict[int, str] = field(default_factory=dict)        # unit index -> affinity group label ('' for singletons)
    anti_groups: List[AntiGroup] = field(default_factory=list)
    conflicts: List[dict] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    # What the rule sources ask for, which ``build`` then resolves into units and anti_groups:
    together: Dict[str, List[int]] = field(default_factory=dict)    # affinity label -> guests that share a node
    apart: Dict[str, Set[int]] = field(default_factory=dict)        # anti-affinity label -> guests on different nodes
    failback: Dict[int, tuple] = field(default_factory=dict)        # vmid -> (nodes, why): where PVE HA puts it back

    def restrict(self, vmid, nodes, why):
        """The guest may run only on ``nodes`` (on top of earlier restrictions), because of ``why``."""
        current = self.allowed.get(vmid)
        self.allowed[vmid] = set(nodes) if current is None else current & set(nodes)
        self.allowed_why[vmid] = why if vmid not in self.allowed_why else self.allowed_why[vmid] + ", " + why

    def prefer(self, vmid, nodes):
        self.preferred.setdefault(vmid, set()).update(nodes)


class TagRules(NamedTuple):
    """The ProxLB rule tags among a guest's tags, lower-cased."""
    affinity: List[str]          # plb_affinity_* (and the older plb_include_*)
    anti_affinity: List[str]     # plb_anti_affinity_* (and the older plb_exclude_*)
    pins: List[str]              # node names of plb_pin_<node>
    ignored: bool                # plb_ignore* (plb_ignore_vm included)


def tag_rules(tags):
    """The ProxLB rules a guest's tags carry; tags are matched case-insensitively."""
    affinity, anti, pins, ignored = [], [], [], False
    for raw in tags:
        tag = raw.strip().lower()
        if tag.startswith("plb_ignore"):
            ignored = True
        elif tag.startswith("plb_anti_affinity") or tag.startswith("plb_exclude"):
            anti.append(tag)
        elif tag.startswith("plb_affinity") or tag.startswith("plb_include"):
            affinity.append(tag)
        elif tag.startswith("plb_pin_"):
            pins.append(tag[len("plb_pin_"):])
    return TagRules(affinity, anti, pins, ignored)


def _sid_to_vmid(sid):
    try:
        return int(str(sid).rsplit(":", maxsplit=1)[-1])
    except ValueError:
        return None


class AffinityMerger:
    """Guests that must share a node, merged transitively into affinity units (union-find)."""

    def __init__(self):
        self.parent = {}

    def root(self, vmid):
        """The representative of the unit ``vmid`` belongs to."""
        self.parent.setdefault(vmid, vmid)
        while self.parent[vmid] != vmid:
            self.parent[vmid] = self.parent[self.parent[vmid]]
            vmid = self.parent[vmid]
        return vmid

    def join(self, vmid, other):
        """``vmid`` and ``other`` share a unit from now on; the lower root names it."""
        root, other_root = self.root(vmid), self.root(other)
        if root != other_root:
            self.parent[max(root, other_root)] = min(root, other_root)


def _tiered(nodes_prio, eligible):
    """The highest-priority tier of ``nodes_prio`` among eligible nodes (PVE's placement order)."""
    present = {n: p for n, p in nodes_prio.items() if n in eligible}
    if not present:
        return set()
    top = max(present.values())
    return {n for n, p in present.items() if p == top}


def build(snapshot, settings):
    """Constraints for one snapshot and one set of settings (pure).

    Each rule source adds what it asks for, in this order (the order of ``allowed_why`` when
    several restrict one guest); then failback tiers, affinity units and anti-affinity groups
    are settled against each other, and what cannot be met is reported as a conflict.
    """
    constraints = node_roles(snapshot, settings)
    add_option_rules(constraints, snapshot, settings)
    add_tag_rules(constraints, snapshot)
    add_pool_rules(constraints, snapshot, settings)
    add_ha_rules(constraints, snapshot)
    add_ha_groups(constraints, snapshot)
    _settle_failback(constraints)
    _form_affinity_units(constraints, snapshot)
    _form_anti_affinity_groups(constraints)
    return constraints


def node_roles(snapshot, settings):
    """Empty constraints with the nodes' roles: maintenance (maintenance_nodes and PVE HA
    maintenance mode), ignored (ignore_nodes), and eligible (online and neither)."""
    names = sorted(snapshot.nodes)
    ha_maint = {n for n in names if snapshot.nodes[n].ha_maintenance}
    maintenance = set(settings.maintenance_nodes) | ha_maint
    ignored_nodes = set(settings.ignore_nodes)
    eligible = [n for n in names if snapshot.nodes[n].online and n not in maintenance and n not in ignored_nodes]
    constraints = Constraints(eligible=eligible, maintenance=maintenance, ignored_nodes=ignored_nodes)
    for node in sorted(ha_maint - set(settings.maintenance_nodes)):
        constraints.warnings.append("node %s is in PVE HA maintenance mode: treated as a maintenance node" % node)
    return constraints


def add_option_rules(constraints, snapshot, settings):
    """Guests that stay where they are, by option or state: ignore_guests (names, vmids,
    wildcards), templates, guest_types, guests on ignore_nodes or offline nodes, locked guests,
    paused and other states, stopped guests unless include_stopped, and on PVE 9.2+ with CRS
    auto-rebalance the HA resources PVE balances itself (unless manage_ha_resources)."""
    patterns = [p.lower() for p in settings.ignore_guests]
    pve_manages_ha = (version_tuple(snapshot.pve_version) >= (9, 2, 0) and bool(snapshot.crs.get("ha-auto-rebalance"))
                      and not settings.manage_ha_resources)
    if pve_manages_ha:
        constraints.warnings.append("PVE CRS ha-auto-rebalance is on: HA resources are left to PVE (set manage_ha_resources to change this)")
    for vmid in sorted(snapshot.guests):
        guest = snapshot.guests[vmid]
        name = (guest.name or "").lower()
        reason = None
        if any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(str(vmid), p) for p in patterns):
            reason = "ignored"
        elif guest.template:
            reason = "template"
        elif guest.kind not in settings.guest_types:
            reason = "type_excluded"
        elif guest.node in constraints.ignored_nodes:
            reason = "ignored_node"
        elif guest.node not in snapshot.nodes or not snapshot.nodes[guest.node].online:
            reason = "node_offline"
        elif guest.lock:
            reason = "locked:%s" % guest.lock
        elif guest.status not in MOVABLE_STATUS:
            reason = "status:%s" % guest.status
        elif not guest.running and not settings.include_stopped:
            reason = "stopped"
        elif pve_manages_ha and guest.ha_managed and (guest.ha or {}).get("auto_rebalance", True):
            reason = "ha_managed_by_pve"
        if reason:
            constraints.immovable[vmid] = reason


def add_tag_rules(constraints, snapshot):
    """ProxLB tags: plb_ignore (wins over every other reason to stay), affinity and
    anti-affinity groups, and pins to nodes (several pins form a set; unknown nodes are a conflict)."""
    lower = {n.lower(): n for n in snapshot.nodes}
    for vmid in sorted(snapshot.guests):
        guest = snapshot.guests[vmid]
        tags = tag_rules(guest.tags)
        if tags.ignored:
            constraints.immovable[vmid] = "ignored"
        for tag in tags.affinity:
            constraints.together.setdefault(tag, []).append(vmid)
        for tag in tags.anti_affinity:
            constraints.apart.setdefault(tag, set()).add(vmid)
        if tags.pins:
            known = [lower[p] for p in tags.pins if p in lower]
            unknown = [p for p in tags.pins if p not in lower]
            if unknown:
                constraints.conflicts.append(dict(kind="pin_unknown_node", guests=[vmid],
                                                  message="guest %s (%d) is pinned to unknown node(s) %s; those pins are ignored"
                                                  % (guest.name, vmid, ", ".join(unknown))))
            if known:
                constraints.restrict(vmid, known, "rule:pin")


def add_pool_rules(constraints, snapshot, settings):
    """The pools option: a pool's guests kept together or apart, and pinned (strict) or drawn
    (not strict) to nodes."""
    lower = {n.lower(): n for n in snapshot.nodes}
    for pool_name, rule in sorted(settings.pools.items()):
        members = sorted(v for v in snapshot.pools.get(pool_name, []) if v in snapshot.guests)
        if not members:
            constraints.warnings.append("pool %s from the pools option has no guests in this cluster" % pool_name)
            continue
        if rule.type == "affinity":
            constraints.together.setdefault("pool:" + pool_name, []).extend(members)
        elif rule.type == "anti-affinity":
            constraints.apart.setdefault("pool:" + pool_name, set()).update(members)
        if rule.pin:
            pins = [lower.get(p.lower(), p) for p in rule.pin]
            for vmid in members:
                if rule.strict:
                    constraints.restrict(vmid, pins, "rule:pool-pin:%s" % pool_name)
                else:
                    constraints.prefer(vmid, pins)


def add_ha_rules(constraints, snapshot):
    """PVE 9 HA rules, read by type: node-affinity (priorities, strict) and positive or
    negative resource-affinity. Disabled rules and resources that are no guest are skipped."""
    eligible = set(constraints.eligible)
    by_sid = {g.sid: g.vmid for g in snapshot.guests.values()}
    for rule in snapshot.ha_rules:
        if rule.disabled:
            continue
        vmids = sorted({by_sid.get(sid, _sid_to_vmid(sid)) for sid in rule.resources} & set(snapshot.guests))
        if rule.type == "node-affinity":
            for vmid in vmids:
                _ha_node_affinity(constraints, snapshot.guests[vmid], rule.nodes, rule.strict, True, eligible,
                                  "rule:ha-node-affinity:%s" % rule.rule)
        elif rule.type == "resource-affinity" and rule.affinity == "positive":
            constraints.together.setdefault("ha:" + rule.rule, []).extend(vmids)
        elif rule.type == "resource-affinity" and rule.affinity == "negative":
            constraints.apart.setdefault("ha:" + rule.rule, set()).update(vmids)


def add_ha_groups(constraints, snapshot):
    """PVE 8 HA groups of HA-managed guests: a restricted group is a hard node set, priorities
    and failback as for node-affinity rules."""
    eligible = set(constraints.eligible)
    groups = {g.group: g for g in snapshot.ha_groups}
    for guest in snapshot.guests.values():
        group = groups.get((guest.ha or {}).get("group") or "")
        if group and guest.ha_managed:
            _ha_node_affinity(constraints, guest, group.nodes, group.restricted, not group.nofailback, eligible,
                              "rule:ha-group:%s" % group.group)


def _ha_node_affinity(constraints, guest, nodes_prio, strict, failback, eligible, why):
    """A strict rule (restricted group) limits the guest to its nodes. PVE also places an HA
    resource on the highest-priority available node of its rule and, with failback, moves it
    back there, so placing it lower would only be undone: that tier is recorded separately,
    as it yields where PVE itself would fall back (see ``_settle_failback``)."""
    tier = _tiered(nodes_prio, eligible)
    if strict:
        constraints.restrict(guest.vmid, list(nodes_prio), why)
    if guest.ha_managed and failback and tier:
        constraints.failback[guest.vmid] = (tier, why)
    elif tier:
        constraints.prefer(guest.vmid, tier)


def _settle_failback(constraints):
    """PVE moves an HA resource back to its best available nodes (failback): keep it there,
    unless that would make an anti-affinity group impossible, where PVE too falls back."""
    allowed, eligible = constraints.allowed, constraints.eligible
    hard_allowed = {vmid: set(nodes) for vmid, nodes in allowed.items()}
    for vmid, (tier, why) in sorted(constraints.failback.items()):
        narrowed = tier & allowed[vmid] if vmid in allowed else set(tier)
        if narrowed:
            constraints.restrict(vmid, tier, why)
    for label in sorted(constraints.apart):
        members = constraints.apart[label]
        limit = -(-len(members) // max(1, len(eligible)))
        relaxable = sorted(v for v in members if v in constraints.failback)
        if relaxable and not _distinct_possible(members, allowed, eligible, limit):
            for vmid in relaxable:
                if vmid in hard_allowed:
                    allowed[vmid] = set(hard_allowed[vmid])
                else:
                    allowed.pop(vmid, None)
                constraints.prefer(vmid, constraints.failback[vmid][0])
            constraints.warnings.append("HA resources %s may leave their highest-priority nodes to keep anti-affinity group %s"
                                        % (", ".join(str(v) for v in relaxable), label))


def _form_affinity_units(constraints, snapshot):
    """Affinity units, merged transitively; the hard allowed nodes of a unit are shared by all
    its members, and members pinned to disjoint nodes leave the unit where it is (a conflict)."""
    merger = AffinityMerger()
    for vmids in constraints.together.values():
        vmids = sorted(set(vmids))
        for other in vmids[1:]:
            merger.join(vmids[0], other)
    roots = {}
    for vmid in sorted(snapshot.guests):
        roots.setdefault(merger.root(vmid), []).append(vmid)
    units = sorted(roots.values())
    unit_of = {v: u for u, members in enumerate(units) for v in members}
    for label, vmids in sorted(constraints.together.items()):
        u = unit_of[vmids[0]]
        if len(units[u]) > 1:
            names = constraints.unit_names
            names[u] = names[u] + "+" + label if u in names else label
    allowed = constraints.allowed
    for members in units:
        if len(members) < 2:
            continue
        restricted = [allowed[v] for v in members if v in allowed]
        if restricted:
            common = set.intersection(*restricted)
            if not common:
                constraints.conflicts.append(dict(
                    kind="affinity_pins_disjoint", guests=list(members),
                    message="affinity group %s has members pinned to disjoint nodes; the group is left where it is"
                    % ", ".join(str(v) for v in members)))
                for v in members:
                    constraints.immovable.setdefault(v, "rule_conflict")
            for v in members:
                allowed[v] = set(common)
                constraints.allowed_why.setdefault(v, "rule:affinity")
    constraints.units = units


def _form_anti_affinity_groups(constraints):
    """Anti-affinity groups, checked against affinity units and pins; a group larger than the
    usable nodes is spread evenly, at most ``limit`` members per node."""
    unit_of = {v: u for u, members in enumerate(constraints.units) for v in members}
    eligible = constraints.eligible
    usable = max(1, len(eligible))
    for label in sorted(constraints.apart):
        members = set(constraints.apart[label])
        if len(members) < 2:
            continue
        clash = [sorted(members & set(constraints.units[u])) for u in {unit_of[v] for v in members}]
        clash = [pair for pair in clash if len(pair) > 1]
        if clash:
            constraints.conflicts.append(dict(
                kind="affinity_and_anti_affinity", guests=sorted({v for pair in clash for v in pair}),
                message="anti-affinity group %s contains guests that affinity rules keep together (%s); "
                "the anti-affinity group is not enforced" % (label, "; ".join(",".join(map(str, p)) for p in clash))))
            continue
        limit = 1
        if len(members) > usable:
            limit = -(-len(members) // usable)
            constraints.warnings.append("anti-affinity group %s has %d guests but only %d usable nodes: spread evenly, at most %d per node"
                                        % (label, len(members), usable, limit))
        if not _distinct_possible(members, constraints.allowed, eligible, limit):
            constraints.conflicts.append(dict(kind="pin_and_anti_affinity", guests=sorted(members),
                                              message="anti-affinity group %s cannot be satisfied with its members' pins; "
                                              "the anti-affinity group is not enforced" % label))
            continue
        constraints.anti_groups.append(AntiGroup(name=label, members=members, limit=limit))


def _distinct_possible(members, allowed, eligible, limit):
    """Can the members be placed with at most ``limit`` per node given their allowed sets?"""
    slots = {n: limit for n in eligible}
    match = {}

    def assign(vmid, seen):
        for node in sorted(allowed.get(vmid, eligible)):
            if node not in slots or node in seen:
                continue
            seen.add(node)
            holders = [v for v, n in match.items() if n == node]
            if len(holders) < slots[node]:
                match[vmid] = node
                return True
            for holder in holders:
                if assign(holder, seen):
                    match[vmid] = node
                    return True
        return False

    restricted = sorted(v for v in members if v in allowed)
    return all(assign(v, set()) for v in restricted)
