# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""proxlb_plan without Ansible, offline on hand-built snapshots."""

from __future__ import annotations

import json

import pytest

from ansible_collections.proxlb.balancer.plugins.module_utils import planner
from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ConfigError
from ansible_collections.proxlb.balancer.plugins.module_utils.plan_runner import run_plan
from ansible_collections.proxlb.balancer.plugins.module_utils.request import Request
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.cluster_builder import (
    cluster, guest, node, settings)


def no_connection():
    raise AssertionError("an offline plan must not connect")


def lopsided():
    return cluster([node("pve1"), node("pve2"), node("pve3")],
                   [guest(100 + i, "pve1", mem_gib=8) for i in range(6)] + [guest(110, "pve2", mem_gib=4)])


def saved(tmp_path, snapshot):
    path = tmp_path / "cluster.json"
    path.write_text(snapshot.to_json())
    return str(path)


def request(**params):
    return Request(dict(dict(snapshot=None, dest=None), **params), no_connection)


def test_offline_plan_is_the_planners_plan(tmp_path):
    snap = lopsided()
    result = run_plan(request(snapshot=saved(tmp_path, snap), balanciness=5))
    expected = planner.plan(snap, settings(balanciness=5)).to_dict()
    assert result["plan"]["moves"] == expected["moves"] and result["plan"]["moves"]
    assert result["changed"] is False and "dest" not in result
    assert result["changed_nodes"] == sorted({m["from"] for m in expected["moves"]} | {m["to"] for m in expected["moves"]})
    assert result["summary_lines"] == expected["summary"].splitlines()


def test_dest_holds_the_plan_and_reports_a_change_only_when_it_changes(tmp_path):
    snapshot = saved(tmp_path, lopsided())
    dest = tmp_path / "plan.json"
    first = run_plan(request(snapshot=snapshot, dest=str(dest)))
    assert first["changed"] is True and first["dest"] == str(dest)
    assert json.loads(dest.read_text()) == first["plan"]
    assert run_plan(request(snapshot=snapshot, dest=str(dest)))["changed"] is False
    assert run_plan(request(snapshot=snapshot, dest=str(dest), balanciness=50))["changed"] is True


def test_bad_input_names_the_option_and_writes_nothing(tmp_path):
    with pytest.raises(ConfigError) as err:
        run_plan(request(snapshot=saved(tmp_path, lopsided()), dest=str(tmp_path / "missing" / "plan.json")))
    assert err.value.option == "dest"
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ConfigError) as err:
        run_plan(request(snapshot=str(broken)))
    assert err.value.option == "snapshot" and "not a usable snapshot" in str(err.value)
    with pytest.raises(ConfigError) as err:
        run_plan(request(snapshot=str(broken), method="gpu"))
    assert err.value.option == "method"
