# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Storage facts for placement: which storages a guest needs, and whether a node can take it.

Pure functions on a ``ClusterSnapshot`` collected with ``with_storage`` (and, for node-local
volumes, ``with_local_volumes``). Each check returns ``None`` when the node is fine, or one
line that says why not, in the words a ``left_alone`` entry or a per-node rejection uses.
A guest whose volumes were not collected (``Guest.volumes is None``) is never rejected here:
nothing is known against it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

GIB = 1024 ** 3
DEFAULT_STORAGE_THRESHOLD_PCT = 90.0

# ``rule`` of a per-node rejection, next to the planner's own rules.
RULE_STORAGE_MISSING = "storage_missing"
RULE_STORAGE_FULL = "storage_full"

# The content a storage needs to hold a guest's volumes.
GUEST_CONTENT = {"qemu": "images", "lxc": "rootdir"}


@dataclass
class GuestConfig:
    """What one guest config read tells about moving the guest's volumes."""

    vmid: int
    volumes: List[object] = field(default_factory=list)   # snapshot.Volume, with config keys
    snapshot: Optional[str] = None                        # current snapshot (config ``parent``); None = no snapshots
    lock: Optional[str] = None
    template: bool = False
    digest: Optional[str] = None

    def volume(self, volid):
        """The config entry of ``volid`` (None when the config does not reference it)."""
        for volume in self.volumes:
            if volume.volid == volid:
                return volume
        return None


def fill_pct(used_bytes, size_bytes):
    """Percent of a storage in use (0 for a storage of unknown size)."""
    return 100.0 * used_bytes / size_bytes if size_bytes > 0 else 0.0


def gib(value):
    return "%.1f GiB" % (value / float(GIB))


def storage_on(snapshot, node, storage_id):
    """The ``Storage`` entry of ``storage_id`` on ``node``, or None when the node cannot use it at all."""
    for storage in snapshot.storages:
        if storage.node == node and storage.storage == storage_id:
            return storage
    return None


def guest_storages(guest):
    """Sorted ids of the storages the guest's volumes are on (None when its volumes were not collected)."""
    if guest.volumes is None:
        return None
    return sorted({volume.storage for volume in guest.volumes})


def _keys(guest, storage_id):
    keys = [v.key or v.volid for v in guest.volumes if v.storage == storage_id]
    return " (%s)" % ", ".join(sorted(keys)) if keys else ""


def node_storage_problem(snapshot, guest, node):
    """Why ``node`` lacks a storage the guest's volumes are on (None when it has them all).

    Shared storages must be enabled and active on the node; node-local volumes travel with the
    guest to the storage of the same name there, so that storage must exist on the node too.
    """
    needed = guest_storages(guest)
    if not needed or guest.node == node:
        return None
    content = GUEST_CONTENT.get(guest.type, "images")
    for storage_id in needed:
        storage = storage_on(snapshot, node, storage_id)
        where = "storage %s%s" % (storage_id, _keys(guest, storage_id))
        if storage is None:
            return "%s is not available on %s" % (where, node)
        if not storage.enabled:
            return "%s is disabled on %s" % (where, node)
        if not storage.active:
            return "%s is not active on %s" % (where, node)
        if content not in storage.content:
            return "%s on %s has no content type %s (it holds %s)" % (where, node, content, ",".join(storage.content) or "nothing")
    return None


def local_storage_problem(snapshot, guest, node, threshold_pct=DEFAULT_STORAGE_THRESHOLD_PCT):
    """Why the guest's node-local volumes would overfill ``node``'s local storage (None when they fit).

    The volumes arrive on the storage of the same name; the storage must stay at or below
    ``threshold_pct`` percent with their provisioned size added. Nothing arrives when the guest
    already runs on ``node``.
    """
    if guest.volumes is None or guest.node == node:
        return None
    arriving: Dict[str, int] = {}
    for volume in guest.volumes:
        if not volume.shared:
            arriving[volume.storage] = arriving.get(volume.storage, 0) + volume.size_bytes
    for storage_id in sorted(arriving):
        storage = storage_on(snapshot, node, storage_id)
        if storage is None or not storage.active:
            continue            # node_storage_problem names this
        if storage.maxdisk_bytes <= 0:
            return "local storage %s on %s reports no size; it cannot be checked against storage_threshold" % (storage_id, node)
        after = fill_pct(storage.disk_bytes + arriving[storage_id], storage.maxdisk_bytes)
        if after > threshold_pct:
            return "local storage %s on %s would be %.1f %% full with the %s of local volumes%s (storage_threshold %g %%)" % (
                storage_id, node, after, gib(arriving[storage_id]), _keys(guest, storage_id), threshold_pct)
    return None


def placement_problem(snapshot, guest, node, threshold_pct=DEFAULT_STORAGE_THRESHOLD_PCT):
    """``{"rule", "detail"}`` of the first storage reason that rules ``node`` out for the guest, or None."""
    detail = node_storage_problem(snapshot, guest, node)
    if detail:
        return dict(rule=RULE_STORAGE_MISSING, detail=detail)
    detail = local_storage_problem(snapshot, guest, node, threshold_pct)
    if detail:
        return dict(rule=RULE_STORAGE_FULL, detail=detail)
    return None
