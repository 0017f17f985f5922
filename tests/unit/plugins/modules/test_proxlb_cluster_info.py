# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module shell: arguments in, snapshot summary out, dest written only when it changes."""

from __future__ import annotations

import json
import os

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.proxlb.balancer.plugins.modules import proxlb_cluster_info
from ansible_collections.proxlb.balancer.plugins.module_utils.errors import PveApiError
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.canned_pve import CannedClient, load

TOKEN = dict(api_host=["pve1"], api_token_id="proxlb", api_token_secret="5f0e6c1a-3b7d-4c2e-9a41-0d2b8e7f6a11")


def run_module(monkeypatch, capsys, connect=None, **args):
    monkeypatch.setattr(proxlb_cluster_info, "connect", connect or (lambda module: CannedClient(load("pve9_cluster.json"))))
    with patch_module_args(dict(TOKEN, **args)):
        with pytest.raises(SystemExit):
            proxlb_cluster_info.main()
    return json.loads(capsys.readouterr().out)


def test_returns_summary_and_snapshot(monkeypatch, capsys):
    result = run_module(monkeypatch, capsys)
    assert result["changed"] is False
    assert (result["pve_version"], result["cluster_name"], result["quorate"]) == ("9.0.3", "prodcluster", True)
    assert result["guests_count"] == 7 and result["api_calls"] == 8
    assert result["nodes"]["pve1"] == {
        "status": "online", "maxmem_bytes": 269878464512, "mem_bytes": 91268055040, "mem_pct": 33.8,
        "maxcpu": 48, "cpu_pct": 4.3, "guests": 3, "running": 2, "ha_maintenance": False}
    assert result["nodes"]["pve2"]["ha_maintenance"] is True
    assert result["nodes"]["pve3"]["mem_pct"] == 0.0
    assert set(result["snapshot"]["guests"]) == {"100", "101", "102", "103", "104", "105", "106"}
    assert "ansible_facts" not in result


def test_dest_is_written_once_and_not_in_check_mode(monkeypatch, capsys, tmp_path):
    dest = str(tmp_path / "snap.json")
    assert run_module(monkeypatch, capsys, dest=dest, _ansible_check_mode=True)["changed"] is True
    assert not os.path.exists(dest)
    assert run_module(monkeypatch, capsys, dest=dest)["changed"] is True
    with open(dest) as handle:
        assert json.load(handle)["pve_version"] == "9.0.3"
    assert run_module(monkeypatch, capsys, dest=dest)["changed"] is False


def test_errors_become_one_failure(monkeypatch, capsys):
    def refuse(module):
        raise PveApiError("could not reach the Proxmox VE API on any host: pve1:8006 (connection refused)", kind="unreachable")

    result = run_module(monkeypatch, capsys, connect=refuse)
    assert result["failed"] is True
    assert result["msg"].startswith("could not reach")
    assert result["error"] == {"type": "PveApiError", "kind": "unreachable"}


def test_secrets_are_not_logged(monkeypatch, capsys):
    result = run_module(monkeypatch, capsys)
    assert "5f0e6c1a-3b7d-4c2e-9a41-0d2b8e7f6a11" not in json.dumps(result)
