# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Placing guests: new guests on the best node, and guests back on the nodes they came from.

``BestNodeQuery.answer`` (the proxlb_best_node module and the best_node lookup) and
``place_new_guests`` rank every node for a new guest with the same model, fit checks and rules
as a balancing plan: the newcomer counts with its configured memory and vCPUs, its tags and
pool bring pins and (anti-)affinity with existing guests, and several newcomers are placed
one after another, each accounted before the next. Every node that does not fit says why
(the ranking rows' ``reasons``); when a guest fits nowhere, one message gathers them.

``plan_placements`` moves existing guests to given nodes where they still fit (the return
after maintenance) and gives a ``Plan`` like ``planner.plan``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace as dc_replace
from typing import List, Optional

from ansible_collections.proxlb.balancer.plugins.module_utils import bounds, metrics, planner, rules, sequencer
from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ConfigError
from ansible_collections.proxlb.balancer.plugins.module_utils.mandatory import failure_record
from ansible_collections.proxlb.balancer.plugins.module_utils.plan_state import PlanningState
from ansible_collections.proxlb.balancer.plugins.module_utils.settings import GIB, BalanceSettings
from ansible_collections.proxlb.balancer.plugins.module_utils.snapshot import GUEST_TYPES, Guest


@dataclass
class NewGuest:
    """A guest to be created, described by what placing it needs."""

    memory_bytes: int
    cores: float
    type: str = "qemu"                   # qemu | lxc
    disk_bytes: int = 0
    storage: Optional[str] = None
    storage_local: bool = False          # the storage is node-local: disk counts against the node
    tags: List[str] = field(default_factory=list)
    pool: Optional[str] = None
    name: Optional[str] = None
    nodes: Optional[List[str]] = None    # candidate nodes; None = all

    def describe(self):
        text = "%.1f GiB memory, %g cores" % (self.memory_bytes / GIB, self.cores)
        if self.disk_bytes and self.storage:
            text += ", %.1f GiB disk on %s" % (self.disk_bytes / GIB, self.storage)
        return text


@dataclass
class BestNodeQuery:
    """A validated best-node question: the settings, the new guest, how many, and whether a
    guest that fits nowhere fails the task (the front end decides; see ``best_node_options``).

    What can be checked without the cluster is checked when the query is built; ``answer``
    checks the rest against a snapshot and places the guests.
    """

    settings: BalanceSettings
    request: NewGuest
    count: int = 1
    fail_when_no_fit: bool = True

    def answer(self, snapshot):
        """Place the guests on ``snapshot``: the result of the module, the basis of the lookup.

        ``msg`` says why each node was rejected when a guest found no node; the caller decides
        (``fail_when_no_fit``) whether that is a failure.
        """
        request = self._checked_request(snapshot)
        placed, rankings, state = _place(snapshot, self.settings, request, self.count)
        nodes = placed + [None] * (self.count - len(placed))
        result = dict(
            changed=False, node=nodes[0], nodes=nodes, ranking=rankings[0],
            request=dict(memory_bytes=request.memory_bytes, cores=request.cores, type=GUEST_TYPES[request.type],
                         disk_bytes=request.disk_bytes, storage=request.storage, storage_local=request.storage_local,
                         tags=list(request.tags), pool=request.pool, nodes=request.nodes, count=self.count),
            api_calls=snapshot.api_calls,
            warnings=_newcomer_warnings(state),
        )
        if request.disk_bytes and not request.storage:
            result["warnings"].append("disk is only checked against a storage; give storage to check free space")
        if self.count > 1:
            result["placements"] = [dict(node=node, ranking=rows) for node, rows in zip(placed, rankings)]
        if None in placed:
            result["msg"] = _no_fit_message(request, len(placed), self.count, placed[:-1], rankings[-1])
        return result

    def _checked_request(self, snapshot):
        """The request checked against the cluster's nodes and storages, ``storage_local`` filled in."""
        request = self.request
        if request.nodes is not None:
            unknown = [n for n in request.nodes if n not in snapshot.nodes]
            if unknown:
                raise ConfigError("nodes", "unknown node(s) %s; the cluster has %s" % (", ".join(unknown), ", ".join(sorted(snapshot.nodes))))
        lower = {n.lower() for n in snapshot.nodes}
        unknown = [p for p in rules.tag_rules(request.tags).pins if p not in lower]
        if unknown:
            raise ConfigError("tags", "plb_pin_%s names no node of this cluster; the cluster has %s" % (unknown[0], ", ".join(sorted(snapshot.nodes))))
        if request.storage:
            entries = [s for s in snapshot.storages if s.storage == request.storage]
            if not entries:
                raise ConfigError("storage", "unknown storage '%s'; the cluster has %s"
                                  % (request.storage, ", ".join(sorted({s.storage for s in snapshot.storages})) or "none"))
            request = dc_replace(request, storage_local=not any(s.shared for s in entries))
        return request


def place_new_guests(snapshot, settings, request, count=1):
    """Rank nodes for ``count`` new guests described by ``request`` (see ``NewGuest``).

    Uses the same model, fit checks and rules as balancing: the newcomer counts with its
    configured memory and vCPUs, its tags bring pins and (anti-)affinity with existing guests,
    and each placement is accounted before the next. Returns (chosen node names, ranking of the
    first placement), a node name being None when nothing fits.
    """
    placed, rankings, _state = _place(snapshot, settings, request, count)
    return placed, rankings[0]


def _place(snapshot, settings, request, count):
    """(chosen nodes, ranking per placement, final state); stops at the first guest that fits nowhere.

    All newcomers enter the rules at once (so an anti-affinity group of new guests is sized
    right) and the state is built once; each placement is then applied like a planned move.
    """
    newcomers = [_newcomer(request, settings, number) for number in range(count)]
    snap = _with_guests(snapshot, newcomers)
    state = PlanningState(snap, settings)
    storages = {(s.storage, s.node): s for s in snap.storages if s.storage == request.storage}
    stored = {}   # node (None for shared storage) -> bytes the newcomers placed so far put on request.storage
    placed, rankings = [], []
    for newcomer in newcomers:
        rows = [_rank_row(state, newcomer, name, request, storages, stored) for name in state.model.names]
        rows.sort(key=lambda r: (not r["fits"], not r["preferred"], r["load_after_pct"] if r["load_after_pct"] is not None else float("inf"), r["node"]))
        for position, row in enumerate(rows, 1):
            row["rank"] = position if row["fits"] else None
        choice = rows[0]["node"] if rows and rows[0]["fits"] else None
        rankings.append(rows)
        placed.append(choice)
        if choice is None:
            break
        state.apply([newcomer.vmid], state.node_index[choice], "new", True)
        key = choice if request.storage_local else None
        stored[key] = stored.get(key, 0) + (request.disk_bytes or 0)
    return placed, rankings, state


def _newcomer(request, settings, number):
    """The new guest as a running guest with a negative vmid, as busy as it may get."""
    return Guest(vmid=-(number + 1), name=request.name or "new-guest-%d" % (number + 1), type=request.type, node="",
                 status="running", maxcpu=float(request.cores), cpu=1.0 if settings.mode == "used" else 0.0,
                 maxmem_bytes=int(request.memory_bytes), mem_bytes=int(request.memory_bytes), tags=list(request.tags),
                 pool=request.pool, local_disk_bytes=int(request.disk_bytes or 0) if request.storage_local else None)


def _with_guests(snapshot, newcomers):
    guests = dict(snapshot.guests)
    pools = dict(snapshot.pools)
    for guest in newcomers:
        guests[guest.vmid] = guest
        if guest.pool:
            pools[guest.pool] = sorted(set(pools.get(guest.pool, [])) | {guest.vmid})
    return dc_replace(snapshot, guests=guests, pools=pools)


def _rank_row(state, newcomer, name, request, storages, stored):
    """One ranking row: the node's load before and after, whether the newcomer fits, and why not."""
    i = state.node_index[name]
    weight = state.model.weights[newcomer.vmid]
    after = state.model.pct_after(i, weight)
    row = dict(node=name, fits=False, preferred=False, load_before_pct=round(state.model.pct(i), 2),
               load_after_pct=round(after, 2) if after != float("inf") else None, reasons=[])
    unit = state.unit_of[newcomer.vmid]
    if request.nodes is not None and name not in request.nodes:
        row["reasons"].append("not in the requested nodes")
    storage_why = None
    if request.storage:
        storage_why = _storage_reason(storages.get((request.storage, name)), request, stored.get(name if request.storage_local else None, 0))
        if storage_why:
            row["reasons"].append(storage_why)
    homes = {state.location[v] for v in unit.members if v != newcomer.vmid and state.location[v] is not None}
    if homes and homes != {i}:
        row["reasons"].append("affinity: its group runs on %s" % ", ".join(sorted(state.model.names[h] for h in homes)))
    why = _not_a_target(state, name) or state.can_place([newcomer.vmid], i)
    # the node's local storage total says less than the storage's own free space, already given
    if why and not (storage_why and why.startswith("disk:")):
        row["reasons"].append(why)
    row["preferred"] = i in unit.preferred
    if not row["reasons"]:
        row["fits"] = True
        row["reasons"].append("preferred by rule" if row["preferred"] else "fits")
    return row


def _not_a_target(state, name):
    """Why a node takes no guests at all, in the words of the option or state that says so."""
    node = state.snapshot.nodes[name]
    if not node.online:
        return "node is %s" % node.status
    if name in state.settings.maintenance_nodes:
        return "maintenance node (maintenance_nodes)"
    if node.ha_maintenance:
        return "node is in PVE HA maintenance mode"
    if name in state.constraints.ignored_nodes:
        return "ignored node (ignore_nodes)"
    return None


def _storage_reason(storage, request, already_bytes):
    """PVE lists every storage once per node it is usable on, shared ones included."""
    if storage is None or storage.status not in ("available", "active"):
        return "storage %s is not available here" % request.storage
    wanted = "images" if request.type == "qemu" else "rootdir"
    if storage.content and wanted not in storage.content:
        return "storage %s does not hold %s (content %s)" % (request.storage, wanted, ",".join(storage.content))
    free = storage.maxdisk_bytes - storage.disk_bytes - already_bytes
    if free < (request.disk_bytes or 0):
        return "storage %s: needs %.1f GiB, %.1f GiB free" % (request.storage, (request.disk_bytes or 0) / GIB, max(0, free) / GIB)
    return None


def _newcomer_warnings(state):
    """Rule warnings and conflicts that concern the new guests (negative vmids)."""
    labels = [g.name for g in state.constraints.anti_groups if any(v < 0 for v in g.members)]
    warnings = [c["message"] for c in state.constraints.conflicts if any(v < 0 for v in c["guests"])]
    return warnings + [w for w in state.constraints.warnings if any(label in w for label in labels)]


def _no_fit_message(request, number, count, placed, rows):
    which = "the new %s" % GUEST_TYPES[request.type]
    if count > 1:
        which = "new %s %d of %d" % (GUEST_TYPES[request.type], number, count)
        if placed:
            which += " (after placing %s)" % ", ".join(placed)
    details = "; ".join("%s: %s" % (row["node"], ", ".join(row["reasons"])) for row in sorted(rows, key=lambda r: r["node"]))
    return "no node can take %s (%s): %s" % (which, request.describe(), details)


# -- planned placements ----------------------------------------------------------------------
def plan_placements(snapshot, settings, wanted, reason="return"):
    """Move guests to the nodes in ``wanted`` ({vmid: node}) where they still fit and rules allow.

    Used to bring guests back after maintenance. Larger guests are placed first; a guest that no
    longer fits, or may no longer run there, stays and is listed in ``failures``. Returns a Plan.
    """
    state = PlanningState(snapshot, settings)
    before = {name: state.model.pct(i) for i, name in enumerate(state.model.names)}
    failures = []
    order = sorted((v for v in wanted if v in snapshot.guests), key=lambda v: (-metrics.memory_use(snapshot.guests[v]), v))
    for vmid in order:
        target = state.node_index.get(wanted[vmid])
        guest = snapshot.guests[vmid]
        if target is None:
            failures.append(failure_record([vmid], guest.node, reason, "node %s does not exist" % wanted[vmid]))
            continue
        if state.location[vmid] == target:
            continue
        why = state.constraints.immovable.get(vmid) or state.can_place([vmid], target)
        if why:
            failures.append(failure_record([vmid], guest.node, reason, "%s: %s" % (wanted[vmid], why)))
            continue
        state.apply([vmid], target, reason, True)
    trigger = dict(triggered=False, reason="placements")
    bound = bounds.plan_lower_bound(state)
    seq = sequencer.sequence(PlanningState(snapshot, settings), planner.final_moves(state), settings.max_moves_per_node)
    return planner.assemble(state, snapshot, settings, before, bound, trigger, "placements", failures, seq)
