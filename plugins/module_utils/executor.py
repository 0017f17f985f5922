# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Executor: run a plan's waves through the PVE API and report what really happened.

For every wave:
1. re-read ``/cluster/resources`` once (not before the first wave: its snapshot is fresh) and
   re-validate the rest of the plan on that picture; when something drifted (a guest moved or got
   locked, a target went away or filled up) or the previous wave did not go as planned, the
   remainder is re-planned through ``replan`` instead of forcing stale moves;
2. for each move, up to ``parallel_migrations`` at a time: ask PVE whether the migration is
   possible (``GET .../migrate?target=``), start it (``POST .../migrate``) and follow its task
   until it ends or ``migration_timeout`` real seconds pass. HA-managed guests first get a
   ``hamigrate`` task; the real ``qmigrate``/``vzmigrate`` is then found in the source node's
   task list and followed too.

A failed migration stops the run after the wave in flight (``on_failure: stop``) or not
(``continue``). At the end one more ``/cluster/resources`` read tells where every guest of the
plan really is (``final_node``): a timed-out or failed migration is never assumed to have moved
its guest.

API calls: one read per wave, one precondition read and one POST per move, task polling, and
the task log of each failed migration (to quote PVE's own error line).

The executor never raises once the first migration has started: problems end up in the report
(``run_report``). PVE's task API is read through ``pve_tasks``, the cluster re-read through
``collector.refreshed``. No Ansible imports; time and sleeping are injected so tests run without
waiting.
"""

from __future__ import annotations

import time

from ansible_collections.proxlb.balancer.plugins.module_utils import planner
from ansible_collections.proxlb.balancer.plugins.module_utils.collector import nodes_from_resources, refreshed
from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ProxLBError, PveApiError
from ansible_collections.proxlb.balancer.plugins.module_utils.pve_api import NODE_PROXY_STATUSES
from ansible_collections.proxlb.balancer.plugins.module_utils.pve_tasks import (
    HA_START_S, LOST_TASK_S, NODE_CHECK_S, POLL_FIRST_S, api_message, migrate_params, migrate_path, parse_upid,
    poll_interval_s, precondition_problem, started_migration_task, task_error, task_log_tail)
from ansible_collections.proxlb.balancer.plugins.module_utils.run_report import (
    FAILED, NOT_STARTED, OK, SKIPPED, ExecutionReport, MoveOutcome, WaveReport, node_loads)

# Reason given to ``replan`` for guests this run already moved (so they do not move twice).
MOVED_IN_THIS_RUN = "moved earlier in this run"


class MigrationInFlight:
    """One started migration being followed (task polling state)."""

    def __init__(self, outcome, upid, started, now):
        self.outcome = outcome
        self.upid = upid
        self.info = parse_upid(upid) or {}
        self.started = started
        self.polls = 0
        self.next_poll = now + POLL_FIRST_S
        self.phase = "task"            # task: follow a UPID; find: look for the real task HA started
        self.waiting_since = None     # HA: when hamigrate ended and the search for the real task began
        self.unreadable_since = None
        self.last_error = None


class PlanExecution:
    """The waves of one plan being carried out: the cluster as last read, what this run learned
    about guests (``immovable``, passed to ``replan``) and the report being written."""

    def __init__(self, client, snapshot, settings, options, replan, sleep, clock):
        self.client = client
        self.snapshot = snapshot
        self.settings = settings
        self.options = options
        self.replan = replan
        self.sleep = sleep
        self.clock = clock
        self.version = snapshot.version
        self.report = ExecutionReport()
        self.immovable = {}
        self.stop_reason = None
        self.offline_nodes = set()
        self.offline_checked_at = None
        self.wave_no = 1               # the wave being prepared or run
        self.notes = {}                # vmid -> note for the next outcome of that guest (re-planned moves)

    # -- the whole run
    def run(self, plan):
        """Every wave of ``plan`` in turn (see the module docstring), then the final read."""
        client, options, report = self.client, self.options, self.report
        calls_at_start = client.calls
        began = self.clock()
        pending = [list(w) for w in plan.waves if w]
        first_wave = min((m.wave for m in pending[0]), default=1) if pending else 1
        wave_no = max(1, first_wave or 1)
        had_trouble = False
        executed = 0
        while pending and self.stop_reason is None:
            if options.max_waves is not None and executed >= options.max_waves:
                report.remaining = pending
                pending = []
                break
            calls_before = client.calls
            wave_began = self.clock()
            self.wave_no = wave_no
            if executed > 0:
                try:
                    self.snapshot = refreshed(self.snapshot, client.get("cluster/resources"))
                except PveApiError as err:
                    self.stop("could not re-read the cluster before wave %d: %s" % (wave_no, err))
                    break
            pending, replanned = self.revalidate(pending, had_trouble)
            if self.stop_reason is not None:
                break
            if not pending:
                if replanned:
                    report.waves.append(WaveReport(wave=wave_no, replanned=True, api_calls=client.calls - calls_before,
                                                   duration_s=self.clock() - wave_began))
                break
            wave = pending.pop(0)
            first = len(report.outcomes)
            self.run_wave(wave, wave_no)
            outcomes = report.outcomes[first:]
            durations = [o.duration_s for o in outcomes if o.duration_s is not None and o.status in (OK, FAILED)]
            report.waves.append(WaveReport(
                wave=wave_no, moves=len(outcomes), replanned=replanned,
                ok=sum(1 for o in outcomes if o.status == OK), failed=sum(1 for o in outcomes if o.status == FAILED),
                skipped=sum(1 for o in outcomes if o.status == SKIPPED),
                not_started=sum(1 for o in outcomes if o.status == NOT_STARTED),
                duration_s=self.clock() - wave_began, longest_s=max(durations or [0.0]),
                api_calls=client.calls - calls_before))
            had_trouble = any(o.status in (SKIPPED, FAILED) for o in outcomes)
            executed += 1
            wave_no += 1
        if self.stop_reason is not None:
            report.stopped = True
            report.stop_reason = self.stop_reason
            for wave in pending:
                for move in wave:
                    report.outcomes.append(MoveOutcome(move=move, wave=wave_no, status=NOT_STARTED))
                wave_no += 1
        self.wave_no = wave_no
        self.read_final_placement()
        report.api_calls = client.calls - calls_at_start
        report.duration_s = self.clock() - began
        return report

    def read_final_placement(self):
        """Where every guest of the report really is now (one read), and the nodes after the run."""
        report = self.report
        if not report.outcomes:
            report.nodes_final = node_loads(self.snapshot, self.settings)
            return
        try:
            final = refreshed(self.snapshot, self.client.get("cluster/resources"))
        except PveApiError as err:
            report.warnings.append("could not read where the guests ended up: %s" % err)
            return
        # Deferred moves (max_waves) that PVE carried out along with this run's migrations are done.
        self.snapshot = final
        report.remaining = [w for w in (self.take_arrived(wave) for wave in report.remaining) if w]
        for outcome in report.outcomes:
            guest = final.guests.get(outcome.move.vmid)
            outcome.final_node = guest.node if guest is not None else None
        report.nodes_final = node_loads(final, self.settings)

    # -- bookkeeping
    def stop(self, reason):
        if self.stop_reason is None:
            self.stop_reason = reason

    def finish(self, outcome, status, error=None):
        outcome.status = status
        outcome.error = error
        vmid = outcome.move.vmid
        if status == OK:
            self.immovable[vmid] = MOVED_IN_THIS_RUN
        elif status == FAILED:
            self.immovable[vmid] = "migration failed in this run: %s" % (error or "unknown error")
            if self.options.on_failure == "stop":
                self.stop("on_failure=stop after the failed migration of %d (%s)" % (vmid, outcome.move.name))
        elif status == SKIPPED:
            self.immovable[vmid] = error or "skipped"

    # -- one wave
    def run_wave(self, moves, wave_no):
        queue = [MoveOutcome(move=m, wave=wave_no, note=self.notes.pop(m.vmid, None)) for m in moves]
        self.report.outcomes.extend(queue)
        active = []
        slots = max(1, min(self.options.parallel_migrations, len(queue)))
        while queue or active:
            while queue and len(active) < slots and self.stop_reason is None:
                started = self.start_migration(queue.pop(0))
                if started is not None:
                    active.append(started)
            if self.stop_reason is not None:
                queue = []      # start nothing new; the outcomes stay not_started
            if not active:
                continue
            now = self.clock()
            due = [m for m in active if m.next_poll <= now]
            if not due:
                self.sleep(max(0.0, min(m.next_poll for m in active) - now))
                continue
            for migration in due:
                if self.poll(migration):
                    active.remove(migration)

    def start_migration(self, outcome):
        """Precondition check and POST; returns a ``MigrationInFlight`` to follow, or None when finished."""
        move = outcome.move
        path = migrate_path(move)
        guest = self.snapshot.guests.get(move.vmid)
        running = guest.running if guest is not None else move.running
        answer = None
        if move.type != "lxc" or self.version >= (9, 0, 0):
            try:
                answer = self.client.get(path, target=move.target)
            except PveApiError as err:
                self.finish(outcome, SKIPPED, "migration check failed: %s" % api_message(err))
                return None
            problem = precondition_problem(answer, move.target, move.kind, self.options.with_local_disks)
            if problem:
                self.finish(outcome, SKIPPED, problem)
                return None
            if isinstance(answer, dict) and "running" in answer:
                running = bool(answer["running"]) and str(answer["running"]) != "0"
        params = migrate_params(move, running, self.version, self.options, answer if isinstance(answer, dict) else None)
        began = self.clock()
        try:
            upid = self.client.post(path, **params)
        except PveApiError as err:
            outcome.duration_s = self.clock() - began
            self.finish(outcome, FAILED, api_message(err))
            return None
        outcome.upid = str(upid)
        return MigrationInFlight(outcome, outcome.upid, began, self.clock())

    def poll(self, migration):
        """One look at a running migration; True when it has ended (outcome set)."""
        outcome = migration.outcome
        now = self.clock()
        elapsed = now - migration.started
        if elapsed > self.options.migration_timeout_s:
            outcome.duration_s = elapsed
            what = ("waiting for HA to start the migration" if migration.phase == "find"
                    else "task %s still running" % migration.upid)
            self.finish(outcome, FAILED, "timed out after %d s (migration_timeout) %s; the guest is not assumed moved,"
                        " see final_node" % (self.options.migration_timeout_s, what))
            return True
        try:
            if migration.phase == "find":
                done = self.find_ha_task(migration, now)
            else:
                done = self.check_task(migration, now)
        except PveApiError as err:
            migration.last_error = api_message(err)
            if migration.unreadable_since is None:
                migration.unreadable_since = now
            node = migration.info.get("node") or outcome.move.source
            if err.status in NODE_PROXY_STATUSES and self.node_offline(node, now):
                # The node running the task left the cluster: the migration cannot complete.
                outcome.duration_s = elapsed
                self.finish(outcome, FAILED, "node %s went offline during the migration (task status: %s); the guest"
                            " is not assumed moved, see final_node" % (node, migration.last_error))
                return True
            if now - migration.unreadable_since > LOST_TASK_S:
                outcome.duration_s = elapsed
                self.finish(outcome, FAILED, "lost track of task %s for %d s: %s; the guest is not assumed moved, see"
                            " final_node" % (migration.upid, LOST_TASK_S, migration.last_error))
                return True
            done = False
        else:
            migration.unreadable_since = None
        if not done:
            migration.polls += 1
            migration.next_poll = self.clock() + poll_interval_s(migration.polls, self.clock() - migration.started)
        return done

    def node_offline(self, node, now):
        """Does the cluster see ``node`` offline? One ``/cluster/resources`` read per NODE_CHECK_S at most."""
        if self.offline_checked_at is None or now - self.offline_checked_at >= NODE_CHECK_S:
            self.offline_checked_at = now
            try:
                nodes = nodes_from_resources(self.client.get("cluster/resources"))
            except PveApiError:
                return False
            self.offline_nodes = {name for name, n in nodes.items() if not n.online}
        return node in self.offline_nodes

    def check_task(self, migration, now):
        """One read of the followed task's status; True when the move has ended (outcome set)."""
        node = migration.info.get("node") or migration.outcome.move.source
        status = self.client.get("nodes/%s/tasks/%s/status" % (node, migration.upid)) or {}
        if status.get("status") != "stopped":
            return False
        outcome = migration.outcome
        exitstatus = str(status.get("exitstatus") or "")
        succeeded = exitstatus == "OK" or exitstatus.startswith("WARNINGS")
        if succeeded and migration.info.get("type") == "hamigrate":
            # The HA stack queued the request; the LRM starts the real migration shortly.
            outcome.ha_upid = migration.upid
            migration.phase = "find"
            migration.waiting_since = now
            migration.polls = 0
            return False
        outcome.duration_s = self.clock() - migration.started
        if succeeded:
            self.finish(outcome, OK)
        else:
            self.finish(outcome, FAILED, task_error(exitstatus, task_log_tail(self.client, node, migration.upid)))
        return True

    def find_ha_task(self, migration, now):
        """After ``hamigrate``: look for the real migration HA started; follow it once found."""
        move = migration.outcome.move
        entry = started_migration_task(self.client, move, migration.info.get("starttime"), migration.upid)
        if entry is not None:
            migration.upid = str(entry["upid"])
            migration.info = parse_upid(migration.upid) or {"node": move.source, "type": entry["type"]}
            migration.outcome.upid = migration.upid
            migration.phase = "task"
            migration.polls = 0
            return self.check_task(migration, now)
        if now - migration.waiting_since > min(HA_START_S, self.options.migration_timeout_s):
            wanted = "vzmigrate" if move.type == "lxc" else "qmigrate"
            migration.outcome.duration_s = self.clock() - migration.started
            self.finish(migration.outcome, FAILED,
                        "HA accepted the request (%s) but started no %s within %d s; the HA stack may have refused the"
                        " target (maintenance, offline, rules) - see final_node" % (migration.outcome.ha_upid, wanted, HA_START_S))
            return True
        return False

    # -- between waves
    def revalidate(self, pending, had_trouble):
        """Check the remaining waves on the current snapshot; re-plan on drift. Returns new waves."""
        pending = [w for w in (self.take_arrived(wave) for wave in pending) if w]
        remainder = [m for wave in pending for m in wave]
        for vmid, guest in self.snapshot.guests.items():
            if guest.lock and any(m.vmid == vmid for m in remainder):
                self.immovable.setdefault(vmid, "locked (%s)" % guest.lock)
        try:
            invalid = planner.validate_moves(self.snapshot, self.settings, remainder)
        except ProxLBError as err:
            self.stop("could not re-check the rest of the plan: %s" % err)
            return pending, False
        if not invalid and not had_trouble:
            return pending, False
        if self.replan is None:
            kept = []
            for wave in pending:
                wave = [m for m in wave if m.vmid not in invalid]
                if wave:
                    kept.append(wave)
            self.drop([m for m in remainder if m.vmid in invalid], invalid, None)
            return kept, bool(invalid)
        try:
            new_plan = self.replan(self.snapshot, dict(self.immovable))
        except ProxLBError as err:
            self.stop("re-planning failed: %s" % err)
            self.drop(remainder, invalid, "not started: re-planning failed")
            return [], True
        self.report.replans += 1
        new_waves = [list(w) for w in new_plan.waves if w]
        planned = {m.vmid: m for wave in new_waves for m in wave}
        for move in remainder:
            replacement = planned.get(move.vmid)
            if replacement is not None and replacement.target != move.target:
                self.notes[move.vmid] = "re-planned: was %s -> %s%s" % (
                    move.source, move.target, (" (%s)" % invalid[move.vmid]) if move.vmid in invalid else "")
        self.drop([m for m in remainder if m.vmid not in planned], invalid, "dropped by re-planning")
        return new_waves, True

    def take_arrived(self, wave):
        """Moves whose guest already sits on the target are done; PVE HA moves guests in positive
        affinity together, so the partner of a migrated guest arrives without a request of its own."""
        left = []
        for move in wave:
            guest = self.snapshot.guests.get(move.vmid)
            if guest is None or guest.node != move.target or guest.lock:
                left.append(move)
                continue
            self.report.outcomes.append(MoveOutcome(
                move=move, wave=self.wave_no, status=OK,
                note="already on %s when its wave came (moved along by PVE, e.g. HA positive affinity)" % move.target))
            self.immovable[move.vmid] = MOVED_IN_THIS_RUN
        return left

    def drop(self, moves, invalid, default_reason):
        """Record ``moves`` as skipped: no longer valid (``invalid`` says why) or ``default_reason``."""
        wave_no = self.wave_no
        for move in moves:
            reason = invalid.get(move.vmid) or default_reason or "no longer valid"
            self.report.outcomes.append(MoveOutcome(move=move, wave=wave_no, status=SKIPPED,
                                                    error="no longer valid: %s" % reason if move.vmid in invalid else reason))


def execute(client, snapshot, settings, plan, options, replan=None, sleep=time.sleep, clock=time.monotonic):
    """Carry out ``plan`` (its ``waves``) on the cluster behind ``client``; see the module docstring.

    ``snapshot`` is the fresh picture the plan was made from. ``replan(fresh_snapshot, immovable)``
    returns a new plan for the remainder when the cluster drifted; without it, moves that are no
    longer valid are skipped and the rest proceeds. Returns an ``ExecutionReport``.
    """
    return PlanExecution(client, snapshot, settings, options, replan, sleep, clock).run(plan)
