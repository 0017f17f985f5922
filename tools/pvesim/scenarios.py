"""Scenario loading and normalisation.

A scenario is plain JSON (see README.md for every field).  ``load_scenario`` accepts a shipped
name (``demo``, ``pve8``, ``pve9``), a path to a JSON file, ``gen:<nodes>:<guests>:<seed>`` or an
already parsed dict, and returns a normalised dict in which every default is filled in and every
size is in bytes, so the rest of the simulator never has to guess.
"""

from __future__ import annotations

import copy
import json
import os
import re

from .auth import DEFAULT_USERS
from .backup import normalize_backup_jobs
from .generator import generate
from .importer import looks_like_resources, scenario_from_resources
from .units import GIB, KIB, MIB, TIB

SCENARIO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scenarios")

SHARED_PLUGIN_TYPES = ("iscsi", "nfs", "cifs", "rbd", "cephfs", "iscsidirect", "drbd", "pbs")
GUEST_TYPES = ("qemu", "lxc")
GUEST_STATUSES = ("running", "stopped", "paused")
HA_STATES = ("started", "stopped", "enabled", "disabled", "ignored")
NODE_NAME_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?$")

DEFAULT_OPTIONS = {
    "auth_failure_delay_s": 0.0,
    "error_message_body": None,     # None: decided by version (PVE >= 8.3 sends "message")
    "lxc_vmid_string": False,
    "speed": 1.0,
    "min_migration_s": 2.0,
    "migration_bandwidth": GIB,     # bytes per second of simulated migration traffic
    "ha_lrm_delay_s": 5.0,
    "hamigrate_duration_s": 1.0,
    "restart_shutdown_s": 3.0,
}

DEFAULT_STORAGES = [
    {"storage": "local", "type": "dir", "content": "iso,vztmpl,backup", "path": "/var/lib/vz",
     "total": 100 * GIB, "used": 12 * GIB},
    {"storage": "local-lvm", "type": "lvmthin", "content": "rootdir,images", "total": 900 * GIB, "used": 0,
     "config": {"thinpool": "data", "vgname": "pve"}},
    {"storage": "ceph-vm", "type": "rbd", "content": "images,rootdir", "total": 20 * TIB, "used": 0,
     "config": {"pool": "vm", "krbd": 0}},
]


class ScenarioError(ValueError):
    """The scenario is malformed; the message names the offending field."""


def parse_version(version: str) -> tuple:
    parts = re.findall(r"\d+", str(version))
    numbers = [int(p) for p in parts[:3]] + [0, 0, 0]
    return tuple(numbers[:3])


def _size(obj: dict, key: str, default=None, where: str = ""):
    """Read a byte size given as ``key`` (bytes) or ``key_kib``/``key_mib``/``key_gib``/``key_tib``."""
    for suffix, factor in (("", 1), ("_kib", KIB), ("_mib", MIB), ("_gib", GIB), ("_tib", TIB)):
        name = key + suffix
        if name in obj and obj[name] is not None:
            value = obj[name]
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ScenarioError("%s%s must be a non-negative number" % (where, name))
            return int(value * factor)
    return default


TOP_KEYS = {"name", "description", "version", "release", "repoid", "cluster_name", "crs", "datacenter", "options", "users",
            "storages", "nodes", "pools", "guests", "ha", "backup_jobs", "replication"}
STORAGE_KEYS = {"storage", "type", "content", "shared", "nodes", "disable", "path", "config"}
STORAGE_SIZES = {"total", "used"}
NODE_KEYS = {"name", "node", "nodeid", "ip", "maxcpu", "sockets", "cpu_model", "base_cpu", "status", "level", "uptime",
             "ha_maintenance", "pressure"}
NODE_SIZES = {"maxmem", "base_mem", "rootfs_total", "rootfs_used", "swap_total"}
GUEST_KEYS = {"vmid", "type", "name", "node", "status", "template", "memory", "mem_fraction", "cores", "sockets", "maxcpu", "cpu",
              "tags", "pool", "lock", "uptime", "disks", "devices", "disk_used_fraction", "onboot", "ostype", "config"}
GUEST_SIZES = {"maxmem", "mem", "memhost"}
DISK_KEYS = {"key", "storage", "volid", "mp", "replicate"}
DISK_SIZES = {"size"}
HA_KEYS = {"resources", "groups", "rules"}
SIZE_SUFFIXES = ("", "_kib", "_mib", "_gib", "_tib")


def _check_keys(obj, plain: set, sizes: set, where: str) -> None:
    """Reject unknown keys so that a typo in a scenario fails loudly instead of being ignored."""
    if not isinstance(obj, dict):
        raise ScenarioError("%s must be an object" % (where.rstrip(".") or "scenario"))
    allowed = set(plain)
    for size in sizes:
        allowed.update(size + suffix for suffix in SIZE_SUFFIXES)
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise ScenarioError("%sunknown keys: %s" % (where, ", ".join(unknown)))


def _tags(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        items = [str(v).strip() for v in value]
    else:
        items = re.split(r"[;, ]+", str(value))
    return ";".join(item for item in items if item)


def _bool01(value) -> int:
    return 1 if value in (1, True, "1", "true", "yes") else 0


def resolve_spec(spec) -> dict:
    """Turn a scenario spec (name, path, gen:..., dict) into a raw (not yet normalised) dict."""
    if isinstance(spec, dict):
        return copy.deepcopy(spec)
    if spec is None:
        spec = "demo"
    spec = str(spec)
    if spec.startswith("gen:"):
        parts = spec.split(":")
        if len(parts) not in (4, 5):
            raise ScenarioError("generator spec must be gen:<nodes>:<guests>:<seed>[:<version>]")
        try:
            nodes, guests, seed = int(parts[1]), int(parts[2]), int(parts[3])
        except ValueError as exc:
            raise ScenarioError("generator spec must be gen:<nodes>:<guests>:<seed>: %s" % exc) from exc
        version = parts[4] if len(parts) == 5 else "9.0.3"
        return generate(nodes, guests, seed, version=version)
    path = spec
    if not os.path.exists(path) and re.match(r"^[A-Za-z0-9_\-]+$", spec):
        path = os.path.join(SCENARIO_DIR, spec + ".json")
    if not os.path.isfile(path):
        raise ScenarioError("unknown scenario '%s' (not a shipped name, file or gen: spec)" % spec)
    with open(path, "r", encoding="utf-8") as handle:
        try:
            data = json.load(handle)
        except ValueError as exc:
            raise ScenarioError("scenario file %s is not valid JSON: %s" % (path, exc)) from exc
    base = os.path.splitext(os.path.basename(path))[0]
    if looks_like_resources(data):
        return scenario_from_resources(data, name=base)
    if not isinstance(data, dict):
        raise ScenarioError("scenario file %s must contain a JSON object or a /cluster/resources dump" % path)
    data.setdefault("name", base)
    return data


def load_scenario(spec) -> dict:
    return normalize(resolve_spec(spec))


def shipped_scenarios() -> list:
    return sorted(os.path.splitext(name)[0] for name in os.listdir(SCENARIO_DIR) if name.endswith(".json"))


# -- normalisation ---------------------------------------------------------------------------------

def normalize(raw: dict) -> dict:
    if not isinstance(raw, dict):
        raise ScenarioError("a scenario must be a JSON object")
    _check_keys(raw, TOP_KEYS, set(), "")
    _check_keys(raw.get("ha", {}), HA_KEYS, set(), "ha.")
    version = str(raw.get("version", "9.0.3"))
    vtuple = parse_version(version)
    options = dict(DEFAULT_OPTIONS)
    unknown = set(raw.get("options", {})) - set(DEFAULT_OPTIONS)
    if unknown:
        raise ScenarioError("unknown options: %s" % ", ".join(sorted(unknown)))
    options.update(raw.get("options", {}))
    if options["error_message_body"] is None:
        options["error_message_body"] = vtuple >= (8, 3, 0)
    scenario = {
        "name": str(raw.get("name", "inline")),
        "description": str(raw.get("description", "")),
        "version": version,
        "version_tuple": vtuple,
        "release": str(raw.get("release", "%d.%d" % (vtuple[0], vtuple[1]))),
        "repoid": str(raw.get("repoid", "025864202ebb6109" if vtuple[0] >= 8 else "a1b2c3d4")),
        "cluster_name": raw.get("cluster_name", "pvesim"),
        "crs": dict(raw.get("crs", {"ha": "basic"})),
        "datacenter": dict(raw.get("datacenter", {})),
        "options": options,
        "users": copy.deepcopy(raw.get("users", DEFAULT_USERS)),
    }
    scenario["storages"] = _normalize_storages(raw.get("storages", DEFAULT_STORAGES))
    scenario["nodes"] = _normalize_nodes(raw.get("nodes"))
    node_names = {node["name"] for node in scenario["nodes"]}
    storage_ids = {s["storage"]: s for s in scenario["storages"]}
    scenario["pools"] = _normalize_pools(raw.get("pools", []))
    scenario["guests"] = _normalize_guests(raw.get("guests", []), node_names, storage_ids, scenario["storages"])
    pool_ids = {pool["poolid"] for pool in scenario["pools"]}
    for guest in scenario["guests"]:
        if guest["pool"] and guest["pool"] not in pool_ids:
            # A pool named only on a guest still exists in PVE terms; create it silently.
            scenario["pools"].append({"poolid": guest["pool"], "comment": ""})
            pool_ids.add(guest["pool"])
    scenario["ha"] = _normalize_ha(raw.get("ha", {}), scenario["guests"], node_names, vtuple)
    try:
        scenario["backup_jobs"] = normalize_backup_jobs(raw.get("backup_jobs", []), node_names, pool_ids)
    except ValueError as exc:
        raise ScenarioError(str(exc)) from exc
    scenario["replication"] = _normalize_replication(raw.get("replication", []), scenario["guests"], node_names)
    return scenario


def _normalize_replication(jobs, guests: list, node_names: set) -> list:
    """Storage replication jobs: ``{"guest": 100, "target": "pve2", "schedule": "*/15", "disable": 0}``."""
    vmids = {g["vmid"] for g in guests}
    result = []
    for index, raw in enumerate(jobs):
        where = "replication[%d]." % index
        _check_keys(raw, {"guest", "target", "schedule", "disable", "jobnum"}, set(), where)
        if raw.get("guest") not in vmids:
            raise ScenarioError(where + "guest %s is not a scenario guest" % raw.get("guest"))
        if raw.get("target") not in node_names:
            raise ScenarioError(where + "target '%s' is not a scenario node" % raw.get("target"))
        jobnum = int(raw.get("jobnum", sum(1 for job in result if job["guest"] == raw["guest"])))
        result.append({"id": "%d-%d" % (raw["guest"], jobnum), "guest": raw["guest"], "target": raw["target"], "jobnum": jobnum,
                       "schedule": str(raw.get("schedule", "*/15")), "disable": _bool01(raw.get("disable", 0))})
    return result


def _normalize_storages(storages) -> list:
    result = []
    seen = set()
    for index, raw in enumerate(storages):
        where = "storages[%d]." % index
        _check_keys(raw, STORAGE_KEYS, STORAGE_SIZES, where)
        if "storage" not in raw or "type" not in raw:
            raise ScenarioError(where + "storage and type are required")
        if raw["storage"] in seen:
            raise ScenarioError(where + "duplicate storage '%s'" % raw["storage"])
        seen.add(raw["storage"])
        shared = _bool01(raw.get("shared", raw["type"] in SHARED_PLUGIN_TYPES))
        nodes = raw.get("nodes")
        if isinstance(nodes, str):
            nodes = [n for n in nodes.split(",") if n]
        result.append({
            "storage": raw["storage"],
            "type": raw["type"],
            "content": raw.get("content", "images,rootdir"),
            "shared": shared,
            "total": _size(raw, "total", 1 * TIB, where),
            "used": _size(raw, "used", 0, where),
            "nodes": list(nodes) if nodes else None,
            "disable": _bool01(raw.get("disable", 0)),
            "path": raw.get("path"),
            "config": dict(raw.get("config", {})),
        })
    return result


def _normalize_nodes(nodes) -> list:
    if not nodes:
        raise ScenarioError("a scenario needs at least one node")
    result = []
    seen = set()
    for index, raw in enumerate(nodes):
        where = "nodes[%d]." % index
        _check_keys(raw, NODE_KEYS, NODE_SIZES, where)
        name = raw.get("name") or raw.get("node")
        if not name or not NODE_NAME_RE.match(name):
            raise ScenarioError(where + "name missing or not a valid node name")
        if name in seen:
            raise ScenarioError(where + "duplicate node '%s'" % name)
        seen.add(name)
        maxmem = _size(raw, "maxmem", 64 * GIB, where)
        maxcpu = int(raw.get("maxcpu", 16))
        sockets = int(raw.get("sockets", 2 if maxcpu >= 32 else 1))
        pressure = raw.get("pressure")
        if pressure is not None:
            unknown = set(pressure) - {"cpusome", "iosome", "iofull", "memorysome", "memoryfull"}
            if unknown:
                raise ScenarioError(where + "pressure has unknown keys: %s" % ", ".join(sorted(unknown)))
        status = raw.get("status", "online")
        if status not in ("online", "offline"):
            raise ScenarioError(where + "status must be online or offline")
        result.append({
            "name": name,
            "nodeid": int(raw.get("nodeid", index + 1)),
            "ip": raw.get("ip", "10.0.0.%d" % (11 + index)),
            "maxmem": maxmem,
            "maxcpu": maxcpu,
            "sockets": sockets,
            "cpu_model": raw.get("cpu_model", "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz"),
            "base_mem": _size(raw, "base_mem", int(2 * GIB + maxmem * 0.02), where),
            "base_cpu": float(raw.get("base_cpu", round(maxcpu * 0.01, 3))),
            "status": status,
            "level": raw.get("level", ""),
            "uptime": int(raw.get("uptime", 1209600 + index * 3600)),
            "rootfs_total": _size(raw, "rootfs_total", 100 * GIB, where),
            "rootfs_used": _size(raw, "rootfs_used", 14 * GIB, where),
            "swap_total": _size(raw, "swap_total", 8 * GIB, where),
            "ha_maintenance": bool(raw.get("ha_maintenance", False)),
            "pressure": dict(pressure) if pressure is not None else None,
        })
    return result


def _normalize_pools(pools) -> list:
    result = []
    for index, raw in enumerate(pools):
        if isinstance(raw, str):
            raw = {"poolid": raw}
        if "poolid" not in raw:
            raise ScenarioError("pools[%d].poolid is required" % index)
        result.append({"poolid": raw["poolid"], "comment": raw.get("comment", "")})
    return result


def _default_storage(storages: list, content: str) -> str | None:
    candidates = [s for s in storages if content in s["content"].split(",") and not s["disable"]]
    shared = [s for s in candidates if s["shared"]]
    chosen = (shared or candidates or [None])[0]
    return chosen["storage"] if chosen else None


def _normalize_guests(guests, node_names: set, storage_ids: dict, storages: list) -> list:
    result = []
    seen = set()
    default_images = _default_storage(storages, "images")
    default_rootdir = _default_storage(storages, "rootdir")
    for index, raw in enumerate(guests):
        where = "guests[%d]." % index
        _check_keys(raw, GUEST_KEYS, GUEST_SIZES, where)
        try:
            vmid = int(raw["vmid"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ScenarioError(where + "vmid is required and must be an integer") from exc
        if vmid < 100 or vmid > 999999999:
            raise ScenarioError(where + "vmid %d out of range 100..999999999" % vmid)
        if vmid in seen:
            raise ScenarioError(where + "duplicate vmid %d" % vmid)
        seen.add(vmid)
        gtype = raw.get("type", "qemu")
        if gtype not in GUEST_TYPES:
            raise ScenarioError(where + "type must be qemu or lxc")
        node = raw.get("node")
        if node not in node_names:
            raise ScenarioError(where + "node '%s' is not a scenario node" % node)
        template = _bool01(raw.get("template", 0))
        status = raw.get("status", "stopped" if template else "running")
        if status not in GUEST_STATUSES:
            raise ScenarioError(where + "status must be one of %s" % ", ".join(GUEST_STATUSES))
        if template and status != "stopped":
            raise ScenarioError(where + "templates are always stopped")
        if "memory" in raw:
            maxmem = int(raw["memory"]) * MIB
        else:
            maxmem = _size(raw, "maxmem", 2 * GIB, where)
        mem = _size(raw, "mem", None, where)
        if mem is None:
            fraction = raw.get("mem_fraction", 0.6 if gtype == "qemu" else 0.3)
            mem = int(maxmem * float(fraction))
        cores = int(raw.get("cores", raw.get("maxcpu", 1)))
        sockets = int(raw.get("sockets", 1))
        if "maxcpu" in raw and "cores" not in raw:
            sockets = 1
        disks = _normalize_disks(raw, vmid, gtype, storage_ids, default_images if gtype == "qemu" else default_rootdir, where)
        devices = dict(raw.get("devices", {}))
        for key in devices:
            if not re.match(r"^(hostpci|usb|serial|parallel|virtiofs)\d+$|^ivshmem$", key):
                raise ScenarioError(where + "devices key '%s' is not a passthrough device key" % key)
        if gtype == "lxc" and devices:
            raise ScenarioError(where + "devices are only supported for qemu guests")
        name = raw.get("name") or ("CT%d" % vmid if gtype == "lxc" else "VM%d" % vmid)
        result.append({
            "vmid": vmid,
            "type": gtype,
            "name": name,
            "node": node,
            "status": status,
            "template": template,
            "maxmem": maxmem,
            "mem": mem,
            "memhost": _size(raw, "memhost", None, where),
            "cores": cores,
            "sockets": sockets,
            "maxcpu": cores * sockets,
            "cpu": float(raw.get("cpu", 0.03)),
            "tags": _tags(raw.get("tags")),
            "pool": raw.get("pool") or None,
            "lock": raw.get("lock") or None,
            "uptime": int(raw.get("uptime", 86400 * (1 + vmid % 30) + vmid)),
            "disks": disks,
            "devices": devices,
            "disk_used_fraction": float(raw.get("disk_used_fraction", 0.35)),
            "onboot": _bool01(raw.get("onboot", 1)),
            "ostype": raw.get("ostype", "l26" if gtype == "qemu" else "debian"),
            "config": dict(raw.get("config", {})),
        })
    result.sort(key=lambda g: g["vmid"])
    return result


def _normalize_disks(raw: dict, vmid: int, gtype: str, storage_ids: dict, default_storage: str | None, where: str) -> list:
    disks_raw = raw.get("disks")
    if disks_raw is None:
        if default_storage is None:
            return []
        key = "scsi0" if gtype == "qemu" else "rootfs"
        disks_raw = [{"key": key, "storage": default_storage, "size_gib": 32 if gtype == "qemu" else 8}]
    disks = []
    counter = 0
    for dindex, disk in enumerate(disks_raw):
        dwhere = "%sdisks[%d]." % (where, dindex)
        _check_keys(disk, DISK_KEYS, DISK_SIZES, dwhere)
        storage = disk.get("storage")
        if storage not in storage_ids:
            raise ScenarioError(dwhere + "storage '%s' is not a scenario storage" % storage)
        key = disk.get("key") or ("scsi%d" % dindex if gtype == "qemu" else ("rootfs" if dindex == 0 else "mp%d" % (dindex - 1)))
        if gtype == "qemu" and not re.match(r"^(scsi|virtio|sata|ide|efidisk|tpmstate|unused)\d+$", key):
            raise ScenarioError(dwhere + "key '%s' is not a qemu disk key" % key)
        if gtype == "lxc" and not re.match(r"^(rootfs|mp\d+|unused\d+)$", key):
            raise ScenarioError(dwhere + "key '%s' is not a container volume key" % key)
        volid = disk.get("volid") or "%s:vm-%d-disk-%d" % (storage, vmid, counter)
        counter += 1
        disks.append({
            "key": key,
            "storage": storage,
            "volid": volid,
            "size": _size(disk, "size", 32 * GIB, dwhere),
            "mp": disk.get("mp", "/data%d" % dindex if key.startswith("mp") else None),
            "replicate": _bool01(disk.get("replicate", 1)),
        })
    return disks


def _normalize_ha(raw_ha: dict, guests: list, node_names: set, vtuple: tuple) -> dict:
    by_vmid = {g["vmid"]: g for g in guests}
    resources = []
    for index, raw in enumerate(raw_ha.get("resources", [])):
        where = "ha.resources[%d]." % index
        sid = str(raw.get("sid", ""))
        match = re.match(r"^(?:(vm|ct):)?(\d+)$", sid)
        if not match:
            raise ScenarioError(where + "sid must look like vm:100 or ct:101")
        vmid = int(match.group(2))
        guest = by_vmid.get(vmid)
        if guest is None:
            raise ScenarioError(where + "guest %d does not exist" % vmid)
        kind = "vm" if guest["type"] == "qemu" else "ct"
        if match.group(1) and match.group(1) != kind:
            raise ScenarioError(where + "sid %s does not match guest type %s" % (sid, guest["type"]))
        state = raw.get("state", "started")
        if state not in HA_STATES:
            raise ScenarioError(where + "state must be one of %s" % ", ".join(HA_STATES))
        entry = {"sid": "%s:%d" % (kind, vmid), "type": kind, "vmid": vmid, "state": state}
        for key in ("group", "max_restart", "max_relocate", "comment", "failback", "auto-rebalance"):
            if key in raw:
                entry[key] = raw[key]
        if vtuple[0] >= 9:
            entry.pop("group", None)
        resources.append(entry)
    groups = []
    for index, raw in enumerate(raw_ha.get("groups", [])):
        if "group" not in raw or "nodes" not in raw:
            raise ScenarioError("ha.groups[%d] needs group and nodes" % index)
        _check_node_list(raw["nodes"], node_names, "ha.groups[%d].nodes" % index)
        groups.append(dict(raw))
    rules = []
    for index, raw in enumerate(raw_ha.get("rules", [])):
        where = "ha.rules[%d]." % index
        if "rule" not in raw or raw.get("type") not in ("node-affinity", "resource-affinity"):
            raise ScenarioError(where + "needs rule and type node-affinity|resource-affinity")
        rule = dict(raw)
        if isinstance(rule.get("resources"), list):
            rule["resources"] = ",".join(rule["resources"])
        if rule["type"] == "node-affinity":
            if "nodes" not in rule:
                raise ScenarioError(where + "node-affinity rules need nodes")
            _check_node_list(rule["nodes"], node_names, where + "nodes")
        elif rule.get("affinity") not in ("positive", "negative"):
            raise ScenarioError(where + "resource-affinity rules need affinity positive|negative")
        rules.append(rule)
    return {"resources": resources, "groups": groups, "rules": rules}


def _check_node_list(value: str, node_names: set, where: str) -> None:
    for item in str(value).split(","):
        name = item.split(":", 1)[0].strip()
        if name and name not in node_names:
            raise ScenarioError("%s names unknown node '%s'" % (where, name))
