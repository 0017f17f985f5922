# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Node loads, capacity after reserve, the hard fit limits, and the spread statistics."""

from __future__ import annotations

import pytest

from ansible_collections.proxlb.balancer.plugins.module_utils import metrics
from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ConfigError
from ansible_collections.proxlb.balancer.plugins.module_utils.settings import GIB
from ansible_collections.proxlb.balancer.plugins.module_utils.snapshot import Storage
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.cluster_builder import cluster, guest, node, settings


@pytest.mark.parametrize("method, mode, expected", [
    ("memory", "used", 6 * GIB), ("memory", "assigned", 8 * GIB), ("cpu", "used", 0.25 * 4), ("cpu", "assigned", 4.0),
    ("disk", "used", 50 * GIB),
])
def test_guest_weight_per_method_and_mode(method, mode, expected):
    running = guest(100, "pve1", 8, used=0.75, cores=4, cpu=0.25, local_disk_bytes=50 * GIB)
    assert metrics.guest_weight(running, method, mode) == pytest.approx(expected)


def test_a_stopped_guest_weighs_only_its_disk():
    stopped = guest(100, "pve1", 8, status="stopped", local_disk_bytes=50 * GIB)
    assert metrics.guest_weight(stopped, "memory", "assigned") == 0.0
    assert metrics.guest_weight(stopped, "cpu", "assigned") == 0.0
    assert metrics.guest_weight(stopped, "disk", "used") == 50 * GIB
    assert (metrics.memory_need(stopped), metrics.memory_use(stopped), metrics.vcpus(stopped)) == (0, 0, 0.0)


def test_a_running_guest_needs_room_to_grow_to_its_configured_size():
    ballooned = guest(100, "pve1", 8, used=0.5)
    assert metrics.memory_need(ballooned) == 8 * GIB and metrics.memory_use(ballooned) == 4 * GIB
    over = guest(101, "pve1", 8, used=1.25)   # host-side use above the configured size (qemu overhead)
    assert metrics.memory_need(over) == 10 * GIB


def test_cpu_load_is_in_cores_not_fractions():
    nodes = [node("pve1", 256, threads=32), node("pve2", 256, threads=32)]
    snap = cluster(nodes, [guest(100 + i, "pve1", 4, cores=8, cpu=0.7) for i in range(4)])   # 22.4 cores busy
    model = metrics.Model(snap, settings(method="cpu"))
    assert model.load[0] == pytest.approx(22.4, rel=0.01)
    assert model.pct(0) == pytest.approx(22.4 / 32 * 100, rel=0.01)


def test_reserve_comes_off_the_capacity_and_host_use_stays_in_the_load():
    snap = cluster([node("pve1", 64, base_gib=6), node("pve2", 64)], [guest(100, "pve1", 16)])
    model = metrics.Model(snap, settings(node_resource_reserve={"defaults": {"memory": 8}, "pve2": {"memory": 0}}))
    assert model.mem_cap == [56 * GIB, 64 * GIB] and model.cap == model.mem_cap
    assert model.load[0] == pytest.approx(22 * GIB)
    assert model.pct(0) == pytest.approx(22 / 56 * 100)


def test_fit_checks_memory_vcpus_and_local_disk():
    storages = [Storage(storage="local-lvm", node="pve1", content=["images"], status="available",
                        disk_bytes=80 * GIB, maxdisk_bytes=100 * GIB)]
    snap = cluster([node("pve1", 32, threads=4)], [guest(100, "pve1", 8, cores=4)], storages=storages)
    model = metrics.Model(snap, settings(cpu_overcommit=2))
    assert model.fits(0, 20 * GIB, 4, 20 * GIB) and model.why_not_fit(0, 20 * GIB, 4, 20 * GIB) is None
    assert not model.fits(0, 23 * GIB, 0, 0)
    assert model.why_not_fit(0, 23 * GIB, 0, 0) == "memory: needs 23.0 GiB, 22.0 GiB free after reserve"
    assert model.why_not_fit(0, 0, 5, 0) == "cpu: 9 vCPUs would exceed the overcommit limit of 8"
    assert model.why_not_fit(0, 0, 0, 21 * GIB) == "disk: needs 21.0 GiB of local storage, 20.0 GiB free"


def test_arrive_and_depart_move_every_count():
    snap = cluster([node("pve1"), node("pve2")], [guest(100, "pve1", 8)])
    model = metrics.Model(snap, settings())
    before = (list(model.load), list(model.mem_need), list(model.vcpu), list(model.disk))
    model.arrive(1, 5.0, 3, 2.0, 7)
    model.depart(1, 5.0, 3, 2.0, 7)
    assert (model.load, model.mem_need, model.vcpu, model.disk) == tuple(before)
    model.arrive(1, 8 * GIB, 8 * GIB, 2.0, 0)
    assert model.load[1] == pytest.approx(10 * GIB) and model.vcpu[1] == 2.0


def test_over_capacity_and_a_node_without_capacity():
    snap = cluster([node("pve1", 16), node("pve2", 64), node("pve3", 64)], [guest(100, "pve1", 15)])
    model = metrics.Model(snap, settings(node_resource_reserve={"pve3": {"memory": 64}}))
    assert [model.over_capacity(i) for i in range(3)] == [True, False, True]
    assert model.pct(2) == 0.0 and model.pct_after(2, 1.0) == float("inf")


def test_psi_turns_measured_pressure_into_capacity():
    nodes = [node("pve1", 64, pressure={"memory_some": 20.0}), node("pve2", 64, pressure={"memory_some": 0.01})]
    model = metrics.Model(cluster(nodes, [guest(100, "pve1", 30), guest(101, "pve2", 30)]), settings(mode="psi"))
    assert model.pct(0) == pytest.approx(20.0)
    assert model.pct(1) == pytest.approx(metrics.PSI_FLOOR_PCT)   # almost no pressure is not none
    with pytest.raises(ConfigError, match="^mode: psi needs pressure data for node pve1"):
        metrics.Model(cluster([node("pve1")], []), settings(mode="psi"))


def test_stats_of_percentages():
    assert metrics.stats([10.0, 20.0, 60.0]) == dict(spread_pp=50.0, cv=0.7201, max_pct=60.0, min_pct=10.0, mean_pct=30.0)
    assert metrics.stats([]) == dict(spread_pp=0.0, cv=0.0, max_pct=0.0, min_pct=0.0, mean_pct=0.0)
    assert metrics.stats([0.0, 0.0])["cv"] == 0.0


def test_local_storage_counts_only_available_node_local_guest_storage():
    storages = [Storage(storage="local-lvm", node="pve1", content=["images"], status="available", disk_bytes=10, maxdisk_bytes=100),
                Storage(storage="local", node="pve1", content=["iso"], status="available", disk_bytes=5, maxdisk_bytes=50),
                Storage(storage="ceph", node="pve1", shared=True, content=["images"], status="available", disk_bytes=1, maxdisk_bytes=9),
                Storage(storage="zfs", node="pve1", content=["rootdir"], status="active", disk_bytes=20, maxdisk_bytes=200),
                Storage(storage="old", node="pve2", content=["images"], status="disabled", disk_bytes=1, maxdisk_bytes=2)]
    assert metrics.local_storage(cluster([node("pve1"), node("pve2")], [], storages=storages)) == {"pve1": (30, 300)}
