# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Balancing plans: mandatory moves first, then moves that pay for themselves.

``plan(snapshot, settings)`` is a pure function: the same snapshot and settings give the same
plan. It works on a model of the cluster (``metrics.Model``) and on the constraints of
``rules.build``; every placement it considers is checked against capacity and rules in the
state reached so far, so no intermediate state overfills a node or breaks a rule.

Order of work:
1. drain maintenance nodes (no move budget);
2. repair rule violations: split affinity groups, guests outside their allowed nodes,
   anti-affinity groups sharing a node;
3. relieve nodes whose memory is over capacity;
4. if the cluster is out of balance (spread above ``balanciness`` and, when set, the hottest
   node above its threshold): improving moves until the spread is within half of
   ``balanciness`` (hysteresis), no move pays for itself, or ``max_moves`` is reached.

The objective is the capacity-weighted sum of squared node loads, sum(C_i/C_mean * L_i^2) with
L_i in percent: its minimum has every node at the same percentage, also when nodes differ in
size (an unweighted sum would push big nodes to higher percentages). A move pays for itself
when it lowers the objective by at least ``MARGIN_PER_GIB`` for every GiB it moves plus a fixed
per-migration overhead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace as dc_replace
from typing import Dict, List, Optional

from ansible_collections.proxlb.balancer.plugins.module_utils import balancing, bounds, mandatory, metrics, rules, sequencer
from ansible_collections.proxlb.balancer.plugins.module_utils.plan_state import PlanningState
from ansible_collections.proxlb.balancer.plugins.module_utils.settings import GIB, BalanceSettings
from ansible_collections.proxlb.balancer.plugins.module_utils.snapshot import Guest
from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ConfigError

MAX_ROUNDS = 8                 # mandatory + balancing passes until nothing changes


@dataclass
class Move:
    vmid: int
    name: str
    kind: str              # vm | ct
    type: str              # qemu | lxc
    source: str
    target: str
    reason: str
    mandatory: bool
    wave: int = 0
    mem_bytes: int = 0
    running: bool = False

    def to_dict(self):
        return {"vmid": self.vmid, "name": self.name, "type": self.kind, "from": self.source, "to": self.target,
                "reason": self.reason, "mandatory": self.mandatory, "wave": self.wave, "mem_bytes": self.mem_bytes}


@dataclass
class Plan:
    moves: List[Move]
    waves: List[List[Move]]
    data: Dict[str, object] = field(default_factory=dict)

    @property
    def changed(self):
        return bool(self.moves)

    def to_dict(self):
        result = dict(self.data)
        result["moves"] = [m.to_dict() for m in self.moves]
        result["waves"] = len(self.waves)
        return result


def plan(snapshot, settings, immovable=None, balance=True, forbidden=None):
    """Compute a plan for ``snapshot`` under ``settings`` (pure). See the module docstring.

    ``immovable``: {vmid: reason} of guests that must stay (for example because PVE refused to
    move them). ``forbidden``: {vmid: {node: reason}} of targets a guest must not go to (PVE's
    migration check refused them: storage, mapped devices, HA rules). ``balance=False`` plans only the mandatory moves (a
    node evacuation).
    """
    state = PlanningState(snapshot, settings, immovable, forbidden)
    before = {name: state.model.pct(i) for i, name in enumerate(state.model.names)}
    bound = bounds.plan_lower_bound(state)
    # Balancing can free the room a mandatory move lacked, and a mandatory move can unbalance:
    # repeat until a whole pass changes nothing, so that planning again on the result (which is
    # exactly such a pass) plans nothing.
    trigger, stop_reason = None, None
    for _round in range(MAX_ROUNDS):
        steps = len(state.steps)
        failures = mandatory.plan_mandatory_moves(state)
        round_trigger = balancing.balance_trigger(state) if balance else dict(triggered=False, reason="balancing_off")
        trigger = trigger or round_trigger
        stop_reason = round_trigger["reason"]
        if round_trigger["triggered"]:
            stop_reason = balancing.improve_balance(state)
        if len(state.steps) == steps or stop_reason == "max_moves":
            break
    moves = _collapse(state)
    seq = sequencer.sequence(PlanningState(snapshot, settings, immovable, forbidden), moves, settings.max_moves_per_node)
    return _assemble(state, snapshot, settings, before, bound, trigger, stop_reason, failures, seq)


# -- results ---------------------------------------------------------------------------------
def _collapse(state):
    """One move per guest: from where it was to where it ends (chains A->B->C become A->C)."""
    first, last = {}, {}
    for vmid, a, b, reason, mandatory in state.steps:
        if vmid not in first:
            first[vmid] = (a, reason, mandatory)
        last[vmid] = b
    moves = []
    for vmid, (a, reason, mandatory) in first.items():
        b = last[vmid]
        if a == b:
            continue
        g = state.guest(vmid)
        moves.append(Move(vmid=vmid, name=g.name, kind=g.kind, type=g.type, source=state.model.names[a], target=state.model.names[b],
                          reason=reason, mandatory=mandatory, mem_bytes=metrics.memory_use(g) or g.maxmem_bytes,
                          running=g.running))
    return moves


def _assemble(state, snapshot, settings, before, bound, trigger, stop_reason, failures, seq):
    after_model = seq.after
    after = {n: after_model.pct(after_model.index[n]) for n in state.constraints.eligible}
    before_stats = metrics.stats([before[n] for n in state.constraints.eligible])
    after_stats = metrics.stats(list(after.values()))
    moves = seq.moves
    nodes = {}
    for name in state.model.names:
        role = ("maintenance" if name in state.constraints.maintenance else "ignored" if name in state.constraints.ignored_nodes
                else "offline" if not snapshot.nodes[name].online else "balanced")
        i = state.node_index[name]
        nodes[name] = dict(role=role, before_pct=round(before[name], 2), after_pct=round(after_model.pct(i), 2),
                           moves_in=sum(1 for mv in moves if mv.target == name),
                           moves_out=sum(1 for mv in moves if mv.source == name))
    left_alone = [dict(vmid=v, name=snapshot.guests[v].name, node=snapshot.guests[v].node, reason=r)
                  for v, r in sorted(state.constraints.immovable.items())]
    for failure in failures:
        for v in failure["vmids"]:
            left_alone.append(dict(vmid=v, name=snapshot.guests[v].name, node=snapshot.guests[v].node, reason="no_fit",
                                   rule=failure["reason"], detail=failure["detail"]))
    data = dict(
        method=settings.method, mode=settings.mode, settings=settings.to_dict(),
        cluster=dict(pve_version=snapshot.pve_version, cluster_name=snapshot.cluster_name, nodes=len(snapshot.nodes),
                     guests=len(snapshot.guests), api_calls=snapshot.api_calls),
        trigger=trigger, stop_reason=stop_reason, nodes=nodes,
        metrics=dict(before=before_stats, after=after_stats, lower_bound=bound,
                     gap=dict(max_pp=round(after_stats["max_pct"] - bound["max_pct"], 2),
                              spread_pp=round(after_stats["spread_pp"] - bound["spread_pp"], 2))),
        moves_count=len(moves), mandatory_count=sum(1 for mv in moves if mv.mandatory),
        mem_moved_bytes=sum(mv.mem_bytes for mv in moves),
        left_alone=left_alone, failures=failures,
        unsequenced=[mv.to_dict() for mv in seq.unsequenced],
        rule_conflicts=state.constraints.conflicts, warnings=list(state.constraints.warnings) + list(seq.warnings),
    )
    result = Plan(moves=moves, waves=seq.waves, data=data)
    result.data["summary"] = summary(result)
    return result


def summary(plan_or_dict):
    """A short human-readable table: node loads before/after and the moves."""
    data = plan_or_dict.to_dict() if isinstance(plan_or_dict, Plan) else plan_or_dict
    lines = []
    before, after = data["metrics"]["before"], data["metrics"]["after"]
    lines.append("%s (%s): spread %.1f -> %.1f pp, max %.1f -> %.1f %%, %d move(s) in %d wave(s), %.1f GiB"
                 % (data["method"], data["mode"], before["spread_pp"], after["spread_pp"], before["max_pct"], after["max_pct"],
                    data["moves_count"], data["waves"], data["mem_moved_bytes"] / GIB))
    lines.append("%-16s %-12s %8s %8s %4s %4s" % ("node", "role", "before", "after", "in", "out"))
    for name, node in sorted(data["nodes"].items()):
        lines.append("%-16s %-12s %7.1f%% %7.1f%% %4d %4d"
                     % (name, node["role"], node["before_pct"], node["after_pct"], node["moves_in"], node["moves_out"]))
    for move in data["moves"]:
        lines.append("wave %-3d %-5d %-20s %s -> %s  %.1f GiB  %s"
                     % (move["wave"], move["vmid"], move["name"][:20], move["from"], move["to"], move["mem_bytes"] / GIB, move["reason"]))
    if not data["moves"]:
        lines.append("no moves: %s" % data["stop_reason"])
    for conflict in data["rule_conflicts"]:
        lines.append("conflict: %s" % conflict["message"])
    for warning in data["warnings"]:
        lines.append("warning: %s" % warning)
    return "\n".join(lines)


# -- checks for the executor -------------------------------------------------------------------
def validate_moves(snapshot, settings, moves):
    """Which of ``moves`` are no longer valid on a fresh ``snapshot``, applied in order? {vmid: reason}"""
    state = PlanningState(snapshot, settings)
    invalid = {}
    for move in moves:
        guest = snapshot.guests.get(move.vmid)
        if guest is None:
            invalid[move.vmid] = "guest no longer exists"
            continue
        if guest.node != move.source or state.location.get(move.vmid) != state.node_index.get(move.source):
            invalid[move.vmid] = "guest is on %s now, not %s" % (guest.node, move.source)
            continue
        if guest.lock:
            invalid[move.vmid] = "guest is locked (%s)" % guest.lock
            continue
        target = state.node_index.get(move.target)
        if target is None:
            invalid[move.vmid] = "target node %s no longer exists" % move.target
            continue
        why = state.can_place([move.vmid], target)
        if why:
            invalid[move.vmid] = "target %s: %s" % (move.target, why)
            continue
        state.apply([move.vmid], target, move.reason, move.mandatory)
    return invalid


# -- placing new guests ------------------------------------------------------------------------
SIZE_FORMS = "a whole number of bytes, or a number with a binary unit such as 512M, 8G, 8GiB, 8192MiB or 1T"
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*(?:([kmgtp])(?:i?b)?|b)?$", re.IGNORECASE)
_SIZE_FACTORS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4, "p": 1024 ** 5}
_GUEST_TYPES = {"vm": "qemu", "ct": "lxc"}
MAX_NEW_GUESTS = 1000


def parse_size(value, option):
    """Bytes from a whole number or a string with a binary unit (K, M, G, T, P; ``iB``/``B`` optional)."""
    if isinstance(value, bool) or value is None:
        raise ConfigError(option, "%r is not a size; give %s" % (value, SIZE_FORMS))
    if isinstance(value, (int, float)):
        size = float(value)
    else:
        match = _SIZE_RE.match(str(value).strip())
        if not match:
            raise ConfigError(option, "'%s' is not a size; give %s" % (value, SIZE_FORMS))
        size = float(match.group(1)) * _SIZE_FACTORS[(match.group(2) or "").lower()]
    if not 1 <= size < float("inf"):
        raise ConfigError(option, "%s is not a positive size; give %s" % (value, SIZE_FORMS))
    return int(size)


@dataclass
class NewGuest:
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
    """A validated best-node question, built alike from module parameters and lookup options.

    ``from_options`` checks everything that can be checked without the cluster; ``answer``
    checks the rest against a snapshot and places the guests.
    """

    settings: BalanceSettings
    request: NewGuest
    count: int = 1
    fail_when_no_fit: bool = True

    @classmethod
    def from_options(cls, options):
        kind = options.get("type") or "vm"
        if kind not in _GUEST_TYPES:
            raise ConfigError("type", "'%s' is not a guest type; use vm or ct" % kind)
        nodes = options.get("nodes")
        if nodes is not None:
            nodes = [str(n) for n in _as_list(nodes)]
            if not nodes:
                raise ConfigError("nodes", "is empty; leave it out to consider every node")
        disk = options.get("disk")
        request = NewGuest(
            memory_bytes=parse_size(options.get("memory"), "memory"),
            cores=_whole(options.get("cores"), "cores", 1, "the number of vCPUs (cores) of the guest"),
            type=_GUEST_TYPES[kind],
            disk_bytes=0 if disk in (None, "") else parse_size(disk, "disk"),
            storage=options.get("storage") or None,
            tags=[str(t) for t in _as_list(options.get("tags"))],
            pool=options.get("pool") or None,
            nodes=nodes,
        )
        count = _whole(options.get("count", 1), "count", 1, "how many guests to place", maximum=MAX_NEW_GUESTS)
        fail = options.get("fail_when_no_fit")
        return cls(settings=BalanceSettings.from_params(options), request=request, count=count,
                   fail_when_no_fit=True if fail is None else bool(fail))

    def collect_options(self):
        """Keyword arguments of ``collector.collect`` for these settings (pressure data, local volumes)."""
        return dict(with_pressure=self.settings.mode == "psi", pressure_window=self.settings.pressure_window,
                    with_local_volumes=self.settings.method == "disk")

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
            request=dict(memory_bytes=request.memory_bytes, cores=request.cores, type=_kind_of(request.type),
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
        request = self.request
        if request.nodes is not None:
            unknown = [n for n in request.nodes if n not in snapshot.nodes]
            if unknown:
                raise ConfigError("nodes", "unknown node(s) %s; the cluster has %s" % (", ".join(unknown), ", ".join(sorted(snapshot.nodes))))
        lower = {n.lower() for n in snapshot.nodes}
        unknown = [p for p in rules._tag_rules(request.tags)[2] if p not in lower]
        if unknown:
            raise ConfigError("tags", "plb_pin_%s names no node of this cluster; the cluster has %s" % (unknown[0], ", ".join(sorted(snapshot.nodes))))
        if request.storage:
            entries = [s for s in snapshot.storages if s.storage == request.storage]
            if not entries:
                raise ConfigError("storage", "unknown storage '%s'; the cluster has %s"
                                  % (request.storage, ", ".join(sorted({s.storage for s in snapshot.storages})) or "none"))
            request = dc_replace(request, storage_local=not any(s.shared for s in entries))
        return request


def _as_list(value):
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [part for part in re.split(r"[,;\s]+", value) if part]
    return list(value)


def _whole(value, option, minimum, meaning, maximum=None):
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = None
    if isinstance(value, bool) or number is None or number != int(number) or number < minimum or (maximum and number > maximum):
        limits = "%d or more" % minimum if not maximum else "between %d and %d" % (minimum, maximum)
        raise ConfigError(option, "%r is not allowed; give %s, a whole number %s" % (value, meaning, limits))
    return int(number)


def _kind_of(guest_type):
    return {v: k for k, v in _GUEST_TYPES.items()}[guest_type]


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
    which = "the new %s" % _kind_of(request.type)
    if count > 1:
        which = "new %s %d of %d" % (_kind_of(request.type), number, count)
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
            failures.append(dict(vmids=[vmid], node=guest.node, reason=reason, detail="node %s does not exist" % wanted[vmid]))
            continue
        if state.location[vmid] == target:
            continue
        why = state.constraints.immovable.get(vmid) or state.can_place([vmid], target)
        if why:
            failures.append(dict(vmids=[vmid], node=guest.node, reason=reason, detail="%s: %s" % (wanted[vmid], why)))
            continue
        state.apply([vmid], target, reason, True)
    trigger = dict(triggered=False, reason="placements")
    bound = bounds.plan_lower_bound(state)
    seq = sequencer.sequence(PlanningState(snapshot, settings), _collapse(state), settings.max_moves_per_node)
    return _assemble(state, snapshot, settings, before, bound, trigger, "placements", failures, seq)
