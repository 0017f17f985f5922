# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lower bounds: what no plan can beat, from the load that cannot leave a node and the units that can."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ansible_collections.proxlb.balancer.plugins.module_utils import bounds, planner
from ansible_collections.proxlb.balancer.plugins.module_utils.plan_state import PlanningState
from ansible_collections.proxlb.balancer.plugins.module_utils.settings import GIB
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.cluster_builder import (
    cluster, guest, hot_cluster, node, random_cluster, settings)


def two_nodes(load_a, load_b):
    """Two nodes of capacity 100, so loads are percentages."""
    return SimpleNamespace(cap=[100.0, 100.0], load=[float(load_a), float(load_b)])


def test_the_average_binds_when_everything_can_move():
    bound = bounds.lower_bounds(two_nodes(80, 20), [0, 1], {}, [(30.0, [0, 1]), (30.0, [0, 1]), (20.0, [0, 1])])
    assert bound == dict(max_pct=50.0, spread_pp=0.0, average_pct=50.0, binding="average")


def test_load_that_cannot_leave_binds_the_max_and_the_spread():
    # 70 of node 0's 80 cannot leave; the other 30 in all are shared by node 1 at best.
    bound = bounds.lower_bounds(two_nodes(80, 20), [0, 1], {0: 70.0, 1: 0.0}, [(10.0, [0, 1]), (20.0, [0, 1])])
    assert bound == dict(max_pct=70.0, spread_pp=40.0, average_pct=50.0, binding="fixed_load")


def test_the_largest_unit_lands_somewhere():
    bound = bounds.lower_bounds(two_nodes(60, 20), [0, 1], {0: 0.0, 1: 0.0}, [(60.0, [0, 1]), (20.0, [0, 1])])
    assert bound["max_pct"] == 60.0 and bound["binding"] == "largest_item"
    # where it may only land on a loaded node, that node's fixed load counts too
    pinned = bounds.lower_bounds(two_nodes(60, 20), [0, 1], {0: 0.0, 1: 20.0}, [(60.0, [1])])
    assert pinned["max_pct"] == 80.0


def test_no_nodes_no_bound():
    assert bounds.lower_bounds(two_nodes(0, 0), [], {}, []) == dict(max_pct=0.0, spread_pp=0.0, average_pct=0.0, binding="average")


def test_bound_inputs_keep_what_cannot_move_and_list_what_can():
    nodes = [node("pve1", 64), node("pve2", 64), node("pve3", 64)]
    guests = [guest(100, "pve1", 8, lock="backup"), guest(101, "pve1", 4), guest(102, "pve2", 2, tags=["plb_pin_pve3"])]
    state = PlanningState(cluster(nodes, guests), settings())
    fixed, items = bounds.bound_inputs(state)
    pve1, pve2, pve3 = (state.node_index[n] for n in ("pve1", "pve2", "pve3"))
    # host use and the locked guest stay on pve1; the pinned guest has one node to go to
    assert fixed[pve1] == pytest.approx(2 * GIB + 8 * GIB)
    assert fixed[pve2] == pytest.approx(2 * GIB)
    assert fixed[pve3] == pytest.approx(2 * GIB + 2 * GIB)
    assert items == [(4 * GIB, [pve1, pve2, pve3])]


def test_a_unit_too_big_for_every_other_node_stays_in_the_bound():
    nodes = [node("pve1", 128), node("pve2", 16)]
    state = PlanningState(cluster(nodes, [guest(100, "pve1", 40)]), settings())
    fixed, items = bounds.bound_inputs(state)
    assert items == [] and fixed[state.node_index["pve1"]] == pytest.approx(42 * GIB)


def test_the_plan_reports_the_bound_and_its_gap():
    result = planner.plan(hot_cluster(), settings())
    found = result.data["metrics"]
    assert found["lower_bound"] == bounds.plan_lower_bound(PlanningState(hot_cluster(), settings()))
    assert found["gap"]["max_pp"] == pytest.approx(found["after"]["max_pct"] - found["lower_bound"]["max_pct"], abs=0.011)


@pytest.mark.parametrize("seed", range(20))
def test_no_plan_beats_the_bound(seed):
    found = planner.plan(random_cluster(seed), settings()).data["metrics"]
    assert found["after"]["max_pct"] >= found["lower_bound"]["max_pct"] - 0.01
    assert found["after"]["spread_pp"] >= found["lower_bound"]["spread_pp"] - 0.01
