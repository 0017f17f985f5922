# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""proxlb_cluster_info without Ansible, on recorded PVE answers."""

from __future__ import annotations

from ansible_collections.proxlb.balancer.plugins.module_utils.cluster_info_runner import node_summary, run_cluster_info
from ansible_collections.proxlb.balancer.plugins.module_utils.request import Request
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.cluster_builder import cluster, guest, node
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.canned_pve import CannedClient, load


def request(answers, **params):
    values = dict(dest=None, with_pressure=False, pressure_window="hour", with_local_volumes=False)
    values.update(params)
    return Request(values, lambda: CannedClient(answers))


def test_node_summary_in_percent_and_guest_counts():
    snap = cluster([node("pve1", mem_gib=64), node("pve2", mem_gib=0, status="offline")],
                   [guest(100, "pve1", mem_gib=16), guest(101, "pve1", status="stopped"), guest(102, "pve2")])
    summary = node_summary(snap)
    assert summary["pve1"]["mem_pct"] == round(100.0 * 18 / 64, 1)
    assert (summary["pve1"]["guests"], summary["pve1"]["running"]) == (2, 1)
    assert summary["pve2"]["mem_pct"] == 0.0 and summary["pve2"]["status"] == "offline"


def test_result_and_warnings_of_a_pve8_cluster(tmp_path):
    req = request(load("pve8_cluster.json"), with_pressure=True)
    result = run_cluster_info(req)
    assert result["changed"] is False and result["pve_version"].startswith("8.")
    assert result["guests_count"] == len(result["snapshot"]["guests"]) and set(result["nodes"]) == set(result["snapshot"]["nodes"])
    assert req.warnings == ["with_pressure: PVE %s has no pressure (PSI) data; it needs PVE 9 or later" % result["pve_version"]]


def test_dest_is_the_snapshot_written_once(tmp_path):
    dest = tmp_path / "snap.json"
    answers = load("pve9_cluster.json")
    assert run_cluster_info(request(answers, dest=str(dest)))["changed"] is True
    assert '"pve_version": "9.0.3"' in dest.read_text()
    assert run_cluster_info(request(answers, dest=str(dest)))["changed"] is False
