# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Carry out a storage plan: one disk move per volume, followed to its end, reported per volume.

For each move, up to ``parallel_moves`` at a time but never two of the same guest (PVE holds the
guest's config lock for the whole copy):

1. read the guest's config again: the volume must still be at its config key on the planned
   storage, the guest unlocked and without snapshots; otherwise the move is skipped with why;
2. ``POST /nodes/{node}/qemu/{vmid}/move_disk`` (a running VM is copied live with drive-mirror)
   or ``POST /nodes/{node}/lxc/{vmid}/move_volume`` (stopped containers), with the config
   digest just read so PVE refuses if the config changed in between;
3. follow the task (``qmmove`` / ``move_volume``) with the same polling as migrations until it
   ends or ``move_timeout`` real seconds pass; a failure is reported with PVE's exit status and
   the last ``ERROR:`` line of the task log.

At the end ``/cluster/resources`` is read once for the storage fill levels, and the config of
every guest whose move was started once more: ``final_storage`` says where the volume's config
key really points, ``kept_as`` which ``unusedN`` key holds the old copy. A failed or timed-out
move is never assumed done.

API calls: per move one config read, one POST, the task polling and, when it failed, one read
of the task log; at the end one ``/cluster/resources`` read and one config read per started move.
No Ansible imports; time and sleeping are injected.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from ansible_collections.proxlb.balancer.plugins.module_utils import pve_tasks, run_report
from ansible_collections.proxlb.balancer.plugins.module_utils.collector import guest_config, storages_from_resources
from ansible_collections.proxlb.balancer.plugins.module_utils.errors import PveApiError
from ansible_collections.proxlb.balancer.plugins.module_utils.storage import fill_pct, gib

OK = run_report.OK
FAILED = run_report.FAILED
SKIPPED = run_report.SKIPPED
NOT_STARTED = run_report.NOT_STARTED
PLANNED = run_report.PLANNED


def _pve_text(err):
    """PVE's own words for an API error (the reason phrase) when there are some."""
    details = getattr(err, "details", {}) or {}
    return str(details.get("pve_message") or err).strip()


@dataclass
class MoveOutcome:
    move: object                      # storage_plan.VolumeMove
    status: str = NOT_STARTED
    upid: Optional[str] = None
    duration_s: Optional[float] = None
    error: Optional[str] = None
    final_storage: Optional[str] = None
    kept_as: Optional[str] = None     # unusedN key that holds the old copy (delete_source false)

    def to_dict(self):
        data = self.move.to_dict()
        data.update(status=self.status, upid=self.upid, error=self.error, final_storage=self.final_storage,
                    kept_as=self.kept_as, duration_s=None if self.duration_s is None else round(self.duration_s, 2))
        return data

    def line(self):
        """``101 web1 scsi1  nfs-vm -> ceph-vm  ok  12.3 s``"""
        move = self.move
        text = "%d %s %s  %s -> %s  %s" % (move.vmid, move.name, move.key, move.source, move.target, self.status)
        if self.duration_s is not None:
            text += "  %.1f s" % self.duration_s
        if self.final_storage and self.final_storage != move.target and self.status != NOT_STARTED:
            text += "  (still on %s)" % self.final_storage
        if self.error:
            text += "  - %s" % self.error
        return text


@dataclass
class MoveReport:
    outcomes: List[MoveOutcome] = field(default_factory=list)
    stopped: bool = False
    stop_reason: Optional[str] = None
    storages_final: Dict[str, dict] = field(default_factory=dict)
    warnings: List[str] = field(default_factory=list)
    api_calls: int = 0
    duration_s: float = 0.0

    @property
    def failed_moves(self):
        return [o for o in self.outcomes if o.status == FAILED]

    @property
    def failed(self):
        return bool(self.failed_moves) or self.stopped

    @property
    def changed(self):
        """True when a volume is no longer where it was (judged from the final config reads)."""
        for outcome in self.outcomes:
            if outcome.status == PLANNED:
                return True
            if outcome.final_storage is not None and outcome.final_storage != outcome.move.source:
                return True
            if outcome.final_storage is None and outcome.status == OK:
                return True
        return False

    def progress(self):
        lines = [o.line() for o in self.outcomes]
        done = [o for o in self.outcomes if o.status == OK]
        if any(o.status != PLANNED for o in self.outcomes):
            lines.append("%d of %d move(s) ok, %s copied, in %.1f s (%d API calls)" % (
                len(done), len(self.outcomes), gib(sum(o.move.size_bytes for o in done)), self.duration_s, self.api_calls))
        if self.stop_reason:
            lines.append("stopped: %s" % self.stop_reason)
        return lines

    def failure_message(self):
        parts = []
        failed = self.failed_moves
        if failed:
            parts.append("%d of %d disk move(s) failed: %s" % (
                len(failed), len([o for o in self.outcomes if o.upid or o.status == FAILED]),
                "; ".join("%d (%s) %s %s -> %s: %s" % (
                    o.move.vmid, o.move.name, o.move.key, o.move.source, o.move.target, o.error) for o in failed)))
        if self.stopped:
            parts.append("stopped (%s); %d move(s) not started" % (
                self.stop_reason, sum(1 for o in self.outcomes if o.status == NOT_STARTED)))
        return ". ".join(parts)

    def to_dict(self):
        return dict(moves=[o.to_dict() for o in self.outcomes], stopped=self.stopped, stop_reason=self.stop_reason,
                    storages_final=self.storages_final, api_calls=self.api_calls, duration_s=round(self.duration_s, 2),
                    progress=self.progress())


def planned_report(plan):
    """Check mode: every move of the plan as an outcome that would run."""
    return MoveReport(outcomes=[MoveOutcome(move=m, status=PLANNED) for m in plan.moves])


def volume_diff(outcomes):
    """``{before: {"vmid/name key": storage}, after: {...}}`` for the volumes that moved (or would)."""
    before, after = {}, {}
    for outcome in outcomes:
        move = outcome.move
        if outcome.status == PLANNED:
            end = move.target
        elif outcome.final_storage is not None:
            end = outcome.final_storage
        else:
            end = move.target if outcome.status == OK else move.source
        if end != move.source:
            before[move.label()] = move.source
            after[move.label()] = end
    return dict(before=before, after=after)


def move_request(move, settings, digest=None):
    """(path, parameters) of the POST that moves one volume."""
    if move.type == "lxc":
        path = "nodes/%s/lxc/%d/move_volume" % (move.node, move.vmid)
        params = dict(volume=move.key, storage=move.target)
    else:
        path = "nodes/%s/qemu/%d/move_disk" % (move.node, move.vmid)
        params = dict(disk=move.key, storage=move.target)
    params["delete"] = 1 if settings.delete_source else 0
    if settings.bwlimit_kib is not None:
        params["bwlimit"] = settings.bwlimit_kib
    if digest:
        params["digest"] = digest
    return path, params


def storage_fill(resources, labels):
    """``/cluster/resources`` -> fill of the pools named by ``labels`` (shared: storage id; local: node/storage)."""
    result = {}
    for storage in storages_from_resources(resources):
        if storage.maxdisk_bytes <= 0 or storage.status != "available":
            continue
        label = storage.storage if storage.shared else "%s/%s" % (storage.node, storage.storage)
        if label not in labels or label in result:
            continue
        result[label] = dict(used_bytes=storage.disk_bytes, size_bytes=storage.maxdisk_bytes,
                             fill_pct=round(fill_pct(storage.disk_bytes, storage.maxdisk_bytes), 2))
    return result


class _Copy:
    """One started move being followed."""

    def __init__(self, outcome, upid, started):
        self.outcome = outcome
        self.upid = upid
        self.node = (pve_tasks.parse_upid(upid) or {}).get("node") or outcome.move.node
        self.started = started
        self.polls = 0
        self.next_poll = started + pve_tasks.POLL_FIRST_S
        self.unreadable_since = None


class _Run:
    def __init__(self, client, snapshot, settings, pools, sleep, clock):
        self.client = client
        self.snapshot = snapshot
        self.settings = settings
        self.pools = set(pools)
        self.sleep = sleep
        self.clock = clock
        self.report = MoveReport()
        self.shared = {s.storage for s in snapshot.storages if s.shared}

    def stop(self, reason):
        if self.report.stop_reason is None:
            self.report.stop_reason = reason
            self.report.stopped = True

    def finish(self, outcome, status, error=None):
        outcome.status = status
        outcome.error = error
        if status == FAILED and self.settings.on_failure == "stop":
            move = outcome.move
            self.stop("on_failure=stop after the failed move of %d (%s) %s" % (move.vmid, move.name, move.key))

    def read_config(self, move):
        path = "nodes/%s/%s/%d/config" % (move.node, move.type, move.vmid)
        return guest_config(move.vmid, self.client.get(path), move.type, self.shared)

    def start(self, outcome):
        """Re-check and POST; returns a ``_Copy`` to follow, or None when the move is already finished."""
        move = outcome.move
        try:
            config = self.read_config(move)
        except PveApiError as err:
            self.finish(outcome, SKIPPED, "could not read the guest's config: %s" % _pve_text(err))
            return None
        entry = next((v for v in config.volumes if v.key == move.key), None)
        problem = None
        if config.lock:
            problem = "the guest is locked (%s)" % config.lock
        elif config.snapshot:
            problem = "the guest now has snapshots (current: %s)" % config.snapshot
        elif entry is None or entry.volid != move.volid:
            problem = "%s is no longer %s (it is %s)" % (move.key, move.volid, entry.volid if entry else "gone")
        if problem:
            self.finish(outcome, SKIPPED, problem)
            return None
        path, params = move_request(move, self.settings, config.digest)
        began = self.clock()
        try:
            upid = self.client.post(path, **params)
        except PveApiError as err:
            outcome.duration_s = self.clock() - began
            self.finish(outcome, FAILED, _pve_text(err))
            return None
        outcome.upid = str(upid)
        return _Copy(outcome, outcome.upid, began)

    def poll(self, copy):
        """One look at a running move; True when it has ended (outcome set)."""
        outcome = copy.outcome
        now = self.clock()
        elapsed = now - copy.started
        if elapsed > self.settings.move_timeout_s:
            outcome.duration_s = elapsed
            self.finish(outcome, FAILED, "timed out after %d s (move_timeout); task %s may still be running, see final_storage"
                        % (self.settings.move_timeout_s, copy.upid))
            return True
        try:
            status = self.client.get("nodes/%s/tasks/%s/status" % (copy.node, copy.upid)) or {}
        except PveApiError as err:
            if copy.unreadable_since is None:
                copy.unreadable_since = now
            if now - copy.unreadable_since > pve_tasks.LOST_TASK_S:
                outcome.duration_s = elapsed
                self.finish(outcome, FAILED, "lost track of task %s for %d s: %s; see final_storage" % (
                    copy.upid, pve_tasks.LOST_TASK_S, _pve_text(err)))
                return True
            status = {}
        else:
            copy.unreadable_since = None
        if status.get("status") == "stopped":
            outcome.duration_s = self.clock() - copy.started
            exitstatus = str(status.get("exitstatus") or "")
            if exitstatus == "OK" or exitstatus.startswith("WARNINGS"):
                self.finish(outcome, OK)
            else:
                # PVE's exit status of a disk move already is the whole error ("storage migration failed:
                # ..."); the log only adds something when it has an ERROR: line.
                errors = [line for line in self.log_tail(copy) if "ERROR:" in line]
                self.finish(outcome, FAILED, pve_tasks.task_error(exitstatus, errors))
            return True
        copy.polls += 1
        copy.next_poll = self.clock() + pve_tasks.poll_interval_s(copy.polls, self.clock() - copy.started)
        return False

    def log_tail(self, copy):
        try:
            lines = self.client.get("nodes/%s/tasks/%s/log" % (copy.node, copy.upid), start=0,
                                    limit=pve_tasks.LOG_TAIL_LINES) or []
        except PveApiError:
            return []
        return [line.get("t", "") for line in lines if isinstance(line, dict)]

    def run(self, moves):
        queue = [MoveOutcome(move=m) for m in moves]
        self.report.outcomes.extend(queue)
        active: List[_Copy] = []
        while queue or active:
            busy = {c.outcome.move.vmid for c in active}
            while self.report.stop_reason is None and len(active) < self.settings.parallel_moves:
                ready = next((o for o in queue if o.move.vmid not in busy), None)
                if ready is None:
                    break
                queue.remove(ready)
                started = self.start(ready)
                if started is not None:
                    active.append(started)
                    busy.add(ready.move.vmid)
            if self.report.stop_reason is not None:
                queue = []          # start nothing new; the rest stays not_started
            if not active:
                if not queue:
                    break
                continue
            now = self.clock()
            due = [c for c in active if c.next_poll <= now]
            if not due:
                self.sleep(max(0.0, min(c.next_poll for c in active) - now))
                continue
            for copy in due:
                if self.poll(copy):
                    active.remove(copy)

    def final_read(self):
        try:
            self.report.storages_final = storage_fill(self.client.get("cluster/resources"), self.pools)
        except PveApiError as err:
            self.report.warnings.append("could not read the storage fill levels after the moves: %s" % _pve_text(err))
        for outcome in self.report.outcomes:
            if outcome.upid is None and outcome.status != FAILED:
                continue
            move = outcome.move
            try:
                config = self.read_config(move)
            except PveApiError as err:
                self.report.warnings.append("could not read where %s of %d (%s) ended up: %s" % (
                    move.key, move.vmid, move.name, _pve_text(err)))
                continue
            entry = next((v for v in config.volumes if v.key == move.key), None)
            outcome.final_storage = entry.storage if entry is not None else None
            kept = config.volume(move.volid)
            outcome.kept_as = kept.key if kept is not None and kept.unused else None


def execute(client, snapshot, plan, settings, sleep=time.sleep, clock=time.monotonic):
    """Carry out ``plan`` (a ``StoragePlan``) on the cluster behind ``client``; returns a ``MoveReport``."""
    run = _Run(client, snapshot, settings, plan.data.get("pools", {}), sleep, clock)
    calls = client.calls
    began = clock()
    run.run(plan.moves)
    if run.report.outcomes:
        run.final_read()
    run.report.api_calls = client.calls - calls
    run.report.duration_s = clock() - began
    return run.report
