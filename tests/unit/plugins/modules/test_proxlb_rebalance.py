# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The proxlb_rebalance shell against the HTTPS simulator: check and diff mode from Ansible, a
run and a second run, the failure payload, option errors before any request."""

from __future__ import annotations

from ansible_collections.proxlb.balancer.plugins.modules import proxlb_rebalance as module
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils import pvesim_client
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.pvesim_client import placements, writes


def run_module(sim, monkeypatch, capsys, **args):
    return pvesim_client.run_module(module, sim, monkeypatch, capsys, **args)


def test_check_mode_returns_the_plan_as_planned_moves_and_writes_nothing(sim, monkeypatch, capsys):
    start = placements(sim)
    sim.reset_calls()
    failed, result = run_module(sim, monkeypatch, capsys, check=True, diff=True, parallel_migrations=2)
    assert not failed and result["changed"]
    assert result["moves"] and {m["status"] for m in result["moves"]} == {"planned"}
    assert [m["vmid"] for m in result["moves"]] == [m["vmid"] for m in result["plan"]["moves"]]
    assert result["summary"] == result["plan"]["summary"]
    assert sorted(result["diff"]["after"]) == sorted("%d/%s" % (m["vmid"], m["name"]) for m in result["moves"])
    assert result["remaining"] == {"moves": [], "waves": 0}
    assert result["api_calls"]["execute"] == 0 and result["duration_s"] == 0
    assert writes(sim) == [] and placements(sim) == start


def test_run_carries_out_the_plan_and_a_second_run_has_nothing_to_do(sim, monkeypatch, capsys):
    failed, preview = run_module(sim, monkeypatch, capsys, check=True, diff=True, parallel_migrations=2)
    failed, result = run_module(sim, monkeypatch, capsys, diff=True, parallel_migrations=2)
    assert not failed and result["changed"]
    assert {m["status"] for m in result["moves"]} == {"ok"}
    assert result["diff"] == preview["diff"]
    now = placements(sim)
    assert {int(key.split("/")[0]): node for key, node in result["diff"]["after"].items()} == \
        {vmid: now[vmid] for vmid in (int(key.split("/")[0]) for key in result["diff"]["after"])}
    assert result["api_calls"]["total"] == result["api_calls"]["collect"] + result["api_calls"]["execute"]
    failed, again = run_module(sim, monkeypatch, capsys)
    assert not failed and not again["changed"] and again["moves"] == []


def test_a_failed_migration_fails_the_task_with_what_happened_but_not_the_plan(sim, monkeypatch, capsys):
    sim.set_faults(migration_failure_rate=1.0)
    start = placements(sim)
    failed, result = run_module(sim, monkeypatch, capsys)
    assert failed and "1 of 1 migration(s) failed" in result["msg"] and "on_failure=stop" in result["msg"]
    statuses = [m["status"] for m in result["moves"]]
    assert statuses[0] == "failed" and set(statuses[1:]) == {"not_started"}
    assert result["stopped"] and result["changed"] is False
    assert "plan" not in result and "summary" not in result and "error" not in result
    assert {"waves", "progress", "remaining", "api_calls", "nodes_final"} <= set(result)
    assert placements(sim) == start


def test_option_errors_come_before_any_request(sim, monkeypatch, capsys):
    sim.reset_calls()
    failed, result = run_module(sim, monkeypatch, capsys, parallel_migrations=0)
    assert failed and result["msg"].startswith("parallel_migrations: 0 is out of range")
    assert result["error"] == {"type": "ConfigError", "option": "parallel_migrations"}
    failed, result = run_module(sim, monkeypatch, capsys, on_failure="retry")
    assert failed and "value of on_failure must be one of: stop, continue" in result["msg"]
    assert sim.calls()["total"] == 0
