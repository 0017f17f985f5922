"""The PVE REST API surface: routing, parameter checks and the endpoint handlers.

Handlers read ``ClusterState`` under its lock and return plain data; ``dispatch`` turns that into
``(status, reason, body)`` exactly the way pveproxy frames it (envelope, reason phrase, error body).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time

from .auth import permissions
from .backup import h_cluster_backup, h_cluster_tasks
from .errors import ApiError, param_error, perm_error
from .scenarios import NODE_NAME_RE
from .units import GIB, MIB
from .state import local_resources, mapped_resources, stable_fraction
from .storage import replication_jobs, request_move

ALL_PARAMS = object()

# Parameter types: "string", "bool", "int", "number", "node", "vmid", "enum:a,b", "upid"; a trailing
# "!" marks a required parameter.  Unknown parameters are rejected like PVE's schema validation does.
MIGRATE_QEMU_PARAMS = {
    "target": "node!", "online": "bool", "with-local-disks": "bool", "force": "bool", "bwlimit": "int",
    "targetstorage": "string", "migration_type": "enum:secure,insecure", "migration_network": "string",
    "with-conntrack-state": "bool",
}
MIGRATE_LXC_PARAMS = {
    "target": "node!", "online": "bool", "restart": "bool", "timeout": "int", "target-storage": "string",
    "bwlimit": "number",
}
MOVE_DISK_PARAMS = {
    "disk": "string!", "storage": "string", "format": "enum:raw,qcow2,vmdk", "delete": "bool", "bwlimit": "int",
    "digest": "string", "target-vmid": "vmid", "target-disk": "string", "target-digest": "string",
}
MOVE_VOLUME_PARAMS = {
    "volume": "string!", "storage": "string", "delete": "bool", "bwlimit": "number", "digest": "string",
    "target-vmid": "vmid", "target-volume": "string", "target-digest": "string",
}
RRD_PARAMS = {"timeframe": "enum:hour,day,week,month,year,decade!", "cf": "enum:AVERAGE,MAX"}
TASK_LIST_PARAMS = {
    "start": "int", "limit": "int", "userfilter": "string", "typefilter": "string", "vmid": "vmid", "errors": "bool",
    "source": "enum:archive,active,all", "since": "int", "until": "int", "statusfilter": "string",
}

# RRD resolution (seconds per row) and row count per timeframe, per generation of the RRD format.
RRD_LAYOUT_PVE8 = {"hour": (60, 70), "day": (1800, 70), "week": (10800, 70), "month": (43200, 70), "year": (604800, 70)}
RRD_LAYOUT_PVE9 = {"hour": (60, 60), "day": (60, 1440), "week": (1800, 336), "month": (1800, 1440),
                   "year": (21600, 1440), "decade": (604800, 570)}


class Request:
    """One authenticated API request as seen by a handler."""

    def __init__(self, state, identity, method: str, params: dict, args: dict):
        self.state = state
        self.identity = identity
        self.method = method
        self.params = params
        self.args = args
        self.extra: dict = {}   # extra top-level keys of the response envelope (e.g. "total")

    def require(self, path: str, priv: str) -> None:
        if not self.identity.has(priv):
            raise perm_error(path, priv)

    def can(self, priv: str) -> bool:
        return self.identity.has(priv)


class Route:
    def __init__(self, method: str, template: str, handler, params=None, node_proxy: bool = True,
                 unauthenticated: bool = False, min_version: tuple | None = None, max_version: tuple | None = None):
        self.method = method
        self.template = template
        self.handler = handler
        self.params = params or {}
        self.node_proxy = node_proxy and "{node}" in template
        self.unauthenticated = unauthenticated
        self.min_version = min_version
        self.max_version = max_version
        pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
        self.regex = re.compile("^" + pattern + "/?$")

    def available(self, vtuple: tuple) -> bool:
        if self.min_version is not None and vtuple < self.min_version:
            return False
        if self.max_version is not None and vtuple >= self.max_version:
            return False
        return True


# -- parameter validation ----------------------------------------------------------------------------

def _check_value(kind: str, value):
    """Return the converted value or raise the error text PVE would put into ``errors``."""
    if isinstance(value, list):
        value = value[-1]
    if kind == "bool":
        if value is True or value is False:
            return bool(value)
        text = str(value)
        if text in ("0", "1"):
            return text == "1"
        raise ValueError("type check ('boolean') failed - got '%s'" % text)
    if kind in ("int", "vmid"):
        if isinstance(value, bool):
            value = int(value)
        text = str(value)
        if not re.match(r"^-?\d+$", text):
            if kind == "vmid":
                raise ValueError("value does not look like a valid VM ID")
            raise ValueError("type check ('integer') failed - got '%s'" % text)
        number = int(text)
        if kind == "vmid" and not 100 <= number <= 999999999:
            raise ValueError("value does not look like a valid VM ID")
        return number
    if kind == "number":
        try:
            return float(value)
        except (TypeError, ValueError) as exc:
            raise ValueError("type check ('number') failed - got '%s'" % value) from exc
    if kind == "node":
        text = str(value)
        if not NODE_NAME_RE.match(text):
            raise ValueError("value does not look like a valid node name")
        return text
    if kind.startswith("enum:"):
        choices = kind[5:].split(",")
        text = str(value)
        if text not in choices:
            raise ValueError("value '%s' does not have a value in the enumeration '%s'" % (text, ", ".join(choices)))
        return text
    return str(value)


def validate_params(spec, params: dict) -> dict:
    if spec is ALL_PARAMS:
        return {k: (v[-1] if isinstance(v, list) else v) for k, v in params.items()}
    errors = {}
    result = {}
    for name, value in params.items():
        kind = spec.get(name)
        if kind is None:
            errors[name] = "property is not defined in schema and the schema does not allow additional properties"
            continue
        try:
            result[name] = _check_value(kind.rstrip("!"), value)
        except ValueError as exc:
            errors[name] = str(exc)
    for name, kind in spec.items():
        if kind.endswith("!") and name not in params:
            errors[name] = "property is missing and it is not optional"
    if errors:
        raise param_error(errors)
    return result


# -- small utilities --------------------------------------------------------------------------------

def _digest(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def _fingerprint(name: str) -> str:
    raw = hashlib.sha256(("pvesim-node-" + name).encode("utf-8")).hexdigest().upper()
    return ":".join(raw[i:i + 2] for i in range(0, 64, 2))


def _pid(vmid: int) -> int:
    return 1000 + (vmid * 7919) % 4000000


def _maxdisk(guest) -> int:
    for disk in guest.disks:
        if guest.type == "lxc" and disk["key"] == "rootfs":
            return disk["size"]
        if guest.type == "qemu" and not re.match(r"^(unused|efidisk|tpmstate)", disk["key"]):
            return disk["size"]
    return 0


def _rootfs_used(guest) -> int:
    if guest.type != "lxc":
        return 0
    return int(_maxdisk(guest) * guest.spec["disk_used_fraction"])


def _guest_pressure(guest, as_string: bool) -> dict:
    base = stable_fraction("gpsi", guest.vmid)
    values = {
        "pressurecpusome": round(guest.cpu * 2 + base * 0.2, 2),
        "pressurecpufull": round(guest.cpu + base * 0.1, 2),
        "pressureiosome": round(base * 0.3, 2),
        "pressureiofull": round(base * 0.15, 2),
        "pressurememorysome": 0.0,
        "pressurememoryfull": 0.0,
    }
    if guest.maxmem and guest.mem_running > guest.maxmem * 0.95:
        values["pressurememorysome"] = round((guest.mem_running / guest.maxmem - 0.95) * 100, 2)
        values["pressurememoryfull"] = round(values["pressurememorysome"] / 3, 2)
    if as_string:
        return {k: "%.2f" % v for k, v in values.items()}
    return values


def _traffic(guest, now: float) -> tuple:
    uptime = guest.uptime(now)
    return tuple(rate * uptime for rate in guest.rates)


# -- node proxy ---------------------------------------------------------------------------------------

def check_node_reachable(state, node: str) -> None:
    """What pveproxy does before proxying a /nodes/{node}/... call."""
    if not NODE_NAME_RE.match(node):
        raise param_error({"node": "value does not look like a valid node name"})
    target = state.nodes.get(node)
    if target is None:
        raise ApiError(500, "hostname lookup '%s' failed - failed to get address info for: %s: "
                            "Name or service not known" % (node, node))
    if not target.online:
        raise ApiError(595, "No route to host", empty_body=True)


# -- handlers: access -------------------------------------------------------------------------------

def h_ticket_get(_req: Request):
    return None


def h_domains(_req: Request):
    return [{"realm": "pam", "type": "pam", "comment": "Linux PAM standard authentication"},
            {"realm": "pve", "type": "pve", "comment": "Proxmox VE authentication server"}]


def h_permissions(req: Request):
    userid = req.params.get("userid")
    if userid and userid != req.identity.userid and not req.can("Sys.Audit"):
        raise ApiError(403, "Permission check failed")
    privs = req.identity.privs
    if userid and userid != req.identity.userid:
        user = req.state.auth.users.get(userid)
        privs = user["privs"] if user else frozenset()
    return permissions(privs, req.params.get("path"))


# -- handlers: version, nodes -----------------------------------------------------------------------

def h_version(req: Request):
    state = req.state
    data = {"version": state.version, "release": state.scenario["release"], "repoid": state.scenario["repoid"]}
    console = state.scenario["datacenter"].get("console")
    if console:
        data["console"] = console
    return data


def h_node_version(req: Request):
    state = req.state
    return {"version": state.version, "release": state.scenario["release"], "repoid": state.scenario["repoid"]}


def _node_entry(node, usage: dict, now: float, with_stats: bool) -> dict:
    entry = {"id": "node/%s" % node.name, "node": node.name, "type": "node", "status": node.status}
    if not node.online or not with_stats:
        return entry
    spec = node.spec
    entry.update({
        "level": spec["level"], "uptime": int(now - node.boot_time), "cpu": usage[node.name]["cpu"], "maxcpu": spec["maxcpu"],
        "mem": usage[node.name]["mem"], "maxmem": spec["maxmem"], "disk": spec["rootfs_used"], "maxdisk": spec["rootfs_total"],
    })
    return entry


def h_nodes(req: Request):
    state = req.state
    now = time.time()
    usage = state.node_usage()
    result = []
    for node in state.nodes.values():
        entry = _node_entry(node, usage, now, req.can("Sys.Audit"))
        entry["ssl_fingerprint"] = _fingerprint(node.name)
        result.append(entry)
    return result


def h_node_index(_req: Request):
    return [{"name": name} for name in ("apt", "capabilities", "ceph", "config", "disks", "dns", "firewall", "lxc",
                                        "qemu", "rrddata", "status", "storage", "tasks", "version")]


def h_node_status(req: Request):
    req.require("/nodes/%s" % req.args["node"], "Sys.Audit")
    state = req.state
    node = state.nodes[req.args["node"]]
    spec = node.spec
    usage = state.node_usage()[node.name]
    now = time.time()
    total = spec["maxmem"]
    used = min(total, usage["mem"])
    busy = usage["cpu"] * spec["maxcpu"]
    load = [busy * f for f in (1.0, 1.08, 1.03)]
    kernel = "6.14.8-2-pve" if state.pve9 else "6.8.12-4-pve"
    build = "#1 SMP PREEMPT_DYNAMIC PMX %s (2025-07-22T10:04Z)" % kernel.replace("-pve", "")
    memory = {"total": total, "used": used, "free": max(0, total - used - int(total * 0.05))}
    if state.pve9:
        memory["available"] = total - used
    data = {
        "uptime": int(now - node.boot_time), "idle": 0, "loadavg": ["%.2f" % v for v in load],
        "kversion": "Linux %s %s" % (kernel, build),
        "cpuinfo": {"user_hz": 100, "vendor": "GenuineIntel", "family": "6", "model": spec["cpu_model"], "mhz": "2000.000",
                    "cpus": spec["maxcpu"], "sockets": spec["sockets"], "cores": spec["maxcpu"] // max(1, spec["sockets"]) // 2 or 1,
                    "flags": "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 "
                             "ht syscall nx pdpe1gb rdtscp lm constant_tsc vmx", "hvm": "1"},
        "cpu": usage["cpu"], "wait": round(stable_fraction("wait", node.name) * 0.003, 4),
        "memory": memory, "ksm": {"shared": 0},
        "swap": {"total": spec["swap_total"], "used": 0, "free": spec["swap_total"]},
        "pveversion": "pve-manager/%s/%s" % (state.version, state.scenario["repoid"]),
        "rootfs": {"total": spec["rootfs_total"], "avail": spec["rootfs_total"] - spec["rootfs_used"],
                   "used": spec["rootfs_used"], "free": spec["rootfs_total"] - spec["rootfs_used"]},
    }
    if state.at_least(8, 1, 0):
        data["current-kernel"] = {"sysname": "Linux", "release": kernel, "version": build, "machine": "x86_64"}
        data["boot-info"] = {"mode": "efi", "secureboot": 0}
    return data


def _rrd_rows(state, timeframe: str, cf: str, key: str, current: dict) -> list:
    layout = RRD_LAYOUT_PVE9 if state.pve9 else RRD_LAYOUT_PVE8
    if timeframe not in layout:
        raise param_error({"timeframe": "value '%s' does not have a value in the enumeration '%s'" % (
            timeframe, ", ".join(layout))})
    step, rows = layout[timeframe]
    end = int(time.time()) // step * step
    phase = stable_fraction("rrd", key) * 6.283
    factor = 1.15 if cf == "MAX" else 1.0
    static = {"maxcpu", "memtotal", "swaptotal", "roottotal", "maxmem", "maxdisk"}
    result = []
    for index in range(rows):
        # Gentle deterministic wave around the current value; the newest row equals the current value.
        age = rows - 1 - index
        wave = 1.0 + (0.12 * math.sin(phase + index / 6.0) + 0.06 * (stable_fraction(key, index) - 0.5)) * min(1.0, age)
        row = {"time": end - age * step}
        for name, value in current.items():
            if name in static:
                row[name] = value
            else:
                row[name] = round(max(0.0, value * wave * factor), 6) if isinstance(value, float) else max(0, int(value * wave * factor))
        result.append(row)
    return result


def h_node_rrddata(req: Request):
    req.require("/nodes/%s" % req.args["node"], "Sys.Audit")
    state = req.state
    node = state.nodes[req.args["node"]]
    usage_all = state.node_usage()
    usage = usage_all[node.name]
    spec = node.spec
    busy = usage["cpu"] * spec["maxcpu"]
    current = {
        "loadavg": float(busy), "maxcpu": spec["maxcpu"], "cpu": float(usage["cpu"]), "iowait": 0.001,
        "memtotal": spec["maxmem"], "memused": min(spec["maxmem"], usage["mem"]), "swaptotal": spec["swap_total"],
        "swapused": 0, "roottotal": spec["rootfs_total"], "rootused": spec["rootfs_used"],
        "netin": 20000.0 + stable_fraction("nin", node.name) * 3e6, "netout": 20000.0 + stable_fraction("nout", node.name) * 3e6,
    }
    if state.pve9:
        current["memavailable"] = max(0, spec["maxmem"] - usage["mem"])
        current["arcsize"] = 0
        pressure = state.node_pressure(node.name, usage_all)
        current.update({"pressurecpusome": float(pressure["cpusome"]), "pressureiosome": float(pressure["iosome"]),
                        "pressureiofull": float(pressure["iofull"]), "pressurememorysome": float(pressure["memorysome"]),
                        "pressurememoryfull": float(pressure["memoryfull"])})
    return _rrd_rows(state, req.params.get("timeframe", "hour"), req.params.get("cf", "AVERAGE"), "node:" + node.name, current)


# -- handlers: guests ---------------------------------------------------------------------------------

def _guest_for(req: Request, gtype: str):
    vmid = req.args["vmid"]
    req.require("/vms/%d" % vmid, "VM.Audit")
    return req.state.guest_on(req.args["node"], vmid, gtype)


def _vmstatus(state, guest, now: float, full: bool) -> dict:
    running = guest.running
    netin, netout, diskread, diskwrite = _traffic(guest, now)
    entry = {
        "vmid": guest.vmid, "status": "running" if running else "stopped", "name": guest.name,
        "cpus": guest.maxcpu, "cpu": guest.cpu, "maxmem": guest.maxmem, "mem": guest.mem,
        "maxdisk": _maxdisk(guest), "disk": _rootfs_used(guest), "netin": netin, "netout": netout,
        "uptime": guest.uptime(now),
    }
    if guest.type == "lxc":
        entry["type"] = "lxc"
        entry["swap"] = 0
        entry["maxswap"] = 512 * MIB
        entry["diskread"] = diskread
        entry["diskwrite"] = diskwrite
    elif full or not state.at_least(9, 1, 0):
        # PVE < 9.1 lists zero counters without full=1; 9.1 dropped them from the plain list.
        entry["diskread"] = diskread if full else 0
        entry["diskwrite"] = diskwrite if full else 0
    if running:
        entry["pid"] = _pid(guest.vmid)
    if guest.template:
        entry["template"] = 1
    if guest.lock:
        entry["lock"] = guest.lock
    if guest.tags:
        entry["tags"] = guest.tags
    if guest.type == "qemu" and state.pve9:
        entry["memhost"] = (guest.spec["memhost"] if guest.spec["memhost"] is not None else guest.mem_running) if running else 0
    if state.pve9 and running:
        entry.update(_guest_pressure(guest, as_string=guest.type == "lxc"))
    if guest.type == "qemu" and full:
        entry["qmpstatus"] = guest.status
        if running:
            entry["balloon"] = guest.maxmem
            entry["freemem"] = max(0, guest.maxmem - guest.mem_running)
            entry["ballooninfo"] = {"actual": guest.maxmem, "max_mem": guest.maxmem, "total_mem": guest.maxmem,
                                    "free_mem": max(0, guest.maxmem - guest.mem_running), "last_update": int(now)}
            entry["running-machine"] = "pc-i440fx-9.2+pve1" if state.pve9 else "pc-i440fx-8.1+pve0"
            entry["running-qemu"] = "10.0.2" if state.pve9 else "8.1.5"
            entry["nics"] = {"tap%di0" % guest.vmid: {"netin": netin, "netout": netout}}
            entry["blockstat"] = {"scsi0": {"rd_bytes": diskread, "wr_bytes": diskwrite}}
            entry["proxmox-support"] = {"pbs-dirty-bitmap-migration": True, "query-bitmap-info": True}
    return entry


def _lxc_vmid(state, vmid: int):
    return str(vmid) if state.options["lxc_vmid_string"] else vmid


def h_qemu_list(req: Request):
    return _guest_list(req, "qemu")


def h_lxc_list(req: Request):
    return _guest_list(req, "lxc")


def _guest_list(req: Request, gtype: str):
    state = req.state
    node = req.args["node"]
    now = time.time()
    full = bool(req.params.get("full"))
    result = []
    for guest in state.guests.values():
        if guest.node != node or guest.type != gtype or not req.can("VM.Audit"):
            continue
        entry = _vmstatus(state, guest, now, full)
        if gtype == "lxc":
            entry["vmid"] = _lxc_vmid(state, guest.vmid)
        result.append(entry)
    return result


def _ha_info(state, guest) -> dict:
    res = state.ha_resources.get(guest.sid)
    if res is None:
        return {"managed": 0}
    return {"managed": 1, "state": res["state"]}


def h_guest_status(req: Request):
    gtype = "qemu" if "/qemu/" in req.args["_template"] else "lxc"
    guest = _guest_for(req, gtype)
    entry = _vmstatus(req.state, guest, time.time(), full=True)
    entry["ha"] = _ha_info(req.state, guest)
    if gtype == "qemu":
        entry["agent"] = 1
    else:
        entry["vmid"] = _lxc_vmid(req.state, guest.vmid)
    return entry


def _volume_string(guest, disk: dict) -> str:
    if disk["key"].startswith("unused"):
        return disk["volid"]
    size = disk["size"]
    size_text = "%dG" % (size // GIB) if size % GIB == 0 else "%dM" % (size // MIB)
    if guest.type == "lxc":
        text = "%s,size=%s" % (disk["volid"], size_text)
        if disk["key"].startswith("mp"):
            text = "%s,mp=%s,size=%s" % (disk["volid"], disk["mp"], size_text)
        return text
    extra = "" if disk["replicate"] else ",replicate=0"
    return "%s,iothread=1%s,size=%s" % (disk["volid"], extra, size_text)


def _mac(vmid: int) -> str:
    raw = hashlib.md5(str(vmid).encode("utf-8")).hexdigest().upper()  # nosec - only a stable MAC
    return "BC:24:11:%s:%s:%s" % (raw[0:2], raw[2:4], raw[4:6])


def _guest_config(state, guest) -> dict:
    mem_mib = guest.maxmem // MIB
    if guest.type == "qemu":
        config = {
            "name": guest.name, "cores": guest.spec["cores"], "sockets": guest.spec["sockets"],
            "memory": str(mem_mib) if state.at_least(8, 1, 0) else mem_mib,
            "cpu": "x86-64-v2-AES", "ostype": guest.spec["ostype"], "scsihw": "virtio-scsi-single",
            "boot": "order=scsi0;ide2;net0", "ide2": "none,media=cdrom",
            "net0": "virtio=%s,bridge=vmbr0,firewall=1" % _mac(guest.vmid),
            "onboot": guest.spec["onboot"], "numa": 0,
            "smbios1": "uuid=%s" % hashlib.md5(("uuid%d" % guest.vmid).encode()).hexdigest(),  # nosec - stable id
            "vmgenid": hashlib.md5(("gen%d" % guest.vmid).encode()).hexdigest(),  # nosec - stable id
            "meta": "creation-qemu=9.2.0,ctime=1746000000",
        }
        for key, value in guest.devices.items():
            config[key] = value
    else:
        config = {
            "arch": "amd64", "hostname": guest.name, "cores": guest.maxcpu, "memory": mem_mib, "swap": 512,
            "net0": "name=eth0,bridge=vmbr0,hwaddr=%s,ip=dhcp,type=veth" % _mac(guest.vmid),
            "ostype": guest.spec["ostype"], "unprivileged": 1, "features": "nesting=1", "onboot": guest.spec["onboot"],
        }
    for disk in guest.disks:
        config[disk["key"]] = _volume_string(guest, disk)
    if guest.tags:
        config["tags"] = guest.tags
    if guest.lock:
        config["lock"] = guest.lock
    if guest.template:
        config["template"] = 1
    config.update(guest.spec["config"])
    config["digest"] = _digest(config)
    return config


def h_guest_config(req: Request):
    gtype = "qemu" if "/qemu/" in req.args["_template"] else "lxc"
    guest = _guest_for(req, gtype)
    return _guest_config(req.state, guest)


def h_guest_rrddata(req: Request):
    gtype = "qemu" if "/qemu/" in req.args["_template"] else "lxc"
    guest = _guest_for(req, gtype)
    state = req.state
    current = {"maxcpu": guest.maxcpu, "maxmem": guest.maxmem, "maxdisk": _maxdisk(guest), "disk": _rootfs_used(guest)}
    if guest.running:
        rates = guest.rates
        current.update({"cpu": float(guest.cpu), "mem": guest.mem_running, "netin": float(rates[0]), "netout": float(rates[1]),
                        "diskread": float(rates[2]), "diskwrite": float(rates[3])})
        if state.pve9:
            if guest.type == "qemu":
                current["memhost"] = guest.spec["memhost"] if guest.spec["memhost"] is not None else guest.mem_running
            current.update({k: float(v) for k, v in _guest_pressure(guest, as_string=False).items()})
    return _rrd_rows(state, req.params.get("timeframe", "hour"), req.params.get("cf", "AVERAGE"), "vm:%d" % guest.vmid, current)


def _not_allowed_reasons(state, guest, node: str) -> dict:
    reasons = {}
    unavailable = sorted({d["storage"] for d in guest.disks if not state.storage_on_node(state.storages[d["storage"]], node)})
    if unavailable:
        reasons["unavailable_storages"] = unavailable
    if state.pve9 and state.ha_managed(guest):
        blocking = []
        for rule in state.enabled_rules("node-affinity"):
            if guest.sid in state.rule_resources(rule) and int(rule.get("strict", 0) or 0) \
                    and node not in state.node_priorities(rule["nodes"]):
                blocking.append({"sid": guest.sid, "cause": "node-affinity"})
        for rule in state.enabled_rules("resource-affinity"):
            members = state.rule_resources(rule)
            if guest.sid not in members or rule.get("affinity") != "negative":
                continue
            for sid in members:
                other = state.guests.get(int(sid.split(":", 1)[1]))
                if sid != guest.sid and other is not None and other.node == node:
                    blocking.append({"sid": sid, "cause": "resource-affinity"})
        if blocking:
            reasons["blocking-ha-resources"] = blocking
    return reasons


def _other_nodes(state, guest, keys=None):
    """(node, reasons it may not receive the guest) for every node but the guest's own.

    ``keys`` keeps only those kinds of reason.
    """
    for name in state.nodes:
        if name == guest.node:
            continue
        reasons = _not_allowed_reasons(state, guest, name)
        if keys is not None:
            reasons = {key: value for key, value in reasons.items() if key in keys}
        yield name, reasons


def _dependent_ha(state, guest) -> list:
    result = []
    for rule in state.enabled_rules("resource-affinity"):
        members = state.rule_resources(rule)
        if rule.get("affinity") == "positive" and guest.sid in members:
            result.extend(sid for sid in members if sid != guest.sid and sid not in result)
    return result


def h_qemu_migrate_get(req: Request):
    vmid = req.args["vmid"]
    req.require("/vms/%d" % vmid, "VM.Migrate")
    state = req.state
    guest = state.guest_on(req.args["node"], vmid, "qemu")
    if guest.lock:
        raise ApiError(500, "VM is locked (%s)" % guest.lock)
    data = {"running": 1 if guest.running else 0}
    if not guest.running or state.at_least(8, 4, 0):
        checks = list(_other_nodes(state, guest))
        data["allowed_nodes"] = [name for name, reasons in checks if not reasons]
        # PVE lists every other node under not_allowed_nodes, the usable ones with an empty object.
        data["not_allowed_nodes"] = dict(checks)
    local_disks = []
    for disk in guest.disks:
        if state.storages[disk["storage"]]["shared"]:
            continue
        entry = {"volid": disk["volid"], "drivename": disk["key"], "size": disk["size"], "cdrom": 0, "replicate": disk["replicate"],
                 "shared": 0, "is_unused": 1 if disk["key"].startswith("unused") else 0,
                 "is_attached": 0 if disk["key"].startswith("unused") else 1, "is_vmstate": 0,
                 "is_tpmstate": 1 if disk["key"].startswith("tpmstate") else 0}
        if state.pve9:
            entry["is_cloudinit"] = 0
        local_disks.append(entry)
    data["local_disks"] = local_disks
    data["local_resources"] = local_resources(guest)
    data["mapped-resources"] = mapped_resources(guest)
    if state.at_least(8, 4, 0):
        info = {}
        for key in mapped_resources(guest):
            match = re.search(r"mapping=([^,]+)", str(guest.devices[key]))
            info[key] = {"name": match.group(1) if match else key}
            if key.startswith("hostpci"):
                info[key]["live-migration"] = 0
        data["mapped-resource-info"] = info
    if state.at_least(9, 0, 10):
        data["has-dbus-vmstate"] = 1
    if state.pve9 and state.ha_managed(guest):
        data["dependent-ha-resources"] = _dependent_ha(state, guest)
    return data


def h_lxc_migrate_get(req: Request):
    vmid = req.args["vmid"]
    req.require("/vms/%d" % vmid, "VM.Migrate")
    state = req.state
    guest = state.guest_on(req.args["node"], vmid, "lxc")
    # Unlike qemu, the container precondition only looks at HA rules, not at storage.
    checks = list(_other_nodes(state, guest, keys=("blocking-ha-resources",)))
    data = {"running": 1 if guest.running else 0,
            "allowed-nodes": [name for name, reasons in checks if not reasons],
            "not-allowed-nodes": {name: reasons for name, reasons in checks if reasons}}
    data["dependent-ha-resources"] = _dependent_ha(state, guest) if state.ha_managed(guest) else []
    return data


def h_migrate_post(req: Request):
    gtype = "qemu" if "/qemu/" in req.args["_template"] else "lxc"
    vmid = req.args["vmid"]
    req.require("/vms/%d" % vmid, "VM.Migrate")
    state = req.state
    params = req.params
    if gtype == "qemu" and "with-conntrack-state" in params and not state.pve9:
        raise param_error({"with-conntrack-state": "property is not defined in schema and the schema does not allow "
                                                   "additional properties"})
    if params.get("force") and req.identity.userid != "root@pam":
        raise param_error({"force": "Only root may use this option."})
    for key in ("migration_type", "migration_network"):
        if key in params and req.identity.userid != "root@pam":
            raise param_error({key: "Only root may use this option."})
    return state.request_migration(req.args["node"], vmid, gtype, params, req.identity.userid, req.identity.tokenid)


def h_move_disk(req: Request):
    gtype = "qemu" if "/qemu/" in req.args["_template"] else "lxc"
    return request_move(req.state, req.identity, req.args["node"], req.args["vmid"], gtype, req.params,
                        lambda guest: _guest_config(req.state, guest)["digest"])


def h_replication(req: Request):
    return replication_jobs(req.state, req.identity)


# -- handlers: tasks ----------------------------------------------------------------------------------

def h_tasks(req: Request):
    state = req.state
    node = req.args["node"]
    params = req.params
    source = params.get("source", "archive")
    statusfilter = {s.strip().lower() for s in str(params.get("statusfilter", "")).split(",") if s.strip()}
    selected = []
    for task in reversed(state.tasks):
        if task.node != node:
            continue
        if not req.can("Sys.Audit") and task.user != req.identity.userid:
            continue
        if source == "archive" and task.status == "running":
            continue
        if source == "active" and task.status != "running":
            continue
        if "typefilter" in params and task.type != params["typefilter"]:
            continue
        if "vmid" in params and task.id != str(params["vmid"]):
            continue
        full_user = task.user + ("!" + task.tokenid if task.tokenid else "")
        if "userfilter" in params and str(params["userfilter"]).lower() not in full_user.lower():
            continue
        if "since" in params and task.starttime < params["since"]:
            continue
        if "until" in params and task.starttime > params["until"]:
            continue
        ok = task.status == "stopped" and task.exitstatus == "OK"
        if params.get("errors") and (ok or task.status == "running"):
            continue
        if statusfilter:
            if task.status == "running":
                kind = "unknown"
            elif ok:
                kind = "ok"
            elif str(task.exitstatus).startswith("WARNINGS"):
                kind = "warning"
            else:
                kind = "error"
            if kind not in statusfilter:
                continue
        selected.append(task)
    start = int(params.get("start", 0))
    limit = int(params.get("limit", 50))
    req.extra["total"] = len(selected)
    return [task.list_entry() for task in selected[start:start + limit]]


UPID_RE = re.compile(r"^UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):"
                     r"([^:\s/]+):([^:\s/]*):([^:\s/]+):$")


def _task_for(req: Request):
    upid = req.args["upid"]
    if not UPID_RE.match(upid):
        raise param_error({"upid": "unable to parse worker upid"})
    task = req.state.tasks_by_upid.get(upid)
    if task is None or task.node != req.args["node"]:
        raise param_error({"upid": "no such task"})
    if task.user != req.identity.userid and not req.can("Sys.Audit"):
        raise perm_error("/nodes/%s" % req.args["node"], "Sys.Audit")
    return task


def h_task_status(req: Request):
    return _task_for(req).status_entry()


def h_task_log(req: Request):
    task = _task_for(req)
    lines = task.lines or ["no content"]
    start = int(req.params.get("start", 0))
    limit = int(req.params.get("limit", 50))
    req.extra["total"] = len(lines)
    return [{"n": index + 1, "t": text} for index, text in enumerate(lines) if start <= index < start + limit]


def h_task_index(req: Request):
    _task_for(req)
    return [{"name": "log"}, {"name": "status"}]


# -- handlers: storage ---------------------------------------------------------------------------------

def _storage_config_entry(storage: dict, digest: str) -> dict:
    entry = {"storage": storage["storage"], "type": storage["type"], "content": storage["content"]}
    if storage["path"]:
        entry["path"] = storage["path"]
    entry.update(storage["config"])
    if storage["nodes"]:
        entry["nodes"] = ",".join(storage["nodes"])
    if storage["shared"]:
        entry["shared"] = 1
    if storage["disable"]:
        entry["disable"] = 1
    entry["digest"] = digest
    return entry


def h_storage_config(req: Request):
    state = req.state
    if not req.can("Datastore.Audit"):
        return []
    digest = _digest([s["storage"] for s in state.storages.values()])
    result = []
    for storage in state.storages.values():
        if "type" in req.params and storage["type"] != req.params["type"]:
            continue
        result.append(_storage_config_entry(storage, digest))
    return result


def h_node_storage(req: Request):
    state = req.state
    node = req.args["node"]
    used_map = state.storage_usage()
    params = req.params
    result = []
    for storage in state.storages.values():
        if not req.can("Datastore.Audit"):
            break
        if storage["nodes"] is not None and node not in storage["nodes"]:
            continue
        if "storage" in params and storage["storage"] != params["storage"]:
            continue
        if "content" in params and params["content"] not in storage["content"].split(","):
            continue
        if "target" in params:
            other = params["target"]
            if not storage["shared"] or (storage["nodes"] is not None and other not in storage["nodes"]):
                continue
        enabled = 0 if storage["disable"] else 1
        if params.get("enabled") and not enabled:
            continue
        used = used_map.get((None if storage["shared"] else node, storage["storage"]), 0)
        total = storage["total"]
        entry = {"storage": storage["storage"], "type": storage["type"], "content": storage["content"],
                 "shared": storage["shared"], "enabled": enabled, "active": enabled,
                 "total": total if enabled else 0, "used": used if enabled else 0,
                 "avail": max(0, total - used) if enabled else 0}
        if enabled and total:
            entry["used_fraction"] = used / total
        result.append(entry)
    return result


def h_storage_content(req: Request):
    state = req.state
    node = req.args["node"]
    name = req.args["storage"]
    storage = state.storages.get(name)
    if storage is None:
        raise ApiError(500, "storage '%s' does not exist" % name)
    req.require("/storage/%s" % name, "Datastore.Audit")
    if not state.storage_on_node(storage, node):
        raise ApiError(500, "storage '%s' is not available on node '%s'" % (name, node))
    result = []
    for guest in state.guests.values():
        if not storage["shared"] and guest.node != node:
            continue
        if "vmid" in req.params and guest.vmid != req.params["vmid"]:
            continue
        for disk in guest.disks:
            if disk["storage"] != name:
                continue
            content = "rootdir" if guest.type == "lxc" else "images"
            if "content" in req.params and req.params["content"] != content:
                continue
            entry = {"volid": disk["volid"], "format": "raw", "size": disk["size"], "vmid": guest.vmid,
                     "content": content, "ctime": 1746000000 + guest.vmid}
            base = re.match(r"^[^:]+:(base-\d+-disk-\d+)/", disk["volid"])
            if base:
                entry["parent"] = base.group(1)
            if guest.type == "lxc" and disk["key"] == "rootfs":
                entry["used"] = _rootfs_used(guest)
            result.append(entry)
    return result


# -- handlers: cluster ----------------------------------------------------------------------------------

def h_cluster_status(req: Request):
    req.require("/", "Sys.Audit")
    state = req.state
    quorate = 1 if state.quorate() else 0
    result = []
    if len(state.nodes) > 1:
        result.append({"type": "cluster", "id": "cluster", "name": state.scenario["cluster_name"], "nodes": len(state.nodes),
                       "version": len(state.nodes) + 2, "quorate": quorate})
    first = sorted(state.nodes)[0]
    for node in state.nodes.values():
        spec = node.spec
        result.append({"type": "node", "id": "node/%s" % node.name, "name": node.name, "nodeid": spec["nodeid"],
                       "ip": spec["ip"], "local": 1 if node.name == first else 0, "online": 1 if node.online else 0,
                       "level": spec["level"]})
    return result


def h_cluster_options(req: Request):
    req.require("/", "Sys.Audit")
    state = req.state
    data = dict(state.scenario["datacenter"])
    if state.scenario["crs"]:
        data["crs"] = dict(state.scenario["crs"])
    return data


def _guest_resource(state, guest, now: float, pve9: bool) -> dict:
    node = state.nodes[guest.node]
    entry = {"id": "%s/%d" % (guest.type, guest.vmid), "vmid": guest.vmid, "node": guest.node, "type": guest.type}
    if node.online:
        running = guest.running
        netin, netout, diskread, diskwrite = _traffic(guest, now)
        entry.update({
            "status": guest.status, "name": guest.name, "uptime": guest.uptime(now), "template": guest.template,
            "cpu": guest.cpu, "maxcpu": guest.maxcpu, "mem": guest.mem, "maxmem": guest.maxmem,
        })
        if pve9:
            entry["memhost"] = (guest.spec["memhost"] if guest.spec["memhost"] is not None else guest.mem_running) \
                if running and guest.type == "qemu" else 0
        entry.update({"disk": _rootfs_used(guest), "maxdisk": _maxdisk(guest), "netin": netin, "netout": netout,
                      "diskread": diskread, "diskwrite": diskwrite})
    else:
        entry["status"] = "unknown"
    if guest.tags:
        entry["tags"] = guest.tags
    if guest.lock:
        entry["lock"] = guest.lock
    if guest.pool:
        entry["pool"] = guest.pool
    hastate = state.ha_state(guest)
    if hastate is not None:
        entry["hastate"] = hastate
    return entry


def _storage_resources(state, used_map: dict) -> list:
    result = []
    for storage in state.storages.values():
        for name, node in state.nodes.items():
            if not state.storage_on_node(storage, name):
                continue
            entry = {"id": "storage/%s/%s" % (name, storage["storage"]), "storage": storage["storage"], "node": name,
                     "type": "storage", "plugintype": storage["type"], "shared": storage["shared"],
                     "content": storage["content"]}
            if node.online:
                entry["status"] = "available"
                entry["disk"] = used_map.get((None if storage["shared"] else name, storage["storage"]), 0)
                entry["maxdisk"] = storage["total"]
            else:
                entry["status"] = "unknown"
            result.append(entry)
    return result


def h_cluster_resources(req: Request):
    state = req.state
    rtype = req.params.get("type")
    now = time.time()
    result = []
    if rtype is None and req.can("Pool.Audit"):
        for poolid in sorted(state.pools):
            entry = {"id": "/pool/%s" % poolid, "type": "pool", "pool": poolid}
            members = [g for g in state.guests.values() if g.pool == poolid and g.running and state.nodes[g.node].online]
            entry.update({"uptime": 0, "mem": sum(g.mem for g in members), "maxmem": sum(g.maxmem for g in members),
                          "cpu": sum(g.cpu * g.maxcpu for g in members), "maxcpu": sum(g.maxcpu for g in members)})
            result.append(entry)
    if rtype in (None, "vm") and req.can("VM.Audit"):
        pve9 = state.pve9
        # PVE sorts guests by the vmid as a string.
        for key in sorted(state.guests, key=str):
            result.append(_guest_resource(state, state.guests[key], now, pve9))
    if rtype in (None, "node") and req.can("Sys.Audit"):
        usage = state.node_usage()
        with_hastate = state.at_least(8, 3, 0)
        for node in state.nodes.values():
            entry = _node_entry(node, usage, now, True)
            if node.online:
                entry["cgroup-mode"] = 2
                if with_hastate:
                    entry["hastate"] = state.node_ha_state(node)
            result.append(entry)
    if rtype in (None, "storage") and req.can("Datastore.Audit"):
        result.extend(_storage_resources(state, state.storage_usage()))
    if rtype in (None, "sdn") and req.can("SDN.Audit"):
        for name, node in state.nodes.items():
            if node.online:
                result.append({"id": "sdn/%s/localnetwork" % name, "sdn": "localnetwork", "node": name, "type": "sdn",
                               "status": "ok"})
    return result


def h_cluster_nextid(req: Request):
    state = req.state
    if "vmid" in req.params:
        vmid = req.params["vmid"]
        if vmid in state.guests:
            raise param_error({"vmid": "VM %d already exists" % vmid})
        return str(vmid)
    vmid = 100
    while vmid in state.guests:
        vmid += 1
    return str(vmid)


# -- handlers: HA ------------------------------------------------------------------------------------

def _ha_digest(state) -> str:
    return _digest([state.ha_resources, state.ha_rules, state.ha_groups])


def h_ha_index(req: Request):
    return [{"id": "status"}, {"id": "rules"} if req.state.pve9 else {"id": "groups"}, {"id": "resources"}]


def h_ha_resources(req: Request):
    req.require("/", "Sys.Audit")
    state = req.state
    digest = _ha_digest(state)
    result = []
    for sid in sorted(state.ha_resources):
        res = state.ha_resources[sid]
        if "type" in req.params and res["type"] != req.params["type"]:
            continue
        entry = {"sid": sid, "type": res["type"], "state": res["state"], "digest": digest}
        for key in ("group", "max_restart", "max_relocate", "comment", "failback", "auto-rebalance"):
            if key in res:
                entry[key] = res[key]
        result.append(entry)
    return result


def h_ha_groups(req: Request):
    req.require("/", "Sys.Audit")
    state = req.state
    if state.pve9:
        raise ApiError(500, "cannot index groups: ha groups have been migrated to rules")
    digest = _ha_digest(state)
    result = []
    for group in state.ha_groups:
        entry = {"group": group["group"], "type": "group", "nodes": group["nodes"], "digest": digest}
        for key in ("restricted", "nofailback", "comment"):
            if group.get(key):
                entry[key] = group[key]
        result.append(entry)
    return result


def h_ha_rules(req: Request):
    req.require("/", "Sys.Audit")
    state = req.state
    digest = _ha_digest(state)
    result = []
    for order, rule in enumerate(state.ha_rules, start=1):
        if "type" in req.params and rule["type"] != req.params["type"]:
            continue
        if "resource" in req.params and req.params["resource"] not in state.rule_resources(rule):
            continue
        entry = dict(rule)
        entry["order"] = order
        entry["digest"] = digest
        result.append(entry)
    return result


def _ctime(epoch: float) -> str:
    # Perl's scalar localtime(): day of month padded with a space.
    text = time.strftime("%a %b %d %H:%M:%S %Y", time.localtime(epoch))
    parts = text.split(" ")
    parts[2] = "%2d" % int(parts[2])
    return " ".join(parts)


def _master_node(state) -> str | None:
    online = sorted(name for name, node in state.nodes.items() if node.online)
    return online[0] if online else None


def _ha_nodes_with_services(state) -> set:
    result = set()
    for sid in state.ha_resources:
        guest = state._guest_by_sid(sid)  # pylint: disable=protected-access
        if guest is not None:
            result.add(guest.node)
    return result


def _lrm_state(node, busy: set) -> tuple:
    """(mode, state text used in status strings) for a node's LRM."""
    if not node.online:
        return "active", "old timestamp - dead?"
    if node.ha_maintenance:
        return "maintenance", "maintenance mode"
    return "active", "active" if node.name in busy else "idle"


def h_ha_status_current(req: Request):
    req.require("/", "Sys.Audit")
    state = req.state
    now = time.time()
    master = _master_node(state)
    quorate = 1 if state.quorate() else 0
    result = [{"id": "quorum", "type": "quorum", "node": master or sorted(state.nodes)[0],
               "status": "OK" if quorate else "No quorum on node '%s'!" % (master or sorted(state.nodes)[0]),
               "quorate": quorate}]
    if not state.ha_resources and not any(n.ha_maintenance for n in state.nodes.values()):
        return result
    crs_mode = state.scenario["crs"].get("ha", "basic")
    master_text = "%s (active, %s)" % (master, _ctime(now))
    if crs_mode != "basic":
        master_text += " - %s load CRS" % crs_mode
    result.append({"id": "master", "type": "master", "node": master, "status": master_text, "timestamp": int(now)})
    watchdog = state.at_least(9, 1, 3)
    if watchdog:
        result.append({"id": "fencing", "type": "fencing", "node": master, "status": "armed (CRM watchdog active)",
                       "armed-state": "armed"})
    busy = _ha_nodes_with_services(state)
    for name in sorted(state.nodes):
        node = state.nodes[name]
        _mode, text = _lrm_state(node, busy)
        stamp = now - (120 if not node.online else 1)
        if watchdog and node.online:
            status = "%s (%s, %s, %s)" % (name, text, "watchdog active" if text == "active" else "watchdog standby", _ctime(stamp))
        else:
            status = "%s (%s, %s)" % (name, text, _ctime(stamp))
        result.append({"id": "lrm:%s" % name, "type": "lrm", "node": name, "status": status, "timestamp": int(stamp)})
    for sid in sorted(state.ha_resources):
        res = state.ha_resources[sid]
        guest = state._guest_by_sid(sid)  # pylint: disable=protected-access
        service = state.ha_service[sid]
        crm_state = service["state"]
        entry = {"id": "service:%s" % sid, "type": "service", "sid": sid, "node": guest.node, "crm_state": crm_state,
                 "state": crm_state, "request_state": res["state"],
                 "max_restart": res.get("max_restart", 1), "max_relocate": res.get("max_relocate", 1)}
        if service["target"]:
            entry["status"] = "%s (%s, %s, target %s)" % (sid, guest.node, crm_state, service["target"])
        else:
            entry["status"] = "%s (%s, %s)" % (sid, guest.node, crm_state)
        if "group" in res:
            entry["group"] = res["group"]
        if "comment" in res:
            entry["comment"] = res["comment"]
        if state.pve9:
            entry["failback"] = res.get("failback", 1)
        if state.at_least(9, 2, 0):
            entry["auto-rebalance"] = res.get("auto-rebalance", 1)
        result.append(entry)
    return result


def h_ha_manager_status(req: Request):
    req.require("/", "Sys.Audit")
    state = req.state
    now = int(time.time())
    master = _master_node(state)
    quorate = 1 if state.quorate() else 0
    node_status = {name: state.node_ha_state(node) for name, node in sorted(state.nodes.items())}
    node_request = {name: {"maintenance": 1} for name, node in sorted(state.nodes.items()) if node.ha_maintenance}
    service_status = {}
    for sid in sorted(state.ha_resources):
        guest = state._guest_by_sid(sid)  # pylint: disable=protected-access
        service = state.ha_service[sid]
        entry = {"node": guest.node, "state": service["state"], "uid": service["uid"]}
        if service["target"]:
            entry["target"] = service["target"]
        if service["state"] == "started" and guest.running:
            entry["running"] = 1
        service_status[sid] = entry
    busy = _ha_nodes_with_services(state)
    lrm_status = {}
    for name in sorted(state.nodes):
        node = state.nodes[name]
        if not node.online:
            continue
        mode, text = _lrm_state(node, busy)
        lrm_state = "maintenance" if mode == "maintenance" else ("active" if text == "active" else "wait_for_agent_lock")
        lrm_status[name] = {"state": lrm_state, "mode": mode, "timestamp": now - 1, "results": {}}
    manager = {"master_node": master, "timestamp": now, "node_status": node_status, "service_status": service_status}
    if node_request:
        manager["node_request"] = node_request
    if not state.ha_resources and not node_request:
        return {"manager_status": {}, "quorum": {"node": master, "quorate": quorate}, "lrm_status": lrm_status}
    return {"manager_status": manager, "quorum": {"node": master, "quorate": quorate}, "lrm_status": lrm_status}


# -- handlers: pools ---------------------------------------------------------------------------------

def _pool_members(state, poolid: str, mtype: str | None) -> list:
    now = time.time()
    members = []
    for guest in state.guests.values():
        if guest.pool != poolid or (mtype and mtype != guest.type):
            continue
        entry = _guest_resource(state, guest, now, state.pve9)
        for key in ("tags", "lock", "pool", "hastate"):
            entry.pop(key, None)
        members.append(entry)
    return members


def _pool_entry(state, poolid: str, with_members: bool, mtype: str | None = None) -> dict:
    pool = state.pools[poolid]
    entry = {"poolid": poolid}
    if pool["comment"]:
        entry["comment"] = pool["comment"]
    if with_members:
        entry["members"] = _pool_members(state, poolid, mtype)
    return entry


def h_pools(req: Request):
    state = req.state
    if not req.can("Pool.Audit"):
        return []
    poolid = req.params.get("poolid")
    if poolid is not None:
        if poolid not in state.pools:
            raise ApiError(500, "pool '%s' does not exist" % poolid)
        return [_pool_entry(state, poolid, True, req.params.get("type"))]
    return [_pool_entry(state, poolid, False) for poolid in sorted(state.pools)]


def h_pool(req: Request):
    state = req.state
    poolid = req.args["poolid"]
    req.require("/pool/%s" % poolid, "Pool.Audit")
    if poolid not in state.pools:
        raise ApiError(500, "pool '%s' does not exist" % poolid)
    return _pool_entry(state, poolid, True, req.params.get("type"))


# -- route table ---------------------------------------------------------------------------------------

QEMU = "/nodes/{node}/qemu/{vmid}"
LXC = "/nodes/{node}/lxc/{vmid}"

ROUTES = [
    Route("GET", "/access/ticket", h_ticket_get, {}, unauthenticated=True),
    Route("GET", "/access/domains", h_domains, {}, unauthenticated=True),
    Route("GET", "/access/permissions", h_permissions, {"userid": "string", "path": "string"}),
    Route("GET", "/version", h_version, {}),
    Route("GET", "/nodes", h_nodes, {}),
    Route("GET", "/nodes/{node}", h_node_index, {}),
    Route("GET", "/nodes/{node}/status", h_node_status, {}),
    Route("GET", "/nodes/{node}/version", h_node_version, {}),
    Route("GET", "/nodes/{node}/rrddata", h_node_rrddata, RRD_PARAMS),
    Route("GET", "/nodes/{node}/qemu", h_qemu_list, {"full": "bool"}),
    Route("GET", "/nodes/{node}/lxc", h_lxc_list, {}),
    Route("GET", QEMU + "/config", h_guest_config, {"current": "bool", "snapshot": "string"}),
    Route("GET", QEMU + "/status/current", h_guest_status, {}),
    Route("GET", QEMU + "/rrddata", h_guest_rrddata, RRD_PARAMS),
    Route("GET", QEMU + "/migrate", h_qemu_migrate_get, {"target": "node"}),
    Route("POST", QEMU + "/migrate", h_migrate_post, MIGRATE_QEMU_PARAMS),
    Route("GET", LXC + "/config", h_guest_config, {"current": "bool", "snapshot": "string"}),
    Route("GET", LXC + "/status/current", h_guest_status, {}),
    Route("GET", LXC + "/rrddata", h_guest_rrddata, RRD_PARAMS),
    Route("GET", LXC + "/migrate", h_lxc_migrate_get, {"target": "node"}, min_version=(9, 0, 0)),
    Route("POST", LXC + "/migrate", h_migrate_post, MIGRATE_LXC_PARAMS),
    Route("POST", QEMU + "/move_disk", h_move_disk, MOVE_DISK_PARAMS),
    Route("POST", LXC + "/move_volume", h_move_disk, MOVE_VOLUME_PARAMS),
    Route("GET", "/cluster/replication", h_replication, {}),
    Route("GET", "/nodes/{node}/tasks", h_tasks, TASK_LIST_PARAMS),
    Route("GET", "/nodes/{node}/tasks/{upid}", h_task_index, {}),
    Route("GET", "/nodes/{node}/tasks/{upid}/status", h_task_status, {}),
    Route("GET", "/nodes/{node}/tasks/{upid}/log", h_task_log, {"start": "int", "limit": "int", "download": "bool"}),
    Route("GET", "/nodes/{node}/storage", h_node_storage, {"content": "string", "enabled": "bool", "format": "bool",
                                                           "storage": "string", "target": "node"}),
    Route("GET", "/nodes/{node}/storage/{storage}/content", h_storage_content, {"content": "string", "vmid": "vmid"}),
    Route("GET", "/storage", h_storage_config, {"type": "string"}),
    Route("GET", "/cluster/status", h_cluster_status, {}),
    Route("GET", "/cluster/options", h_cluster_options, {}),
    Route("GET", "/cluster/resources", h_cluster_resources, {"type": "enum:vm,storage,node,sdn"}),
    Route("GET", "/cluster/nextid", h_cluster_nextid, {"vmid": "vmid"}),
    Route("GET", "/cluster/backup", h_cluster_backup, {}),
    Route("GET", "/cluster/tasks", h_cluster_tasks, {}),
    Route("GET", "/cluster/ha", h_ha_index, {}),
    Route("GET", "/cluster/ha/resources", h_ha_resources, {"type": "enum:ct,vm"}),
    Route("GET", "/cluster/ha/groups", h_ha_groups, {}),
    Route("GET", "/cluster/ha/rules", h_ha_rules, {"type": "enum:node-affinity,resource-affinity", "resource": "string"},
          min_version=(9, 0, 0)),
    Route("GET", "/cluster/ha/status/current", h_ha_status_current, {}),
    Route("GET", "/cluster/ha/status/manager_status", h_ha_manager_status, {}),
    Route("GET", "/pools", h_pools, {"poolid": "string", "type": "enum:qemu,lxc,storage"}),
    Route("GET", "/pools/{poolid}", h_pool, {"type": "enum:qemu,lxc,storage"}),
]

PATH_ARG_KINDS = {"vmid": "vmid", "node": "node"}


def find_route(method: str, path: str, vtuple: tuple):
    """Return (route, args) or (None, None) when PVE would answer 501."""
    for route in ROUTES:
        if route.method != method or not route.available(vtuple):
            continue
        match = route.regex.match(path)
        if match:
            return route, match.groupdict()
    return None, None


def call_key(method: str, path: str, vtuple: tuple) -> str:
    """The templated endpoint name used by the call counter."""
    route, _args = find_route(method, path, vtuple)
    if route is not None:
        return "%s %s" % (method, route.template)
    return "%s %s" % (method, path)


def dispatch(state, identity, method: str, route: Route, args: dict, raw_params: dict):
    """Run one handler; returns (data, extra envelope keys).  Raises ApiError."""
    checked_args = {}
    errors = {}
    for name, value in args.items():
        kind = PATH_ARG_KINDS.get(name, "string")
        try:
            checked_args[name] = _check_value(kind, value)
        except ValueError as exc:
            errors[name] = str(exc)
    if errors:
        raise param_error(errors)
    if route.node_proxy:
        check_node_reachable(state, checked_args["node"])
    params = validate_params(route.params, raw_params)
    checked_args["_template"] = route.template
    request = Request(state, identity, method, params, checked_args)
    data = route.handler(request)
    return data, request.extra
