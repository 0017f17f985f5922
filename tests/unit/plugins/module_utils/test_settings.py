# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Settings from options: defaults, validation that names the option, and options checked against the cluster."""

from __future__ import annotations

import pytest

from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ConfigError
from ansible_collections.proxlb.balancer.plugins.module_utils.settings import BalanceSettings, check_nodes_known
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.cluster_builder import settings


@pytest.mark.parametrize("options, option", [
    ({"method": "network"}, "method"), ({"mode": "busy"}, "mode"), ({"balanciness": -1}, "balanciness"),
    ({"pools": {"web": {"type": "together"}}}, "pools.web.type"), ({"pools": {"web": ["pve1"]}}, "pools.web"),
    ({"pools": {"web": {"pin": "pve1", "color": "red"}}}, "pools.web"), ({"max_moves_per_node": 0}, "max_moves_per_node"),
    ({"node_resource_reserve": {"defaults": {"memory": -2}}}, "node_resource_reserve.defaults"),
    ({"guest_types": []}, "guest_types"), ({"memory_threshold": 150}, "memory_threshold"),
    ({"backup_guard": -5}, "backup_guard"), ({"backup_guard": 2.5}, "backup_guard"),
    ({"avoid_backup_nodes": "maybe"}, "avoid_backup_nodes"),
    ({"storage_threshold": 0}, "storage_threshold"), ({"storage_threshold": 101}, "storage_threshold"),
])
def test_bad_settings_name_the_option(options, option):
    with pytest.raises(ConfigError) as err:
        settings(**options)
    assert str(err.value).startswith(option + ":")


@pytest.mark.parametrize("options, option", [
    ({"pools": {"web": {"pin": ["pve9"]}}}, "pools.web.pin"), ({"maintenance_nodes": ["pve9"]}, "maintenance_nodes"),
    ({"ignore_nodes": ["nope"]}, "ignore_nodes"), ({"node_resource_reserve": {"pve7": {"memory": 1}}}, "node_resource_reserve"),
])
def test_unknown_nodes_in_options_are_refused(options, option):
    with pytest.raises(ConfigError) as err:
        check_nodes_known(settings(**options), ["pve1", "pve2", "PVE3"])
    assert str(err.value).startswith(option + ":")
    assert "pve1, pve2" in str(err.value)


def test_known_nodes_pass_and_pool_pins_ignore_case():
    check_nodes_known(settings(maintenance_nodes=["pve1"], ignore_nodes=["pve2"], pools={"web": {"pin": ["pve3"]}},
                               node_resource_reserve={"defaults": {"memory": 1}, "PVE3": {"cpu": 1}}), ["pve1", "pve2", "PVE3"])


def test_defaults():
    conf = BalanceSettings.from_params({})
    assert (conf.method, conf.mode, conf.balanciness, conf.threshold) == ("memory", "used", 10.0, None)
    assert (conf.cpu_overcommit, conf.max_moves, conf.max_moves_per_node) == (4.0, None, 1)
    assert conf.guest_types == ["vm", "ct"] and conf.include_stopped is True and conf.manage_ha_resources is False
    assert conf.target_spread == 5.0


def test_none_means_the_default():
    assert BalanceSettings.from_params({"balanciness": None, "method": None, "pools": None}) == BalanceSettings.from_params({})


def test_a_node_reserve_wins_over_the_defaults():
    conf = settings(node_resource_reserve={"defaults": {"memory": 8, "cpu": 1}, "pve2": {"memory": 2}})
    assert (conf.reserve("pve1", "memory"), conf.reserve("pve2", "memory"), conf.reserve("pve2", "cpu")) == (8, 2, 1)
    assert conf.reserve("pve1", "disk") == 0.0


def test_threshold_of_the_balanced_method():
    conf = settings(method="cpu", cpu_threshold=70, memory_threshold=50)
    assert conf.threshold == 70.0


def test_pools_are_normalised():
    conf = settings(pools={"web": {"pin": "pve1"}, "db": None, "app": {"type": "anti-affinity", "strict": False}})
    assert (conf.pools["web"].pin, conf.pools["web"].type, conf.pools["web"].strict) == (["pve1"], None, True)
    assert (conf.pools["db"].pin, conf.pools["db"].type) == ([], None)
    assert (conf.pools["app"].type, conf.pools["app"].strict) == ("anti-affinity", False)


def test_settings_survive_their_own_dict():
    conf = settings(method="cpu", mode="assigned", balanciness=7, cpu_threshold=60, cpu_overcommit=2, max_moves=5,
                    max_moves_per_node=2, guest_types=["vm"], ignore_guests=["x-*"], ignore_nodes=["pve3"],
                    maintenance_nodes=["pve2"], include_stopped=False, manage_ha_resources=True, pressure_window="day",
                    node_resource_reserve={"defaults": {"memory": 4}, "pve1": {"cpu": 2}},
                    pools={"web": {"type": "affinity", "pin": ["pve1"], "strict": False}})
    data = conf.to_dict()
    assert data["target_spread"] == 3.5
    assert BalanceSettings.from_params(data) == conf


def test_guard_and_storage_options_default_and_round_trip():
    conf = BalanceSettings.from_params({})
    assert (conf.backup_guard, conf.avoid_backup_nodes, conf.storage_threshold) == (30, True, 90.0)
    conf = BalanceSettings.from_params(dict(backup_guard=0, avoid_backup_nodes=False, storage_threshold=75))
    assert conf.to_dict()["backup_guard"] == 0 and conf.to_dict()["avoid_backup_nodes"] is False
    assert conf.storage_threshold == 75.0
