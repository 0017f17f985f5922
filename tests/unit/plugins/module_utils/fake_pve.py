# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small scripted PVE cluster on a virtual clock, for executor and runner tests (a 30-minute
timeout costs nothing), and helpers to build moves and plans for it."""

from __future__ import annotations

from ansible_collections.proxlb.balancer.plugins.module_utils import planner
from ansible_collections.proxlb.balancer.plugins.module_utils.collector import guests_from_resources, nodes_from_resources
from ansible_collections.proxlb.balancer.plugins.module_utils.errors import PveApiError
from ansible_collections.proxlb.balancer.plugins.module_utils.execution_options import ExecOptions
from ansible_collections.proxlb.balancer.plugins.module_utils.executor import execute
from ansible_collections.proxlb.balancer.plugins.module_utils.rebalance_runner import GUEST_TYPES
from ansible_collections.proxlb.balancer.plugins.module_utils.settings import GIB, BalanceSettings
from ansible_collections.proxlb.balancer.plugins.module_utils.snapshot import ClusterSnapshot

EPOCH = 1750000000


class FakePve:
    """Just enough of the PVE API for the executor, on a virtual clock.

    ``duration[vmid]`` seconds per migration (default 5), ``fail[vmid]`` = error text of the
    task, ``ha`` = HA-managed vmids (hamigrate, then qmigrate 3 s later), ``events`` = list of
    (time, callable) run when the clock passes them.
    """

    def __init__(self, version="9.0.3", nodes=("pve1", "pve2", "pve3"), guests=None):
        self.version = version
        self.now = 0.0
        self.calls = 0
        self.requests = []
        self.nodes = {n: dict(status="online", maxmem=64 * GIB, mem=4 * GIB) for n in nodes}
        self.guests = {}
        for vmid, spec in (guests or {}).items():
            entry = dict(type="qemu", status="running", mem=4 * GIB, maxmem=4 * GIB, lock=None, node="pve1")
            entry.update(spec)
            self.guests[vmid] = entry
        self.duration = {}
        self.fail = {}
        self.ha = set()
        self.precondition = {}
        self.tasks = {}
        self.pending_lrm = []
        self.events = []
        self.pid = 0x1000

    # clock
    def clock(self):
        return self.now

    def sleep(self, seconds):
        assert seconds >= 0
        self.now += seconds
        self._advance()

    def _advance(self):
        for when, action in list(self.events):
            if when <= self.now:
                self.events.remove((when, action))
                action(self)
        for when, vmid, target in list(self.pending_lrm):
            if when <= self.now:
                self.pending_lrm.remove((when, vmid, target))
                self._task(self.guests[vmid]["node"], "qmigrate" if self.guests[vmid]["type"] == "qemu" else "vzmigrate",
                           vmid, target, when)
        for task in self.tasks.values():
            if task["status"] == "running" and task["end"] <= self.now:
                task["status"] = "stopped"
                guest = self.guests.get(task["vmid"])
                if task["type"] == "hamigrate":
                    task["exitstatus"] = "OK"
                    self.pending_lrm.append((task["end"] + 2.0, task["vmid"], task["target"]))
                elif task["vmid"] in self.fail:
                    task["exitstatus"] = "migration aborted"
                    task["lines"] += ["2025-06-15 10:00:01 ERROR: migration aborted (duration 00:00:05): %s" % self.fail[task["vmid"]],
                                      "TASK ERROR: migration aborted"]
                    guest["lock"] = None
                else:
                    task["exitstatus"] = "OK"
                    guest["node"] = task["target"]
                    guest["lock"] = None
                    task["lines"] += ["2025-06-15 10:00:05 migration finished successfully", "TASK OK"]

    def _task(self, node, ttype, vmid, target, start):
        self.pid += 1
        upid = "UPID:%s:%08X:%08X:%08X:%s:%d:root@pam:" % (node, self.pid, 0, EPOCH + int(start), ttype, vmid)
        if ttype == "hamigrate":
            end = start + 1.0
        else:
            end = start + self.duration.get(vmid, 5.0)
            self.guests[vmid]["lock"] = "migrate"
        self.tasks[upid] = dict(upid=upid, node=node, type=ttype, vmid=vmid, target=target, start=start, end=end,
                                status="running", exitstatus=None, starttime=EPOCH + int(start),
                                lines=["2025-06-15 10:00:00 starting migration of VM %d to node '%s'" % (vmid, target)])
        return upid

    # resources
    def resources(self):
        items = []
        for name, n in self.nodes.items():
            items.append(dict(type="node", id="node/" + name, node=name, status=n["status"], maxmem=n["maxmem"], mem=n["mem"],
                              maxcpu=16, cpu=0.1))
        for vmid, g in self.guests.items():
            entry = dict(type=g["type"], id="%s/%d" % (g["type"], vmid), vmid=vmid, name="g%d" % vmid, node=g["node"],
                         status=g["status"], maxmem=g["maxmem"], mem=g["mem"] if g["status"] == "running" else 0,
                         maxcpu=2, cpu=0.2)
            if g["lock"]:
                entry["lock"] = g["lock"]
            if vmid in self.ha:
                entry["hastate"] = "started"
            items.append(entry)
        return items

    def snapshot(self):
        resources = self.resources()
        return ClusterSnapshot(pve_version=self.version, nodes=nodes_from_resources(resources),
                               guests=guests_from_resources(resources))

    # API
    def get(self, path, **params):
        self.calls += 1
        self.requests.append(("GET", path, params))
        parts = path.strip("/").split("/")
        if parts == ["cluster", "resources"]:
            return self.resources()
        if parts[0] == "nodes" and parts[2] in ("qemu", "lxc") and parts[4] == "migrate":
            vmid = int(parts[3])
            guest = self.guests[vmid]
            if guest["lock"]:
                raise PveApiError("PVE API error: 500 VM is locked (%s)" % guest["lock"], status=500,
                                  pve_message="VM is locked (%s)" % guest["lock"])
            answer = dict(running=1 if guest["status"] == "running" else 0, local_disks=[], local_resources=[])
            answer.update(self.precondition.get(vmid, {}))
            return answer
        if parts[0] == "nodes" and parts[2] == "tasks" and len(parts) == 5 and parts[4] == "status":
            task = self.tasks[parts[3]]
            if self.nodes[task["node"]]["status"] != "online":
                raise PveApiError("595 No route to host", status=595)
            entry = dict(upid=task["upid"], status=task["status"], type=task["type"])
            if task["status"] == "stopped":
                entry["exitstatus"] = task["exitstatus"]
            return entry
        if parts[0] == "nodes" and parts[2] == "tasks" and len(parts) == 5 and parts[4] == "log":
            lines = self.tasks[parts[3]]["lines"]
            start, limit = params.get("start", 0), params.get("limit", 50)
            return [dict(n=i + 1, t=t) for i, t in enumerate(lines)][start:start + limit]
        if parts[0] == "nodes" and parts[2] == "tasks" and len(parts) == 3:
            found = [dict(upid=t["upid"], type=t["type"], starttime=t["starttime"], status="RUNNING" if t["status"] == "running"
                          else t["exitstatus"]) for t in self.tasks.values()
                     if t["node"] == parts[1] and t["type"] == params.get("typefilter") and t["vmid"] == params.get("vmid")
                     and t["starttime"] >= params.get("since", 0)]
            return sorted(found, key=lambda e: -e["starttime"])
        raise AssertionError("unexpected GET %s" % path)

    def post(self, path, **data):
        self.calls += 1
        self.requests.append(("POST", path, data))
        parts = path.strip("/").split("/")
        vmid = int(parts[3])
        guest = self.guests[vmid]
        if guest["lock"]:
            raise PveApiError("PVE API error: 500 VM is locked (%s)" % guest["lock"], status=500,
                              pve_message="VM is locked (%s)" % guest["lock"])
        ttype = "hamigrate" if vmid in self.ha else ("qmigrate" if parts[2] == "qemu" else "vzmigrate")
        return self._task(parts[1], ttype, vmid, data["target"], self.now)

    def posts(self):
        return [r for r in self.requests if r[0] == "POST"]


def move(vmid, source, target, wave=1, kind="vm", mem_gib=4):
    return planner.Move(vmid=vmid, name="g%d" % vmid, kind=kind, type=GUEST_TYPES[kind], source=source,
                        target=target, reason="balance", mandatory=False, wave=wave, mem_bytes=mem_gib * GIB, running=True)


def plan_of(*waves):
    moves = [m for wave in waves for m in wave]
    return planner.Plan(moves=moves, waves=[list(w) for w in waves])


def run(pve, plan, replan=None, **options):
    return execute(pve, pve.snapshot(), BalanceSettings(), plan, ExecOptions(**options), replan=replan,
                   sleep=pve.sleep, clock=pve.clock)


def by_vmid(report):
    return {o.move.vmid: o for o in report.outcomes}
