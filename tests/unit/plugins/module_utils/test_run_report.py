# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run report: the result dict and its documented keys, progress lines, outcomes in check
mode, the placement diff."""

from __future__ import annotations

from ansible_collections.proxlb.balancer.plugins.module_utils.run_report import (
    FAILED, NOT_STARTED, OK, PLANNED, ExecutionReport, MoveOutcome, WaveReport, check_mode_report, placement_diff,
    run_result)
from ansible_collections.proxlb.balancer.plugins.module_utils.settings import BalanceSettings
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.fake_pve import FakePve, move, plan_of, run


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


def test_check_mode_report_plans_the_first_waves_and_keeps_the_rest():
    pve = FakePve(guests={100: {}, 101: {}, 102: {}})
    waves = [[move(100, "pve1", "pve2")], [], [move(101, "pve1", "pve3", 2), move(102, "pve1", "pve2", 2)]]
    report = check_mode_report(waves, pve.snapshot(), BalanceSettings(), max_waves=1)
    assert [(o.move.vmid, o.wave, o.status) for o in report.outcomes] == [(100, 1, PLANNED)]
    assert [[m.vmid for m in w] for w in report.remaining] == [[101, 102]]
    assert [(m["vmid"], m["wave"]) for m in report.remaining_moves()] == [(101, 2), (102, 2)]
    assert report.nodes_final["pve1"]["guests"] == 3 and pve.calls == 0
    every = check_mode_report(waves, pve.snapshot(), BalanceSettings())
    assert [o.wave for o in every.outcomes] == [1, 2, 2] and every.remaining == []
    assert not every.changed and not every.failed


def test_placement_diff_tells_where_guests_are_not_where_they_were_meant_to_go():
    outcomes = [MoveOutcome(move(100, "pve1", "pve2"), 1, status=PLANNED),
                MoveOutcome(move(101, "pve1", "pve2"), 1, status=OK, final_node="pve3"),
                MoveOutcome(move(102, "pve1", "pve2"), 1, status=FAILED, final_node="pve1"),
                MoveOutcome(move(103, "pve1", "pve2"), 1, status=OK),
                MoveOutcome(move(104, "pve1", "pve2"), 1, status=FAILED)]
    assert placement_diff(outcomes) == {"before": {"100/g100": "pve1", "101/g101": "pve1", "103/g103": "pve1"},
                                        "after": {"100/g100": "pve2", "101/g101": "pve3", "103/g103": "pve2"}}


def test_failure_message_and_progress_say_what_failed_and_what_did_not_start():
    report = ExecutionReport(outcomes=[
        MoveOutcome(move(100, "pve1", "pve2"), 1, status=FAILED, upid="UPID:x", duration_s=2.0, error="aborted"),
        MoveOutcome(move(101, "pve1", "pve3"), 1, status=OK, upid="UPID:y", duration_s=4.25, final_node="pve3"),
        MoveOutcome(move(102, "pve1", "pve3", 2), 2, status=NOT_STARTED)],
        waves=[WaveReport(wave=1, moves=2, ok=1, failed=1, duration_s=4.5, longest_s=4.25, api_calls=9)],
        stopped=True, stop_reason="on_failure=stop after the failed migration of 100 (g100)")
    assert report.failed and report.changed
    assert report.failure_message() == (
        "1 of 2 migration(s) failed: 100 (g100) pve1 -> pve2: aborted. stopped (on_failure=stop after the failed"
        " migration of 100 (g100)); 1 move(s) not started")
    assert report.progress() == [
        "wave 1  100 g100  pve1 -> pve2  failed  2.0 s  - aborted",
        "wave 1  101 g101  pve1 -> pve3  ok  4.2 s",
        "wave 2  102 g102  pve1 -> pve3  not_started",
        "wave 1: 1 ok, 1 failed, 0 skipped, 0 not started in 4.5 s (longest migration 4.2 s, 9 API calls)",
        "stopped: on_failure=stop after the failed migration of 100 (g100)"]


class CountingClient:
    calls = 12
    calls_by_endpoint = {"GET /cluster/resources": 2}


def test_run_result_adds_plan_api_calls_and_the_diff_on_request():
    report = ExecutionReport(outcomes=[MoveOutcome(move(100, "pve1", "pve2"), 1, status=OK, final_node="pve2")])
    result = run_result(CountingClient(), report, {"moves": []}, "summary text", 6, True, diff=False)
    assert result["api_calls"] == {"total": 12, "collect": 6, "execute": 6, "by_endpoint": {"GET /cluster/resources": 2}}
    assert (result["changed"], result["plan"], result["summary"]) == (True, {"moves": []}, "summary text")
    assert "diff" not in result and set(report.to_dict()) <= set(result)
    with_diff = run_result(CountingClient(), report, {"moves": []}, "summary text", 6, True, diff=True)
    assert with_diff["diff"] == {"before": {"100/g100": "pve1"}, "after": {"100/g100": "pve2"}}
