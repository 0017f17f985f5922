# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PVE API -> ClusterSnapshot in a constant number of calls.

The calls, whatever the cluster size (``COLLECT_CALLS``):

1. ``GET /version`` (answered by the connection probe; no second request)
2. ``GET /cluster/resources`` - pools, guests, nodes and storages in one answer
3. ``GET /cluster/options`` - the CRS settings
4. ``GET /cluster/status`` - cluster name and quorum
5. ``GET /cluster/ha/status/current`` - HA-managed guests, LRM maintenance mode, quorum
6. ``GET /cluster/ha/rules`` (PVE >= 9) or ``GET /cluster/ha/groups`` (PVE 8)
7. ``GET /cluster/backup`` - backup jobs: schedule and which guests (``with_backups``)
8. ``GET /cluster/tasks`` - the cluster-wide task list, of which the running tasks are kept
   (``with_tasks``): backups (vzdump) and migrations in progress, by anyone

Optional per-node extras, the only calls that grow with the cluster:
``GET /nodes/{node}/rrddata`` per online node (``with_pressure``, PVE >= 9) and
``GET /nodes/{node}/storage/{storage}/content`` per node-local guest storage
(``with_local_volumes``).

Between waves the executor re-reads only ``/cluster/resources`` and ``refreshed`` folds it into
the snapshot it has; ``load_snapshot`` reads a snapshot saved earlier instead of the cluster.
Storages and volumes (``with_storage``): ``GET /storage`` once (which storages are disabled),
then ``GET /nodes/{node}/storage/{storage}/content`` once per *shared* storage that can hold
guest volumes (content ``images`` or ``rootdir``) and is active on an online node, read from
one such node. PVE has no cluster-wide volume listing, so this is the bound:
``calls = 6 + 1 + S_shared`` (plus ``N x S_local`` for ``with_local_volumes``), independent of
the number of guests. The config key of a volume (``scsi1``, ``mp0``) is only in the guest's
config; ``read_guest_configs`` reads it for the few guests a caller names (one call each).

Every PVE quirk (numbers as strings, fields missing on offline nodes, PVE 8 vs 9 shapes) is
absorbed here; nothing after the collector needs to know about them. No Ansible imports.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Dict, List

from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ConfigError, PveApiError
from ansible_collections.proxlb.balancer.plugins.module_utils.snapshot import (
    BackupJob,
    ClusterSnapshot,
    ClusterTask,
    Guest,
    HaGroup,
    HaRule,
    Node,
    Storage,
    Volume,
    version_tuple,
)
from ansible_collections.proxlb.balancer.plugins.module_utils.storage import GuestConfig

COLLECT_CALLS = (
    "GET /version",
    "GET /cluster/resources",
    "GET /cluster/options",
    "GET /cluster/status",
    "GET /cluster/ha/status/current",
    "GET /cluster/ha/rules (PVE >= 9) | GET /cluster/ha/groups (PVE 8)",
    "GET /cluster/backup",
    "GET /cluster/tasks",
)
STORAGE_CALLS = (
    "GET /storage",
    "GET /nodes/{node}/storage/{storage}/content (once per shared guest storage)",
)
PRESSURE_WINDOWS = ("hour", "day", "week", "month", "year")
# rrddata data source -> Node.pressure key (percent, kernel PSI avg10)
PRESSURE_FIELDS = {
    "pressurecpusome": "cpu_some",
    "pressurememorysome": "memory_some",
    "pressurememoryfull": "memory_full",
    "pressureiosome": "io_some",
    "pressureiofull": "io_full",
}
GUEST_VOLUME_CONTENT = ("images", "rootdir")
_TAG_SPLIT = re.compile(r"[;,\s]+")
_GROUPS_MIGRATED = "migrated to rules"
_UPID = re.compile(r"^UPID:(?P<node>[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?):(?P<pid>[0-9A-Fa-f]{8}):"
                   r"(?P<pstart>[0-9A-Fa-f]{8,9}):(?P<starttime>[0-9A-Fa-f]{8}):(?P<type>[^:\s/]+):"
                   r"(?P<id>[^:\s/]*):(?P<user>[^:\s/]+):$")
_WEEK = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


# -- number and flag coercion (PVE sends ints as strings in places) ------------------------

def _int(value, default=0):
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError):
            return default


def _float(value, default=0.0):
    if value is None or value == "":
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _bool(value, default=False):
    if value is None or value == "":
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _str(value):
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def split_tags(value):
    """``'plb_pin_pve1;web'`` -> ``['plb_pin_pve1', 'web']``; also tolerates ``,`` and spaces.

    Case is kept (rules compare case-insensitively); duplicates dropped, order kept.
    """
    if not value:
        return []
    if isinstance(value, (list, tuple)):
        value = ";".join(str(v) for v in value)
    tags = []
    for tag in _TAG_SPLIT.split(str(value)):
        if tag and tag not in tags:
            tags.append(tag)
    return tags


def split_list(value):
    """PVE comma lists (``content``, ``resources``) -> list of stripped items."""
    if not value:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split(",") if part.strip()]


def parse_node_priorities(value):
    """``'pve1:2,pve2'`` -> ``{'pve1': 2, 'pve2': 0}`` (PVE's default priority is 0)."""
    nodes = {}
    for item in split_list(value):
        name, _sep, priority = item.partition(":")
        if name.strip():
            nodes[name.strip()] = _int(priority, 0)
    return nodes


def parse_property_string(value, default_key=None):
    """``'ha=static,ha-rebalance-on-start=1'`` -> ``{'ha': 'static', 'ha-rebalance-on-start': 1}``.

    Numbers become int/float; a bare value belongs to ``default_key``. A dict passes through.
    """
    if isinstance(value, dict):
        items = value.items()
    else:
        items = []
        for part in split_list(value):
            key, sep, val = part.partition("=")
            items.append((key.strip(), val.strip()) if sep else (default_key, key.strip()))
    result = {}
    for key, val in items:
        if key is None:
            continue
        result[key] = _number_or_text(val)
    return result


def _number_or_text(value):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    text = str(value)
    if re.match(r"^-?\d+$", text):
        return int(text)
    if re.match(r"^-?\d+\.\d*$", text):
        return float(text)
    return text


def _sid(guest_type, vmid):
    return "%s:%d" % ("ct" if guest_type == "lxc" else "vm", vmid)


def normalize_sid(value, guests=None):
    """``'vm:100'`` stays; a bare ``'100'`` becomes ``vm:100`` or ``ct:100`` from the guest's type."""
    text = str(value).strip()
    if ":" in text:
        kind, _sep, vmid = text.partition(":")
        return "%s:%s" % (kind.strip().lower(), vmid.strip())
    if text.isdigit():
        guest = (guests or {}).get(int(text))
        return _sid(guest.type if guest else "qemu", int(text))
    return text


def _vmid_from_sid(sid):
    _kind, _sep, vmid = str(sid).partition(":")
    return _int(vmid, None) if vmid else _int(sid, None)


# -- /cluster/resources --------------------------------------------------------------------

def nodes_from_resources(resources):
    """Node entries of a ``/cluster/resources`` answer -> ``{name: Node}`` sorted by name.

    Offline nodes often carry only id/node/type/status; missing numbers become 0.
    """
    nodes = {}
    for entry in resources or []:
        if not isinstance(entry, dict) or entry.get("type") != "node":
            continue
        name = _str(entry.get("node")) or str(entry.get("id", "")).partition("/")[2]
        if not name:
            continue
        hastate = _str(entry.get("hastate"))
        nodes[name] = Node(
            name=name,
            status=_str(entry.get("status")) or "unknown",
            maxcpu=_int(entry.get("maxcpu")),
            cpu=_float(entry.get("cpu")),
            maxmem_bytes=_int(entry.get("maxmem")),
            mem_bytes=_int(entry.get("mem")),
            maxdisk_bytes=_int(entry.get("maxdisk")),
            disk_bytes=_int(entry.get("disk")),
            hastate=hastate,
            ha_maintenance=hastate == "maintenance",
        )
    return {name: nodes[name] for name in sorted(nodes)}


def _guest_mem_bytes(guest_type, status, mem, maxmem, memhost):
    if status == "stopped":
        return 0
    # PVE 9 memhost is what the QEMU process really holds on the host (0 for lxc/stopped)
    if guest_type == "qemu" and memhost > 0:
        return memhost
    # mem is the guest's own view and can exceed maxmem by a few pages
    return min(mem, maxmem) if maxmem > 0 else mem


def guests_from_resources(resources):
    """qemu/lxc entries of a ``/cluster/resources`` answer -> ``{vmid: Guest}`` sorted by vmid.

    ``Guest.ha`` gets a minimal ``{"sid", "state", ...}`` from ``hastate``; the collector
    refines it from the HA status. Guests whose node lost its RRD data come as ``unknown``.
    """
    guests = {}
    for entry in resources or []:
        if not isinstance(entry, dict) or entry.get("type") not in ("qemu", "lxc"):
            continue
        guest_type = entry["type"]
        vmid = _int(entry.get("vmid"), None)
        if vmid is None:
            vmid = _int(str(entry.get("id", "")).partition("/")[2], None)
        if vmid is None:
            continue
        status = _str(entry.get("status")) or "unknown"
        maxmem = _int(entry.get("maxmem"))
        stopped = status == "stopped"
        hastate = _str(entry.get("hastate"))
        guests[vmid] = Guest(
            vmid=vmid,
            name=_str(entry.get("name")) or (("CT%d" if guest_type == "lxc" else "VM %d") % vmid),
            type=guest_type,
            node=_str(entry.get("node")) or "",
            status=status,
            template=_bool(entry.get("template")),
            maxcpu=_float(entry.get("maxcpu")),
            cpu=0.0 if stopped else _float(entry.get("cpu")),
            maxmem_bytes=maxmem,
            mem_bytes=_guest_mem_bytes(guest_type, status, _int(entry.get("mem")), maxmem, _int(entry.get("memhost"))),
            maxdisk_bytes=_int(entry.get("maxdisk")),
            disk_bytes=_int(entry.get("disk")),
            tags=split_tags(entry.get("tags")),
            pool=_str(entry.get("pool")),
            lock=_str(entry.get("lock")),
            ha=_ha_entry(_sid(guest_type, vmid), hastate) if hastate else None,
        )
    return {vmid: guests[vmid] for vmid in sorted(guests)}


def _ha_entry(sid, state, group=None, failback=True, auto_rebalance=True):
    return {"sid": sid, "state": state, "group": group, "failback": failback, "auto_rebalance": auto_rebalance}


def storages_from_resources(resources):
    storages = []
    for entry in resources or []:
        if not isinstance(entry, dict) or entry.get("type") != "storage":
            continue
        storage = _str(entry.get("storage")) or str(entry.get("id", "")).rpartition("/")[2]
        storages.append(Storage(
            storage=storage,
            node=_str(entry.get("node")) or "",
            plugintype=_str(entry.get("plugintype")) or "",
            shared=_bool(entry.get("shared")),
            content=split_list(entry.get("content")),
            status=_str(entry.get("status")) or "unknown",
            disk_bytes=_int(entry.get("disk")),
            maxdisk_bytes=_int(entry.get("maxdisk")),
        ))
    return sorted(storages, key=lambda s: (s.node, s.storage))


def pools_from_resources(resources, guests):
    """Pool entries plus each guest's ``pool`` field -> ``{pool: [vmid, ...]}``."""
    pools: Dict[str, List[int]] = {}
    for entry in resources or []:
        if isinstance(entry, dict) and entry.get("type") == "pool":
            name = _str(entry.get("pool")) or str(entry.get("id", "")).rpartition("/pool/")[2]
            if name:
                pools.setdefault(name, [])
    for guest in guests.values():
        if guest.pool:
            pools.setdefault(guest.pool, []).append(guest.vmid)
    return {name: sorted(set(pools[name])) for name in sorted(pools)}


# -- other cluster endpoints ---------------------------------------------------------------

def crs_from_options(options):
    """``/cluster/options`` -> CRS settings, whether PVE sent ``crs`` as an object or a property string."""
    if not isinstance(options, dict) or not options.get("crs"):
        return {}
    return parse_property_string(options["crs"], default_key="ha")


def apply_cluster_status(snapshot, status):
    """``/cluster/status`` -> cluster name, quorum; nodes hidden from ``/cluster/resources`` are added."""
    for entry in status or []:
        if not isinstance(entry, dict):
            continue
        if entry.get("type") == "cluster":
            snapshot.cluster_name = _str(entry.get("name"))
            snapshot.quorate = _bool(entry.get("quorate"))
        elif entry.get("type") == "node":
            name = _str(entry.get("name"))
            if name and name not in snapshot.nodes:
                snapshot.nodes[name] = Node(name=name, status="online" if _bool(entry.get("online")) else "offline")


def ha_rules_from_api(rules, guests=None):
    """``/cluster/ha/rules`` -> ``[HaRule]`` in PVE's rule order."""
    entries = [e for e in rules or [] if isinstance(e, dict) and e.get("rule")]
    result = []
    for entry in sorted(entries, key=lambda e: (_int(e.get("order"), 0), str(e["rule"]))):
        rule_type = _str(entry.get("type")) or ""
        result.append(HaRule(
            rule=str(entry["rule"]),
            type=rule_type,
            resources=[normalize_sid(r, guests) for r in split_list(entry.get("resources"))],
            nodes=parse_node_priorities(entry.get("nodes")),
            strict=_bool(entry.get("strict")),
            affinity=_str(entry.get("affinity")),
            disabled=_bool(entry.get("disable")),
        ))
    return result


def ha_groups_from_api(groups):
    result = []
    for entry in groups or []:
        if not isinstance(entry, dict) or not entry.get("group"):
            continue
        result.append(HaGroup(
            group=str(entry["group"]),
            nodes=parse_node_priorities(entry.get("nodes")),
            restricted=_bool(entry.get("restricted")),
            nofailback=_bool(entry.get("nofailback")),
        ))
    return sorted(result, key=lambda g: g.group)


def apply_ha_status(snapshot, status):
    """``/cluster/ha/status/current`` -> quorum, LRM maintenance mode, HA state of each guest."""
    nofailback = {g.group for g in snapshot.ha_groups if g.nofailback}
    for entry in status or []:
        if not isinstance(entry, dict):
            continue
        entry_type = entry.get("type")
        if entry_type == "quorum" and snapshot.quorate is None and "quorate" in entry:
            snapshot.quorate = _bool(entry.get("quorate"))
        elif entry_type == "lrm":
            node = snapshot.nodes.get(_str(entry.get("node")) or "")
            if node is not None and "maintenance mode" in str(entry.get("status", "")):
                node.ha_maintenance = True
        elif entry_type == "service":
            sid = normalize_sid(entry.get("sid") or str(entry.get("id", "")).partition(":")[2], snapshot.guests)
            guest = snapshot.guests.get(_vmid_from_sid(sid))
            if guest is None:
                continue            # not visible to this user, or already gone
            group = _str(entry.get("group"))
            state = _str(entry.get("state")) or _str(entry.get("crm_state")) or "unknown"
            if _str(entry.get("request_state")) == "ignored":
                state = "ignored"
            guest.ha = _ha_entry(
                sid,
                state,
                group=group,
                failback=_bool(entry.get("failback"), default=group not in nofailback),
                auto_rebalance=_bool(entry.get("auto-rebalance", entry.get("auto_rebalance")), default=True),
            )


# -- backup jobs and running tasks ---------------------------------------------------------

def _vmid_list(value):
    """``'100,101'``, ``'100 101'``, ``100`` or ``[100, '101']`` -> ``[100, 101]``; junk dropped."""
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)):
        value = ",".join(str(v) for v in value)
    vmids = []
    for item in _TAG_SPLIT.split(str(value)):
        if item.isdigit() and int(item) not in vmids:
            vmids.append(int(item))
    return vmids


def _job_schedule(entry):
    """The job's calendar event; jobs from before PVE 7.1 carry ``dow`` + ``starttime`` instead."""
    schedule = _str(entry.get("schedule"))
    if schedule or not _str(entry.get("starttime")):
        return schedule
    days = [day for day in split_list(entry.get("dow")) if day in _WEEK]
    if not days or len(set(days)) == len(_WEEK):
        return str(entry["starttime"]).strip()
    return "%s %s" % (",".join(days), str(entry["starttime"]).strip())


def backup_jobs_from_api(jobs):
    """``/cluster/backup`` -> ``[BackupJob]`` in PVE's order; ``enabled`` absent means enabled."""
    result = []
    for entry in jobs or []:
        if not isinstance(entry, dict) or not _str(entry.get("id")):
            continue
        if (_str(entry.get("type")) or "vzdump") != "vzdump":
            continue
        result.append(BackupJob(
            id=_str(entry["id"]),
            schedule=_job_schedule(entry),
            enabled=_bool(entry.get("enabled"), default=True),
            all_guests=_bool(entry.get("all")),
            vmids=_vmid_list(entry.get("vmid")),
            exclude=_vmid_list(entry.get("exclude")),
            pool=_str(entry.get("pool")),
            node=_str(entry.get("node")),
            storage=_str(entry.get("storage")),
            next_run=_int(entry.get("next-run"), None),
            comment=_str(entry.get("comment")),
        ))
    return result


def parse_upid(upid):
    """``UPID:node:pid:pstart:starttime:type:id:user:`` -> dict of its parts (numbers as int), or None."""
    match = _UPID.match(str(upid or "").strip())
    if not match:
        return None
    parts = match.groupdict()
    for key in ("pid", "pstart", "starttime"):
        parts[key] = int(parts[key], 16)
    return parts


def _task_running(entry):
    # /cluster/tasks leaves status out while a task runs; the per-node list says RUNNING
    status = _str(entry.get("status"))
    return (status is None or status.upper() == "RUNNING") and not entry.get("endtime")


def running_tasks_from_api(tasks):
    """``/cluster/tasks`` -> the tasks still running as ``[ClusterTask]``, sorted by node, start, UPID.

    The UPID is authoritative for node, type, id, user and start; the entry's own fields fill in
    when a UPID does not parse. Finished tasks are dropped.
    """
    result = []
    for entry in tasks or []:
        if not isinstance(entry, dict) or not _task_running(entry):
            continue
        upid = _str(entry.get("upid")) or ""
        parts = parse_upid(upid)
        if parts is None:
            user = _str(entry.get("user")) or ""
            token = _str(entry.get("tokenid"))
            parts = {"node": _str(entry.get("node")), "type": _str(entry.get("type")), "id": _str(entry.get("id")) or "",
                     "user": "%s!%s" % (user, token) if token and "!" not in user else user,
                     "starttime": _int(entry.get("starttime"))}
        if not parts["node"] or not parts["type"]:
            continue
        task_id = str(parts["id"] or "").strip()
        result.append(ClusterTask(
            upid=upid,
            node=parts["node"],
            type=parts["type"],
            vmid=int(task_id) if task_id.isdigit() else None,
            user=parts["user"],
            starttime=parts["starttime"],
        ))
    return sorted(result, key=lambda t: (t.node, t.starttime, t.upid))


# -- per-node extras -----------------------------------------------------------------------

def pressure_from_rrddata(rows):
    """Average each PSI data source over the rows that have it -> ``{cpu_some: 0.12, ...}``."""
    sums: Dict[str, float] = {}
    counts: Dict[str, int] = {}
    for row in rows or []:
        if not isinstance(row, dict):
            continue
        for source, key in PRESSURE_FIELDS.items():
            value = row.get(source)
            if value is None or value == "":
                continue
            sums[key] = sums.get(key, 0.0) + _float(value)
            counts[key] = counts.get(key, 0) + 1
    return {key: round(sums[key] / counts[key], 4) for key in sorted(sums)}


def local_guest_storages(snapshot):
    """(node, storage) pairs of node-local, available storages that can hold guest disks on online nodes."""
    pairs = []
    for storage in snapshot.storages:
        node = snapshot.nodes.get(storage.node)
        if storage.shared or not storage.holds_guests or node is None or not node.online:
            continue
        if storage.status != "available":
            continue
        pairs.append((storage.node, storage.storage))
    return pairs


def add_local_volumes(snapshot, node, volumes):
    """Add the sizes of guest volumes listed on one local storage of ``node``."""
    for volume in volumes or []:
        if not isinstance(volume, dict) or volume.get("content", "images") not in GUEST_VOLUME_CONTENT:
            continue
        guest = snapshot.guests.get(_int(volume.get("vmid"), -1))
        # a leftover volume on another node does not travel with the guest
        if guest is not None and guest.node == node:
            guest.local_disk_bytes = (guest.local_disk_bytes or 0) + _int(volume.get("size"))


# -- the collection ------------------------------------------------------------------------

def collect(client, with_pressure=False, pressure_window="hour", with_local_volumes=False, warnings=None,
            with_backups=True, with_tasks=True, with_storage=False):
    """Read the cluster through ``client`` (a connected ``PveClient``) into a ``ClusterSnapshot``.

    ``with_storage`` adds the storage configuration and the volumes of every guest on shared
    storages (``Guest.volumes``; with ``with_local_volumes`` also those on node-local storages).

    ``warnings``, if a list, receives one line per optional per-node read that failed (e.g. a
    node went away mid-collection) and one if the backup jobs may not be read (no Sys.Audit);
    the snapshot is still returned without that detail.
    """
    if pressure_window not in PRESSURE_WINDOWS:
        raise ConfigError("pressure_window", "must be one of %s, got '%s'" % (", ".join(PRESSURE_WINDOWS), pressure_window))
    start = client.calls
    version_info = getattr(client, "version_info", None)
    probe_reused = bool(version_info)
    if not version_info:
        version_info = client.get("/version") or {}

    snapshot = ClusterSnapshot(pve_version=str(version_info.get("version") or "0.0.0"))
    resources = client.get("/cluster/resources") or []
    snapshot.nodes = nodes_from_resources(resources)
    snapshot.guests = guests_from_resources(resources)
    snapshot.storages = storages_from_resources(resources)
    snapshot.pools = pools_from_resources(resources, snapshot.guests)
    snapshot.crs = crs_from_options(client.get("/cluster/options"))
    apply_cluster_status(snapshot, client.get("/cluster/status"))
    snapshot.nodes = {name: snapshot.nodes[name] for name in sorted(snapshot.nodes)}

    ha_status = client.get("/cluster/ha/status/current")
    if version_tuple(snapshot.pve_version) >= (9, 0, 0):
        snapshot.ha_rules = ha_rules_from_api(client.get("/cluster/ha/rules"), snapshot.guests)
    else:
        snapshot.ha_groups = ha_groups_from_api(_read_ha_groups(client))
    apply_ha_status(snapshot, ha_status)
    if with_backups:
        snapshot.backup_jobs = _read_backup_jobs(client, warnings)
    if with_tasks:
        snapshot.running_tasks = running_tasks_from_api(client.get("/cluster/tasks"))

    if with_pressure and version_tuple(snapshot.pve_version) >= (9, 0, 0):
        for name, node in snapshot.nodes.items():
            if not node.online:
                continue
            rows = _optional_read(client, warnings, "pressure of node %s" % name,
                                  "/nodes/%s/rrddata" % name, timeframe=pressure_window, cf="AVERAGE")
            node.pressure = pressure_from_rrddata(rows)
    elif with_pressure and isinstance(warnings, list):
        warnings.append("with_pressure: PVE %s has no pressure (PSI) data; it needs PVE 9 or later" % snapshot.pve_version)

    if with_storage:
        apply_storage_config(snapshot, client.get("/storage"))
        _start_volumes(snapshot)
        for node, storage in shared_guest_storages(snapshot):
            volumes = _optional_read(client, warnings, "volumes on shared storage %s" % storage,
                                     "/nodes/%s/storage/%s/content" % (node, storage))
            add_volumes(snapshot, storage, volumes)

    if with_local_volumes:
        _start_volumes(snapshot)
        for guest in snapshot.guests.values():
            guest.local_disk_bytes = 0
        for node, storage in local_guest_storages(snapshot):
            volumes = _optional_read(client, warnings, "volumes on storage %s of node %s" % (storage, node),
                                     "/nodes/%s/storage/%s/content" % (node, storage))
            add_local_volumes(snapshot, node, volumes)
            add_volumes(snapshot, storage, volumes, node=node)

    snapshot.api_calls = client.calls - start + (1 if probe_reused else 0)
    return snapshot


def _read_ha_groups(client):
    try:
        return client.request("GET", "/cluster/ha/groups", retries=0)
    except PveApiError as err:
        # PVE answers 500 once groups were migrated to rules (or on a fresh PVE 9): no groups
        if err.status == 500 and _GROUPS_MIGRATED in str(err):
            return []
        raise


def _read_backup_jobs(client, warnings):
    try:
        return backup_jobs_from_api(client.get("/cluster/backup"))
    except PveApiError as err:
        if err.status != 403:
            raise
        if isinstance(warnings, list):
            warnings.append("could not read the backup jobs: GET /cluster/backup answered 403 (it needs Sys.Audit on /);"
                            " backup windows are unknown, and the task list shows only this user's own tasks")
        return None


def _optional_read(client, warnings, what, path, **params):
    try:
        return client.get(path, **params)
    except PveApiError as err:
        if err.kind in ("auth", "tls", "config"):
            raise
        if isinstance(warnings, list):
            warnings.append("could not read %s: %s" % (what, err))
        return None


def collect_for(client, settings, warnings=None):
    """``collect`` with the extras the balancing ``settings`` need (pressure for mode psi, local
    volume sizes for method disk)."""
    return collect(client, with_pressure=settings.mode == "psi", pressure_window=settings.pressure_window,
                   with_local_volumes=settings.method == "disk", warnings=warnings)


def load_snapshot(path):
    """A snapshot saved by proxlb_cluster_info; a clear ConfigError names the option otherwise."""
    try:
        return ClusterSnapshot.load(path)
    except (IOError, OSError) as err:
        raise ConfigError("snapshot", "cannot read %s (%s); give a file written by proxlb_cluster_info dest" % (path, err))
    except ValueError as err:
        raise ConfigError("snapshot", "%s is not a usable snapshot: %s" % (path, err))


# -- re-reading between waves --------------------------------------------------------------------

def refreshed(snapshot, resources):
    """``snapshot`` with nodes and guests replaced by a fresh ``/cluster/resources`` answer.

    What that answer does not carry (HA details, pressure, local disk sizes, rules, pools) is
    kept from ``snapshot``; guests HA knew about keep their HA entry.
    """
    nodes = nodes_from_resources(resources)
    guests = guests_from_resources(resources)
    for name, node in nodes.items():
        old = snapshot.nodes.get(name)
        if old is not None:
            node.pressure = old.pressure
            node.ha_maintenance = node.ha_maintenance or (old.ha_maintenance and node.hastate is None)
    for vmid, guest in guests.items():
        old = snapshot.guests.get(vmid)
        if old is None:
            continue
        if old.ha is not None and guest.ha is not None:
            guest.ha = dict(old.ha, state=guest.ha.get("state", old.ha.get("state")))
        elif old.ha is not None and guest.ha is None:
            guest.ha = old.ha
        guest.local_disk_bytes = old.local_disk_bytes
        guest.pressure = old.pressure
    return replace(snapshot, nodes=nodes, guests=guests)


# -- storages and volumes ------------------------------------------------------------------

_QEMU_DISK_KEY = re.compile(r"^(ide|sata|scsi|virtio|efidisk|tpmstate|unused)\d+$")
_LXC_VOLUME_KEY = re.compile(r"^(rootfs|mp\d+|unused\d+)$")
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}


def apply_storage_config(snapshot, config):
    """``/storage`` -> PVE's shared flag and the disabled storages, one entry per node they are configured for.

    ``/cluster/resources`` lists only storages enabled on a node; a disabled one is added with
    ``enabled=False`` so that reasons can say "disabled" rather than "missing".
    """
    by_id = {str(e["storage"]): e for e in config or [] if isinstance(e, dict) and e.get("storage")}
    present = {(s.node, s.storage) for s in snapshot.storages}
    for storage in snapshot.storages:
        entry = by_id.get(storage.storage)
        if entry is not None:
            storage.shared = storage.shared or _bool(entry.get("shared"))
            storage.enabled = not _bool(entry.get("disable"))
    for storage_id in sorted(by_id):
        entry = by_id[storage_id]
        if not _bool(entry.get("disable")):
            continue
        restricted = split_list(entry.get("nodes"))
        for node in snapshot.nodes:
            if (node, storage_id) in present or (restricted and node not in restricted):
                continue
            snapshot.storages.append(Storage(storage=storage_id, node=node, plugintype=_str(entry.get("type")) or "",
                                             shared=_bool(entry.get("shared")), content=split_list(entry.get("content")),
                                             enabled=False))
    snapshot.storages.sort(key=lambda s: (s.node, s.storage))


def shared_guest_storages(snapshot):
    """(node, storage): each shared storage that can hold guest volumes, with one online node it is active on."""
    chosen = {}
    for storage in snapshot.storages:
        node = snapshot.nodes.get(storage.node)
        if not storage.shared or not storage.holds_guests or not storage.active or node is None or not node.online:
            continue
        chosen.setdefault(storage.storage, storage.node)
    return [(chosen[name], name) for name in sorted(chosen)]


def _start_volumes(snapshot):
    for guest in snapshot.guests.values():
        if guest.volumes is None:
            guest.volumes = []


def add_volumes(snapshot, storage, entries, node=None):
    """One storage's content listing -> ``Guest.volumes``; ``node`` names the node of a node-local storage.

    Volumes of unknown guests (leftovers of deleted guests) are skipped; for node-local storage
    only the volumes of guests on that node count (a leftover elsewhere does not move with it).
    """
    for entry in entries or []:
        if not isinstance(entry, dict):
            continue
        content = _str(entry.get("content")) or "images"
        volid = _str(entry.get("volid"))
        guest = snapshot.guests.get(_int(entry.get("vmid"), -1))
        if content not in GUEST_VOLUME_CONTENT or not volid or guest is None or (node is not None and guest.node != node):
            continue
        if guest.volumes is None:
            guest.volumes = []
        if any(v.volid == volid for v in guest.volumes):
            continue
        guest.volumes.append(Volume(volid=volid, storage=storage, size_bytes=_int(entry.get("size")), shared=node is None,
                                    content=content, format=_str(entry.get("format")), parent=_str(entry.get("parent"))))
        guest.volumes.sort(key=lambda v: v.volid)


def parse_size(value):
    """PVE size strings (``32G``, ``512M``, ``1T``, plain bytes) -> bytes; 0 when unreadable."""
    match = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)", str(value or "").upper())
    if not match:
        return 0
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])


def volumes_from_config(config, guest_type, shared_storages=()):
    """A guest config -> its ``Volume`` list with config keys (CD-ROMs, bind mounts and device paths left out)."""
    pattern = _LXC_VOLUME_KEY if guest_type == "lxc" else _QEMU_DISK_KEY
    shared = set(shared_storages)
    volumes = []
    for key in sorted(config or {}):
        if not pattern.match(key):
            continue
        parts = [part.strip() for part in str(config[key]).split(",")]
        first, options = parts[0], {}
        for part in parts[1:]:
            name, _sep, value = part.partition("=")
            options[name] = value
        if "=" in first:
            name, _sep, value = first.partition("=")
            options[name] = value
            first = options.get("file") or options.get("volume") or ""
        if options.get("media") == "cdrom" or first.startswith("/"):
            continue
        storage, sep, volname = first.partition(":")
        if not sep or not storage or not volname:
            continue
        volumes.append(Volume(volid=first, storage=storage, size_bytes=parse_size(options.get("size")), key=key,
                              shared=storage in shared, content="rootdir" if guest_type == "lxc" else "images",
                              format=_str(options.get("format"))))
    return volumes


def guest_config(vmid, config, guest_type, shared_storages=()):
    """``GET .../{qemu|lxc}/{vmid}/config`` -> ``GuestConfig`` (``parent`` names the current snapshot)."""
    config = config if isinstance(config, dict) else {}
    return GuestConfig(vmid=vmid, volumes=volumes_from_config(config, guest_type, shared_storages),
                       snapshot=_str(config.get("parent")), lock=_str(config.get("lock")),
                       template=_bool(config.get("template")), digest=_str(config.get("digest")))


def read_guest_configs(client, snapshot, vmids, errors=None):
    """One config read per named guest -> ``{vmid: GuestConfig}``.

    A config that cannot be read (the guest went away, its node is down) is left out and, when
    ``errors`` is a dict, noted there as ``{vmid: message}``; auth and TLS errors are raised.
    """
    shared = {s.storage for s in snapshot.storages if s.shared}
    result = {}
    for vmid in vmids:
        guest = snapshot.guests.get(vmid)
        if guest is None:
            continue
        try:
            config = client.get("/nodes/%s/%s/%d/config" % (guest.node, guest.type, vmid))
        except PveApiError as err:
            if err.kind in ("auth", "tls", "config"):
                raise
            if isinstance(errors, dict):
                errors[vmid] = str(err)
            continue
        result[vmid] = guest_config(vmid, config, guest.type, shared)
    return result


def replication_targets(jobs):
    """``/cluster/replication`` -> ``{vmid: [target node, ...]}`` (disabled jobs count: their state stays)."""
    targets: Dict[int, List[str]] = {}
    for job in jobs or []:
        if not isinstance(job, dict):
            continue
        vmid = _int(job.get("guest"), None)
        if vmid is None:
            vmid = _int(str(job.get("id", "")).partition("-")[0], None)
        if vmid is not None:
            targets.setdefault(vmid, []).append(_str(job.get("target")) or "?")
    return {vmid: sorted(set(nodes)) for vmid, nodes in sorted(targets.items())}
