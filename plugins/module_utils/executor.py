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

The executor never raises once the first migration has started: problems end up in the report.
No Ansible imports; time and sleeping are injected so tests run without waiting.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional

from ansible_collections.proxlb.balancer.plugins.module_utils import metrics, planner
from ansible_collections.proxlb.balancer.plugins.module_utils.collector import guests_from_resources, nodes_from_resources
from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ConfigError, ProxLBError, PveApiError
from ansible_collections.proxlb.balancer.plugins.module_utils.pve_api import NODE_PROXY_STATUSES

# Move outcomes.
OK = "ok"
FAILED = "failed"
SKIPPED = "skipped"
NOT_STARTED = "not_started"
PLANNED = "planned"        # check mode: the move would run

ON_FAILURE = ("stop", "continue")

# Task polling: start fast, grow, cap; never wait longer than a tenth of the time the task has
# run so far, so a 3-second migration is noticed within ~0.3 s and a 20-minute one costs few calls.
POLL_FIRST_S = 0.1
POLL_GROWTH = 1.5
POLL_MAX_S = 3.0
POLL_ELAPSED_SHARE = 0.1

# How long the task status may stay unreadable before the move is given up; sooner when the
# cluster reports the task's node offline (checked at most every NODE_CHECK_S).
LOST_TASK_S = 120.0
NODE_CHECK_S = 5.0
# How long to wait for the HA stack to start the real migration after ``hamigrate`` ended OK.
# The CRM and LRM work in ~10 s rounds; a target in maintenance or offline never gets one.
HA_START_S = 120.0
# Task log lines read to find PVE's last ``ERROR:`` line of a failed migration.
LOG_TAIL_LINES = 500
LOG_MAX_PAGES = 20

# Reason given to ``replan`` for guests this run already moved (so they do not move twice).
MOVED_IN_THIS_RUN = "moved earlier in this run"

_LOG_STAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} ")
_UPID = re.compile(r"^UPID:([^:]+):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):([^:]*):([^:]*):([^:]*):$")
_GUEST_TYPES = {"vm": "qemu", "ct": "lxc"}


# -- options ----------------------------------------------------------------------------------

def execution_argument_spec():
    """Ansible argument spec of the options that control how a plan is carried out."""
    return dict(
        parallel_migrations=dict(type="int", default=1),
        migration_timeout=dict(type="int", default=1800),
        with_local_disks=dict(type="bool", default=True),
        with_conntrack_state=dict(type="bool", default=True),
        ct_restart_timeout=dict(type="int", default=180),
        on_failure=dict(type="str", default="stop", choices=list(ON_FAILURE)),
        max_waves=dict(type="int"),
    )


@dataclass
class ExecOptions:
    parallel_migrations: int = 1
    migration_timeout_s: int = 1800
    with_local_disks: bool = True
    with_conntrack_state: bool = True
    ct_restart_timeout_s: int = 180
    on_failure: str = "stop"
    max_waves: Optional[int] = None

    @classmethod
    def from_params(cls, params):
        """Validate execution options from a module parameter dict (None means the default)."""
        spec = execution_argument_spec()
        values = {}
        for key, option in spec.items():
            value = params.get(key)
            values[key] = option.get("default") if value is None else value
        if values["on_failure"] not in ON_FAILURE:
            raise ConfigError("on_failure", "'%s' is not one of %s" % (values["on_failure"], ", ".join(ON_FAILURE)))
        max_waves = values["max_waves"]
        return cls(
            parallel_migrations=_whole(values, "parallel_migrations", 1, 1000),
            migration_timeout_s=_whole(values, "migration_timeout", 1, 7 * 24 * 3600),
            with_local_disks=bool(values["with_local_disks"]),
            with_conntrack_state=bool(values["with_conntrack_state"]),
            ct_restart_timeout_s=_whole(values, "ct_restart_timeout", 1, 24 * 3600),
            on_failure=values["on_failure"],
            max_waves=None if max_waves is None else _whole(values, "max_waves", 1, 1000000),
        )


def _whole(values, key, minimum, maximum):
    value = values[key]
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(key, "'%s' is not a whole number" % (value,))
        if number != int(number):
            raise ConfigError(key, "%s is not a whole number" % (value,))
        value = int(number)
    if value < minimum or value > maximum:
        raise ConfigError(key, "%s is out of range; use a value from %d to %d" % (value, minimum, maximum))
    return value


# -- small pure helpers -----------------------------------------------------------------------

def poll_interval_s(attempt, elapsed_s):
    """Seconds to wait before poll number ``attempt`` (0-based) of a task running ``elapsed_s``."""
    grown = POLL_FIRST_S * (POLL_GROWTH ** max(0, attempt))
    share = max(POLL_FIRST_S, POLL_ELAPSED_SHARE * max(0.0, elapsed_s))
    return min(POLL_MAX_S, grown, share)


def parse_upid(upid):
    """``UPID:node:pid:pstart:starttime:type:id:user:`` -> dict(node, starttime, type, id, user) or None."""
    match = _UPID.match(str(upid or ""))
    if not match:
        return None
    return dict(node=match.group(1), starttime=int(match.group(4), 16), type=match.group(5), id=match.group(6),
                user=match.group(7))


def task_error(exitstatus, log_lines):
    """PVE's reason for a failed task: its exit status, completed by the last ``ERROR:`` log line.

    ``log_lines`` are the ``t`` texts of ``GET .../tasks/{upid}/log``. Without an ``ERROR:`` line
    (``hamigrate`` failures list the blocking HA rules instead) the last two lines are used.
    """
    status = str(exitstatus or "unknown error").strip()
    texts = [_LOG_STAMP.sub("", str(line)).strip() for line in log_lines or []]
    texts = [t for t in texts if t and not t.startswith("TASK ") and t != "no content"]
    detail = None
    for text in reversed(texts):
        if "ERROR:" in text:
            detail = text[text.index("ERROR:") + len("ERROR:"):].strip()
            break
    if detail is None and texts:
        detail = " ".join(texts[-2:])
    if not detail or detail == status:
        return status
    if detail.startswith(status):
        return detail
    return "%s: %s" % (status, detail)


def precondition_problem(answer, target, kind, with_local_disks):
    """Why PVE's migrate precondition answer rules out a move to ``target`` (None if it does not).

    ``answer`` is ``GET /nodes/{node}/qemu/{vmid}/migrate?target=`` (underscore keys) or, on
    PVE 9, ``GET /nodes/{node}/lxc/{vmid}/migrate`` (dash keys).
    """
    if not isinstance(answer, dict):
        return None
    local_resources = answer.get("local_resources") or []
    if local_resources:
        return "PVE: local resources pin the VM to its node: %s" % ", ".join(str(r) for r in local_resources)
    not_allowed = answer.get("not_allowed_nodes")
    if not_allowed is None:
        not_allowed = answer.get("not-allowed-nodes")
    blocked = (not_allowed or {}).get(target) if isinstance(not_allowed, dict) else None
    if blocked:
        parts = []
        for key, label in (("unavailable_storages", "storages not available there"),
                           ("unavailable-storages", "storages not available there"),
                           ("unavailable-resources", "mapped resources without a mapping there"),
                           ("blocking-ha-resources", "blocked by HA rules")):
            values = blocked.get(key) or []
            if key == "blocking-ha-resources":
                values = ["%s (%s)" % (v.get("sid"), v.get("cause")) if isinstance(v, dict) else str(v) for v in values]
            if values:
                parts.append("%s: %s" % (label, ", ".join(str(v) for v in values)))
        if not parts:
            parts.append(", ".join("%s: %s" % (k, v) for k, v in sorted(blocked.items())))
        return "PVE: target %s not allowed (%s)" % (target, "; ".join(parts))
    allowed = answer.get("allowed_nodes")
    if allowed is None:
        allowed = answer.get("allowed-nodes")
    if isinstance(allowed, list) and target not in allowed and not isinstance(not_allowed, dict):
        return "PVE: target %s is not among the allowed nodes (%s)" % (target, ", ".join(allowed) or "none")
    if kind == "vm" and not with_local_disks:
        disks = [d.get("volid", "?") for d in answer.get("local_disks") or [] if isinstance(d, dict)]
        if disks:
            return "local disks (%s) and with_local_disks is false" % ", ".join(disks)
    return None


def migrate_params(move, running, pve_version, options, precondition=None):
    """Parameters of ``POST /nodes/{source}/{qemu|lxc}/{vmid}/migrate`` for one move."""
    params = {"target": move.target}
    if move.type == "lxc":
        if running:
            # Containers cannot live-migrate: stop, move, start on the target.
            params["restart"] = 1
            params["timeout"] = options.ct_restart_timeout_s
        return params
    if running:
        params["online"] = 1
        # with-conntrack-state exists from PVE 9 on; PVE 8 rejects the whole call with it.
        supported = pve_version[0] >= 9 and (precondition or {}).get("has-dbus-vmstate", 1) not in (0, False, "0")
        if options.with_conntrack_state and supported:
            params["with-conntrack-state"] = 1
    if options.with_local_disks:
        params["with-local-disks"] = 1
    return params


def _api_message(err):
    """PVE's own text of an API error (reason phrase) when there is one, else the whole message."""
    details = getattr(err, "details", {}) or {}
    return str(details.get("pve_message") or err).strip()


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


def node_loads(snapshot, settings):
    """Per node: status, guests and the balanced load in percent (as the plan reports it)."""
    model = metrics.Model(snapshot, settings)
    loads = {}
    for name in model.names:
        node = snapshot.nodes[name]
        guests = snapshot.guests_on(name)
        loads[name] = dict(status=node.status, guests=len(guests), running=sum(1 for g in guests if g.running),
                           load_pct=round(model.pct(model.index[name]), 2), mem_bytes=node.mem_bytes,
                           maxmem_bytes=node.maxmem_bytes)
    return loads


def moves_from_plan(plan_data, snapshot):
    """Rebuild the waves of a plan returned earlier (``Plan.to_dict()`` or ``remaining``).

    Moves whose guest already sits on its target are done and dropped; the rest keep their wave
    numbers. Returns a list of waves (lists of ``planner.Move``), validated later like any plan.
    """
    if not isinstance(plan_data, dict) or not isinstance(plan_data.get("moves"), list):
        raise ConfigError("plan", "expected a plan as returned by proxlb_plan or proxlb_rebalance (a dict with 'moves')")
    by_wave = {}
    for index, item in enumerate(plan_data["moves"]):
        where = "plan.moves[%d]" % index
        if not isinstance(item, dict):
            raise ConfigError(where, "expected a move with vmid, from, to and wave")
        try:
            vmid = int(item["vmid"])
            source, target = str(item["from"]), str(item["to"])
        except (KeyError, TypeError, ValueError):
            raise ConfigError(where, "needs vmid, from and to, got %r" % (item,))
        guest = snapshot.guests.get(vmid)
        if guest is not None and guest.node == target:
            continue
        kind = str(item.get("type") or (guest.kind if guest else "vm"))
        move = planner.Move(
            vmid=vmid, name=str(item.get("name") or (guest.name if guest else vmid)), kind=kind,
            type=guest.type if guest else _GUEST_TYPES.get(kind, "qemu"), source=source, target=target,
            reason=str(item.get("reason") or "balance"), mandatory=bool(item.get("mandatory")),
            wave=int(item.get("wave") or 1), mem_bytes=int(item.get("mem_bytes") or 0),
            running=bool(guest and guest.running))
        by_wave.setdefault(move.wave, []).append(move)
    return [by_wave[w] for w in sorted(by_wave)]


# -- the report -------------------------------------------------------------------------------

@dataclass
class MoveOutcome:
    move: object
    wave: int
    status: str = NOT_STARTED
    upid: Optional[str] = None
    ha_upid: Optional[str] = None
    duration_s: Optional[float] = None
    error: Optional[str] = None
    final_node: Optional[str] = None
    note: Optional[str] = None

    def to_dict(self):
        data = self.move.to_dict()
        data.update(wave=self.wave, status=self.status, upid=self.upid, ha_upid=self.ha_upid,
                    duration_s=None if self.duration_s is None else round(self.duration_s, 2),
                    error=self.error, final_node=self.final_node, note=self.note)
        return data

    def line(self):
        """One progress line: ``wave 1  101 web1  pve1 -> pve2  ok  4.2 s``."""
        move = self.move
        text = "wave %d  %d %s  %s -> %s  %s" % (self.wave, move.vmid, move.name, move.source, move.target, self.status)
        if self.duration_s is not None:
            text += "  %.1f s" % self.duration_s
        if self.final_node and self.final_node != move.target and self.status != NOT_STARTED:
            text += "  (now on %s)" % self.final_node
        if self.error or self.note:
            text += "  - %s" % (self.error or self.note)
        return text


@dataclass
class WaveReport:
    wave: int
    moves: int = 0
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    not_started: int = 0
    replanned: bool = False
    duration_s: float = 0.0
    longest_s: float = 0.0          # longest migration of the wave
    api_calls: int = 0

    def to_dict(self):
        data = dict(self.__dict__)
        data["duration_s"] = round(self.duration_s, 2)
        data["longest_s"] = round(self.longest_s, 2)
        return data


@dataclass
class ExecutionReport:
    outcomes: List[MoveOutcome] = field(default_factory=list)
    waves: List[WaveReport] = field(default_factory=list)
    remaining: List[List[object]] = field(default_factory=list)   # waves deferred by max_waves
    stopped: bool = False
    stop_reason: Optional[str] = None
    replans: int = 0
    nodes_final: Dict[str, dict] = field(default_factory=dict)
    warnings: List[str] = field(default_factory=list)
    api_calls: int = 0
    duration_s: float = 0.0

    @property
    def failed_moves(self):
        return [o for o in self.outcomes if o.status == FAILED]

    @property
    def changed(self):
        """True when a guest of the plan is no longer where it was (what really happened)."""
        for o in self.outcomes:
            if o.final_node is not None and o.final_node != o.move.source:
                return True
            if o.final_node is None and o.status == OK:
                return True
        return False

    @property
    def failed(self):
        return bool(self.failed_moves) or self.stopped

    def remaining_moves(self):
        moves = []
        last = max([w.wave for w in self.waves] + [o.wave for o in self.outcomes] + [0])
        for index, wave in enumerate(self.remaining):
            number = last + index + 1
            for move in wave:
                data = move.to_dict()
                data["wave"] = number
                moves.append(data)
        return moves

    def progress(self):
        lines = [o.line() for o in self.outcomes]
        for wave in self.waves:
            lines.append("wave %d: %d ok, %d failed, %d skipped, %d not started in %.1f s (longest migration %.1f s,"
                         " %d API calls)%s" % (wave.wave, wave.ok, wave.failed, wave.skipped, wave.not_started,
                                               wave.duration_s, wave.longest_s, wave.api_calls,
                                               ", re-planned before it" if wave.replanned else ""))
        if self.stop_reason:
            lines.append("stopped: %s" % self.stop_reason)
        return lines

    def failure_message(self):
        parts = []
        failed = self.failed_moves
        if failed:
            parts.append("%d of %d migration(s) failed: %s" % (
                len(failed), len([o for o in self.outcomes if o.upid or o.status == FAILED]),
                "; ".join("%d (%s) %s -> %s: %s" % (o.move.vmid, o.move.name, o.move.source, o.move.target, o.error)
                          for o in failed)))
        if self.stopped:
            not_started = sum(1 for o in self.outcomes if o.status == NOT_STARTED)
            parts.append("stopped (%s); %d move(s) not started" % (self.stop_reason, not_started))
        return ". ".join(parts)

    def to_dict(self):
        return dict(
            moves=[o.to_dict() for o in self.outcomes],
            waves=[w.to_dict() for w in self.waves],
            stopped=self.stopped,
            stop_reason=self.stop_reason,
            replans=self.replans,
            nodes_final=self.nodes_final,
            api_calls=self.api_calls,
            duration_s=round(self.duration_s, 2),
            progress=self.progress(),
        )


def planned_outcomes(waves):
    """Check mode: the moves of ``waves`` as outcomes that would run (status ``planned``)."""
    outcomes = []
    for index, wave in enumerate(waves):
        number = (wave[0].wave or index + 1) if wave else index + 1
        outcomes.extend(MoveOutcome(move=m, wave=number, status=PLANNED) for m in wave)
    return outcomes


def placement_diff(outcomes):
    """``{before: {"vmid/name": node}, after: {...}}`` for guests that moved (or would, in check mode)."""
    before, after = {}, {}
    for outcome in outcomes:
        move = outcome.move
        if outcome.status == PLANNED:
            end = move.target
        elif outcome.final_node is not None:
            end = outcome.final_node
        else:
            end = move.target if outcome.status == OK else move.source
        if end == move.source:
            continue
        key = "%d/%s" % (move.vmid, move.name)
        before[key] = move.source
        after[key] = end
    return dict(before=before, after=after)


# -- running migrations -----------------------------------------------------------------------

class _Migration:
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


class _Run:
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
                started = self.start(queue.pop(0))
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

    def start(self, outcome):
        """Precondition check and POST; returns a ``_Migration`` to follow, or None when finished."""
        move = outcome.move
        kind = "lxc" if move.type == "lxc" else "qemu"
        path = "nodes/%s/%s/%d/migrate" % (move.source, kind, move.vmid)
        guest = self.snapshot.guests.get(move.vmid)
        running = guest.running if guest is not None else move.running
        answer = None
        if kind == "qemu" or self.version >= (9, 0, 0):
            try:
                answer = self.client.get(path, target=move.target)
            except PveApiError as err:
                self.finish(outcome, SKIPPED, "migration check failed: %s" % _api_message(err))
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
            self.finish(outcome, FAILED, _api_message(err))
            return None
        outcome.upid = str(upid)
        return _Migration(outcome, outcome.upid, began, self.clock())

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
                done = self._find_ha_task(migration, now)
            else:
                done = self._check_task(migration, now)
        except PveApiError as err:
            migration.last_error = _api_message(err)
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

    def _check_task(self, migration, now):
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
            self.finish(outcome, FAILED, task_error(exitstatus, self._log_tail(node, migration.upid)))
        return True

    def _find_ha_task(self, migration, now):
        move = migration.outcome.move
        wanted = "vzmigrate" if move.type == "lxc" else "qmigrate"
        since = migration.info.get("starttime")
        params = dict(typefilter=wanted, vmid=move.vmid, source="all", limit=50)
        if since:
            params["since"] = since
        entries = self.client.get("nodes/%s/tasks" % move.source, **params) or []
        found = [e for e in entries if isinstance(e, dict) and e.get("type") == wanted and e.get("upid") != migration.upid
                 and (not since or int(e.get("starttime") or 0) >= since)]
        if found:
            # Oldest first: the first migration HA started after our request is ours.
            entry = min(found, key=lambda e: (int(e.get("starttime") or 0), str(e.get("upid"))))
            migration.upid = str(entry["upid"])
            migration.info = parse_upid(migration.upid) or {"node": move.source, "type": wanted}
            migration.outcome.upid = migration.upid
            migration.phase = "task"
            migration.polls = 0
            return self._check_task(migration, now)
        if now - migration.waiting_since > min(HA_START_S, self.options.migration_timeout_s):
            migration.outcome.duration_s = self.clock() - migration.started
            self.finish(migration.outcome, FAILED,
                        "HA accepted the request (%s) but started no %s within %d s; the HA stack may have refused the"
                        " target (maintenance, offline, rules) - see final_node" % (migration.outcome.ha_upid, wanted, HA_START_S))
            return True
        return False

    def _log_tail(self, node, upid):
        """The last page of a task log (one read unless the log is long); [] when it cannot be read."""
        path = "nodes/%s/tasks/%s/log" % (node, upid)
        lines, start = [], 0
        try:
            for _page in range(LOG_MAX_PAGES):
                page = self.client.get(path, start=start, limit=LOG_TAIL_LINES) or []
                if page:
                    lines = page
                if len(page) < LOG_TAIL_LINES:
                    break
                start += len(page)
        except PveApiError:
            pass
        return [line.get("t", "") for line in lines if isinstance(line, dict)]

    # -- between waves
    def revalidate(self, pending, had_trouble):
        """Check the remaining waves on the current snapshot; re-plan on drift. Returns new waves."""
        pending = [w for w in (self._arrived(wave) for wave in pending) if w]
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
            self._drop([m for m in remainder if m.vmid in invalid], invalid, None)
            return kept, bool(invalid)
        try:
            new_plan = self.replan(self.snapshot, dict(self.immovable))
        except ProxLBError as err:
            self.stop("re-planning failed: %s" % err)
            self._drop(remainder, invalid, "not started: re-planning failed")
            return [], True
        self.report.replans += 1
        new_waves = [list(w) for w in new_plan.waves if w]
        planned = {m.vmid: m for wave in new_waves for m in wave}
        for move in remainder:
            replacement = planned.get(move.vmid)
            if replacement is not None and replacement.target != move.target:
                self.notes[move.vmid] = "re-planned: was %s -> %s%s" % (
                    move.source, move.target, (" (%s)" % invalid[move.vmid]) if move.vmid in invalid else "")
        self._drop([m for m in remainder if m.vmid not in planned], invalid, "dropped by re-planning")
        return new_waves, True

    def _arrived(self, wave):
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

    def _drop(self, moves, invalid, default_reason):
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
    run = _Run(client, snapshot, settings, options, replan, sleep, clock)
    report = run.report
    calls_at_start = client.calls
    began = clock()
    pending = [list(w) for w in plan.waves if w]
    first_wave = min((m.wave for m in pending[0]), default=1) if pending else 1
    wave_no = max(1, first_wave or 1)
    had_trouble = False
    executed = 0
    while pending and run.stop_reason is None:
        if options.max_waves is not None and executed >= options.max_waves:
            report.remaining = pending
            pending = []
            break
        calls_before = client.calls
        wave_began = clock()
        run.wave_no = wave_no
        if executed > 0:
            try:
                run.snapshot = refreshed(run.snapshot, client.get("cluster/resources"))
            except PveApiError as err:
                run.stop("could not re-read the cluster before wave %d: %s" % (wave_no, err))
                break
        pending, replanned = run.revalidate(pending, had_trouble)
        if run.stop_reason is not None:
            break
        if not pending:
            if replanned:
                report.waves.append(WaveReport(wave=wave_no, replanned=True, api_calls=client.calls - calls_before,
                                               duration_s=clock() - wave_began))
            break
        wave = pending.pop(0)
        first = len(report.outcomes)
        run.run_wave(wave, wave_no)
        outcomes = report.outcomes[first:]
        durations = [o.duration_s for o in outcomes if o.duration_s is not None and o.status in (OK, FAILED)]
        report.waves.append(WaveReport(
            wave=wave_no, moves=len(outcomes), replanned=replanned,
            ok=sum(1 for o in outcomes if o.status == OK), failed=sum(1 for o in outcomes if o.status == FAILED),
            skipped=sum(1 for o in outcomes if o.status == SKIPPED),
            not_started=sum(1 for o in outcomes if o.status == NOT_STARTED),
            duration_s=clock() - wave_began, longest_s=max(durations or [0.0]), api_calls=client.calls - calls_before))
        had_trouble = any(o.status in (SKIPPED, FAILED) for o in outcomes)
        executed += 1
        wave_no += 1
    if run.stop_reason is not None:
        report.stopped = True
        report.stop_reason = run.stop_reason
        for wave in pending:
            for move in wave:
                report.outcomes.append(MoveOutcome(move=move, wave=wave_no, status=NOT_STARTED))
            wave_no += 1
    run.wave_no = wave_no
    _final_read(run)
    report.api_calls = client.calls - calls_at_start
    report.duration_s = clock() - began
    return report


def _final_read(run):
    report = run.report
    if not report.outcomes:
        report.nodes_final = node_loads(run.snapshot, run.settings)
        return
    try:
        final = refreshed(run.snapshot, run.client.get("cluster/resources"))
    except PveApiError as err:
        report.warnings.append("could not read where the guests ended up: %s" % err)
        return
    # Deferred moves (max_waves) that PVE carried out along with this run's migrations are done.
    run.snapshot = final
    report.remaining = [w for w in (run._arrived(wave) for wave in report.remaining) if w]
    for outcome in report.outcomes:
        guest = final.guests.get(outcome.move.vmid)
        outcome.final_node = guest.node if guest is not None else None
    report.nodes_final = node_loads(final, run.settings)
