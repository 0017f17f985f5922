# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Placing guests: the best node for new guests (size, reserves, maintenance, rules, count, storage,
messages) and placements back onto given nodes."""

from __future__ import annotations

import pytest

from ansible_collections.proxlb.balancer.plugins.module_utils import placement
from ansible_collections.proxlb.balancer.plugins.module_utils.best_node_options import best_node_query
from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ConfigError
from ansible_collections.proxlb.balancer.plugins.module_utils.settings import GIB
from ansible_collections.proxlb.balancer.plugins.module_utils.snapshot import Storage
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.cluster_builder import cluster, guest, node, settings


def ask(snapshot, **options):
    return best_node_query(options).answer(snapshot)


def rows(result):
    return {row["node"]: row for row in result["ranking"]}


def three_nodes(extra=()):
    """pve1 busy (48 of 64 GiB), pve2 half, pve3 small but empty (16 GiB, 2 GiB host use)."""
    nodes = [node("pve1", 64), node("pve2", 64), node("pve3", 16)]
    guests = [guest(100, "pve1", 46), guest(101, "pve2", 30)] + list(extra)
    return cluster(nodes, guests)


# -- checks against the cluster -----------------------------------------------------------------
def test_unknown_candidate_node_lists_the_cluster_nodes():
    with pytest.raises(ConfigError) as err:
        ask(three_nodes(), memory="1G", cores=1, nodes=["pve2", "pve9"])
    assert err.value.option == "nodes"
    assert "pve9" in str(err.value) and "pve1, pve2, pve3" in str(err.value)


def test_unknown_pin_and_storage_are_errors():
    with pytest.raises(ConfigError, match="^tags: plb_pin_pve9 .*pve1, pve2, pve3"):
        ask(three_nodes(), memory="1G", cores=1, tags=["plb_pin_pve9"])
    with pytest.raises(ConfigError, match="^storage: unknown storage 'ceph'"):
        ask(three_nodes(), memory="1G", cores=1, storage="ceph", disk="10G")


# -- fit and load ------------------------------------------------------------------------------
def test_lowest_load_wins_when_it_fits():
    result = ask(three_nodes(), memory="4G", cores=2)
    assert result["node"] == "pve3" and result["nodes"] == ["pve3"]
    assert [r["node"] for r in result["ranking"]] == ["pve3", "pve2", "pve1"]
    assert [r["rank"] for r in result["ranking"]] == [1, 2, 3]
    top = result["ranking"][0]
    assert top["load_after_pct"] > top["load_before_pct"]
    assert result["request"]["memory_bytes"] == 4 * GIB and "placements" not in result


def test_size_matters_the_emptiest_node_without_room_is_not_chosen():
    result = ask(three_nodes(), memory="20G", cores=2)
    assert result["node"] == "pve2"
    pve3 = rows(result)["pve3"]
    assert not pve3["fits"] and pve3["rank"] is None
    assert pve3["reasons"] == ["memory: needs 20.0 GiB, 14.0 GiB free after reserve"]
    assert pve3["load_before_pct"] < rows(result)["pve2"]["load_before_pct"]


def test_reserve_is_respected():
    result = ask(three_nodes(), memory="8G", cores=2, node_resource_reserve={"pve3": {"memory": 10}})
    assert result["node"] == "pve2"
    assert "after reserve" in rows(result)["pve3"]["reasons"][0]
    result = ask(three_nodes(), memory="8G", cores=2, node_resource_reserve={"defaults": {"memory": 60}})
    assert result["node"] is None and "msg" in result


def test_cpu_overcommit_is_respected():
    snap = cluster([node("pve1", 64, threads=32), node("pve2", 64, threads=8)], [guest(100, "pve1", 30)])
    result = ask(snap, memory="1G", cores=40, cpu_overcommit=4)
    assert result["node"] == "pve1"
    assert rows(result)["pve2"]["reasons"] == ["cpu: 40 vCPUs would exceed the overcommit limit of 32"]


def test_maintenance_and_ignored_nodes_are_not_chosen():
    result = ask(three_nodes(), memory="4G", cores=2, maintenance_nodes=["pve3"])
    assert result["node"] == "pve2"
    assert rows(result)["pve3"]["reasons"] == ["maintenance node (maintenance_nodes)"]
    result = ask(three_nodes(), memory="4G", cores=2, ignore_nodes=["pve3", "pve2"])
    assert result["node"] == "pve1"
    assert rows(result)["pve2"]["reasons"] == ["ignored node (ignore_nodes)"]


def test_offline_and_ha_maintenance_nodes_are_not_chosen():
    snap = three_nodes()
    snap.nodes["pve3"].status = "offline"
    snap.nodes["pve2"].ha_maintenance = True
    result = ask(snap, memory="4G", cores=2)
    assert result["node"] == "pve1"
    assert rows(result)["pve3"]["reasons"] == ["node is offline"]
    assert rows(result)["pve2"]["reasons"] == ["node is in PVE HA maintenance mode"]


def test_method_cpu_ranks_by_cpu_load():
    nodes = [node("pve1", 64, threads=8), node("pve2", 64, threads=8)]
    # pve1: little memory, busy CPUs; pve2: much memory, idle CPUs
    snap = cluster(nodes, [guest(100, "pve1", 2, cores=8, cpu=0.9), guest(101, "pve2", 40, cores=1, cpu=0.1)])
    assert ask(snap, memory="2G", cores=2)["node"] == "pve1"
    assert ask(snap, memory="2G", cores=2, method="cpu")["node"] == "pve2"


def test_candidate_nodes_limit_the_choice():
    result = ask(three_nodes(), memory="4G", cores=2, nodes=["pve1", "pve2"])
    assert result["node"] == "pve2"
    assert rows(result)["pve3"]["reasons"] == ["not in the requested nodes"]


# -- rules ---------------------------------------------------------------------------------------
def test_anti_affinity_with_existing_guests():
    snap = three_nodes([guest(102, "pve3", 2, tags=["plb_anti_affinity_db"])])
    result = ask(snap, memory="4G", cores=2, tags=["plb_anti_affinity_db"])
    assert result["node"] == "pve2"
    assert rows(result)["pve3"]["reasons"] == ["anti-affinity group plb_anti_affinity_db already has 1 guest(s) there"]


def test_affinity_follows_the_group():
    snap = three_nodes([guest(102, "pve1", 2, tags=["plb_affinity_web"])])
    result = ask(snap, memory="4G", cores=2, tags=["plb_affinity_web"])
    assert result["node"] == "pve1"
    assert rows(result)["pve3"]["reasons"] == ["affinity: its group runs on pve1"]


def test_pin_restricts_the_choice():
    result = ask(three_nodes(), memory="4G", cores=2, tags=["plb_pin_pve1"])
    assert result["node"] == "pve1"
    assert not rows(result)["pve3"]["fits"] and "rule:pin" in rows(result)["pve3"]["reasons"][0]


def test_pool_rules_apply_to_the_new_guest():
    snap = three_nodes([guest(102, "pve3", 1, pool="db")])
    strict = ask(snap, memory="4G", cores=2, pool="db", pools={"db": {"pin": ["pve1"]}})
    assert strict["node"] == "pve1"
    preferred = ask(snap, memory="4G", cores=2, pool="db", pools={"db": {"pin": ["pve2"], "strict": False}})
    assert preferred["node"] == "pve2" and preferred["ranking"][0]["reasons"] == ["preferred by rule"]
    apart = ask(snap, memory="4G", cores=2, pool="db", pools={"db": {"type": "anti-affinity"}})
    assert apart["node"] == "pve2"


# -- several guests --------------------------------------------------------------------------------
def test_count_spreads_an_anti_affinity_group():
    snap = cluster([node("pve%d" % i, 64) for i in range(1, 5)], [guest(100 + i, "pve%d" % i, 30) for i in range(1, 4)])
    together = ask(snap, memory="2G", cores=1, count=3)
    assert together["nodes"] == ["pve4", "pve4", "pve4"]
    spread = ask(snap, memory="2G", cores=1, count=3, tags=["plb_anti_affinity_web"])
    assert len(set(spread["nodes"])) == 3 and spread["nodes"][0] == "pve4"
    assert [p["node"] for p in spread["placements"]] == spread["nodes"]
    second = {r["node"]: r for r in spread["placements"][1]["ranking"]}
    assert "anti-affinity" in second[spread["nodes"][0]]["reasons"][0]


def test_each_guest_is_accounted_before_the_next():
    # 30 GiB guests: pve3 takes none, pve2 one (34 GiB free), pve1 none (18 GiB free)
    result = ask(three_nodes(), memory="30G", cores=2, count=2, fail_when_no_fit=False)
    assert result["nodes"] == ["pve2", None]
    assert "new vm 2 of 2 (after placing pve2)" in result["msg"]


def test_an_oversized_anti_affinity_group_is_spread_evenly_with_a_warning():
    snap = cluster([node("pve1", 64), node("pve2", 64)], [])
    result = ask(snap, memory="1G", cores=1, count=4, tags=["plb_anti_affinity_web"])
    assert sorted(result["nodes"]) == ["pve1", "pve1", "pve2", "pve2"]
    assert any("plb_anti_affinity_web" in w for w in result["warnings"])


# -- storage ---------------------------------------------------------------------------------------
def storages():
    local = [Storage(storage="local-zfs", node=n, plugintype="zfspool", content=["images", "rootdir"], status="available",
                     disk_bytes=int(used * GIB), maxdisk_bytes=100 * GIB) for n, used in (("pve1", 10), ("pve2", 95), ("pve3", 0))]
    shared = [Storage(storage="ceph", node=n, plugintype="rbd", shared=True, content=["images"], status="available",
                      disk_bytes=900 * GIB, maxdisk_bytes=1000 * GIB) for n in ("pve1", "pve2")]
    return local + shared


def test_storage_must_be_there_with_free_space():
    snap = cluster([node("pve1", 64), node("pve2", 64), node("pve3", 16)], [guest(100, "pve1", 30)], storages=storages())
    result = ask(snap, memory="4G", cores=2, disk="20G", storage="local-zfs")
    assert result["request"]["storage_local"] is True
    assert result["node"] == "pve3"
    assert rows(result)["pve2"]["reasons"] == ["storage local-zfs: needs 20.0 GiB, 5.0 GiB free"]
    result = ask(snap, memory="4G", cores=2, disk="20G", storage="ceph")
    assert result["request"]["storage_local"] is False
    assert result["node"] == "pve2"
    assert rows(result)["pve3"]["reasons"] == ["storage ceph is not available here"]


def test_shared_storage_space_is_counted_across_placements():
    snap = cluster([node("pve1", 64), node("pve2", 64)], [], storages=storages())
    result = ask(snap, memory="1G", cores=1, disk="60G", storage="ceph", count=2, fail_when_no_fit=False)
    assert result["nodes"][1] is None and "storage ceph: needs 60.0 GiB, 40.0 GiB free" in result["msg"]


def test_containers_need_rootdir_content():
    snap = cluster([node("pve1", 64), node("pve2", 64)], [], storages=storages())
    result = ask(snap, memory="1G", cores=1, type="ct", disk="1G", storage="ceph", fail_when_no_fit=False)
    assert result["node"] is None and "does not hold rootdir" in result["msg"]


# -- no fit ------------------------------------------------------------------------------------------
def test_no_fit_message_says_why_each_node_was_rejected():
    snap = three_nodes([guest(102, "pve2", 1, tags=["plb_anti_affinity_db"])])
    result = ask(snap, memory="17G", cores=2, tags=["plb_anti_affinity_db"], maintenance_nodes=["pve3"])
    assert result["node"] is None and result["nodes"] == [None]
    assert result["msg"] == (
        "no node can take the new vm (17.0 GiB memory, 2 cores): "
        "pve1: memory: needs 17.0 GiB, 16.0 GiB free after reserve; "
        "pve2: anti-affinity group plb_anti_affinity_db already has 1 guest(s) there; "
        "pve3: maintenance node (maintenance_nodes)")
    assert all(not r["fits"] and r["reasons"] for r in result["ranking"])


# -- place_new_guests and plan_placements -------------------------------------------------------------
def test_best_node_accounts_size_rules_and_count():
    nodes = [node("pve1", 128), node("pve2", 16, base_gib=1), node("pve3", 128), node("pve4", 128)]
    guests = [guest(100, "pve1", 60), guest(101, "pve3", 40), guest(102, "pve4", 30, tags=["plb_anti_affinity_web"])]
    snap = cluster(nodes, guests)
    request = placement.NewGuest(memory_bytes=32 * GIB, cores=4, tags=["plb_anti_affinity_web"])
    chosen, ranking = placement.place_new_guests(snap, settings(), request, count=2)
    # pve2 is the emptiest but too small; pve4 holds an anti-affinity peer.
    assert chosen == ["pve3", "pve1"]
    rows = {r["node"]: r for r in ranking}
    assert not rows["pve2"]["fits"] and "memory" in rows["pve2"]["reasons"][0]
    assert not rows["pve4"]["fits"] and "anti-affinity" in rows["pve4"]["reasons"][0]


def test_return_placements_where_they_still_fit():
    nodes = [node("pve1", 64), node("pve2", 64), node("pve3", 32, base_gib=1)]
    guests = [guest(100, "pve1", 8), guest(101, "pve1", 24, used=1.0), guest(102, "pve2", 24, used=1.0)]
    snap = cluster(nodes, guests)
    wanted = {100: "pve3", 101: "pve3", 102: "pve2"}
    result = placement.plan_placements(snap, settings(), wanted)
    assert [(m.vmid, m.target) for m in result.moves] == [(101, "pve3")]
    assert result.data["failures"][0]["vmids"] == [100] and "memory" in result.data["failures"][0]["detail"]


def test_placements_that_cannot_happen_are_failures_and_the_rest_proceeds():
    nodes = [node("pve1", 64), node("pve2", 64)]
    snap = cluster(nodes, [guest(100, "pve1", 4), guest(101, "pve1", 4, lock="backup"), guest(102, "pve1", 2)])
    result = placement.plan_placements(snap, settings(), {100: "pve9", 101: "pve2", 102: "pve2", 999: "pve2"})
    assert [(m.vmid, m.target, m.reason, m.mandatory) for m in result.moves] == [(102, "pve2", "return", True)]
    assert result.data["failures"] == [
        dict(vmids=[100], node="pve1", reason="return", detail="node pve9 does not exist"),
        dict(vmids=[101], node="pve1", reason="return", detail="pve2: locked:backup")]
    assert result.data["stop_reason"] == "placements" and result.data["trigger"] == dict(triggered=False, reason="placements")


def test_the_request_is_echoed_in_bytes():
    result = ask(three_nodes(), memory="1G", cores=2, type="ct", tags=["web"], count=2)
    assert result["request"] == dict(memory_bytes=GIB, cores=2, type="ct", disk_bytes=0, storage=None, storage_local=False,
                                     tags=["web"], pool=None, nodes=None, count=2)
    assert result["changed"] is False and result["api_calls"] == 0
