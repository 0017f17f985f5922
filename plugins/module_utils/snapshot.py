# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ClusterSnapshot: one consistent picture of a PVE cluster.

Everything after the collector reads only this model. PVE quirks (ints as strings, version
differences, missing fields on offline nodes) are absorbed by the collector before data lands
here, so every field below has one type and one unit. Units are in the names (``_bytes``);
``cpu`` fractions are 0..1 of the object's own CPUs, as PVE reports them.

A snapshot saved with ``to_json`` and read back with ``from_json`` compares equal.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

SNAPSHOT_FORMAT = 1

GUEST_TYPES = {"qemu": "vm", "lxc": "ct"}


def version_tuple(version):
    """'9.0.3' -> (9, 0, 3); tolerant of '8.2-4' and missing parts."""
    parts = []
    for chunk in str(version or "0").replace("-", ".").split("."):
        digits = "".join(ch for ch in chunk if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    while len(parts) < 3:
        parts.append(0)
    return tuple(parts[:3])


@dataclass
class Node:
    name: str
    status: str = "unknown"          # online | offline | unknown
    maxcpu: int = 0                  # host threads
    cpu: float = 0.0                 # fraction (0..1) of all threads in use
    maxmem_bytes: int = 0
    mem_bytes: int = 0               # host memory in use (MemTotal - MemAvailable on PVE >= 8.4)
    maxdisk_bytes: int = 0           # root filesystem
    disk_bytes: int = 0
    hastate: Optional[str] = None    # HA node state: online | maintenance | unknown | fence | gone
    ha_maintenance: bool = False     # PVE HA reports the node in maintenance mode
    pressure: Dict[str, float] = field(default_factory=dict)  # PSI averages in percent, e.g. memory_some

    @property
    def online(self):
        return self.status == "online"


@dataclass
class Volume:
    """One guest volume (disk image or container volume) on a storage."""

    volid: str                       # storage:volname, e.g. ceph-vm:vm-100-disk-0
    storage: str
    size_bytes: int = 0              # provisioned size
    key: Optional[str] = None        # config key (scsi0, efidisk0, rootfs, mp0, unused0); None = config not read
    shared: bool = False             # on shared storage (no copy when the guest migrates)
    content: str = "images"          # images (VM disk) | rootdir (container volume)
    format: Optional[str] = None     # raw | qcow2 | subvol | ...
    parent: Optional[str] = None     # base volume of a linked clone

    @property
    def unused(self):
        return bool(self.key) and self.key.startswith("unused")


@dataclass
class Guest:
    vmid: int
    name: str
    type: str                        # qemu | lxc
    node: str
    status: str = "unknown"          # running | stopped | paused | ... | unknown
    template: bool = False
    maxcpu: float = 0.0              # vCPUs (qemu sockets*cores or vcpus; lxc cores/limit)
    cpu: float = 0.0                 # fraction (0..1) of the guest's own vCPUs
    maxmem_bytes: int = 0
    mem_bytes: int = 0               # host memory the guest uses (PVE 9 memhost when known)
    maxdisk_bytes: int = 0
    disk_bytes: int = 0
    tags: List[str] = field(default_factory=list)
    pool: Optional[str] = None
    lock: Optional[str] = None
    ha: Optional[Dict[str, object]] = None   # {"sid", "state", "group", "failback", "auto_rebalance"} when HA-managed
    local_disk_bytes: Optional[int] = None   # bytes on node-local storage; None = not collected
    pressure: Dict[str, float] = field(default_factory=dict)
    volumes: Optional[List[Volume]] = None   # volumes on the storages that were listed; None = not collected

    @property
    def kind(self):
        """'vm' or 'ct', the words users write in ``guest_types``."""
        return GUEST_TYPES.get(self.type, self.type)

    @property
    def running(self):
        return self.status == "running"

    @property
    def ha_managed(self):
        return bool(self.ha) and self.ha.get("state") != "ignored"

    @property
    def sid(self):
        return "%s:%d" % ("ct" if self.type == "lxc" else "vm", self.vmid)


@dataclass
class Storage:
    storage: str
    node: str
    plugintype: str = ""
    shared: bool = False
    content: List[str] = field(default_factory=list)
    status: str = "unknown"          # available (active on the node) | unknown
    disk_bytes: int = 0              # used
    maxdisk_bytes: int = 0           # size
    enabled: bool = True             # False: configured for the node but disabled in /storage

    @property
    def holds_guests(self):
        return bool({"images", "rootdir"} & set(self.content))

    @property
    def active(self):
        return self.enabled and self.status == "available"


@dataclass
class HaRule:
    """A PVE HA rule, normalised. PVE 8 groups are kept separately as HaGroup."""

    rule: str
    type: str                                         # node-affinity | resource-affinity
    resources: List[str] = field(default_factory=list)   # sids: vm:100, ct:101
    nodes: Dict[str, int] = field(default_factory=dict)  # node-affinity: node -> priority
    strict: bool = False
    affinity: Optional[str] = None                    # resource-affinity: positive | negative
    disabled: bool = False


@dataclass
class HaGroup:
    group: str
    nodes: Dict[str, int] = field(default_factory=dict)
    restricted: bool = False
    nofailback: bool = False


@dataclass
class BackupJob:
    """A cluster backup job of ``/cluster/backup``; which guests it takes is decided as PVE does.

    Selection in PVE's order: ``pool`` members, else the ``vmids`` list, else every guest
    (``all_guests``) except ``exclude``; ``node`` restricts the job to guests on that node.
    """

    id: str
    schedule: Optional[str] = None     # PVE calendar event; None when the job has none
    enabled: bool = True
    all_guests: bool = False
    vmids: List[int] = field(default_factory=list)
    exclude: List[int] = field(default_factory=list)
    pool: Optional[str] = None
    node: Optional[str] = None
    storage: Optional[str] = None
    next_run: Optional[int] = None     # epoch seconds, as PVE computed it (PVE >= 7.1)
    comment: Optional[str] = None


@dataclass
class ClusterTask:
    """A task running somewhere in the cluster (``/cluster/tasks``), parsed from its UPID."""

    upid: str
    node: str
    type: str                          # vzdump, qmigrate, vzmigrate, hamigrate, ...
    vmid: Optional[int] = None         # the guest for guest tasks; None for multi-guest tasks
    user: str = ""                     # user@realm, or user@realm!token for API tokens
    starttime: int = 0                 # epoch seconds


@dataclass
class ClusterSnapshot:
    pve_version: str = "0.0.0"
    cluster_name: Optional[str] = None
    quorate: Optional[bool] = None
    nodes: Dict[str, Node] = field(default_factory=dict)
    guests: Dict[int, Guest] = field(default_factory=dict)
    storages: List[Storage] = field(default_factory=list)
    pools: Dict[str, List[int]] = field(default_factory=dict)   # pool -> member vmids
    ha_rules: List[HaRule] = field(default_factory=list)
    ha_groups: List[HaGroup] = field(default_factory=list)
    crs: Dict[str, object] = field(default_factory=dict)        # /cluster/options crs, keys as PVE names them
    # None = not read (not collected, no permission, or a snapshot saved before they existed)
    backup_jobs: Optional[List[BackupJob]] = None
    running_tasks: Optional[List[ClusterTask]] = None
    api_calls: int = 0
    format: int = SNAPSHOT_FORMAT

    @property
    def version(self):
        return version_tuple(self.pve_version)

    def guests_on(self, node):
        return [g for g in self.guests.values() if g.node == node]

    # -- serialisation -------------------------------------------------------------------
    def to_dict(self):
        data = asdict(self)
        data["guests"] = {str(vmid): g for vmid, g in data["guests"].items()}
        return data

    def to_json(self, indent=None):
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    @classmethod
    def from_dict(cls, data):
        if not isinstance(data, dict) or "nodes" not in data or "guests" not in data:
            raise ValueError("not a proxlb.balancer cluster snapshot (expected keys 'nodes' and 'guests')")
        fmt = data.get("format", SNAPSHOT_FORMAT)
        if fmt != SNAPSHOT_FORMAT:
            raise ValueError("snapshot format %s is not supported (this version reads format %d)" % (fmt, SNAPSHOT_FORMAT))
        return cls(
            pve_version=data.get("pve_version", "0.0.0"),
            cluster_name=data.get("cluster_name"),
            quorate=data.get("quorate"),
            nodes={name: Node(**node) for name, node in data["nodes"].items()},
            guests={int(vmid): _guest_from_dict(guest) for vmid, guest in data["guests"].items()},
            storages=[Storage(**s) for s in data.get("storages", [])],
            pools={name: list(members) for name, members in data.get("pools", {}).items()},
            ha_rules=[HaRule(**r) for r in data.get("ha_rules", [])],
            ha_groups=[HaGroup(**g) for g in data.get("ha_groups", [])],
            crs=dict(data.get("crs", {})),
            backup_jobs=_optional_list(BackupJob, data.get("backup_jobs")),
            running_tasks=_optional_list(ClusterTask, data.get("running_tasks")),
            api_calls=data.get("api_calls", 0),
            format=fmt,
        )

    @classmethod
    def from_json(cls, text):
        return cls.from_dict(json.loads(text))

    def save(self, path):
        with open(path, "w") as handle:
            handle.write(self.to_json(indent=1))
            handle.write("\n")

    @classmethod
    def load(cls, path):
        with open(path) as handle:
            return cls.from_json(handle.read())


def _optional_list(kind, entries):
    return None if entries is None else [kind(**entry) for entry in entries]


def _guest_from_dict(data):
    """A saved guest; files written before volumes were collected have none (``None``)."""
    data = dict(data)
    volumes = data.pop("volumes", None)
    guest = Guest(**data)
    if volumes is not None:
        guest.volumes = [Volume(**volume) for volume in volumes]
    return guest
