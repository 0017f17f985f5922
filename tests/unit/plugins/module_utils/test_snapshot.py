# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cluster snapshot: version parsing, guest facts, and a JSON round trip that compares equal."""

from __future__ import annotations

import json

import pytest

from ansible_collections.proxlb.balancer.plugins.module_utils.snapshot import (
    SNAPSHOT_FORMAT, ClusterSnapshot, HaGroup, HaRule, Storage, version_tuple)
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.cluster_builder import cluster, guest, node


@pytest.mark.parametrize("text, expected", [
    ("9.0.3", (9, 0, 3)), ("8.2-4", (8, 2, 4)), ("9", (9, 0, 0)), ("9.0.10", (9, 0, 10)), ("", (0, 0, 0)), (None, (0, 0, 0)),
    ("8.4.1.7", (8, 4, 1)),
])
def test_version_tuple(text, expected):
    assert version_tuple(text) == expected


def test_guest_facts():
    vm = guest(100, "pve1", ha={"sid": "vm:100", "state": "started"})
    ct = guest(101, "pve1", kind="lxc", status="stopped", ha={"sid": "ct:101", "state": "ignored"})
    assert (vm.kind, vm.sid, vm.running, vm.ha_managed) == ("vm", "vm:100", True, True)
    assert (ct.kind, ct.sid, ct.running, ct.ha_managed) == ("ct", "ct:101", False, False)
    assert guest(102, "pve1").ha_managed is False


def test_storage_holds_guests_only_with_images_or_rootdir():
    assert Storage(storage="a", node="n", content=["images", "iso"]).holds_guests
    assert Storage(storage="b", node="n", content=["rootdir"]).holds_guests
    assert not Storage(storage="c", node="n", content=["iso", "backup"]).holds_guests


def full_snapshot():
    snap = cluster([node("pve1", pressure={"memory_some": 1.5}), node("pve2", status="offline")],
                   [guest(100, "pve1", tags=["plb_pin_pve1"], pool="web", local_disk_bytes=5),
                    guest(101, "pve1", kind="lxc", ha={"sid": "ct:101", "state": "started", "group": "g"})],
                   ha_rules=[HaRule(rule="r", type="node-affinity", resources=["vm:100"], nodes={"pve1": 2}, strict=True)],
                   ha_groups=[HaGroup(group="g", nodes={"pve1": 1}, restricted=True)],
                   storages=[Storage(storage="local", node="pve1", content=["images"], status="available", disk_bytes=1, maxdisk_bytes=2)],
                   crs={"ha": "static", "ha-auto-rebalance": 0})
    snap.api_calls = 6
    return snap


def test_json_round_trip_compares_equal(tmp_path):
    snap = full_snapshot()
    assert ClusterSnapshot.from_json(snap.to_json()) == snap
    path = str(tmp_path / "cluster.json")
    snap.save(path)
    assert ClusterSnapshot.load(path) == snap
    assert set(json.loads(snap.to_json())["guests"]) == {"100", "101"}


def test_guests_on_a_node():
    assert [g.vmid for g in full_snapshot().guests_on("pve1")] == [100, 101]
    assert full_snapshot().guests_on("pve2") == []


@pytest.mark.parametrize("data, message", [
    ([], "not a proxlb.balancer cluster snapshot"),
    ({"nodes": {}}, "not a proxlb.balancer cluster snapshot"),
    ({"nodes": {}, "guests": {}, "format": SNAPSHOT_FORMAT + 1}, "snapshot format 2 is not supported"),
])
def test_what_is_not_a_snapshot_is_refused(data, message):
    with pytest.raises(ValueError, match=message):
        ClusterSnapshot.from_dict(data)


def test_missing_optional_parts_get_defaults():
    snap = ClusterSnapshot.from_dict({"nodes": {"pve1": {"name": "pve1"}}, "guests": {"100": {"vmid": 100, "name": "a", "type": "qemu", "node": "pve1"}}})
    assert snap.pve_version == "0.0.0" and snap.storages == [] and snap.ha_rules == [] and snap.crs == {}
    assert snap.guests[100].status == "unknown" and snap.nodes["pve1"].online is False
