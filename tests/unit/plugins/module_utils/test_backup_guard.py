# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which guests stay and which nodes are kept out because of backups and migrations in progress."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from ansible_collections.proxlb.balancer.plugins.module_utils.backup_guard import (
    HOLD_BACKUP_RUNNING,
    HOLD_BACKUP_WINDOW,
    HOLD_MIGRATING,
    evaluate,
    job_guests,
)
from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ConfigError
from ansible_collections.proxlb.balancer.plugins.module_utils.snapshot import BackupJob, ClusterTask

from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.cluster_builder import cluster, guest, node

CET = dt.timezone(dt.timedelta(hours=1), "CET")
# Wednesday evening, a quarter of an hour before the nightly backup.
NOW = dt.datetime(2026, 3, 4, 20, 45, tzinfo=CET)


def snapshot(jobs=(), tasks=(), **guest_changes):
    """pve1: 100 101 102 (pool prod: 100 101), pve2: 200 201 (lxc), pve3: 300."""
    guests = [guest(100, "pve1", pool="prod"), guest(101, "pve1", pool="prod"), guest(102, "pve1"),
              guest(200, "pve2"), guest(201, "pve2", kind="lxc"), guest(300, "pve3")]
    snap = cluster([node("pve1"), node("pve2"), node("pve3")], guests)
    for vmid, changes in guest_changes.items():
        for key, value in changes.items():
            setattr(snap.guests[int(vmid.lstrip("g"))], key, value)
    snap.backup_jobs = list(jobs)
    snap.running_tasks = list(tasks)
    return snap


def nightly(**kw):
    kw.setdefault("schedule", "mon..fri 21:00")
    kw.setdefault("all_guests", True)
    return BackupJob(id=kw.pop("id", "backup-nightly"), **kw)


def task(node_name, kind, vmid=None, user="root@pam", start=1772650000):
    upid = "UPID:%s:0012A3F4:07E1B2C3:%08X:%s:%s:%s:" % (node_name, start, kind, "" if vmid is None else vmid, user)
    return ClusterTask(upid=upid, node=node_name, type=kind, vmid=vmid, user=user, starttime=start)


def reasons(report):
    return {vmid: hold.reason for vmid, hold in report.held_guests.items()}


# -- job selection -------------------------------------------------------------------------

@pytest.mark.parametrize("job, vmids", [
    (nightly(), [100, 101, 102, 200, 201, 300]),
    (nightly(exclude=[102, 300]), [100, 101, 200, 201]),
    (nightly(all_guests=False, vmids=[101, 200, 999]), [101, 200]),             # unknown vmids dropped
    (nightly(all_guests=False, pool="prod"), [100, 101]),
    (nightly(all_guests=False, pool="prod", vmids=[300]), [100, 101]),            # pool wins, as in PVE
    (nightly(node="pve2"), [200, 201]),                                          # node restricts
    (nightly(all_guests=False, vmids=[100, 200], node="pve2"), [200]),
    (nightly(all_guests=False, pool="nope"), []),
    (nightly(all_guests=False), []),
])
def test_job_selection_is_pves(job, vmids):
    assert job_guests(snapshot(), job) == vmids


# -- backup:window -------------------------------------------------------------------------

def test_guests_of_a_job_due_soon_stay():
    report = evaluate(snapshot([nightly(exclude=[300])]), NOW, backup_guard=30)
    assert reasons(report) == {100: HOLD_BACKUP_WINDOW, 101: HOLD_BACKUP_WINDOW, 102: HOLD_BACKUP_WINDOW,
                               200: HOLD_BACKUP_WINDOW, 201: HOLD_BACKUP_WINDOW}
    hold = report.held_guests[100]
    assert hold.job == "backup-nightly" and hold.due == "2026-03-04T21:00:00+01:00"
    assert "backup-nightly" in hold.detail and "21:00" in hold.detail
    assert report.busy_nodes == {} and report.warnings == []


@pytest.mark.parametrize("now, held", [
    (NOW.replace(hour=20, minute=29, second=59), False),   # 30 min 1 s before
    (NOW.replace(hour=20, minute=30), True),               # exactly 30 min before
    (NOW.replace(hour=21, minute=0), True),                # at the start
    (NOW.replace(hour=21, minute=29, second=59), True),    # began less than 30 min ago
    (NOW.replace(hour=21, minute=30), False),              # began 30 min ago
    (dt.datetime(2026, 3, 7, 20, 45, tzinfo=CET), False),  # Saturday: no run that evening
])
def test_window_edges(now, held):
    assert bool(evaluate(snapshot([nightly()]), now, backup_guard=30).held_guests) is held


def test_the_guard_length_is_the_option():
    snap = snapshot([nightly()])
    early = NOW.replace(hour=19, minute=30)
    assert evaluate(snap, early, backup_guard=30).held_guests == {}
    assert len(evaluate(snap, early, backup_guard=90).held_guests) == 6
    assert evaluate(snap, NOW, backup_guard=0).held_guests == {}       # 0: no windows


def test_disabled_jobs_have_no_window():
    assert evaluate(snapshot([nightly(enabled=False)]), NOW).held_guests == {}


def test_an_unreadable_schedule_counts_as_always_due_with_a_warning():
    report = evaluate(snapshot([nightly(id="backup-odd", schedule="weekdays at nine", all_guests=False, pool="prod")]),
                      NOW.replace(hour=9))
    assert reasons(report) == {100: HOLD_BACKUP_WINDOW, 101: HOLD_BACKUP_WINDOW}
    assert report.held_guests[100].due is None and "cannot be read" in report.held_guests[100].detail
    assert len(report.warnings) == 1 and "backup job backup-odd" in report.warnings[0]
    assert "treated as in their backup window" in report.warnings[0]


def test_a_utc_schedule_is_read_in_utc():
    job = nightly(schedule="20:00 UTC")          # 21:00 in CET
    assert len(evaluate(snapshot([job]), NOW).held_guests) == 6
    assert evaluate(snapshot([job]), NOW.replace(hour=19, minute=45)).held_guests == {}


def test_pves_next_run_counts_when_the_zones_disagree():
    # The caller passed UTC, but the cluster runs in CET: 21:00 read in UTC is 75 minutes away.
    now_utc = NOW.astimezone(dt.timezone.utc)                        # 19:45 UTC
    pve_next = int(dt.datetime(2026, 3, 4, 21, 0, tzinfo=CET).timestamp())
    report = evaluate(snapshot([nightly(next_run=pve_next)]), now_utc)
    assert len(report.held_guests) == 6
    assert "by PVE's next-run" in report.held_guests[100].detail
    assert len(report.warnings) == 1 and "timezone" in report.warnings[0]
    # read in the right zone they agree: no warning
    assert evaluate(snapshot([nightly(next_run=pve_next)]), NOW).warnings == []


def test_a_naive_now_is_utc():
    now = dt.datetime(2026, 3, 4, 20, 50)
    assert len(evaluate(snapshot([nightly()]), now).held_guests) == 6


# -- backup:running ------------------------------------------------------------------------

def test_a_running_backup_holds_its_guest_and_its_node():
    backup = task("pve2", "vzdump", 200)
    report = evaluate(snapshot(tasks=[backup]), NOW)
    assert reasons(report) == {200: HOLD_BACKUP_RUNNING}
    assert report.held_guests[200].upid == backup.upid
    assert set(report.backup_nodes) == {"pve2"} and report.busy_nodes["pve2"].reason == HOLD_BACKUP_RUNNING
    relaxed = evaluate(snapshot(tasks=[backup]), NOW, avoid_backup_nodes=False)
    assert reasons(relaxed) == {200: HOLD_BACKUP_RUNNING}
    assert set(relaxed.backup_nodes) == {"pve2"} and relaxed.busy_nodes == {}


def test_a_job_run_without_a_task_id_holds_what_it_covers_on_its_node():
    jobs = [nightly(exclude=[102]), nightly(id="backup-lxc", all_guests=False, vmids=[201], enabled=False)]
    report = evaluate(snapshot(jobs, [task("pve1", "vzdump")]), NOW.replace(hour=23), backup_guard=30)
    # on pve1 the nightly job takes 100 and 101; 102 is excluded; other nodes' guests are not in this run
    assert reasons(report) == {100: HOLD_BACKUP_RUNNING, 101: HOLD_BACKUP_RUNNING}
    assert report.held_guests[100].job == "backup-nightly"
    assert set(report.busy_nodes) == {"pve1"}
    # a disabled job can be started by hand: its run covers its guests too
    report = evaluate(snapshot(jobs, [task("pve2", "vzdump")]), NOW.replace(hour=23))
    assert reasons(report) == {200: HOLD_BACKUP_RUNNING, 201: HOLD_BACKUP_RUNNING}


def test_a_job_run_with_unknown_jobs_is_a_warning():
    snap = snapshot(tasks=[task("pve1", "vzdump")], g100={"lock": "backup"})
    snap.backup_jobs = None
    report = evaluate(snap, NOW)
    assert reasons(report) == {100: HOLD_BACKUP_RUNNING}              # the locked one is known
    assert any("backup jobs are unknown" in w for w in report.warnings)
    assert any("backup windows are not checked" in w for w in report.warnings)


def test_the_backup_lock_alone_is_enough():
    report = evaluate(snapshot(g300={"lock": "backup"}), NOW)
    assert reasons(report) == {300: HOLD_BACKUP_RUNNING}
    assert set(report.backup_nodes) == set(report.busy_nodes) == {"pve3"}


# -- migrating -----------------------------------------------------------------------------

def test_migrations_by_someone_else_are_planned_around():
    moving = task("pve1", "qmigrate", 101, user="admin@pve!ops")
    report = evaluate(snapshot(tasks=[moving]), NOW)
    assert reasons(report) == {101: HOLD_MIGRATING}
    assert "admin@pve!ops" in report.held_guests[101].detail
    assert report.busy_nodes["pve1"].reason == HOLD_MIGRATING
    assert report.migrations == [{"vmid": 101, "node": "pve1", "type": "qmigrate", "user": "admin@pve!ops",
                                  "upid": moving.upid, "starttime": moving.starttime}]
    assert report.backup_nodes == {}


def test_own_migrations_do_not_count():
    snap = snapshot(tasks=[task("pve1", "qmigrate", 101)], g101={"lock": "migrate"})
    report = evaluate(snap, NOW, own_migrations=[101])
    assert report.held_guests == {} and report.busy_nodes == {} and report.migrations == []


@pytest.mark.parametrize("changes", [
    {"lock": "migrate"},
    {"ha": {"sid": "vm:200", "state": "migrate", "group": None, "failback": True, "auto_rebalance": True}},
    {"ha": {"sid": "ct:200", "state": "relocate", "group": None, "failback": True, "auto_rebalance": True}},
])
def test_locks_and_ha_states_show_migrations_between_tasks(changes):
    report = evaluate(snapshot(g200=changes), NOW)
    assert reasons(report) == {200: HOLD_MIGRATING}
    assert report.busy_nodes["pve2"].reason == HOLD_MIGRATING


def test_hamigrate_and_migrateall_tasks():
    report = evaluate(snapshot(tasks=[task("pve2", "hamigrate", 200), task("pve3", "migrateall")]), NOW)
    assert reasons(report) == {200: HOLD_MIGRATING}
    assert {n: h.reason for n, h in report.busy_nodes.items()} == {"pve2": HOLD_MIGRATING, "pve3": HOLD_MIGRATING}
    assert [m["type"] for m in report.migrations] == ["hamigrate", "migrateall"]


def test_other_running_tasks_do_not_count():
    report = evaluate(snapshot(tasks=[task("pve1", "qmstart", 100), task("pve2", "aptupdate")]), NOW)
    assert report.held_guests == {} and report.busy_nodes == {}


# -- together ------------------------------------------------------------------------------

def test_the_strongest_reason_wins():
    jobs = [nightly()]
    tasks = [task("pve1", "qmigrate", 100), task("pve2", "vzdump", 200)]
    report = evaluate(snapshot(jobs, tasks), NOW)
    assert reasons(report) == {100: HOLD_MIGRATING, 101: HOLD_BACKUP_WINDOW, 102: HOLD_BACKUP_WINDOW,
                               200: HOLD_BACKUP_RUNNING, 201: HOLD_BACKUP_WINDOW, 300: HOLD_BACKUP_WINDOW}
    assert {n: h.reason for n, h in report.busy_nodes.items()} == {"pve1": HOLD_MIGRATING, "pve2": HOLD_BACKUP_RUNNING}


def test_the_report_is_plain_data_and_deterministic():
    snap = snapshot([nightly()], [task("pve1", "qmigrate", 100), task("pve2", "vzdump", 200)])
    first = evaluate(snap, NOW).as_dict()
    assert json.loads(json.dumps(first)) == json.loads(json.dumps(evaluate(snap, NOW).as_dict()))
    assert set(first) == {"held_guests", "busy_nodes", "backup_nodes", "migrations", "warnings"}
    assert first["held_guests"][100] == {"reason": HOLD_MIGRATING, "detail": first["held_guests"][100]["detail"],
                                         "job": None, "due": None, "upid": snap.running_tasks[0].upid}


def test_a_snapshot_without_jobs_or_tasks_is_a_warning_not_an_error():
    snap = snapshot()
    snap.backup_jobs = snap.running_tasks = None
    report = evaluate(snap, NOW)
    assert report.held_guests == {} and len(report.warnings) == 1


@pytest.mark.parametrize("options, option", [
    ({"backup_guard": -1}, "backup_guard"),
    ({"backup_guard": "30"}, "backup_guard"),
    ({"backup_guard": 1.5}, "backup_guard"),
    ({"backup_guard": True}, "backup_guard"),
    ({"avoid_backup_nodes": "yes"}, "avoid_backup_nodes"),
])
def test_bad_options_name_the_option(options, option):
    with pytest.raises(ConfigError) as err:
        evaluate(snapshot(), NOW, **options)
    assert err.value.option == option


def test_now_must_be_a_datetime():
    with pytest.raises(TypeError):
        evaluate(snapshot(), "2026-03-04T20:45")
