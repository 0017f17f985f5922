# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Executor logic without a network: options, polling, PVE answers, and whole runs against a
small scripted cluster that keeps virtual time (so a 30-minute timeout costs nothing)."""

from __future__ import annotations

import math
import os

import pytest

from ansible_collections.proxlb.balancer.plugins.module_utils import executor, planner
from ansible_collections.proxlb.balancer.plugins.module_utils.collector import guests_from_resources, nodes_from_resources
from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ConfigError, PveApiError
from ansible_collections.proxlb.balancer.plugins.module_utils.executor import (
    ExecOptions, execute, migrate_params, moves_from_plan, parse_upid, poll_interval_s, precondition_problem, task_error)
from ansible_collections.proxlb.balancer.plugins.module_utils.settings import GIB, BalanceSettings
from ansible_collections.proxlb.balancer.plugins.module_utils.snapshot import ClusterSnapshot

EPOCH = 1750000000


# -- a scripted cluster -----------------------------------------------------------------------

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
    return planner.Move(vmid=vmid, name="g%d" % vmid, kind=kind, type=executor._GUEST_TYPES[kind], source=source,
                        target=target, reason="balance", mandatory=False, wave=wave, mem_bytes=mem_gib * GIB, running=True)


def plan_of(*waves):
    moves = [m for wave in waves for m in wave]
    return planner.Plan(moves=moves, waves=[list(w) for w in waves])


def run(pve, plan, replan=None, **options):
    return execute(pve, pve.snapshot(), BalanceSettings(), plan, ExecOptions(**options), replan=replan,
                   sleep=pve.sleep, clock=pve.clock)


def by_vmid(report):
    return {o.move.vmid: o for o in report.outcomes}


# -- options ----------------------------------------------------------------------------------

def test_options_defaults_match_the_argument_spec():
    options = ExecOptions.from_params({})
    spec = executor.execution_argument_spec()
    assert options.parallel_migrations == spec["parallel_migrations"]["default"] == 1
    assert options.migration_timeout_s == spec["migration_timeout"]["default"] == 1800
    assert options.on_failure == "stop" and options.max_waves is None
    assert options.with_local_disks and options.with_conntrack_state
    assert options.ct_restart_timeout_s == 180


@pytest.mark.parametrize("key, value", [
    ("parallel_migrations", 0), ("parallel_migrations", -2), ("migration_timeout", 0), ("ct_restart_timeout", 0),
    ("max_waves", 0), ("on_failure", "retry"), ("parallel_migrations", "many"), ("migration_timeout", 1.5),
])
def test_nonsense_options_are_refused_with_the_option_named(key, value):
    with pytest.raises(ConfigError) as err:
        ExecOptions.from_params({key: value})
    assert err.value.option == key


# -- pure helpers -----------------------------------------------------------------------------

def test_poll_interval_grows_caps_and_stays_within_a_tenth_of_elapsed():
    assert poll_interval_s(0, 0.0) == pytest.approx(0.1)
    intervals = [poll_interval_s(n, 1000.0) for n in range(30)]
    assert intervals == sorted(intervals) and intervals[-1] == executor.POLL_MAX_S
    for elapsed in (0.5, 2.0, 7.0, 15.0, 40.0):
        for attempt in range(20):
            assert poll_interval_s(attempt, elapsed) <= max(0.1, 0.1 * elapsed) + 1e-9


def test_parse_upid():
    info = parse_upid("UPID:pve1:0012A3F4:07E1B2C3:66F0A1B2:qmigrate:100:root@pam!lb:")
    assert info == dict(node="pve1", starttime=0x66F0A1B2, type="qmigrate", id="100", user="root@pam!lb")
    assert parse_upid("not a upid") is None


def test_task_error_quotes_the_last_error_line():
    lines = ["2021-02-15 17:57:57 starting migration of VM 100 to node 'pve2'",
             "2021-02-15 17:57:57 ERROR: Failed to sync data - can't migrate VM - check log",
             "2021-02-15 17:57:57 aborting phase 1 - cleanup resources",
             "2021-02-15 17:57:57 ERROR: migration aborted (duration 00:00:01): Failed to sync data - can't migrate VM - check log",
             "TASK ERROR: migration aborted"]
    assert task_error("migration aborted", lines) == \
        "migration aborted (duration 00:00:01): Failed to sync data - can't migrate VM - check log"
    ha = ["Requesting HA migration for VM 100 to node pve3", "cannot migrate resource 'vm:100' to node 'pve3':",
          "- resource 'vm:100' on target node 'pve3' violates node-affinity rule 'pin'", "TASK ERROR: command failed"]
    message = task_error("command 'ha-manager migrate vm:100 pve3' failed: exit code 255", ha)
    assert message.startswith("command 'ha-manager migrate vm:100 pve3' failed") and "node-affinity rule 'pin'" in message
    assert task_error("unexpected status", []) == "unexpected status"


def test_precondition_problems_carry_pves_reasons():
    assert precondition_problem({"running": 1, "local_resources": ["usb0", "hostpci0"]}, "pve2", "vm", True) == \
        "PVE: local resources pin the VM to its node: usb0, hostpci0"
    answer = {"allowed_nodes": ["pve2"], "not_allowed_nodes": {"pve2": {}, "pve3": {
        "unavailable_storages": ["fastpool"], "blocking-ha-resources": [{"sid": "vm:104", "cause": "resource-affinity"}]}}}
    assert precondition_problem(answer, "pve2", "vm", True) is None
    problem = precondition_problem(answer, "pve3", "vm", True)
    assert "fastpool" in problem and "vm:104 (resource-affinity)" in problem
    lxc9 = {"running": 0, "allowed-nodes": ["pve2"], "not-allowed-nodes": {}}
    assert precondition_problem(lxc9, "pve2", "ct", True) is None
    assert "not among the allowed nodes" in precondition_problem({"allowed-nodes": ["pve2"]}, "pve3", "ct", True)
    disks = {"running": 1, "local_disks": [{"volid": "local-lvm:vm-101-disk-0"}]}
    assert precondition_problem(disks, "pve2", "vm", True) is None
    assert "local-lvm:vm-101-disk-0" in precondition_problem(disks, "pve2", "vm", False)
    # PVE 8.0-8.3 leave the node lists out for running VMs: nothing to judge
    assert precondition_problem({"running": 1, "local_disks": [], "local_resources": []}, "pve3", "vm", True) is None


def test_migrate_params_by_guest_kind_state_and_version():
    options = ExecOptions()
    vm = move(100, "pve1", "pve2")
    expected = {"target": "pve2", "online": 1, "with-local-disks": 1, "with-conntrack-state": 1}
    assert migrate_params(vm, True, (9, 0, 3), options) == expected
    # PVE 8 rejects every migration that names with-conntrack-state
    assert "with-conntrack-state" not in migrate_params(vm, True, (8, 4, 1), options)
    assert "with-conntrack-state" not in migrate_params(vm, True, (9, 0, 3), options, {"has-dbus-vmstate": 0})
    assert migrate_params(vm, False, (9, 0, 3), options) == {"target": "pve2", "with-local-disks": 1}
    off = ExecOptions(with_local_disks=False, with_conntrack_state=False)
    assert migrate_params(vm, True, (9, 0, 3), off) == {"target": "pve2", "online": 1}
    ct = move(200, "pve1", "pve2", kind="ct")
    assert migrate_params(ct, True, (9, 0, 3), options) == {"target": "pve2", "restart": 1, "timeout": 180}
    assert migrate_params(ct, False, (8, 4, 1), options) == {"target": "pve2"}


def test_moves_from_plan_keeps_waves_and_drops_what_is_done():
    pve = FakePve(guests={100: {}, 101: {"node": "pve2"}, 102: {}})
    data = {"moves": [dict(vmid=100, name="g100", type="vm", **{"from": "pve1", "to": "pve2"}, wave=1),
                      dict(vmid=101, name="g101", type="vm", **{"from": "pve1", "to": "pve2"}, wave=1),
                      dict(vmid=102, name="g102", type="vm", **{"from": "pve1", "to": "pve3"}, wave=2)]}
    waves = moves_from_plan(data, pve.snapshot())
    assert [[m.vmid for m in w] for w in waves] == [[100], [102]]
    assert waves[1][0].type == "qemu" and waves[1][0].running
    with pytest.raises(ConfigError):
        moves_from_plan({"moves": [{"vmid": 1}]}, pve.snapshot())


# -- whole runs ---------------------------------------------------------------------------------

def test_two_waves_run_in_order_with_parallelism_and_constant_reads():
    pve = FakePve(guests={100: {}, 101: {}, 102: {}})
    pve.duration.update({100: 10.0, 101: 4.0, 102: 6.0})
    report = run(pve, plan_of([move(100, "pve1", "pve2"), move(101, "pve1", "pve3")], [move(102, "pve1", "pve3", 2)]),
                 parallel_migrations=2)
    outcomes = by_vmid(report)
    assert [outcomes[v].status for v in (100, 101, 102)] == ["ok", "ok", "ok"]
    assert {v: outcomes[v].final_node for v in outcomes} == {100: "pve2", 101: "pve3", 102: "pve3"}
    assert report.changed and not report.failed
    # both wave-1 migrations ran at once; wave 2 started after the longer one
    assert report.waves[0].longest_s == pytest.approx(10.0, abs=1.1)
    assert report.duration_s < (10.0 + 6.0) * 1.15
    # per wave: cluster re-read (not before the first), precondition + POST per move; one final read
    reads = [r for r in pve.requests if r[1] == "cluster/resources"]
    assert len(reads) == 2
    assert sum(1 for r in pve.requests if r[1].endswith("/migrate")) == 6
    assert report.api_calls == pve.calls


def test_pve8_never_sends_conntrack_and_containers_restart():
    pve = FakePve(version="8.4.1", guests={100: {}, 200: {"type": "lxc"}})
    report = run(pve, plan_of([move(100, "pve1", "pve2"), move(200, "pve1", "pve3", kind="ct")]), parallel_migrations=2)
    assert not report.failed
    posts = {r[1]: r[2] for r in pve.posts()}
    assert posts["nodes/pve1/qemu/100/migrate"] == {"target": "pve2", "online": 1, "with-local-disks": 1}
    assert posts["nodes/pve1/lxc/200/migrate"] == {"target": "pve3", "restart": 1, "timeout": 180}
    # PVE 8 has no LXC migrate precondition endpoint
    assert not any(r[0] == "GET" and r[1] == "nodes/pve1/lxc/200/migrate" for r in pve.requests)


def test_detection_delay_is_small_relative_to_the_migration():
    for duration in (2.0, 9.0, 45.0, 400.0):
        pve = FakePve(guests={100: {}})
        pve.duration[100] = duration
        report = run(pve, plan_of([move(100, "pve1", "pve2")]))
        measured = report.outcomes[0].duration_s
        assert duration <= measured <= duration + max(0.15, 0.1 * duration) + 1e-6
        # ~10 polls in the first second, then ~ln(T)/ln(1.1) until the cap, then T/cap
        polls = sum(1 for r in pve.requests if r[1].endswith("/status"))
        assert polls <= 12 + math.log(max(duration, 1.0)) / math.log(1.1) + duration / executor.POLL_MAX_S


def test_failure_with_stop_lets_the_wave_finish_and_starts_nothing_new():
    pve = FakePve(guests={100: {}, 101: {}, 102: {}, 103: {}})
    pve.fail[100] = "online migrate failure"
    pve.duration.update({100: 2.0, 101: 8.0})
    plan = plan_of([move(100, "pve1", "pve2"), move(101, "pve1", "pve3"), move(102, "pve1", "pve3")],
                   [move(103, "pve1", "pve2", 2)])
    report = run(pve, plan, parallel_migrations=2)
    outcomes = by_vmid(report)
    assert outcomes[100].status == "failed" and "online migrate failure" in outcomes[100].error
    assert outcomes[101].status == "ok"            # already running: finished
    assert outcomes[102].status == "not_started"   # same wave, not yet started
    assert outcomes[103].status == "not_started"
    assert report.failed and report.stopped and "on_failure=stop" in report.stop_reason
    assert outcomes[100].final_node == "pve1"
    assert len(pve.posts()) == 2
    message = report.failure_message()
    assert "100 (g100) pve1 -> pve2" in message and "not started" in message


def test_failure_with_continue_replans_the_rest_without_the_failed_guest():
    pve = FakePve(guests={100: {}, 101: {}})
    pve.fail[100] = "storage migration failed"
    seen = []

    def replan(snapshot, immovable):
        seen.append(dict(immovable))
        return plan_of([move(101, "pve1", "pve3")])

    report = run(pve, plan_of([move(100, "pve1", "pve2")], [move(101, "pve1", "pve2", 2)]), replan=replan,
                 on_failure="continue")
    outcomes = report.outcomes
    assert [(o.move.vmid, o.move.target, o.status) for o in outcomes] == [(100, "pve2", "failed"), (101, "pve3", "ok")]
    assert outcomes[1].note == "re-planned: was pve1 -> pve2"
    assert 100 in seen[0] and "failed" in seen[0][100]
    assert report.failed and not report.stopped and report.replans == 1


def test_precondition_refusal_skips_without_post_and_replans():
    pve = FakePve(guests={100: {}, 101: {}})
    pve.precondition[100] = {"local_resources": ["hostpci0"]}
    seen = []

    def replan(snapshot, immovable):
        seen.append(dict(immovable))
        return plan_of([move(101, "pve1", "pve2")])

    report = run(pve, plan_of([move(100, "pve1", "pve2")], [move(101, "pve1", "pve2", 2)]), replan=replan)
    outcomes = by_vmid(report)
    assert outcomes[100].status == "skipped" and "hostpci0" in outcomes[100].error
    assert not any(r[1] == "nodes/pve1/qemu/100/migrate" for r in pve.posts())
    assert outcomes[101].status == "ok"
    assert "hostpci0" in seen[0][100]
    assert not report.failed


def test_ha_guest_is_followed_from_hamigrate_to_the_real_migration():
    pve = FakePve(guests={100: {}})
    pve.ha.add(100)
    pve.duration[100] = 7.0
    report = run(pve, plan_of([move(100, "pve1", "pve2")]))
    outcome = report.outcomes[0]
    assert outcome.status == "ok" and outcome.final_node == "pve2"
    assert ":hamigrate:" in outcome.ha_upid and ":qmigrate:" in outcome.upid
    # hamigrate 1 s + LRM 2 s + migration 7 s
    assert outcome.duration_s == pytest.approx(10.0, abs=1.2)
    lists = [r for r in pve.requests if r[1] == "nodes/pve1/tasks"]
    assert lists and all(r[2]["typefilter"] == "qmigrate" and r[2]["source"] == "all" and r[2]["vmid"] == 100 for r in lists)


def test_ha_request_that_never_turns_into_a_migration_fails_in_bounded_time():
    pve = FakePve(guests={100: {}})
    pve.ha.add(100)
    pve.events.append((0.5, lambda p: setattr(p, "pending_lrm", [])))
    pve.events.append((1.5, lambda p: setattr(p, "pending_lrm", [])))
    report = run(pve, plan_of([move(100, "pve1", "pve2")]))
    outcome = report.outcomes[0]
    assert outcome.status == "failed" and "started no qmigrate" in outcome.error
    assert outcome.duration_s < executor.HA_START_S + 10


def test_timeout_is_real_time_and_does_not_assume_the_guest_moved():
    pve = FakePve(guests={100: {}})
    pve.duration[100] = 5000.0
    report = run(pve, plan_of([move(100, "pve1", "pve2")]), migration_timeout_s=60)
    outcome = report.outcomes[0]
    assert outcome.status == "failed" and "timed out after 60 s" in outcome.error
    assert 60 <= outcome.duration_s <= 64
    assert outcome.final_node == "pve1" and not report.changed


def test_drift_between_waves_replans_instead_of_forcing_a_stale_move():
    pve = FakePve(guests={100: {}, 101: {}})
    pve.duration[100] = 5.0
    pve.events.append((2.0, lambda p: p.guests[101].update(lock="backup")))
    seen = []

    def replan(snapshot, immovable):
        seen.append(dict(immovable))
        return plan_of()

    report = run(pve, plan_of([move(100, "pve1", "pve2")], [move(101, "pve1", "pve3", 2)]), replan=replan)
    outcomes = by_vmid(report)
    assert outcomes[101].status == "skipped" and "locked (backup)" in outcomes[101].error
    assert seen and seen[0][101] == "locked (backup)" and seen[0][100] == executor.MOVED_IN_THIS_RUN
    assert [r[1] for r in pve.posts()] == ["nodes/pve1/qemu/100/migrate"]


def test_a_guest_that_arrived_on_its_own_counts_as_moved_without_a_request():
    pve = FakePve(guests={120: {}, 121: {}})
    # HA moves 121 along with 120 (positive affinity) while 120 migrates
    pve.events.append((1.0, lambda p: p.guests[121].update(node="pve2")))
    calls = []

    def replan(snapshot, immovable):
        calls.append(immovable)
        return plan_of()

    report = run(pve, plan_of([move(120, "pve1", "pve2")], [move(121, "pve1", "pve2", 2)]), replan=replan)
    outcome = by_vmid(report)[121]
    assert outcome.status == "ok" and outcome.upid is None and "already on pve2" in outcome.note
    assert outcome.wave == 2 and outcome.final_node == "pve2"
    assert [r[1] for r in pve.posts()] == ["nodes/pve1/qemu/120/migrate"]
    assert calls == [] and report.replans == 0 and not report.failed


def test_without_replan_invalid_moves_are_skipped_and_the_rest_proceeds():
    pve = FakePve(guests={100: {}, 101: {}, 102: {}})
    pve.events.append((1.0, lambda p: p.nodes["pve3"].update(status="offline")))
    report = run(pve, plan_of([move(100, "pve1", "pve2")], [move(101, "pve1", "pve3", 2), move(102, "pve1", "pve2", 2)]))
    outcomes = by_vmid(report)
    assert outcomes[101].status == "skipped" and "pve3" in outcomes[101].error
    assert outcomes[102].status == "ok"


def test_lock_found_at_precondition_time_is_a_skip_with_pves_message():
    pve = FakePve(guests={100: {}})
    snapshot = pve.snapshot()
    pve.guests[100]["lock"] = "backup"      # a backup started after the cluster was read
    report = execute(pve, snapshot, BalanceSettings(), plan_of([move(100, "pve1", "pve2")]), ExecOptions(),
                     sleep=pve.sleep, clock=pve.clock)
    outcome = report.outcomes[0]
    assert outcome.status == "skipped" and "VM is locked (backup)" in outcome.error
    assert not pve.posts() and not report.failed


def test_max_waves_defers_the_rest_with_wave_numbers():
    pve = FakePve(guests={100: {}, 101: {}, 102: {}})
    report = run(pve, plan_of([move(100, "pve1", "pve2")], [move(101, "pve1", "pve3", 2)], [move(102, "pve1", "pve2", 3)]),
                 max_waves=1)
    assert [o.move.vmid for o in report.outcomes] == [100]
    remaining = report.remaining_moves()
    assert [(m["vmid"], m["wave"]) for m in remaining] == [(101, 2), (102, 3)]
    # the deferred part runs later from those dicts, starting at its own wave number
    pve2 = pve
    waves = moves_from_plan({"moves": remaining}, pve2.snapshot())
    later = execute(pve2, pve2.snapshot(), BalanceSettings(), planner.Plan(moves=[], waves=waves), ExecOptions(max_waves=1),
                    sleep=pve2.sleep, clock=pve2.clock)
    assert [(o.move.vmid, o.wave, o.status) for o in later.outcomes] == [(101, 2, "ok")]


def test_source_node_going_offline_fails_the_migration_at_once():
    pve = FakePve(guests={100: {}, 101: {}})
    pve.duration[100] = 30.0
    pve.events.append((3.0, lambda p: p.nodes["pve1"].update(status="offline")))
    report = run(pve, plan_of([move(100, "pve1", "pve2")], [move(101, "pve1", "pve3", 2)]))
    outcome = by_vmid(report)[100]
    assert outcome.status == "failed" and "node pve1 went offline" in outcome.error
    assert outcome.duration_s < 10
    assert report.stopped and by_vmid(report)[101].status == "not_started"


def test_unreadable_task_status_is_given_up_after_a_bound():
    pve = FakePve(guests={100: {}})
    pve.duration[100] = 5000.0
    real_get = pve.get

    def get(path, **params):
        if path.endswith("/status"):
            pve.calls += 1
            raise PveApiError("PVE API error: 500 proxy loop detected", status=500, pve_message="proxy loop detected")
        return real_get(path, **params)

    pve.get = get
    report = run(pve, plan_of([move(100, "pve1", "pve2")]))
    outcome = report.outcomes[0]
    assert outcome.status == "failed" and "lost track" in outcome.error and "proxy loop detected" in outcome.error
    assert executor.LOST_TASK_S <= outcome.duration_s <= executor.LOST_TASK_S + executor.POLL_MAX_S + 0.5


def test_report_dict_has_every_documented_key():
    pve = FakePve(guests={100: {}})
    report = run(pve, plan_of([move(100, "pve1", "pve2")]))
    data = report.to_dict()
    assert set(data) >= {"moves", "waves", "stopped", "stop_reason", "replans", "nodes_final", "api_calls", "duration_s",
                         "progress"}
    entry = data["moves"][0]
    assert set(entry) >= {"vmid", "name", "type", "from", "to", "reason", "wave", "status", "upid", "duration_s", "error",
                          "final_node"}
    assert entry["type"] == "vm" and entry["status"] == "ok" and entry["upid"].startswith("UPID:pve1:")
    assert set(data["nodes_final"]["pve2"]) >= {"status", "load_pct", "guests"}
    assert data["progress"][0].startswith("wave 1  100 g100  pve1 -> pve2  ok")


# -- the rebalance role mirrors the module's options ------------------------------------------

def test_role_variables_mirror_the_module_options_in_defaults_and_argument_specs():
    yaml = pytest.importorskip("yaml")
    from ansible_collections.proxlb.balancer.plugins.module_utils.settings import balance_argument_spec
    role = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "roles", "rebalance")
    with open(os.path.join(role, "defaults", "main.yml")) as handle:
        defaults = yaml.safe_load(handle)
    with open(os.path.join(role, "meta", "argument_specs.yml")) as handle:
        specs = yaml.safe_load(handle)["argument_specs"]["main"]["options"]
    module = balance_argument_spec()
    module.update(executor.execution_argument_spec())
    module = {key: value for key, value in module.items() if key != "max_waves"}   # the role drives waves itself
    assert set(defaults) == set(specs) == {"rebalance_" + key for key in module}
    for key, option in module.items():
        name = "rebalance_" + key
        assert defaults[name] == option.get("default"), name
        assert specs[name].get("default") == option.get("default"), name
        assert specs[name]["type"] == option["type"], name
        assert specs[name].get("choices") == option.get("choices"), name
