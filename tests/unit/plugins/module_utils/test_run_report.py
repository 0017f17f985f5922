# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run report: the result dict and its documented keys, progress lines, outcomes in check
mode, the placement diff."""

from __future__ import annotations

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
