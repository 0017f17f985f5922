# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The planning state: placement checks, moves applied to loads and rule counts, best target."""

from __future__ import annotations

import pytest

from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ConfigError
from ansible_collections.proxlb.balancer.plugins.module_utils.plan_state import PlanningState
from ansible_collections.proxlb.balancer.plugins.module_utils.settings import GIB
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.cluster_builder import cluster, guest, node, settings


def state_of(guests, nodes=None, **options):
    nodes = nodes or [node("pve1", 64), node("pve2", 64), node("pve3", 32)]
    immovable = options.pop("immovable", None)
    forbidden = options.pop("forbidden", None)
    return PlanningState(cluster(nodes, guests), settings(**options), immovable=immovable, forbidden=forbidden)


def test_psi_is_refused_on_pve8():
    snap = cluster([node("pve1"), node("pve2")], [guest(100, "pve1")], version="8.2.4")
    with pytest.raises(ConfigError, match="^mode: psi needs PVE 9"):
        PlanningState(snap, settings(mode="psi"))


def test_options_naming_unknown_nodes_are_refused():
    with pytest.raises(ConfigError, match="^maintenance_nodes: unknown node"):
        state_of([], maintenance_nodes=["pve9"])


def test_units_carry_their_members_rules_and_costs():
    tags = ["plb_affinity_app"]
    state = state_of([guest(100, "pve1", 8, used=0.5, tags=tags + ["plb_pin_pve1", "plb_pin_pve2"], local_disk_bytes=2 * GIB),
                      guest(101, "pve1", 4, tags=tags), guest(102, "pve2", 2, status="stopped")])
    unit = state.unit_of[100]
    assert state.unit_of[101] is unit and unit.members == [100, 101] and unit.label == "plb_affinity_app"
    assert unit.mem_use_bytes == 8 * GIB and unit.cost_gib == pytest.approx(10)
    assert unit.allowed == {state.node_index["pve1"], state.node_index["pve2"]}
    assert state.node_of(unit) == state.node_index["pve1"] and state.movable(unit)
    assert state.unit_of[102].mem_use_bytes == 0 and state.unit_of[102].allowed is None


def test_immovable_guests_fix_their_unit():
    state = state_of([guest(100, "pve1"), guest(101, "pve1")], immovable={100: "migration failed", 999: "gone"})
    assert not state.movable(state.unit_of[100]) and state.movable(state.unit_of[101])
    assert state.constraints.immovable == {100: "migration failed"}


def test_a_split_unit_has_no_node():
    state = state_of([guest(100, "pve1", tags=["plb_affinity_x"]), guest(101, "pve2", tags=["plb_affinity_x"])])
    assert state.node_of(state.unit_of[100]) is None


@pytest.mark.parametrize("guests, options, target, reason", [
    ([guest(100, "pve1")], dict(maintenance_nodes=["pve3"]), "pve3", "not a target (offline, maintenance or ignored)"),
    ([guest(100, "pve1", tags=["plb_pin_pve1", "plb_pin_pve2"])], dict(), "pve3", "not allowed by rule:pin"),
    ([guest(100, "pve1", 31)], dict(), "pve3", "memory: needs 31.0 GiB, 30.0 GiB free after reserve"),
    ([guest(100, "pve1", 2, tags=["plb_anti_affinity_db"]), guest(101, "pve3", 2, tags=["plb_anti_affinity_db"])], dict(), "pve3",
     "anti-affinity group plb_anti_affinity_db already has 1 guest(s) there"),
    ([guest(100, "pve1")], dict(forbidden={100: {"pve2": "PVE: storage local-zfs is not on pve2"}}), "pve2",
     "PVE: storage local-zfs is not on pve2"),
    ([guest(100, "pve1")], dict(), "pve1", None),
    ([guest(100, "pve1")], dict(), "pve2", None),
])
def test_can_place_says_why_not(guests, options, target, reason):
    state = state_of(guests, **options)
    assert state.can_place([100], state.node_index[target]) == reason


def test_apply_moves_loads_anti_affinity_counts_and_records_the_step():
    tags = ["plb_anti_affinity_db"]
    state = state_of([guest(100, "pve1", 8, tags=tags), guest(101, "pve2", 2, tags=tags)])
    pve1, pve3 = state.node_index["pve1"], state.node_index["pve3"]
    state.apply([100], pve3, "balance", False)
    assert state.location[100] == pve3 and state.steps == [(100, pve1, pve3, "balance", False)]
    assert state.model.load[pve1] == pytest.approx(2 * GIB) and state.model.load[pve3] == pytest.approx(10 * GIB)
    assert state.anti_counts[0][pve1] == 0 and state.anti_counts[0][pve3] == 1
    state.apply([100], pve3, "balance", False)
    assert len(state.steps) == 1


def test_best_target_prefers_preferred_nodes_then_the_lowest_load_after():
    state = state_of([guest(100, "pve1", 4), guest(101, "pve2", 20)])
    pve2, pve3 = state.node_index["pve2"], state.node_index["pve3"]
    assert state.best_target([100]) == (pve3, {})
    assert state.best_target([100], preferred={pve2}) == (pve2, {})
    assert state.best_target([100], exclude={pve3}) == (pve2, {})


def test_best_target_gives_every_refusal_when_nothing_fits():
    state = state_of([guest(100, "pve1", 40), guest(101, "pve2", 30)])
    assert state.best_target([100]) == (None, {
        "pve2": "memory: needs 40.0 GiB, 32.0 GiB free after reserve", "pve3": "memory: needs 40.0 GiB, 30.0 GiB free after reserve"})
