# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Waves: moves ordered so that no state during a wave overfills a node or breaks a rule."""

from __future__ import annotations

import pytest

from ansible_collections.proxlb.balancer.plugins.module_utils import planner, sequencer
from ansible_collections.proxlb.balancer.plugins.module_utils.plan_state import PlanningState
from ansible_collections.proxlb.balancer.plugins.module_utils.settings import GIB
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.cluster_builder import cluster, guest, node, settings


def test_swap_that_needs_parking():
    # Two full nodes must swap guests that neither can take first; pve3 has room to park one.
    nodes = [node("pve1", 32, base_gib=1), node("pve2", 32, base_gib=1), node("pve3", 32, base_gib=1)]
    snap = cluster(nodes, [guest(100, "pve1", 24, used=1.0), guest(101, "pve2", 24, used=1.0)])
    swap = [planner.Move(100, "g100", "vm", "qemu", "pve1", "pve2", "balance", False),
            planner.Move(101, "g101", "vm", "qemu", "pve2", "pve1", "balance", False)]
    seq = sequencer.sequence(PlanningState(snap, settings()), swap, 1)
    assert not seq.unsequenced
    assert [m.reason for m in seq.moves].count("parking") == 1
    where = {100: "pve1", 101: "pve2"}
    for move in seq.moves:
        assert where[move.vmid] == move.source
        where[move.vmid] = move.target
    assert where == {100: "pve2", 101: "pve1"}


def test_unorderable_moves_are_reported_not_dropped():
    nodes = [node("pve1", 32, base_gib=1), node("pve2", 32, base_gib=1)]
    snap = cluster(nodes, [guest(100, "pve1", 24, used=1.0), guest(101, "pve2", 24, used=1.0)])
    swap = [planner.Move(100, "g100", "vm", "qemu", "pve1", "pve2", "balance", False),
            planner.Move(101, "g101", "vm", "qemu", "pve2", "pve1", "balance", False)]
    seq = sequencer.sequence(PlanningState(snap, settings()), swap, 1)
    assert [m.vmid for m in seq.unsequenced] == [100, 101]
    assert seq.warnings


def move(vmid, source, target, reason="balance"):
    return planner.Move(vmid, "g%d" % vmid, "vm", "qemu", source, target, reason, False)


@pytest.mark.parametrize("limit, waves", [(1, [[100], [101], [102]]), (2, [[100, 101], [102]]), (3, [[100, 101, 102]])])
def test_at_most_limit_migrations_out_of_a_node_per_wave(limit, waves):
    snap = cluster([node("pve1", 128), node("pve2", 128)], [guest(100 + i, "pve1", 4) for i in range(3)])
    seq = sequencer.sequence(PlanningState(snap, settings()), [move(100 + i, "pve1", "pve2") for i in range(3)], limit)
    assert [[m.vmid for m in wave] for wave in seq.waves] == waves
    assert [m.wave for m in seq.moves] == [number for number, wave in enumerate(waves, 1) for _vmid in wave]


@pytest.mark.parametrize("limit, waves", [(1, [[100], [101]]), (2, [[100, 101]])])
def test_at_most_limit_migrations_into_a_node_per_wave(limit, waves):
    snap = cluster([node("pve1", 128), node("pve2", 128), node("pve3", 128)], [guest(100, "pve1", 4), guest(101, "pve2", 4)])
    seq = sequencer.sequence(PlanningState(snap, settings()), [move(100, "pve1", "pve3"), move(101, "pve2", "pve3")], limit)
    assert [[m.vmid for m in wave] for wave in seq.waves] == waves


def test_a_guest_in_flight_holds_memory_on_both_nodes():
    # pve2 can take the 20 GiB guest only once the 20 GiB one leaving it is gone.
    nodes = [node("pve1", 64), node("pve2", 32, base_gib=1), node("pve3", 64)]
    snap = cluster(nodes, [guest(100, "pve1", 20), guest(101, "pve2", 20)])
    seq = sequencer.sequence(PlanningState(snap, settings()), [move(100, "pve1", "pve2"), move(101, "pve2", "pve3")], 2)
    assert [[m.vmid for m in wave] for wave in seq.waves] == [[101], [100]]
    assert not seq.unsequenced and not seq.warnings


def test_a_guest_in_flight_counts_on_both_nodes_for_anti_affinity():
    tags = ["plb_anti_affinity_db"]
    snap = cluster([node("pve1"), node("pve2"), node("pve3")], [guest(100, "pve1", 2, tags=tags), guest(101, "pve2", 2, tags=tags)])
    seq = sequencer.sequence(PlanningState(snap, settings()), [move(100, "pve1", "pve3"), move(101, "pve2", "pve1")], 2)
    assert [[m.vmid for m in wave] for wave in seq.waves] == [[100], [101]]


def test_the_model_after_the_waves_is_where_the_guests_end():
    snap = cluster([node("pve1", 64), node("pve2", 64)], [guest(100, "pve1", 8)])
    seq = sequencer.sequence(PlanningState(snap, settings()), [move(100, "pve1", "pve2")], 1)
    assert seq.after.load[seq.after.index["pve1"]] == pytest.approx(2 * GIB)
    assert seq.after.load[seq.after.index["pve2"]] == pytest.approx(10 * GIB)
