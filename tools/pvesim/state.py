"""The simulated cluster: nodes, guests, HA, tasks, migrations and injected faults.

Everything mutable lives in ``ClusterState`` and is guarded by ``ClusterState.lock``.  Timed
behaviour (migration tasks, HA delays, nodes coming back) runs on one ``Scheduler`` thread, so a
reset only has to bump a generation number to make every pending step of the old scenario a no-op.
"""

from __future__ import annotations

import base64
import heapq
import itertools
import random
import threading
import time
import zlib

from .errors import ApiError, param_error
from .scenarios import load_scenario
from .units import GIB, MIB


def stable_fraction(*parts) -> float:
    """A deterministic value in [0, 1) derived from the parts (no global RNG involved)."""
    return (zlib.crc32(":".join(str(p) for p in parts).encode("utf-8")) & 0xFFFFFFFF) / 4294967296.0


def fmt_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return "%02d:%02d:%02d" % (seconds // 3600, (seconds // 60) % 60, seconds % 60)


def fmt_size(value: float) -> str:
    if value >= GIB:
        return "%.1f GiB" % (value / GIB)
    return "%.1f MiB" % (value / MIB)


def log_stamp(epoch: float | None = None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch if epoch is not None else time.time()))


class Scheduler:
    """Runs callbacks at monotonic deadlines on one daemon thread, holding the state lock."""

    def __init__(self, state_lock: threading.RLock):
        self._state_lock = state_lock
        self._cond = threading.Condition()
        self._heap: list = []
        self._seq = itertools.count()
        self._generation = 0
        self._running = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self._cond:
            if self._running:
                return
            self._running = True
        self._thread = threading.Thread(target=self._loop, name="pvesim-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._running = False
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def clear(self) -> None:
        """Forget every pending callback (used on reset)."""
        with self._cond:
            self._generation += 1
            self._heap = []
            self._cond.notify_all()

    def call_later(self, delay: float, func, *args) -> None:
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + max(0.0, delay), next(self._seq), self._generation, func, args))
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._running and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = None if not self._heap else max(0.0, self._heap[0][0] - time.monotonic())
                    self._cond.wait(timeout)
                if not self._running:
                    return
                _due, _seq, generation, func, args = heapq.heappop(self._heap)
            with self._state_lock:
                with self._cond:
                    current = generation == self._generation
                if current:
                    func(*args)


class Faults:
    """Injected failure rates; each kind draws from its own seeded stream so results are reproducible."""

    KEYS = ("migration_failure_rate", "http_500_rate", "latency_s", "seed", "disk_move_failure_rate")

    def __init__(self, **settings):
        unknown = set(settings) - set(self.KEYS)
        if unknown:
            raise ValueError("unknown fault settings: %s" % ", ".join(sorted(unknown)))
        values = {}
        for key in self.KEYS:
            value = settings.get(key)
            try:
                values[key] = float(value) if value is not None else 0.0
            except (TypeError, ValueError) as exc:
                raise ValueError("fault setting %s must be a number" % key) from exc
        for key in ("migration_failure_rate", "http_500_rate", "disk_move_failure_rate"):
            if not 0.0 <= values[key] <= 1.0:
                raise ValueError("%s must be between 0 and 1" % key)
        if values["latency_s"] < 0:
            raise ValueError("latency_s must not be negative")
        self.migration_failure_rate = values["migration_failure_rate"]
        self.http_500_rate = values["http_500_rate"]
        self.latency_s = values["latency_s"]
        self.seed = int(values["seed"])
        self._migration_rng = random.Random("%d:migration" % self.seed)
        self._http_rng = random.Random("%d:http" % self.seed)
        self.disk_move_failure_rate = values["disk_move_failure_rate"]
        self._disk_move_rng = random.Random("%d:disk_move" % self.seed)

    def as_dict(self) -> dict:
        return {"migration_failure_rate": self.migration_failure_rate, "http_500_rate": self.http_500_rate,
                "latency_s": self.latency_s, "seed": self.seed, "disk_move_failure_rate": self.disk_move_failure_rate}

    def migration_fails(self) -> bool:
        if self.migration_failure_rate <= 0:
            return False
        return self._migration_rng.random() < self.migration_failure_rate

    def disk_move_fails(self) -> bool:
        if self.disk_move_failure_rate <= 0:
            return False
        return self._disk_move_rng.random() < self.disk_move_failure_rate

    def http_fails(self) -> bool:
        if self.http_500_rate <= 0:
            return False
        return self._http_rng.random() < self.http_500_rate


class Node:
    def __init__(self, spec: dict, now: float):
        self.spec = spec
        self.name = spec["name"]
        self.status = spec["status"]
        self.ha_maintenance = spec["ha_maintenance"]
        self.boot_time = now - spec["uptime"]
        self.offline_token = 0     # invalidates pending "come back online" timers

    @property
    def online(self) -> bool:
        return self.status == "online"


class Guest:
    def __init__(self, spec: dict, now: float):
        self.spec = spec
        self.vmid = spec["vmid"]
        self.type = spec["type"]
        self.name = spec["name"]
        self.node = spec["node"]
        self.status = spec["status"]
        self.lock = spec["lock"]
        self.tags = spec["tags"]
        self.pool = spec["pool"]
        self.template = spec["template"]
        self.maxmem = spec["maxmem"]
        self.mem_running = spec["mem"]
        self.maxcpu = spec["maxcpu"]
        self.cpu_running = spec["cpu"]
        self.disks = spec["disks"]
        self.devices = spec["devices"]
        # Traffic counters grow with uptime at a per-guest rate (bytes/s), so repeated reads look alive.
        self.rates = tuple(int(stable_fraction(self.vmid, kind) * 400000) + 1000
                           for kind in ("netin", "netout", "diskread", "diskwrite"))
        self.started_at = now - spec["uptime"] if self.status != "stopped" else None
        self.migration: Migration | None = None

    @property
    def running(self) -> bool:
        return self.status in ("running", "paused")

    @property
    def mem(self) -> int:
        return self.mem_running if self.running else 0

    @property
    def cpu(self) -> float:
        return self.cpu_running if self.status == "running" else 0.0

    def uptime(self, now: float) -> int:
        if not self.running or self.started_at is None:
            return 0
        return max(0, int(now - self.started_at))

    @property
    def sid(self) -> str:
        return "%s:%d" % ("vm" if self.type == "qemu" else "ct", self.vmid)


class Task:
    def __init__(self, node: str, pid: int, pstart: int, starttime: int, ttype: str, tid: str, user: str,
                 tokenid: str | None, vmid: int | None, target: str | None):
        self.node = node
        self.pid = pid
        self.pstart = pstart
        self.starttime = starttime
        self.type = ttype
        self.id = tid
        self.user = user
        self.tokenid = tokenid
        self.vmid = vmid
        self.target = target
        self.status = "running"
        self.exitstatus: str | None = None
        self.endtime: int | None = None
        self.lines: list = []

    @property
    def upid(self) -> str:
        user = "%s!%s" % (self.user, self.tokenid) if self.tokenid else self.user
        return "UPID:%s:%08X:%08X:%08X:%s:%s:%s:" % (self.node, self.pid, self.pstart, self.starttime, self.type, self.id, user)

    def log(self, text: str, stamped: bool = True) -> None:
        self.lines.append("%s %s" % (log_stamp(), text) if stamped else text)

    def finish(self, exitstatus: str) -> None:
        self.status = "stopped"
        self.exitstatus = exitstatus
        self.endtime = int(time.time())
        self.lines.append("TASK OK" if exitstatus == "OK" else "TASK ERROR: %s" % exitstatus)

    def status_entry(self) -> dict:
        entry = {"upid": self.upid, "node": self.node, "pid": self.pid, "pstart": self.pstart, "starttime": self.starttime,
                 "type": self.type, "id": self.id, "user": self.user, "status": self.status}
        if self.tokenid:
            entry["tokenid"] = self.tokenid
        if self.status == "stopped":
            entry["exitstatus"] = self.exitstatus
        return entry

    def list_entry(self) -> dict:
        entry = {"upid": self.upid, "node": self.node, "pid": self.pid, "pstart": self.pstart, "starttime": self.starttime,
                 "type": self.type, "id": self.id, "user": self.user}
        if self.tokenid:
            entry["tokenid"] = self.tokenid
        if self.status == "stopped":
            entry["endtime"] = self.endtime
            entry["status"] = self.exitstatus
        else:
            entry["status"] = "RUNNING"
        return entry


class Migration:
    """One running qmigrate/vzmigrate task and what it will do."""

    def __init__(self, task: Task, guest: Guest, source: str, target: str, options: dict):
        self.task = task
        self.guest = guest
        self.source = source
        self.target = target
        self.online = options.get("online", False)
        self.with_local_disks = options.get("with_local_disks", False)
        self.restart = options.get("restart", False)
        self.force = options.get("force", False)
        self.bwlimit_kib = options.get("bwlimit")
        self.ha_sid = options.get("ha_sid")
        self.started = time.time()
        self.duration = 0.0
        self.took_lock = False
        self.finished = False
        self.was_running = guest.running


class ClusterState:
    """All simulated cluster state plus the operations the API and the control interface need."""

    def __init__(self, scenario="demo", speed: float | None = None):
        self.lock = threading.RLock()
        self.scheduler = Scheduler(self.lock)
        self._pid_counter = itertools.count(0x0012A000)
        self.calls_total = 0
        self.calls_by_endpoint: dict = {}
        self.auth_calls = 0
        self.scenario_spec = scenario
        self.chosen_speed: float | None = None
        self.load(scenario, speed)

    # -- lifecycle --------------------------------------------------------------------------------
    def load(self, scenario=None, speed: float | None = None) -> None:
        spec = self.scenario_spec if scenario is None else scenario
        loaded = load_scenario(spec)
        with self.lock:
            self.scheduler.clear()
            self.scenario_spec = spec
            self.scenario = loaded
            self.version = loaded["version"]
            self.vtuple = loaded["version_tuple"]
            self.options = loaded["options"]
            if speed is not None:
                self.chosen_speed = float(speed)
            # A speed once chosen (start, CLI or reset) sticks across later resets that do not name one.
            chosen = self.chosen_speed
            self.speed = max(0.001, float(chosen if chosen is not None else self.options["speed"]))
            now = time.time()
            self.nodes = {spec_["name"]: Node(spec_, now) for spec_ in loaded["nodes"]}
            self.guests = {spec_["vmid"]: Guest(spec_, now) for spec_ in loaded["guests"]}
            self.storages = {s["storage"]: s for s in loaded["storages"]}
            self.pools = {p["poolid"]: p for p in loaded["pools"]}
            self.ha_resources = {r["sid"]: dict(r) for r in loaded["ha"]["resources"]}
            self.ha_groups = [dict(g) for g in loaded["ha"]["groups"]]
            self.ha_rules = [dict(r) for r in loaded["ha"]["rules"]]
            # Live HA service status: state (crm state) and, while moving, the target node.
            self.ha_service = {}
            for sid, res in self.ha_resources.items():
                self.ha_service[sid] = {"state": self._settled_ha_state(res), "target": None,
                                        "uid": self._ha_uid(sid)}
            self.tasks: list = []
            self.tasks_by_upid: dict = {}
            self.faults = Faults()
            self.reset_calls()

    def reset_calls(self) -> None:
        with self.lock:
            self.calls_total = 0
            self.calls_by_endpoint = {}
            self.auth_calls = 0

    def count_call(self, key: str) -> None:
        with self.lock:
            self.calls_total += 1
            self.calls_by_endpoint[key] = self.calls_by_endpoint.get(key, 0) + 1

    def count_auth_call(self) -> None:
        with self.lock:
            self.auth_calls += 1

    def calls(self) -> dict:
        with self.lock:
            return {"total": self.calls_total, "by_endpoint": dict(sorted(self.calls_by_endpoint.items())),
                    "auth": self.auth_calls}

    # -- version checks -----------------------------------------------------------------------------
    @property
    def pve9(self) -> bool:
        return self.vtuple[0] >= 9

    def at_least(self, *version) -> bool:
        return self.vtuple >= tuple(version)

    def scaled(self, seconds: float) -> float:
        return seconds / self.speed

    # -- HA lookups ----------------------------------------------------------------------------------
    @staticmethod
    def _ha_uid(sid: str) -> str:
        # Looks like the base64 uids the CRM hands out; stable per sid.
        raw = zlib.crc32(sid.encode()).to_bytes(4, "big") * 4
        return base64.b64encode(raw).decode("ascii")[:22]

    def _settled_ha_state(self, res: dict) -> str:
        guest = self.guests.get(res["vmid"])
        request = res["state"]
        if request == "ignored":
            return "ignored"
        if request in ("stopped", "disabled"):
            return "stopped"
        return "started" if guest is not None and guest.running else "stopped"

    def ha_managed(self, guest: Guest) -> bool:
        res = self.ha_resources.get(guest.sid)
        return res is not None and res["state"] != "ignored"

    def ha_state(self, guest: Guest) -> str | None:
        res = self.ha_resources.get(guest.sid)
        if res is None:
            return None
        return self.ha_service[guest.sid]["state"]

    def quorate(self) -> bool:
        return sum(1 for node in self.nodes.values() if node.online) * 2 > len(self.nodes)

    def node_ha_state(self, node: Node) -> str:
        if not node.online:
            return "unknown"
        return "maintenance" if node.ha_maintenance else "online"

    def enabled_rules(self, rtype: str) -> list:
        return [r for r in self.ha_rules if r.get("type") == rtype and not int(r.get("disable", 0) or 0)]

    @staticmethod
    def rule_resources(rule: dict) -> list:
        return [s.strip() for s in str(rule.get("resources", "")).split(",") if s.strip()]

    @staticmethod
    def node_priorities(nodes_value: str) -> dict:
        result = {}
        for item in str(nodes_value).split(","):
            item = item.strip()
            if not item:
                continue
            name, _sep, prio = item.partition(":")
            result[name] = int(prio) if prio else 0
        return result

    # -- derived usage ------------------------------------------------------------------------------
    def node_usage(self) -> dict:
        """Per node: memory bytes used and CPU cores busy, derived from the guests on it."""
        mem = {}
        cores = {}
        for name, node in self.nodes.items():
            mem[name] = node.spec["base_mem"]
            cores[name] = node.spec["base_cpu"]
        for guest in self.guests.values():
            if guest.running:
                mem[guest.node] += guest.mem_running
                if guest.status == "running":
                    cores[guest.node] += guest.cpu_running * guest.maxcpu
            migration = guest.migration
            if migration is not None and migration.online and guest.type == "qemu" and guest.running:
                # During a live migration the target already runs the receiving QEMU process.
                mem[migration.target] += guest.mem_running
        result = {}
        for name, node in self.nodes.items():
            maxcpu = node.spec["maxcpu"]
            result[name] = {"mem": int(mem[name]), "cpu": min(1.0, cores[name] / maxcpu) if maxcpu else 0.0}
        return result

    def storage_usage(self) -> dict:
        """(node or None for shared, storage) -> used bytes."""
        used = {}
        for storage in self.storages.values():
            if storage["shared"]:
                used[(None, storage["storage"])] = storage["used"]
            else:
                for name in self.nodes:
                    used[(name, storage["storage"])] = storage["used"]
        for guest in self.guests.values():
            for disk in guest.disks:
                storage = self.storages[disk["storage"]]
                key = (None, disk["storage"]) if storage["shared"] else (guest.node, disk["storage"])
                if key in used:
                    used[key] += disk["size"]
        return used

    def storage_on_node(self, storage: dict, node: str) -> bool:
        return not storage["disable"] and (storage["nodes"] is None or node in storage["nodes"])

    def node_pressure(self, name: str, usage: dict) -> dict:
        node = self.nodes[name]
        given = node.spec["pressure"]
        if given is not None:
            base = {"cpusome": 0.0, "iosome": 0.0, "iofull": 0.0, "memorysome": 0.0, "memoryfull": 0.0}
            base.update({k: float(v) for k, v in given.items()})
            return base
        cpu = usage[name]["cpu"]
        memfrac = usage[name]["mem"] / node.spec["maxmem"] if node.spec["maxmem"] else 0.0
        jitter = stable_fraction("psi", name)
        # Pressure stays near zero until a resource gets tight, like the kernel's avg10 values.
        cpusome = round(max(0.0, cpu - 0.6) * 40 + cpu * 0.5 + jitter * 0.1, 2)
        memorysome = round(max(0.0, memfrac - 0.85) * 60, 2)
        return {"cpusome": cpusome, "iosome": round(0.05 + jitter * 0.3, 2), "iofull": round(0.02 + jitter * 0.1, 2),
                "memorysome": memorysome, "memoryfull": round(memorysome * 0.4, 2)}

    # -- lookup -------------------------------------------------------------------------------------
    def guest_on(self, node: str, vmid: int, gtype: str) -> Guest:
        guest = self.guests.get(vmid)
        if guest is None or guest.node != node or guest.type != gtype:
            kind = "qemu-server" if gtype == "qemu" else "lxc"
            raise ApiError(500, "Configuration file 'nodes/%s/%s/%d.conf' does not exist" % (node, kind, vmid))
        return guest

    # -- tasks --------------------------------------------------------------------------------------
    def new_task(self, node: str, ttype: str, tid: str, user: str, tokenid: str | None = None,
                 vmid: int | None = None, target: str | None = None) -> Task:
        now = time.time()
        node_obj = self.nodes[node]
        pstart = int((now - node_obj.boot_time) * 100) & 0xFFFFFFFF
        task = Task(node, next(self._pid_counter), pstart, int(now), ttype, tid, user, tokenid, vmid, target)
        self.tasks.append(task)
        self.tasks_by_upid[task.upid] = task
        return task

    # -- migration: synchronous checks (the API handler part) -----------------------------------------
    def request_migration(self, node: str, vmid: int, gtype: str, params: dict, user: str, tokenid: str | None) -> str:
        """Run PVE's synchronous migrate checks and start the task; returns the UPID."""
        target = params["target"]
        if not self.quorate():
            raise ApiError(500, "cluster not ready - no quorum?")
        if target == node:
            raise param_error({"target": "target is local node."})
        if target not in self.nodes:
            raise ApiError(500, "no such cluster node '%s'" % target)
        guest = self.guest_on(node, vmid, gtype)
        if gtype == "qemu":
            if guest.lock:
                raise ApiError(500, "VM is locked (%s)" % guest.lock)
            if guest.running and not params.get("online"):
                raise ApiError(500, "can't migrate running VM without --online")
        else:
            if guest.running and not params.get("online") and not params.get("restart"):
                raise ApiError(500, "can't migrate running container without --online or --restart")
        for disk in guest.disks:
            storage = self.storages[disk["storage"]]
            if storage["nodes"] is not None and target not in storage["nodes"] and not params.get("targetstorage") \
                    and not params.get("target-storage"):
                raise ApiError(500, "storage '%s' is not available on node '%s'" % (storage["storage"], target))
        if self.ha_managed(guest):
            return self._start_ha_migration(guest, target, user, tokenid).upid
        options = {
            "online": bool(params.get("online")),
            "with_local_disks": bool(params.get("with-local-disks")),
            "restart": bool(params.get("restart")),
            "force": bool(params.get("force")),
            "bwlimit": params.get("bwlimit"),
        }
        return self._start_migration(guest, target, options, user, tokenid).task.upid

    # -- migration: the task ---------------------------------------------------------------------------
    def _precheck_error(self, guest: Guest, migration: Migration) -> tuple | None:
        """Problems the real migration worker finds in its prepare phase: (log lines, error text)."""
        if guest.type == "lxc":
            if guest.lock:
                return [], "CT is locked (%s)" % guest.lock
            if migration.online and guest.running:
                return [], "lxc live migration is currently not implemented"
        else:
            # Only reachable for HA-started tasks: a lock taken during the LRM delay (direct requests
            # were already refused synchronously).
            if guest.lock:
                return [], "VM is locked (%s)" % guest.lock
            local_res = local_resources(guest)
            if local_res and (guest.running or not migration.force):
                return [], "can't migrate VM which uses local devices: %s" % ", ".join(local_res)
            if guest.running and not migration.with_local_disks:
                local = [d for d in guest.disks if not self.storages[d["storage"]]["shared"]]
                if local:
                    lines = ["found local disk '%s' (attached)" % d["volid"] for d in local]
                    lines += ["can't migrate local disk '%s': can't live migrate attached local disks without "
                              "with-local-disks option" % d["volid"] for d in local]
                    lines.append("ERROR: Problem found while scanning volumes - can't migrate VM - check log")
                    lines.append("aborting phase 1 - cleanup resources")
                    return lines, "Problem found while scanning volumes - can't migrate VM - check log"
        target = self.nodes[migration.target]
        if not target.online:
            ip = target.spec["ip"]
            return ["ssh: connect to host %s port 22: No route to host" % ip], \
                "Can't connect to destination address using public key"
        return None

    def _transfer_bytes(self, guest: Guest, migration: Migration) -> int:
        total = 0
        if guest.type == "qemu" and guest.running and migration.online:
            total += guest.mem_running
        for disk in guest.disks:
            if not self.storages[disk["storage"]]["shared"]:
                total += disk["size"]
        return total

    def _start_migration(self, guest: Guest, target: str, options: dict, user: str, tokenid: str | None) -> Migration:
        ttype = "qmigrate" if guest.type == "qemu" else "vzmigrate"
        source = guest.node
        task = self.new_task(source, ttype, str(guest.vmid), user, tokenid, vmid=guest.vmid, target=target)
        migration = Migration(task, guest, source, target, options)
        kind = "VM" if guest.type == "qemu" else "CT"
        target_ip = self.nodes[target].spec["ip"]
        problem = self._precheck_error(guest, migration)
        if problem is not None:
            lines, error = problem
            if guest.type == "lxc" and guest.running and migration.restart and "locked" not in error \
                    and "live migration" not in error:
                task.log("shutdown CT %d" % guest.vmid)
            task.log("starting migration of %s %d to node '%s' (%s)" % (kind, guest.vmid, target, target_ip))
            for line in lines:
                task.log(line)
            # The worker needs a moment before it gives up (ssh timeout, volume scan).  The guest is not
            # marked as migrating: nothing is transferred and no lock is taken.
            self.scheduler.call_later(self.scaled(0.5), self._fail_precheck, migration, error)
            return migration

        guest.lock = "migrate"
        migration.took_lock = True
        guest.migration = migration
        bandwidth = float(self.options["migration_bandwidth"])
        if migration.bwlimit_kib:
            bandwidth = min(bandwidth, float(migration.bwlimit_kib) * 1024)
        transfer = self._transfer_bytes(guest, migration)
        duration = max(float(self.options["min_migration_s"]), transfer / bandwidth)
        if guest.type == "lxc" and guest.running and migration.restart:
            duration += float(self.options["restart_shutdown_s"])
            task.log("shutdown CT %d" % guest.vmid)
            guest.status = "stopped"
            guest.started_at = None
        migration.duration = duration
        task.log("starting migration of %s %d to node '%s' (%s)" % (kind, guest.vmid, target, target_ip))
        for disk in guest.disks:
            if self.storages[disk["storage"]]["shared"]:
                if guest.type == "lxc":
                    task.log("volume '%s' is on shared storage '%s'" % (disk["volid"], disk["storage"]))
            else:
                task.log("found local disk '%s' (attached)" % disk["volid"])
        if guest.type == "qemu" and guest.running and migration.online:
            task.log("starting VM %d on remote node '%s'" % (guest.vmid, target))
            task.log("start remote tunnel")
            task.log("ssh tunnel ver 1")
            task.log("starting online/live migration on unix:/run/qemu-server/%d.migrate" % guest.vmid)
            task.log("set migration capabilities")
            task.log("migration downtime limit: 100 ms")
            task.log("migration cachesize: %d.0 MiB" % max(64, guest.maxmem // MIB // 8))
            task.log("set migration parameters")
            task.log("start migrate command to unix:/run/qemu-server/%d.migrate" % guest.vmid)
        if self.faults.migration_fails():
            self.scheduler.call_later(self.scaled(duration * 0.5), self._fail_injected, migration)
        else:
            self.scheduler.call_later(self.scaled(duration), self._complete_migration, migration)
        return migration

    def _end_migration(self, migration: Migration, error: str | None, lines: list) -> None:
        if migration.finished:
            return
        migration.finished = True
        guest = migration.guest
        task = migration.task
        for line in lines:
            task.log(line)
        if guest.migration is migration:
            guest.migration = None
        if error is None:
            task.log("migration finished successfully (duration %s)" % fmt_duration(self._sim_elapsed(migration)))
            task.finish("OK")
        else:
            task.log("ERROR: migration aborted (duration %s): %s" % (fmt_duration(self._sim_elapsed(migration)), error))
            task.finish("migration aborted")
        if migration.took_lock and guest.lock == "migrate":
            guest.lock = None
        if migration.ha_sid and migration.ha_sid in self.ha_service:
            service = self.ha_service[migration.ha_sid]
            service["target"] = None
            service["state"] = self._settled_ha_state(self.ha_resources[migration.ha_sid])

    def _sim_elapsed(self, migration: Migration) -> float:
        # Logs report simulated time, so an accelerated run still reads like a real migration.
        return (time.time() - migration.started) * self.speed

    def _fail_precheck(self, migration: Migration, error: str) -> None:
        self._end_migration(migration, error, [])

    def _fail_injected(self, migration: Migration) -> None:
        if migration.finished:
            return
        guest = migration.guest
        lines = []
        if guest.type == "qemu" and guest.running and migration.online:
            done = guest.mem_running // 2
            lines.append("migration active, transferred %s of %s VM-state, %s/s" % (
                fmt_size(done), fmt_size(guest.maxmem), fmt_size(self.options["migration_bandwidth"])))
            lines.append("ERROR: online migrate failure - VM %d qmp command 'query-migrate' failed - got timeout" % guest.vmid)
            lines.append("aborting phase 2 - cleanup resources")
            lines.append("migrate_cancel")
            error = "online migrate failure"
        else:
            lines.append("ERROR: Failed to sync data - storage migration failed")
            lines.append("aborting phase 1 - cleanup resources")
            error = "Failed to sync data - storage migration failed"
        self._restart_after_failed_restart_migration(migration, lines)
        self._end_migration(migration, error, lines)

    def _restart_after_failed_restart_migration(self, migration: Migration, lines: list) -> None:
        guest = migration.guest
        if guest.type == "lxc" and migration.restart and migration.was_running and not guest.running:
            if self.nodes[guest.node].online:
                lines.append("start container on source node")
                guest.status = "running"
                guest.started_at = time.time()

    def _complete_migration(self, migration: Migration) -> None:
        if migration.finished:
            return
        guest = migration.guest
        source = self.nodes[migration.source]
        target = self.nodes[migration.target]
        if not source.online or not target.online:
            # fail_node_migrations normally got there first; this covers a node lost in between.
            self._end_migration(migration, "node '%s' not reachable" % (target.name if not target.online else source.name), [])
            return
        lines = []
        if guest.type == "qemu" and guest.running and migration.online:
            rate = self.options["migration_bandwidth"]
            lines.append("migration active, transferred %s of %s VM-state, %s/s" % (
                fmt_size(guest.mem_running), fmt_size(guest.maxmem), fmt_size(rate)))
            lines.append("average migration speed: %s/s - downtime 38 ms" % fmt_size(rate))
            lines.append("migration status: completed")
        for disk in guest.disks:
            if not self.storages[disk["storage"]]["shared"]:
                lines.append("volume '%s' is '%s' on the target" % (disk["volid"], disk["volid"]))
        if guest.type == "lxc":
            lines.append("start final cleanup")
        guest.node = migration.target
        if guest.type == "qemu" and guest.running and migration.online:
            # A live-migrated VM runs in a fresh QEMU process on the target.
            guest.started_at = time.time()
        if guest.type == "lxc" and migration.restart and migration.was_running:
            lines.append("start container on target node")
            guest.status = "running"
            guest.started_at = time.time()
        self._end_migration(migration, None, lines)

    def fail_node_migrations(self, node: str) -> None:
        """A node went away: every migration from or to it fails now."""
        for guest in list(self.guests.values()):
            migration = guest.migration
            if migration is None or migration.finished:
                continue
            if node in (migration.source, migration.target):
                ip = self.nodes[node].spec["ip"]
                lines = ["ERROR: tunnel replied 'ERR: connection to %s lost' to command 'quit'" % ip]
                self._restart_after_failed_restart_migration(migration, lines)
                self._end_migration(migration, "node '%s' not reachable" % node, lines)

    # -- HA migration -------------------------------------------------------------------------------
    def _ha_blockers(self, guest: Guest, target: str) -> list:
        """Reasons the HA stack refuses a migration (PVE 9 rules / PVE 8 restricted groups)."""
        sid = guest.sid
        blockers = []
        if self.pve9:
            for rule in self.enabled_rules("node-affinity"):
                if sid in self.rule_resources(rule) and int(rule.get("strict", 0) or 0):
                    if target not in self.node_priorities(rule["nodes"]):
                        blockers.append("- resource '%s' on target node '%s' violates node-affinity rule '%s'" % (
                            sid, target, rule["rule"]))
            for rule in self.enabled_rules("resource-affinity"):
                members = self.rule_resources(rule)
                if sid not in members or rule.get("affinity") != "negative":
                    continue
                for other in members:
                    other_guest = self._guest_by_sid(other)
                    if other != sid and other_guest is not None and other_guest.node == target:
                        blockers.append("- resource '%s' on target node '%s' in negative affinity with resource '%s'" % (
                            other, target, sid))
        return blockers

    def _guest_by_sid(self, sid: str) -> Guest | None:
        try:
            return self.guests.get(int(sid.split(":", 1)[1]))
        except (IndexError, ValueError):
            return None

    def _positive_partners(self, guest: Guest) -> list:
        if not self.pve9:
            return []
        partners = []
        for rule in self.enabled_rules("resource-affinity"):
            members = self.rule_resources(rule)
            if rule.get("affinity") == "positive" and guest.sid in members:
                for other in members:
                    other_guest = self._guest_by_sid(other)
                    if other != guest.sid and other_guest is not None and other_guest not in partners \
                            and self.ha_managed(other_guest):
                        partners.append(other_guest)
        return partners

    def _ha_target_allowed_pve8(self, guest: Guest, target: str) -> bool:
        group_name = self.ha_resources[guest.sid].get("group")
        if not group_name:
            return True
        for group in self.ha_groups:
            if group["group"] == group_name and int(group.get("restricted", 0) or 0):
                return target in self.node_priorities(group["nodes"])
        return True

    def _start_ha_migration(self, guest: Guest, target: str, user: str, tokenid: str | None) -> Task:
        task = self.new_task(guest.node, "hamigrate", str(guest.vmid), user, tokenid, vmid=guest.vmid, target=target)
        kind = "VM" if guest.type == "qemu" else "CT"
        command = "migrate" if guest.type == "qemu" else "relocate"
        task.log("Requesting HA %s for %s %d to node %s" % ("migration" if command == "migrate" else "relocation",
                                                            kind, guest.vmid, target), stamped=False)
        blockers = self._ha_blockers(guest, target)
        if blockers:
            task.log("cannot migrate resource '%s' to node '%s':" % (guest.sid, target), stamped=False)
            for line in blockers:
                task.log(line, stamped=False)
            self.scheduler.call_later(self.scaled(self.options["hamigrate_duration_s"]), self._finish_plain_task, task,
                                      "command 'ha-manager %s %s %s' failed: exit code 255" % (command, guest.sid, target))
            return task
        movers = [guest]
        for partner in self._positive_partners(guest):
            if partner.node == guest.node:
                task.log("also migrate resource '%s' in positive affinity with resource '%s' to target node '%s'" % (
                    partner.sid, guest.sid, target), stamped=False)
                movers.append(partner)
        self.scheduler.call_later(self.scaled(self.options["hamigrate_duration_s"]), self._finish_plain_task, task, "OK")
        # The CRM only acts on online (not maintenance) targets and, on PVE 8, targets inside a restricted group.
        target_node = self.nodes[target]
        accepted = target_node.online and not target_node.ha_maintenance
        if not self.pve9 and not self._ha_target_allowed_pve8(guest, target):
            accepted = False
        if accepted:
            for mover in movers:
                service = self.ha_service[mover.sid]
                service["state"] = "migrate" if mover.type == "qemu" else "relocate"
                service["target"] = target
                self.scheduler.call_later(self.scaled(self.options["ha_lrm_delay_s"]), self._lrm_start_migration, mover, target)
        return task

    def _finish_plain_task(self, task: Task, exitstatus: str) -> None:
        if task.status == "running":
            task.finish(exitstatus)

    def _lrm_start_migration(self, guest: Guest, target: str) -> None:
        sid = guest.sid
        service = self.ha_service.get(sid)
        if service is None or service["target"] != target or guest.migration is not None:
            return
        if not self.nodes[guest.node].online:
            service["state"] = self._settled_ha_state(self.ha_resources[sid])
            service["target"] = None
            return
        options = {"online": guest.running, "with_local_disks": True, "force": True, "ha_sid": sid}
        if guest.type == "lxc":
            options = {"restart": guest.running, "ha_sid": sid}
        self._start_migration(guest, target, options, "root@pam", None)

    # -- control operations -------------------------------------------------------------------------
    def require_node(self, name: str) -> Node:
        node = self.nodes.get(name)
        if node is None:
            raise KeyError("no such node '%s'" % name)
        return node

    def set_node_offline(self, name: str, duration_s: float | None = None) -> None:
        with self.lock:
            node = self.require_node(name)
            node.offline_token += 1
            node.status = "offline"
            self.fail_node_migrations(name)
            if duration_s is not None:
                token = node.offline_token
                self.scheduler.call_later(float(duration_s), self._timed_online, name, token, False)

    def _timed_online(self, name: str, token: int, rebooted: bool) -> None:
        node = self.nodes.get(name)
        if node is None or node.offline_token != token:
            return
        self._bring_online(node, rebooted)

    def _bring_online(self, node: Node, rebooted: bool) -> None:
        node.status = "online"
        node.offline_token += 1
        if rebooted:
            now = time.time()
            node.boot_time = now
            for guest in self.guests.values():
                if guest.node == node.name and guest.running:
                    guest.started_at = now

    def set_node_online(self, name: str) -> None:
        with self.lock:
            node = self.require_node(name)
            if not node.online:
                self._bring_online(node, False)

    def reboot_node(self, name: str, duration_s: float) -> None:
        with self.lock:
            node = self.require_node(name)
            node.offline_token += 1
            node.status = "offline"
            self.fail_node_migrations(name)
            self.scheduler.call_later(float(duration_s), self._timed_online, name, node.offline_token, True)

    def set_ha_maintenance(self, name: str, enable: bool) -> None:
        with self.lock:
            self.require_node(name).ha_maintenance = bool(enable)

    def lock_guest(self, vmid: int, lock: str | None) -> None:
        with self.lock:
            guest = self.guests.get(int(vmid))
            if guest is None:
                raise KeyError("no such guest %s" % vmid)
            guest.lock = lock or None

    def set_faults(self, **settings) -> dict:
        faults = Faults(**settings)
        with self.lock:
            self.faults = faults
            return faults.as_dict()

    # -- snapshot for the control API ---------------------------------------------------------------
    def snapshot(self) -> dict:
        with self.lock:
            usage = self.node_usage()
            nodes = {}
            for name, node in self.nodes.items():
                nodes[name] = {"status": node.status, "mem": usage[name]["mem"], "maxmem": node.spec["maxmem"],
                               "cpu": usage[name]["cpu"], "maxcpu": node.spec["maxcpu"],
                               "hastate": self.node_ha_state(node)}
            guests = {}
            for vmid, guest in self.guests.items():
                guests[str(vmid)] = {
                    "vmid": vmid, "name": guest.name, "type": guest.type, "node": guest.node, "status": guest.status,
                    "lock": guest.lock, "mem": guest.mem, "maxmem": guest.maxmem, "maxcpu": guest.maxcpu,
                    "cpu": guest.cpu, "tags": guest.tags, "pool": guest.pool, "template": guest.template,
                    "ha": self.ha_managed(guest), "hastate": self.ha_state(guest),
                    "disks": [{"key": d["key"], "storage": d["storage"], "volid": d["volid"], "size": d["size"]}
                              for d in guest.disks],
                }
            tasks = [{"upid": t.upid, "type": t.type, "vmid": t.vmid, "node": t.node, "target": t.target,
                      "user": t.user if not t.tokenid else "%s!%s" % (t.user, t.tokenid),
                      "status": t.status, "exitstatus": t.exitstatus, "starttime": t.starttime, "endtime": t.endtime}
                     for t in self.tasks]
            storages = {}
            for (node, name), used in sorted(self.storage_usage().items(), key=lambda item: (item[0][1], item[0][0] or "")):
                if node is None or self.storage_on_node(self.storages[name], node):
                    storages["%s/%s" % (node, name) if node else name] = {"used": used, "total": self.storages[name]["total"]}
            return {"scenario": self.scenario["name"], "version": self.version, "speed": self.speed,
                    "faults": self.faults.as_dict(), "nodes": nodes, "guests": guests, "tasks": tasks,
                    "storages": storages}


def local_resources(guest: Guest) -> list:
    """Config keys of passthrough devices that pin a VM to its node (mapped devices do not)."""
    result = []
    for key, value in sorted(guest.devices.items()):
        value = str(value)
        if "mapping=" in value:
            continue
        if key.startswith("usb") and "spice" in value:
            continue
        if key.startswith("serial") and value == "socket":
            continue
        result.append(key)
    return result


def mapped_resources(guest: Guest) -> list:
    return [key for key, value in sorted(guest.devices.items()) if "mapping=" in str(value)]
