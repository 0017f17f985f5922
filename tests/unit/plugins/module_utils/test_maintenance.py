# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Maintenance on plain data: request checks, what stays on a drained node, and PVE's migration
check on canned answers."""

from __future__ import annotations

import pytest

from ansible_collections.proxlb.balancer.plugins.module_utils import planner
from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ConfigError, PveApiError
from ansible_collections.proxlb.balancer.plugins.module_utils.planner import Move
from ansible_collections.proxlb.balancer.plugins.module_utils import maintenance as maint
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.cluster_builder import (
    cluster, guest, node, settings)


# -- the request ------------------------------------------------------------------------------

def four_nodes(**states):
    return cluster([node(n, **states.get(n, {})) for n in ("pve1", "pve2", "pve3", "pve4")],
                   [guest(101, "pve1"), guest(102, "pve2")])


def test_nodes_are_deduplicated_and_must_exist():
    snap = four_nodes()
    assert maint.requested_nodes({"nodes": ["pve1", " pve1", "pve2"]}, snap) == ["pve1", "pve2"]
    with pytest.raises(ConfigError, match=r"^nodes: is empty"):
        maint.requested_nodes({"nodes": []}, snap)
    with pytest.raises(ConfigError, match=r"unknown node\(s\) pve7; the cluster has pve1, pve2, pve3, pve4"):
        maint.requested_nodes({"nodes": ["pve1", "pve7"]}, snap)


def test_drain_of_every_node_is_refused():
    snap = four_nodes()
    with pytest.raises(ConfigError, match="would drain every node of the cluster"):
        maint.check_drain(["pve1", "pve2", "pve3", "pve4"], snap, settings())


def test_drain_without_a_receiving_node_is_refused_with_each_nodes_reason():
    snap = four_nodes(pve3=dict(status="offline"), pve4=dict(ha_maintenance=True))
    with pytest.raises(ConfigError) as err:
        maint.check_drain(["pve1", "pve2"], snap, settings())
    assert "pve3: offline" in str(err.value) and "pve4: in PVE HA maintenance" in str(err.value)
    with pytest.raises(ConfigError, match="^ignore_nodes:"):
        maint.check_drain(["pve1"], four_nodes(), settings(ignore_nodes=["pve1"]))
    maint.check_drain(["pve1"], snap, settings())


def test_return_list_keeps_entries_of_the_nodes_and_reports_vanished_guests():
    snap = four_nodes()
    wanted, gone = maint.wanted_placements({"return_guests": [
        {"vmid": 101, "name": "g101", "from": "pve3", "to": "pve1"},
        {"vmid": "102", "from": "pve4"},
        {"vmid": 999, "name": "gone", "from": "pve3", "to": "pve2"}]}, ["pve3"], snap)
    assert wanted == {101: "pve3"}
    assert gone == [dict(vmid=999, name="gone", node=None, wanted="pve3", reason="guest no longer exists")]
    with pytest.raises(ConfigError, match=r"^return_guests\[0\]: needs vmid and from"):
        maint.wanted_placements({"return_guests": [{"vmid": "x", "from": "pve1"}]}, ["pve1"], snap)


# -- what stays on a drained node ---------------------------------------------------------------

def test_classification_of_what_stays():
    snap = cluster([node("pve1"), node("pve2"), node("pve3")], [
        guest(101, "pve1", tags=["plb_pin_pve1"]),                       # pinned here only
        guest(102, "pve1", tags=["plb_ignore"]),                         # ignored
        guest(103, "pve1", tags=["plb_affinity_x"]),                     # partner of an ignored guest
        guest(104, "pve1", tags=["plb_affinity_x", "plb_ignore_me"]),
        guest(105, "pve1", status="stopped"),
        guest(106, "pve1", template=True, status="stopped", tags=["plb_pin_pve1"]),
        guest(107, "pve1", mem_gib=200),                                 # fits nowhere
        guest(108, "pve1"),                                              # moves
    ])
    conf = settings(maintenance_nodes=["pve1"], include_stopped=False)
    plan = planner.plan(snap, conf, balance=False)
    blocking, staying, nowhere = maint.remaining_on(snap, conf, ["pve1"], plan)
    reasons = {e["vmid"]: e["reason"] for e in blocking}
    assert reasons[101] == "may only run on pve1 (rule:pin)"
    assert reasons[102] == "ignored" and reasons[104] == "ignored"
    assert reasons[103].startswith("affinity with 104 (g104), which stays: ignored")
    assert {e["vmid"]: e["reason"] for e in staying} == {105: "stopped", 106: "template"}
    assert [e["vmid"] for e in nowhere] == [107]
    assert "memory" in nowhere[0]["detail"] and nowhere[0]["rule"] == "maintenance"
    assert [m.vmid for m in plan.moves] == [108]


# -- PVE's migration check ----------------------------------------------------------------------

class Answers:
    """A client that answers the migration check from a dict and counts the requests."""

    def __init__(self, answers):
        self.answers = answers
        self.asked = []

    def get(self, path, **params):
        self.asked.append((path, params))
        answer = self.answers[path]
        if isinstance(answer, Exception):
            raise answer
        return answer


def move(vmid, kind="qemu", target="pve2"):
    return Move(vmid=vmid, name="g%d" % vmid, kind="vm" if kind == "qemu" else "ct", type=kind, source="pve1",
                target=target, reason="maintenance", mandatory=True)


def test_pve_check_tells_whole_guest_refusals_from_refused_nodes():
    snap = four_nodes()
    client = Answers({
        "nodes/pve1/qemu/101/migrate": {"running": 1, "local_resources": ["hostpci0"], "allowed_nodes": ["pve2"],
                                        "not_allowed_nodes": {"pve2": {}}},
        "nodes/pve1/qemu/102/migrate": {"running": 1, "local_resources": [], "allowed_nodes": ["pve2"],
                                        "not_allowed_nodes": {"pve2": {}, "pve3": {"unavailable_storages": ["fast"]},
                                                              "pve4": {"blocking-ha-resources": [
                                                                  {"sid": "vm:9", "cause": "resource-affinity"}]}}},
        "nodes/pve1/qemu/103/migrate": PveApiError("500", kind="http", status=500, pve_message="VM is locked (backup)"),
    })
    whole, nodes = maint.pve_check(client, snap, move(101), True)
    assert whole == "PVE: local resources pin the VM to its node: hostpci0" and nodes == {}
    whole, nodes = maint.pve_check(client, snap, move(102), True)
    assert whole is None
    assert nodes == {"pve3": "PVE: target pve3 not allowed (storages not available there: fast)",
                     "pve4": "PVE: target pve4 not allowed (blocked by HA rules: vm:9 (resource-affinity))"}
    whole, nodes = maint.pve_check(client, snap, move(103), True)
    assert whole == "PVE refused the migration check: VM is locked (backup)"
    assert client.asked[0] == ("nodes/pve1/qemu/101/migrate", {"target": "pve2"})


def test_pve8_containers_are_not_asked():
    snap = four_nodes()
    snap.pve_version = "8.2.4"
    client = Answers({})
    assert maint.pve_check(client, snap, move(101, kind="lxc"), True) == (None, {})
    assert client.asked == []


def test_plan_goes_around_nodes_pve_refuses():
    snap = cluster([node("pve1"), node("pve2"), node("pve3")], [guest(101, "pve1")])
    conf = settings(maintenance_nodes=["pve1"])
    first = planner.plan(snap, conf, balance=False)
    refused_node = first.moves[0].target
    other = ({"pve2", "pve3"} - {refused_node}).pop()
    again = planner.plan(snap, conf, balance=False, forbidden={101: {refused_node: "PVE: no storage"}})
    assert [(m.vmid, m.target) for m in again.moves] == [(101, other)]
    stuck = planner.plan(snap, conf, balance=False, forbidden={101: {"pve2": "PVE: no storage", "pve3": "PVE: no bridge"}})
    assert stuck.moves == []
    assert stuck.data["failures"][0]["detail"] == "pve2: PVE: no storage; pve3: PVE: no bridge"
