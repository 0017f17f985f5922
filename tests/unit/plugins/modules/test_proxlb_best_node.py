# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module shell: options in, the node and ranking out; no fit fails unless told otherwise."""

from __future__ import annotations

import json

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.proxlb.balancer.plugins.modules import proxlb_best_node
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.cluster_builder import cluster, guest, node
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.canned_pve import CannedClient, load
from ansible_collections.proxlb.balancer.tests.unit.plugins.modules.test_proxlb_cluster_info import TOKEN


@pytest.fixture
def snapshot_file(tmp_path):
    snap = cluster([node("pve1", 64), node("pve2", 64), node("pve3", 16)], [guest(100, "pve1", 46), guest(101, "pve2", 30)])
    snap.api_calls = 6
    path = tmp_path / "cluster.json"
    snap.save(str(path))
    return str(path)


def run_module(monkeypatch, capsys, connect=None, **args):
    def refuse(module):
        raise AssertionError("the module must not connect when it is given a snapshot")

    monkeypatch.setattr(proxlb_best_node, "connect", connect or refuse)
    with patch_module_args(dict(TOKEN, **args)):
        with pytest.raises(SystemExit):
            proxlb_best_node.main()
    return json.loads(capsys.readouterr().out)


def warnings(result):
    """Warning texts, whether Ansible returns them as strings or as warning summaries."""
    return [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]


def test_chooses_from_a_snapshot_without_api_calls(monkeypatch, capsys, snapshot_file):
    result = run_module(monkeypatch, capsys, snapshot=snapshot_file, memory="4G", cores=2, disk="10G")
    assert result["changed"] is False and "failed" not in result
    assert result["node"] == "pve3" and result["nodes"] == ["pve3"] and result["api_calls"] == 0
    assert [row["node"] for row in result["ranking"]] == ["pve3", "pve2", "pve1"]
    assert warnings(result) == ["disk is only checked against a storage; give storage to check free space"]


def test_no_fit_fails_with_the_reasons_and_the_ranking(monkeypatch, capsys, snapshot_file):
    result = run_module(monkeypatch, capsys, snapshot=snapshot_file, memory="40G", cores=2)
    assert result["failed"] is True
    assert result["msg"].startswith("no node can take the new vm (40.0 GiB memory, 2 cores): pve1: memory: ")
    assert result["node"] is None and len(result["ranking"]) == 3


def test_no_fit_without_failing_gives_null_and_the_message(monkeypatch, capsys, snapshot_file):
    result = run_module(monkeypatch, capsys, snapshot=snapshot_file, memory="20G", cores=2, count=2, fail_when_no_fit=False)
    assert "failed" not in result
    assert result["nodes"] == ["pve2", None] and "new vm 2 of 2 (after placing pve2)" in result["msg"]
    assert [p["node"] for p in result["placements"]] == ["pve2", None]


@pytest.mark.parametrize("args, option", [
    (dict(memory="lots", cores=2), "memory"), (dict(memory="1G", cores=2, count=0), "count"),
    (dict(memory="1G", cores=2, nodes=["pve9"]), "nodes"),
])
def test_bad_options_fail_naming_the_option(monkeypatch, capsys, snapshot_file, args, option):
    result = run_module(monkeypatch, capsys, snapshot=snapshot_file, **args)
    assert result["failed"] is True and result["error"] == {"type": "ConfigError", "option": option}
    assert result["msg"].startswith(option + ": ")


def test_an_unreadable_snapshot_names_the_option(monkeypatch, capsys, tmp_path):
    result = run_module(monkeypatch, capsys, snapshot=str(tmp_path / "missing.json"), memory="1G", cores=1)
    assert result["failed"] is True and result["msg"].startswith("snapshot: cannot read ")


def test_reads_the_cluster_through_the_api(monkeypatch, capsys):
    client = CannedClient(load("pve9_cluster.json"))
    result = run_module(monkeypatch, capsys, connect=lambda module: client, memory="1G", cores=1)
    assert result["api_calls"] == 8 and client.calls > 0   # as proxlb_cluster_info reports for this cluster
    assert result["node"] in {row["node"] for row in result["ranking"] if row["fits"]}
    assert "5f0e6c1a-3b7d-4c2e-9a41-0d2b8e7f6a11" not in json.dumps(result)
