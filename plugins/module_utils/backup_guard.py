# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backups and migrations in progress: which guests to leave alone and which nodes to keep out.

A migration must not meet a backup of the same guest: PVE refuses to migrate a VM in backup
(``VM is locked (backup)``), a container migration fails inside its task, and a guest that is
migrating when its backup job reaches it is left out of that backup (``VM is locked (migrate)``).
Nor should a plan move guests that someone else is moving right now. ``evaluate`` reads the
snapshot's backup jobs, running tasks and guest locks and says, for a moment the caller passes:

* ``held_guests`` ``{vmid: Hold}`` - reason ``migrating`` (a migration by someone else runs or
  PVE HA is about to start one), ``backup:running`` (a backup of it runs, or a job run on its
  node that covers it), ``backup:window`` (one of its jobs is due within ``backup_guard``
  minutes or began less than that long ago; an unreadable schedule counts as always due);
* ``busy_nodes`` ``{node: Hold}`` - nodes to use as neither source nor target: a migration
  runs there (``migrating``), or, with ``avoid_backup_nodes``, a backup runs there
  (``backup:running``); ``backup_nodes`` lists the latter whatever the setting;
* ``migrations`` - the migrations in progress, for the report;
* ``warnings`` - one line per problem worth telling (unreadable schedule, missing data, PVE's
  ``next-run`` disagreeing with the schedule read in ``now``'s timezone).

Job selection is PVE's: pool members, else the ``vmid`` list, else every guest but ``exclude``,
restricted to guests on ``node`` when the job names one; disabled jobs have no window.

Pure: no I/O, no clock. ``now`` should be a timezone-aware datetime in the cluster's timezone
(PVE evaluates schedules in the nodes' local time; ``... UTC`` schedules in UTC); a naive one
is taken as UTC. PVE's ``next-run`` (an absolute time) is counted too, so a window is not missed
when the zones disagree.
"""

from __future__ import annotations

import calendar
import datetime as _dt
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

from ansible_collections.proxlb.balancer.plugins.module_utils.calendar_event import (
    CalendarEventError,
    last_due,
    next_due,
    parse,
)
from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ConfigError

HOLD_MIGRATING = "migrating"
HOLD_BACKUP_RUNNING = "backup:running"
HOLD_BACKUP_WINDOW = "backup:window"
# a guest gets the strongest reason that applies
_PRIORITY = {HOLD_MIGRATING: 3, HOLD_BACKUP_RUNNING: 2, HOLD_BACKUP_WINDOW: 1}

BACKUP_TASK_TYPES = ("vzdump",)
GUEST_MIGRATION_TASK_TYPES = ("qmigrate", "vzmigrate", "hamigrate")
NODE_MIGRATION_TASK_TYPES = ("migrateall",)
# HA service states between a hamigrate request and the end of the LRM's migration task
HA_MOVING_STATES = ("migrate", "relocate")
DEFAULT_BACKUP_GUARD_MIN = 30
# PVE's next-run and the schedule read here may differ by the seconds a run took to start
_NEXT_RUN_TOLERANCE_S = 60


@dataclass
class Hold:
    """Why a guest stays or a node is kept out of the plan."""

    reason: str                       # migrating | backup:running | backup:window
    detail: str                       # one readable sentence
    job: Optional[str] = None         # the backup job behind it
    due: Optional[str] = None         # ISO 8601 time of the job occurrence that makes the window
    upid: Optional[str] = None        # the task behind it

    def as_dict(self):
        return asdict(self)


@dataclass
class GuardReport:
    held_guests: Dict[int, Hold] = field(default_factory=dict)
    busy_nodes: Dict[str, Hold] = field(default_factory=dict)
    backup_nodes: Dict[str, Hold] = field(default_factory=dict)
    migrations: List[Dict[str, object]] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)

    def as_dict(self):
        return {
            "held_guests": {vmid: hold.as_dict() for vmid, hold in sorted(self.held_guests.items())},
            "busy_nodes": {node: hold.as_dict() for node, hold in sorted(self.busy_nodes.items())},
            "backup_nodes": {node: hold.as_dict() for node, hold in sorted(self.backup_nodes.items())},
            "migrations": [dict(entry) for entry in self.migrations],
            "warnings": list(self.warnings),
        }

    def hold_guest(self, vmid, hold):
        """Record ``hold`` for the guest unless it already has a stronger reason."""
        current = self.held_guests.get(vmid)
        if current is None or _PRIORITY[hold.reason] > _PRIORITY[current.reason]:
            self.held_guests[vmid] = hold

    def keep_out(self, node, hold):
        """Record ``hold`` for the node unless it already has a stronger reason."""
        current = self.busy_nodes.get(node)
        if current is None or _PRIORITY[hold.reason] > _PRIORITY[current.reason]:
            self.busy_nodes[node] = hold


def job_guests(snapshot, job):
    """vmids (sorted) of the snapshot's guests that ``job`` backs up, selected as PVE does."""
    if job.pool:
        chosen = set(snapshot.pools.get(job.pool, []))
    elif job.vmids:
        chosen = set(job.vmids)
    elif job.all_guests:
        chosen = set(snapshot.guests) - set(job.exclude)
    else:
        chosen = set()
    return sorted(vmid for vmid in chosen
                  if vmid in snapshot.guests and (not job.node or snapshot.guests[vmid].node == job.node))


def evaluate(snapshot, now, backup_guard=DEFAULT_BACKUP_GUARD_MIN, avoid_backup_nodes=True, own_migrations=()):
    """Backups and migrations in progress or due around ``now`` -> ``GuardReport``.

    ``backup_guard`` is in minutes (0 checks running backups only); ``own_migrations`` are the
    vmids of guests this run migrates itself, whose tasks, locks and HA states do not count.
    """
    if isinstance(backup_guard, bool) or not isinstance(backup_guard, int) or backup_guard < 0:
        raise ConfigError("backup_guard", "must be a whole number of minutes (0 or more), got %r" % (backup_guard,))
    if not isinstance(avoid_backup_nodes, bool):
        raise ConfigError("avoid_backup_nodes", "must be true or false, got %r" % (avoid_backup_nodes,))
    if not isinstance(now, _dt.datetime):
        raise TypeError("now must be a datetime, got %r" % (now,))
    report = GuardReport()
    own = {int(vmid) for vmid in own_migrations}
    _migrations(snapshot, report, own)
    _running_backups(snapshot, report)
    _backup_windows(snapshot, report, now, backup_guard)
    if avoid_backup_nodes:
        for node, hold in report.backup_nodes.items():
            report.keep_out(node, hold)
    return report


# -- migrations in progress ----------------------------------------------------------------

def _migrations(snapshot, report, own):
    for task in snapshot.running_tasks or []:
        if task.type in GUEST_MIGRATION_TASK_TYPES and task.vmid is not None and task.vmid not in own:
            report.migrations.append(_migration_entry(task))
            detail = "%s task %s by %s on %s" % (task.type, task.upid, task.user or "?", task.node)
            if task.vmid in snapshot.guests:
                hold = Hold(HOLD_MIGRATING, "guest %d is being migrated: %s" % (task.vmid, detail), upid=task.upid)
                report.hold_guest(task.vmid, hold)
            report.keep_out(task.node, Hold(HOLD_MIGRATING, "a migration runs on %s: %s" % (task.node, detail), upid=task.upid))
        elif task.type in NODE_MIGRATION_TASK_TYPES:
            report.migrations.append(_migration_entry(task))
            report.keep_out(task.node, Hold(HOLD_MIGRATING, "%s task %s by %s migrates guests off %s" % (
                task.type, task.upid, task.user or "?", task.node), upid=task.upid))
    for vmid, guest in snapshot.guests.items():
        if vmid in own:
            continue
        ha_state = (guest.ha or {}).get("state")
        if guest.lock == "migrate":
            detail = "guest %d is locked by a migration" % vmid
        elif guest.ha_managed and ha_state in HA_MOVING_STATES:
            detail = "PVE HA is moving guest %d (HA state %s)" % (vmid, ha_state)
        else:
            continue
        report.hold_guest(vmid, Hold(HOLD_MIGRATING, detail))
        if guest.node:
            report.keep_out(guest.node, Hold(HOLD_MIGRATING, "a migration runs on %s: %s" % (guest.node, detail)))


def _migration_entry(task):
    return {"vmid": task.vmid, "node": task.node, "type": task.type, "user": task.user, "upid": task.upid,
            "starttime": task.starttime}


# -- backups running -----------------------------------------------------------------------

def _running_backups(snapshot, report):
    selections = [(job, job_guests(snapshot, job)) for job in snapshot.backup_jobs or []]
    for task in snapshot.running_tasks or []:
        if task.type not in BACKUP_TASK_TYPES:
            continue
        if task.node not in report.backup_nodes:
            report.backup_nodes[task.node] = Hold(HOLD_BACKUP_RUNNING, "a backup runs on %s (%s)" % (task.node, task.upid),
                                                  upid=task.upid)
        if task.vmid is not None:
            if task.vmid in snapshot.guests:
                report.hold_guest(task.vmid, Hold(HOLD_BACKUP_RUNNING, "a backup of guest %d runs on %s (%s)" % (
                    task.vmid, task.node, task.upid), upid=task.upid))
            continue
        # A job run for several guests names none of them: hold what its node's part may still take.
        covering = [(job, vmid) for job, vmids in selections for vmid in vmids if snapshot.guests[vmid].node == task.node]
        for job, vmid in covering:
            report.hold_guest(vmid, Hold(HOLD_BACKUP_RUNNING, "a backup run on %s (%s) covers guest %d (job %s)" % (
                task.node, task.upid, vmid, job.id), job=job.id, upid=task.upid))
        if snapshot.backup_jobs is None:
            report.warnings.append("a backup runs on %s (%s) but the backup jobs are unknown: only the guest it has"
                                   " locked is known to be in it" % (task.node, task.upid))
    for vmid, guest in snapshot.guests.items():
        if guest.lock != "backup":
            continue
        report.hold_guest(vmid, Hold(HOLD_BACKUP_RUNNING, "guest %d is locked by a backup" % vmid))
        if guest.node and guest.node not in report.backup_nodes:
            report.backup_nodes[guest.node] = Hold(HOLD_BACKUP_RUNNING, "a backup runs on %s (guest %d is locked by it)" % (
                guest.node, vmid))


# -- backup windows ------------------------------------------------------------------------

def _epoch(moment):
    if moment.tzinfo is None:
        return calendar.timegm(moment.timetuple())
    return calendar.timegm(moment.astimezone(_dt.timezone.utc).timetuple())


def _from_epoch(epoch, like):
    moment = _dt.datetime.fromtimestamp(epoch, _dt.timezone.utc)
    return moment.replace(tzinfo=None) if like.tzinfo is None else moment.astimezone(like.tzinfo)


def _backup_windows(snapshot, report, now, guard_min):
    if snapshot.backup_jobs is None:
        report.warnings.append("the snapshot has no backup jobs (not read): backup windows are not checked")
        return
    if guard_min == 0:
        return
    guard = _dt.timedelta(minutes=guard_min)
    for job in snapshot.backup_jobs:
        if not job.enabled:
            continue
        window = _job_window(job, now, guard, report.warnings)
        if window is None:
            continue
        due, detail = window
        for vmid in job_guests(snapshot, job):
            hold = Hold(HOLD_BACKUP_WINDOW, "guest %d: backup job %s %s" % (vmid, job.id, detail),
                        job=job.id, due=due.isoformat() if due is not None else None)
            report.hold_guest(vmid, hold)


def _job_window(job, now, guard, warnings):
    """(occurrence or None, text) when a run of ``job`` is within ``guard`` of ``now``, else None."""
    try:
        event = parse(job.schedule or "")
    except CalendarEventError as err:
        warnings.append("backup job %s: %s; its guests are treated as in their backup window" % (job.id, err))
        return None, "has a schedule that cannot be read ('%s')" % (job.schedule or "")
    previous = last_due(event, now)
    following = next_due(event, now)
    pve_next = _from_epoch(job.next_run, now) if job.next_run is not None else None
    if pve_next is not None and following is not None and \
            abs(_epoch(following) - job.next_run) > _NEXT_RUN_TOLERANCE_S:
        warnings.append("backup job %s: PVE expects its next run at %s, but its schedule '%s' read in the timezone of"
                        " the given time gives %s; the cluster's timezone may differ, or the job missed a run" % (
                            job.id, pve_next.isoformat(), job.schedule, following.isoformat()))
    if previous is not None and now - previous < guard:
        return previous, "began at %s (schedule '%s')" % (previous.isoformat(), job.schedule)
    if following is not None and following - now <= guard:
        return following, "is due at %s (schedule '%s')" % (following.isoformat(), job.schedule)
    if pve_next is not None and abs(pve_next - now) <= guard:
        return pve_next, "is due at %s by PVE's next-run (schedule '%s')" % (pve_next.isoformat(), job.schedule)
    return None
