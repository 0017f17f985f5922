# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whole runs against a small scripted cluster that keeps virtual time (so a 30-minute timeout
costs nothing): waves, parallelism, failures, HA hand-over, drift and re-planning."""

from __future__ import annotations

import math

import pytest

from ansible_collections.proxlb.balancer.plugins.module_utils import executor, planner, pve_tasks
from ansible_collections.proxlb.balancer.plugins.module_utils.errors import PveApiError
from ansible_collections.proxlb.balancer.plugins.module_utils.execution_options import ExecOptions
from ansible_collections.proxlb.balancer.plugins.module_utils.executor import execute
from ansible_collections.proxlb.balancer.plugins.module_utils.rebalance_runner import moves_from_plan
from ansible_collections.proxlb.balancer.plugins.module_utils.settings import BalanceSettings
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.fake_pve import (
    FakePve, by_vmid, move, plan_of, run)


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
        assert polls <= 12 + math.log(max(duration, 1.0)) / math.log(1.1) + duration / pve_tasks.POLL_MAX_S


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
    assert outcome.duration_s < pve_tasks.HA_START_S + 10


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
    assert pve_tasks.LOST_TASK_S <= outcome.duration_s <= pve_tasks.LOST_TASK_S + pve_tasks.POLL_MAX_S + 0.5
