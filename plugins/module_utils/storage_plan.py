# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Storage balancing plan: which guest volumes to move to which storage so fill levels even out.

Pure: a ``ClusterSnapshot`` collected with ``with_storage``, the settings, and what the few guest
config reads said (``GuestConfig``, replication targets) in; a ``StoragePlan`` out. No I/O, no clock.

Model. A *pool* is one place volumes fill: a shared storage (the same for every node that can
use it) or a node-local storage on one node. Shared storages are balanced among themselves; a
node's local storages among themselves (a volume never leaves its node). A pool's fill is its
used bytes in percent of its size; moving a volume shifts its provisioned size from one pool
to the other (on thin-provisioned storage the real change is smaller, and the next run starts
from the fill levels PVE reports then).

Quality. Balancing starts only when the fill spread (fullest minus emptiest pool of a group,
percentage points) exceeds ``balanciness``, and then aims for half of it, so planning again on
the result finds nothing to do. Each step takes the move with the best reduction of the squared
deviations from the mean fill per GiB copied (plus a fixed cost per move), so a few well-sized
volumes move rather than many small ones or one that overshoots. A target never ends above
``storage_threshold`` and must have room for the whole volume. Ties break on vmid, volid and
storage name: the same input always gives the same plan.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ConfigError
from ansible_collections.proxlb.balancer.plugins.module_utils.storage import GIB, GUEST_CONTENT, fill_pct, gib
from ansible_collections.proxlb.balancer.plugins.module_utils.validation import whole_number

METHODS = ("used",)
KINDS = ("vm", "ct")
ON_FAILURE = ("stop", "continue")
SHARED = "shared"
LOCAL = "local"

# Plan to this fraction of the trigger so that planning again on the result finds nothing to do.
HYSTERESIS = 0.5
# Fixed cost of one move, in GiB copied: a move must be worth this much copying on top of its size.
MOVE_COST_GIB = 32.0
# Guest configs read per plan: at most this many per allowed move.
INSPECT_FACTOR = 3
_MIN_GAIN = 1e-9
_LINKED_CLONE = re.compile(r"base-\d+-disk-\d+[^/]*/")


def storage_balance_argument_spec():
    """Ansible argument spec of proxlb_storage_balance's own options."""
    return dict(
        method=dict(type="str", default="used", choices=list(METHODS)),
        storages=dict(type="list", elements="str", default=[]),
        balanciness=dict(type="float", default=10.0),
        storage_threshold=dict(type="float", default=90.0),
        max_moves=dict(type="int", default=10),
        parallel_moves=dict(type="int", default=1),
        delete_source=dict(type="bool", default=True),
        bwlimit=dict(type="int"),
        move_timeout=dict(type="int", default=3600),
        on_failure=dict(type="str", default="stop", choices=list(ON_FAILURE)),
        guest_types=dict(type="list", elements="str", default=list(KINDS), choices=list(KINDS)),
        ignore_guests=dict(type="list", elements="str", default=[]),
    )


@dataclass
class StorageBalanceSettings:
    method: str = "used"
    storages: List[str] = field(default_factory=list)     # empty: every shared storage that holds guest volumes
    balanciness: float = 10.0                             # percentage points of fill spread that trigger balancing
    storage_threshold: float = 90.0                       # percent a target may reach at most
    max_moves: int = 10
    parallel_moves: int = 1
    delete_source: bool = True
    bwlimit_kib: Optional[int] = None                     # KiB/s per move; None: PVE's own limits
    move_timeout_s: int = 3600
    on_failure: str = "stop"
    guest_types: List[str] = field(default_factory=lambda: list(KINDS))
    ignore_guests: List[str] = field(default_factory=list)

    @property
    def target_spread(self):
        return self.balanciness * HYSTERESIS

    @property
    def inspect_budget(self):
        return self.max_moves * INSPECT_FACTOR

    @classmethod
    def from_params(cls, params):
        """Validate options from a module parameter dict (None means the default); ConfigError names the option."""
        spec = storage_balance_argument_spec()
        values = {}
        for key, option in spec.items():
            value = params.get(key)
            values[key] = option.get("default") if value is None else value
        if values["method"] not in METHODS:
            raise ConfigError("method", "'%s' is not supported; storages are balanced by %s" % (values["method"], ", ".join(METHODS)))
        if values["on_failure"] not in ON_FAILURE:
            raise ConfigError("on_failure", "'%s' is not one of %s" % (values["on_failure"], ", ".join(ON_FAILURE)))
        kinds = [str(k) for k in values["guest_types"]]
        wrong = [k for k in kinds if k not in KINDS]
        if wrong or not kinds:
            raise ConfigError("guest_types", "use a non-empty list of %s, got %s" % (" and ".join(KINDS), kinds))
        storages = []
        for name in values["storages"]:
            name = str(name).strip()
            if not name:
                raise ConfigError("storages", "contains an empty name; list storage ids such as ceph-vm")
            if name not in storages:
                storages.append(name)
        bwlimit = values["bwlimit"]
        return cls(
            method=values["method"],
            storages=storages,
            balanciness=_number(values, "balanciness", 0.0, 100.0,
                                "percentage points of difference between the fullest and the emptiest storage"),
            storage_threshold=_number(values, "storage_threshold", 1.0, 100.0, "percent of a storage's size"),
            max_moves=whole_number(values["max_moves"], "max_moves", 1, 10000),
            parallel_moves=whole_number(values["parallel_moves"], "parallel_moves", 1, 100),
            delete_source=bool(values["delete_source"]),
            bwlimit_kib=None if bwlimit is None else whole_number(values["bwlimit"], "bwlimit", 0, 100 * 1024 * 1024),
            move_timeout_s=whole_number(values["move_timeout"], "move_timeout", 1, 7 * 24 * 3600),
            on_failure=values["on_failure"],
            guest_types=kinds,
            ignore_guests=[str(p) for p in values["ignore_guests"]],
        )

    def to_dict(self):
        return dict(method=self.method, storages=list(self.storages), balanciness=self.balanciness,
                    target_spread=self.target_spread, storage_threshold=self.storage_threshold, max_moves=self.max_moves,
                    parallel_moves=self.parallel_moves, delete_source=self.delete_source, bwlimit=self.bwlimit_kib,
                    move_timeout=self.move_timeout_s, on_failure=self.on_failure, guest_types=list(self.guest_types),
                    ignore_guests=list(self.ignore_guests))


def _number(values, key, minimum, maximum, unit):
    value = values[key]
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(key, "'%s' is not a number" % (value,))
    if not minimum <= number <= maximum:
        raise ConfigError(key, "%g is out of range; give %g to %g (%s)" % (number, minimum, maximum, unit))
    return number


# -- which storages ---------------------------------------------------------------------------

def select_storages(settings, snapshot):
    """The storage ids to balance and their kind (``shared`` or ``local``), checked against the cluster."""
    entries: Dict[str, list] = {}
    for storage in snapshot.storages:
        entries.setdefault(storage.storage, []).append(storage)
    if not settings.storages:
        chosen = sorted(name for name, items in entries.items()
                        if items[0].shared and any(s.holds_guests and s.enabled for s in items))
        return chosen, SHARED
    unknown = [name for name in settings.storages if name not in entries]
    if unknown:
        raise ConfigError("storages", "unknown storage(s) %s; the cluster has %s" % (
            ", ".join(unknown), ", ".join(sorted(entries)) or "none"))
    no_guests = [name for name in settings.storages if not any(s.holds_guests for s in entries[name])]
    if no_guests:
        raise ConfigError("storages", "%s cannot hold guest volumes (content %s); list storages with content images or rootdir"
                          % (", ".join(no_guests), "; ".join("%s: %s" % (n, ",".join(entries[n][0].content) or "none")
                                                             for n in no_guests)))
    shared = [name for name in settings.storages if entries[name][0].shared]
    local = [name for name in settings.storages if not entries[name][0].shared]
    if shared and local:
        raise ConfigError("storages", "mixes shared storages (%s) with node-local ones (%s); a volume moves between storages of"
                          " one kind, so list only shared or only node-local storages" % (", ".join(shared), ", ".join(local)))
    if len(settings.storages) < 2:
        raise ConfigError("storages", "names only %s; give at least two storages to balance between" % settings.storages[0])
    return sorted(settings.storages), SHARED if shared else LOCAL


@dataclass
class Pool:
    """One place volumes fill: a shared storage, or a node-local storage of one node."""

    storage: str
    node: Optional[str]                  # None for a shared storage
    size_bytes: int
    used_bytes: int
    content: List[str] = field(default_factory=list)
    nodes: List[str] = field(default_factory=list)     # online nodes that can use it

    @property
    def label(self):
        return self.storage if self.node is None else "%s/%s" % (self.node, self.storage)

    @property
    def group(self):
        return self.node or ""


def pools_for(snapshot, selected, kind):
    """Active pools of the selected storages, keyed by label."""
    pools: Dict[str, Pool] = {}
    for storage in sorted(snapshot.storages, key=lambda s: (s.storage, s.node)):
        node = snapshot.nodes.get(storage.node)
        if storage.storage not in selected or not storage.active or node is None or not node.online:
            continue
        if storage.maxdisk_bytes <= 0:
            continue
        if kind == SHARED:
            pool = pools.get(storage.storage)
            if pool is None:
                pool = pools[storage.storage] = Pool(storage.storage, None, storage.maxdisk_bytes, storage.disk_bytes,
                                                     list(storage.content))
            pool.nodes.append(storage.node)
        else:
            pool = Pool(storage.storage, storage.node, storage.maxdisk_bytes, storage.disk_bytes, list(storage.content),
                        [storage.node])
            pools[pool.label] = pool
    return pools


# -- the plan ---------------------------------------------------------------------------------

@dataclass
class VolumeMove:
    vmid: int
    name: str
    type: str                 # qemu | lxc
    node: str                 # where the guest runs (and the move's task)
    key: str                  # config key: scsi1, rootfs, mp0, ...
    volid: str
    source: str               # storage id
    target: str               # storage id
    size_bytes: int
    running: bool = False
    reason: str = "balance"

    @property
    def kind(self):
        return "ct" if self.type == "lxc" else "vm"

    @property
    def online(self):
        """A running VM's disk is copied live (drive-mirror)."""
        return self.type == "qemu" and self.running

    def label(self):
        return "%d/%s %s" % (self.vmid, self.name, self.key)

    def to_dict(self):
        return {"vmid": self.vmid, "name": self.name, "type": self.kind, "node": self.node, "volume": self.key,
                "volid": self.volid, "from": self.source, "to": self.target, "size_bytes": self.size_bytes,
                "online": self.online, "reason": self.reason}


@dataclass
class StoragePlan:
    moves: List[VolumeMove] = field(default_factory=list)
    data: Dict[str, object] = field(default_factory=dict)

    @property
    def guests(self):
        """VMIDs of the guests whose volumes move, in plan order without repeats."""
        seen = []
        for move in self.moves:
            if move.vmid not in seen:
                seen.append(move.vmid)
        return seen

    def to_dict(self):
        data = dict(self.data)
        data["moves"] = [m.to_dict() for m in self.moves]
        data["moves_count"] = len(self.moves)
        data["moved_bytes"] = sum(m.size_bytes for m in self.moves)
        return data


@dataclass
class _Candidate:
    guest: object
    volume: object
    key: str
    pool: str                  # label of the pool the volume is on


def _left(guest, volume, reason, detail, key=None):
    return dict(vmid=guest.vmid, name=guest.name, type=guest.kind, node=guest.node, volid=volume.volid, volume=key,
                storage=volume.storage, reason=reason, detail=detail)


def _ignored(guest, patterns):
    if any(str(tag).lower().startswith("plb_ignore") for tag in guest.tags):
        return "tagged %s" % ", ".join(t for t in guest.tags if str(t).lower().startswith("plb_ignore"))
    name = (guest.name or "").lower()
    for pattern in patterns:
        if fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(str(guest.vmid), pattern):
            return "matches ignore_guests entry %s" % pattern
    return None


def guest_refusal(snapshot, guest, settings):
    """(reason, detail) when none of the guest's volumes may move, from the snapshot alone; else None."""
    ignored = _ignored(guest, [p.lower() for p in settings.ignore_guests])
    node = snapshot.nodes.get(guest.node)
    if ignored:
        return "ignored", ignored
    if guest.template:
        return "template", "a template's base volumes are shared by its linked clones"
    if guest.kind not in settings.guest_types:
        return "type_excluded", "guest_types is %s" % ", ".join(settings.guest_types)
    if node is None or not node.online:
        return "node_offline", "its node %s is not online" % guest.node
    if guest.lock:
        if guest.lock == "backup":
            return "locked:backup", "a backup of the guest is running (lock backup)"
        return "locked:%s" % guest.lock, "the guest is locked (%s)" % guest.lock
    if guest.status not in ("running", "stopped"):
        return "status:%s" % guest.status, "only running or stopped guests are handled (it is %s)" % guest.status
    if guest.type == "lxc" and guest.running:
        return "running_container", "a container's volumes move only while it is stopped (PVE: cannot move volumes of a running container)"
    return None


def config_refusal(config, guest, replicated):
    """(reason, detail) when the guest's config rules out moving its volumes; else None."""
    if config.lock:
        return "locked:%s" % config.lock, "the guest is locked (%s)" % config.lock
    if config.template:
        return "template", "a template's base volumes are shared by its linked clones"
    if config.snapshot:
        return "snapshots", "the guest has snapshots (current: %s); PVE leaves them on the old volume" % config.snapshot
    if replicated:
        return "replicated", "storage replication to %s works only while the disks stay on the replicated storage" % (
            ", ".join(replicated))
    return None


def volume_refusal(guest, volume, config):
    """(reason, detail) when this one volume may not move; else None."""
    volname = volume.volid.partition(":")[2]
    if volume.parent or _LINKED_CLONE.search(volname):
        return "linked_clone", "a linked clone of %s; moving it would copy the base image in full" % (
            volume.parent or volname.split("/")[0])
    if config is None:
        return None
    entry = config.volume(volume.volid)
    if entry is None:
        return "not_in_config", "the guest's config does not use this volume (a leftover)"
    if entry.unused:
        return "unused", "an unused volume (%s); detached volumes are not balanced" % entry.key
    if guest.type == "qemu" and guest.running and entry.key.startswith("tpmstate"):
        return "tpm_running", "PVE cannot move TPM state while the VM is running"
    return None


def plan(snapshot, settings, selected, kind, configs=None, replication=None, unreadable=None, discovery=False):
    """The storage plan for ``selected`` storages of ``kind`` (see ``select_storages``).

    ``configs`` ({vmid: GuestConfig}) are the guest configs read so far, ``replication``
    ({vmid: [nodes]}) the replication targets, ``unreadable`` ({vmid: error}) configs that could
    not be read. A volume moves only when its guest's config was read (its config key is needed
    and only the config shows snapshots and a fresher lock); with ``discovery`` guests not read
    yet are assumed movable, to find out which configs are worth reading.
    """
    configs = configs or {}
    replication = replication or {}
    unreadable = unreadable or {}
    pools = pools_for(snapshot, set(selected), kind)
    warnings = []
    for name in selected:
        if not any(p.storage == name for p in pools.values()):
            warnings.append("storage %s is not active with a known size on any online node; it is left out" % name)
    groups: Dict[str, List[str]] = {}
    for label in sorted(pools):
        groups.setdefault(pools[label].group, []).append(label)
    groups = {g: labels for g, labels in groups.items() if len(labels) >= 2}
    if not groups:
        warnings.append("fewer than two of the storages to balance are usable together; nothing to balance")

    used = {label: pool.used_bytes for label, pool in pools.items()}
    fills = {label: fill_pct(used[label], pools[label].size_bytes) for label in pools}
    donors = set()
    for labels in groups.values():
        mean = sum(fills[lab] for lab in labels) / len(labels)
        donors.update(lab for lab in labels if fills[lab] > mean)

    candidates, left_alone, waiting = _candidates(snapshot, settings, pools, donors, kind, configs, replication, unreadable,
                                                  discovery)
    moves, group_reports = [], []
    budget = settings.max_moves
    stop_reason = "not_triggered"
    order = sorted(groups, key=lambda g: (-_spread([fills[lab] for lab in groups[g]]), g))
    for group in order:
        labels = groups[group]
        report, group_moves, reason = _balance_group(labels, pools, used, candidates, settings, budget)
        group_reports.append(report)
        moves.extend(group_moves)
        budget -= len(group_moves)
        stop_reason = _worse(stop_reason, reason)

    after = {label: used[label] for label in pools}
    data = dict(
        method=settings.method, kind=kind, storages=sorted(selected), settings=settings.to_dict(),
        pools=_pool_report(pools, fills, after, moves, settings.delete_source, kind),
        groups=sorted(group_reports, key=lambda r: r["group"]),
        spread_pp_before=round(max([g["spread_pp_before"] for g in group_reports] or [0.0]), 2),
        spread_pp_after=round(max([g["spread_pp_after"] for g in group_reports] or [0.0]), 2),
        stop_reason=stop_reason, left_alone=left_alone, inspected=len(configs) + len(unreadable),
        not_inspected_volumes=waiting, warnings=warnings,
    )
    if moves and not settings.delete_source:
        kept = sum(m.size_bytes for m in moves)
        data["warnings"] = warnings + [
            "delete_source is false: the %s copied stay on the source storages as unused volumes (unusedN); the fill"
            " levels after are reached once they are removed" % gib(kept)]
    result = StoragePlan(moves=moves, data=data)
    data["summary"] = summary(result)
    return result


def _candidates(snapshot, settings, pools, donors, kind, configs, replication, unreadable, discovery):
    """Volumes on donor pools that may move -> (candidates, left_alone entries, volumes waiting for a config read)."""
    candidates, left_alone, waiting = [], [], 0
    for vmid in sorted(snapshot.guests):
        guest = snapshot.guests[vmid]
        on_donors = []
        for volume in guest.volumes or []:
            label = volume.storage if kind == SHARED else "%s/%s" % (guest.node, volume.storage)
            if label in donors and volume.shared == (kind == SHARED):
                on_donors.append((volume, label))
        if not on_donors:
            continue
        config = configs.get(vmid)
        refusal = guest_refusal(snapshot, guest, settings)
        if refusal is None and vmid in unreadable:
            refusal = ("config_unreadable", "its config could not be read: %s" % unreadable[vmid])
        if refusal is None and config is not None:
            refusal = config_refusal(config, guest, replication.get(vmid))
        for volume, label in on_donors:
            reason = refusal or volume_refusal(guest, volume, config)
            key = None
            if config is not None and config.volume(volume.volid) is not None:
                key = config.volume(volume.volid).key
            if reason is not None:
                left_alone.append(_left(guest, volume, reason[0], reason[1], key))
            elif config is None and not discovery:
                waiting += 1
            else:
                candidates.append(_Candidate(guest, volume, key or "", label))
    return candidates, left_alone, waiting


def _spread(values):
    return max(values) - min(values) if values else 0.0


_STOP_ORDER = ("not_triggered", "target_reached", "no_gain", "max_moves")


def _worse(current, new):
    return new if _STOP_ORDER.index(new) > _STOP_ORDER.index(current) else current


def _balance_group(labels, pools, used, candidates, settings, budget):
    """Greedy moves within one group of pools; updates ``used``. Returns (report, moves, stop_reason)."""
    def fill(label):
        return fill_pct(used[label], pools[label].size_bytes)

    before = {label: fill(label) for label in labels}
    spread_before = _spread(list(before.values()))
    moves = []
    reason = "not_triggered"
    members = set(labels)
    pending = [c for c in candidates if c.pool in members]
    if spread_before > settings.balanciness:
        reason = "target_reached"
        while _spread([fill(lab) for lab in labels]) > settings.target_spread:
            if len(moves) >= budget:
                reason = "max_moves"
                break
            best = _best_move(labels, pools, used, pending, settings)
            if best is None:
                reason = "no_gain"
                break
            candidate, target = best
            size = candidate.volume.size_bytes
            used[candidate.pool] -= size
            used[target] += size
            pending.remove(candidate)
            guest = candidate.guest
            moves.append(VolumeMove(vmid=guest.vmid, name=guest.name, type=guest.type, node=guest.node, key=candidate.key,
                                    volid=candidate.volume.volid, source=candidate.volume.storage,
                                    target=pools[target].storage, size_bytes=size, running=guest.running))
    after = {label: fill(label) for label in labels}
    report = dict(group=pools[labels[0]].node or SHARED, pools=list(labels),
                  triggered=spread_before > settings.balanciness, spread_pp_before=round(spread_before, 2),
                  spread_pp_after=round(_spread(list(after.values())), 2), target_spread_pp=settings.target_spread,
                  moves=len(moves), moved_bytes=sum(m.size_bytes for m in moves), stop_reason=reason)
    return report, moves, reason


def _best_move(labels, pools, used, pending, settings):
    """The (candidate, target pool) with the best gain per GiB copied, or None when no move helps."""
    fills = {lab: fill_pct(used[lab], pools[lab].size_bytes) for lab in labels}
    count = len(labels)
    total = sum(fills.values())
    squares = sum(f * f for f in fills.values())
    deviation = squares - total * total / count
    mean = total / count
    spread = _spread(list(fills.values()))
    best, best_key = None, None
    for candidate in pending:
        source = candidate.pool
        if fills[source] <= mean:
            continue
        size = candidate.volume.size_bytes
        if size <= 0:
            continue
        content = GUEST_CONTENT.get(candidate.guest.type, "images")
        new_source = fill_pct(used[source] - size, pools[source].size_bytes)
        for target in labels:
            pool = pools[target]
            if target == source or fills[target] >= fills[source] or content not in pool.content:
                continue
            if candidate.guest.node not in pool.nodes or pool.size_bytes - used[target] < size:
                continue
            new_target = fill_pct(used[target] + size, pool.size_bytes)
            if new_target > settings.storage_threshold:
                continue
            new_total = total - fills[source] - fills[target] + new_source + new_target
            new_squares = squares - fills[source] ** 2 - fills[target] ** 2 + new_source ** 2 + new_target ** 2
            gain = deviation - (new_squares - new_total * new_total / count)
            if gain <= _MIN_GAIN:
                continue
            # Evening out the squares can still widen the gap between the fullest and the
            # emptiest storage, which is what balanciness promises to narrow: never accept that.
            after = dict(fills)
            after[source], after[target] = new_source, new_target
            if _spread(list(after.values())) > spread + 1e-9:
                continue
            value = gain / (MOVE_COST_GIB + size / float(GIB))
            key = (-value, candidate.guest.vmid, candidate.volume.volid, pool.storage)
            if best_key is None or key < best_key:
                best, best_key = (candidate, target), key
    return best


def _pool_report(pools, fills_before, used_after, moves, delete_source, kind):
    kept: Dict[str, int] = {}
    if not delete_source:
        for move in moves:
            label = move.source if kind == SHARED else "%s/%s" % (move.node, move.source)
            kept[label] = kept.get(label, 0) + move.size_bytes
    report = {}
    for label in sorted(pools):
        pool = pools[label]
        entry = dict(storage=pool.storage, node=pool.node, size_bytes=pool.size_bytes, used_bytes_before=pool.used_bytes,
                     fill_pct_before=round(fills_before[label], 2), used_bytes_after=used_after[label],
                     fill_pct_after=round(fill_pct(used_after[label], pool.size_bytes), 2), nodes=sorted(pool.nodes))
        if not delete_source:
            entry["fill_pct_after_run"] = round(fill_pct(used_after[label] + kept.get(label, 0), pool.size_bytes), 2)
        report[label] = entry
    return report


def summary(result):
    """The plan as a few human-readable lines."""
    data = result.data
    lines = ["storages (%s, %s): spread %.1f -> %.1f pp, %d move(s), %s to copy; %s" % (
        data["kind"], data["method"], data["spread_pp_before"], data["spread_pp_after"], len(result.moves),
        gib(sum(m.size_bytes for m in result.moves)), data["stop_reason"])]
    for label, pool in sorted(data["pools"].items()):
        lines.append("  %-24s %6.1f %% -> %6.1f %%  of %s" % (
            label, pool["fill_pct_before"], pool["fill_pct_after"], gib(pool["size_bytes"])))
    for move in result.moves:
        lines.append("  move %s  %s -> %s  %s%s" % (
            move.label(), move.source, move.target, gib(move.size_bytes), "  (online)" if move.online else ""))
    return "\n".join(lines)
