# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The proxlb_plan shell: a plan from the simulator, the same plan offline from a saved snapshot,
dest written only when it changes, errors naming the option."""

from __future__ import annotations

import json

from ansible_collections.proxlb.balancer.plugins.module_utils.collector import collect
from ansible_collections.proxlb.balancer.plugins.modules import proxlb_plan as module
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils import pvesim_client
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.pvesim_client import client_for, run_main, writes


def run_module(sim, monkeypatch, capsys, **args):
    return pvesim_client.run_module(module, sim, monkeypatch, capsys, **args)


def test_plans_without_changing_anything(sim, monkeypatch, capsys):
    sim.reset_calls()
    failed, result = run_module(sim, monkeypatch, capsys)
    assert not failed and result["changed"] is False
    moves = result["plan"]["moves"]
    assert moves and result["plan"]["moves_count"] == len(moves)
    assert result["summary_lines"] == result["summary"].splitlines()
    assert result["changed_nodes"] == sorted({m["from"] for m in moves} | {m["to"] for m in moves})
    assert "dest" not in result
    assert writes(sim) == []


def no_connection(_module):
    raise AssertionError("an offline plan must not connect")


def test_offline_plan_from_a_snapshot_equals_the_live_plan(sim, monkeypatch, capsys, tmp_path):
    path = tmp_path / "cluster.json"
    path.write_text(collect(client_for(sim)).to_json())
    failed, live = run_module(sim, monkeypatch, capsys)
    assert not failed
    failed, offline = run_main(module, no_connection, monkeypatch, capsys, snapshot=str(path))
    assert not failed
    assert offline["plan"]["moves"] == live["plan"]["moves"] and offline["summary"] == live["summary"]


def test_dest_is_written_when_it_changes_and_never_in_check_mode(sim, monkeypatch, capsys, tmp_path):
    dest = tmp_path / "plan.json"
    failed, result = run_module(sim, monkeypatch, capsys, check=True, dest=str(dest))
    assert not failed and result["changed"] is True and result["dest"] == str(dest)
    assert not dest.exists()
    failed, result = run_module(sim, monkeypatch, capsys, dest=str(dest))
    assert not failed and result["changed"] is True
    assert json.loads(dest.read_text())["moves"] == result["plan"]["moves"]
    failed, result = run_module(sim, monkeypatch, capsys, dest=str(dest))
    assert not failed and result["changed"] is False


def test_errors_name_the_option(monkeypatch, capsys, tmp_path):
    failed, result = run_main(module, no_connection, monkeypatch, capsys, snapshot=str(tmp_path / "missing.json"))
    assert failed and result["msg"].startswith("snapshot: cannot read")
    assert result["error"] == {"type": "ConfigError", "option": "snapshot"}
    failed, result = run_main(module, no_connection, monkeypatch, capsys, balanciness=-1)
    assert failed and result["error"]["option"] == "balanciness"
