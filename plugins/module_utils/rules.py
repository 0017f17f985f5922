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
    immovable: Dict[int, str]                              # vmid -> reason
    allowed: Dict[int, Set[str]]                           # vmid -> hard allowed nodes
    allowed_why: Dict[int, str]                            # vmid -> rule that restricts it
    preferred: Dict[int, Set[str]]                         # vmid -> soft preferred nodes
    units: List[List[int]]                                 # affinity units (sorted vmids), singletons included
    unit_names: Dict[int, str]                             # unit index -> affinity group label ('' for singletons)
    anti_groups: List[AntiGroup]
    conflicts: List[dict] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)


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


class _Union:
    def __init__(self):
        self.parent = {}

    def find(self, x):
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _tiered(nodes_prio, eligible):
    """The highest-priority tier of ``nodes_prio`` among eligible nodes (PVE's placement order)."""
    present = {n: p for n, p in nodes_prio.items() if n in eligible}
    if not present:
        return set()
    top = max(present.values())
    return {n for n, p in present.items() if p == top}


def build(snapshot, settings):
    """Constraints for one snapshot and one set of settings (pure)."""
    names = sorted(snapshot.nodes)
    lower = {n.lower(): n for n in names}
    ha_maint = {n for n in names if snapshot.nodes[n].ha_maintenance}
    maintenance = set(settings.maintenance_nodes) | ha_maint
    ignored_nodes = set(settings.ignore_nodes)
    eligible = [n for n in names if snapshot.nodes[n].online and n not in maintenance and n not in ignored_nodes]
    eligible_set = set(eligible)
    conflicts, warnings = [], []
    for node in sorted(ha_maint - set(settings.maintenance_nodes)):
        warnings.append("node %s is in PVE HA maintenance mode: treated as a maintenance node" % node)

    immovable, allowed, allowed_why, preferred = {}, {}, {}, {}
    failback_tier = {}       # vmid -> (nodes, why): where PVE HA would put the guest back
    union = _Union()
    anti_members = {}
    affinity_label = {}
    patterns = [p.lower() for p in settings.ignore_guests]
    pve_manages_ha = (version_tuple(snapshot.pve_version) >= (9, 2, 0) and bool(snapshot.crs.get("ha-auto-rebalance"))
                      and not settings.manage_ha_resources)
    if pve_manages_ha:
        warnings.append("PVE CRS ha-auto-rebalance is on: HA resources are left to PVE (set manage_ha_resources to change this)")

    def restrict(vmid, nodes, why):
        current = allowed.get(vmid)
        allowed[vmid] = set(nodes) if current is None else current & set(nodes)
        allowed_why[vmid] = why if vmid not in allowed_why else allowed_why[vmid] + ", " + why

    for vmid in sorted(snapshot.guests):
        guest = snapshot.guests[vmid]
        union.find(vmid)
        aff, anti, pins, ignored = tag_rules(guest.tags)
        name = (guest.name or "").lower()
        reason = None
        if ignored:
            reason = "ignored"
        elif any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(str(vmid), p) for p in patterns):
            reason = "ignored"
        elif guest.template:
            reason = "template"
        elif guest.kind not in settings.guest_types:
            reason = "type_excluded"
        elif guest.node in ignored_nodes:
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
            immovable[vmid] = reason
        for tag in aff:
            affinity_label.setdefault(tag, []).append(vmid)
        for tag in anti:
            anti_members.setdefault(tag, set()).add(vmid)
        if pins:
            known = [lower[p] for p in pins if p in lower]
            unknown = [p for p in pins if p not in lower]
            if unknown:
                conflicts.append(dict(kind="pin_unknown_node", guests=[vmid],
                                      message="guest %s (%d) is pinned to unknown node(s) %s; those pins are ignored"
                                      % (guest.name, vmid, ", ".join(unknown))))
            if known:
                restrict(vmid, known, "rule:pin")

    # Pools from the options.
    for pool_name, rule in sorted(settings.pools.items()):
        members = sorted(v for v in snapshot.pools.get(pool_name, []) if v in snapshot.guests)
        if not members:
            warnings.append("pool %s from the pools option has no guests in this cluster" % pool_name)
            continue
        if rule.type == "affinity":
            affinity_label.setdefault("pool:" + pool_name, []).extend(members)
        elif rule.type == "anti-affinity":
            anti_members.setdefault("pool:" + pool_name, set()).update(members)
        if rule.pin:
            pins = [lower.get(p.lower(), p) for p in rule.pin]
            for vmid in members:
                if rule.strict:
                    restrict(vmid, pins, "rule:pool-pin:%s" % pool_name)
                else:
                    preferred.setdefault(vmid, set()).update(pins)

    # PVE HA: rules (PVE 9) or groups (PVE 8).
    by_sid = {g.sid: g.vmid for g in snapshot.guests.values()}
    for rule in snapshot.ha_rules:
        if rule.disabled:
            continue
        vmids = sorted({by_sid.get(sid, _sid_to_vmid(sid)) for sid in rule.resources} & set(snapshot.guests))
        if rule.type == "node-affinity":
            for vmid in vmids:
                _ha_node_affinity(snapshot.guests[vmid], rule.nodes, rule.strict, True, eligible_set,
                                  "rule:ha-node-affinity:%s" % rule.rule, restrict, preferred, failback_tier)
        elif rule.type == "resource-affinity" and rule.affinity == "positive":
            affinity_label.setdefault("ha:" + rule.rule, []).extend(vmids)
        elif rule.type == "resource-affinity" and rule.affinity == "negative":
            anti_members.setdefault("ha:" + rule.rule, set()).update(vmids)
    groups = {g.group: g for g in snapshot.ha_groups}
    for guest in snapshot.guests.values():
        group = groups.get((guest.ha or {}).get("group") or "")
        if group and guest.ha_managed:
            _ha_node_affinity(guest, group.nodes, group.restricted, not group.nofailback, eligible_set,
                              "rule:ha-group:%s" % group.group, restrict, preferred, failback_tier)

    # PVE moves an HA resource back to its best available nodes (failback): keep it there,
    # unless that would make an anti-affinity group impossible, where PVE too falls back.
    hard_allowed = {vmid: set(nodes) for vmid, nodes in allowed.items()}
    for vmid, (tier, why) in sorted(failback_tier.items()):
        narrowed = tier & allowed[vmid] if vmid in allowed else set(tier)
        if narrowed:
            allowed[vmid] = narrowed
            allowed_why[vmid] = why if vmid not in allowed_why else allowed_why[vmid] + ", " + why
    for label in sorted(anti_members):
        members = anti_members[label]
        limit = -(-len(members) // max(1, len(eligible)))
        relaxable = sorted(v for v in members if v in failback_tier)
        if relaxable and not _distinct_possible(members, allowed, eligible, limit):
            for vmid in relaxable:
                if vmid in hard_allowed:
                    allowed[vmid] = set(hard_allowed[vmid])
                else:
                    allowed.pop(vmid, None)
                preferred.setdefault(vmid, set()).update(failback_tier[vmid][0])
            warnings.append("HA resources %s may leave their highest-priority nodes to keep anti-affinity group %s"
                            % (", ".join(str(v) for v in relaxable), label))

    # Affinity units, merged transitively.
    for label, vmids in affinity_label.items():
        vmids = sorted(set(vmids))
        for other in vmids[1:]:
            union.union(vmids[0], other)
    roots = {}
    for vmid in sorted(snapshot.guests):
        roots.setdefault(union.find(vmid), []).append(vmid)
    units = sorted(roots.values())
    unit_of = {v: u for u, members in enumerate(units) for v in members}
    unit_names = {}
    for label, vmids in sorted(affinity_label.items()):
        u = unit_of[vmids[0]]
        if len(units[u]) > 1:
            unit_names[u] = unit_names[u] + "+" + label if u in unit_names else label
    # Hard allowed sets of a unit are shared by all its members.
    for members in units:
        if len(members) < 2:
            continue
        restricted = [allowed[v] for v in members if v in allowed]
        if restricted:
            common = set.intersection(*restricted)
            if not common:
                conflicts.append(dict(kind="affinity_pins_disjoint", guests=list(members),
                                      message="affinity group %s has members pinned to disjoint nodes; the group is left where it is"
                                      % ", ".join(str(v) for v in members)))
                for v in members:
                    immovable.setdefault(v, "rule_conflict")
            for v in members:
                allowed[v] = set(common)
                allowed_why.setdefault(v, "rule:affinity")

    # Anti-affinity groups, checked against affinity units and pins.
    anti_groups = []
    usable = max(1, len(eligible))
    for label in sorted(anti_members):
        members = set(anti_members[label])
        if len(members) < 2:
            continue
        clash = [sorted(members & set(units[u])) for u in {unit_of[v] for v in members}]
        clash = [pair for pair in clash if len(pair) > 1]
        if clash:
            conflicts.append(dict(kind="affinity_and_anti_affinity", guests=sorted({v for pair in clash for v in pair}),
                                  message="anti-affinity group %s contains guests that affinity rules keep together (%s); "
                                  "the anti-affinity group is not enforced" % (label, "; ".join(",".join(map(str, p)) for p in clash))))
            continue
        limit = 1
        if len(members) > usable:
            limit = -(-len(members) // usable)
            warnings.append("anti-affinity group %s has %d guests but only %d usable nodes: spread evenly, at most %d per node"
                            % (label, len(members), usable, limit))
        if not _distinct_possible(members, allowed, eligible, limit):
            conflicts.append(dict(kind="pin_and_anti_affinity", guests=sorted(members),
                                  message="anti-affinity group %s cannot be satisfied with its members' pins; "
                                  "the anti-affinity group is not enforced" % label))
            continue
        anti_groups.append(AntiGroup(name=label, members=members, limit=limit))

    return Constraints(
        eligible=eligible, maintenance=maintenance, ignored_nodes=ignored_nodes, immovable=immovable,
        allowed=allowed, allowed_why=allowed_why, preferred=preferred, units=units, unit_names=unit_names,
        anti_groups=anti_groups, conflicts=conflicts, warnings=warnings,
    )


def _ha_node_affinity(guest, nodes_prio, strict, failback, eligible, why, restrict, preferred, failback_tier):
    """A strict rule (restricted group) limits the guest to its nodes. PVE also places an HA
    resource on the highest-priority available node of its rule and, with failback, moves it
    back there, so placing it lower would only be undone: that tier is recorded separately,
    as it yields where PVE itself would fall back (see ``build``)."""
    tier = _tiered(nodes_prio, eligible)
    if strict:
        restrict(guest.vmid, list(nodes_prio), why)
    if guest.ha_managed and failback and tier:
        failback_tier[guest.vmid] = (tier, why)
    elif tier:
        preferred.setdefault(guest.vmid, set()).update(tier)


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
