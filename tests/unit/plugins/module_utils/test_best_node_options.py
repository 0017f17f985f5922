# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The core shared by the proxlb_best_node module and the best_node lookup: sizes, option
checks before the cluster is read, and choose() with its two ways to read the cluster."""

from __future__ import annotations

import pytest

from ansible_collections.proxlb.balancer.plugins.module_utils import best_node_options
from ansible_collections.proxlb.balancer.plugins.module_utils.best_node_options import (
    OptionAdapter, best_node_query, choose, collect_options, parse_size)
from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ConfigError
from ansible_collections.proxlb.balancer.plugins.module_utils.settings import GIB
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.cluster_builder import cluster, guest, node, settings


# -- sizes ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, expected", [
    (8589934592, 8 * GIB), ("8589934592", 8 * GIB), ("8G", 8 * GIB), ("8GiB", 8 * GIB), ("8gb", 8 * GIB),
    ("8 GiB", 8 * GIB), ("512M", 512 * 1024 ** 2), ("8192MiB", 8 * GIB), ("1T", 1024 * GIB), ("1.5G", 3 * GIB // 2),
    ("64K", 65536), ("100B", 100),
])
def test_sizes_in_bytes_or_binary_units(value, expected):
    assert parse_size(value, "memory") == expected


@pytest.mark.parametrize("value", ["lots", 0, "0", "0G", -1, "-8G", "8X", "G", "", None, True, "8iB"])
def test_bad_sizes_name_the_option_and_the_accepted_forms(value):
    with pytest.raises(ConfigError) as err:
        parse_size(value, "memory")
    assert err.value.option == "memory"
    assert str(err.value).startswith("memory: ")
    assert "8GiB" in str(err.value) and "512M" in str(err.value)


# -- options --------------------------------------------------------------------------------------
@pytest.mark.parametrize("options, option", [
    (dict(memory="lots", cores=2), "memory"),
    (dict(memory="8G", cores=0), "cores"),
    (dict(memory="8G", cores=-2), "cores"),
    (dict(memory="8G", cores=1.5), "cores"),
    (dict(memory="8G", cores=2, count=0), "count"),
    (dict(memory="8G", cores=2, disk="much"), "disk"),
    (dict(memory="8G", cores=2, type="vz"), "type"),
    (dict(memory="8G", cores=2, nodes=[]), "nodes"),
    (dict(memory="8G", cores=2, method="gpu"), "method"),
])
def test_bad_options_fail_before_the_cluster_is_read(options, option):
    with pytest.raises(ConfigError) as err:
        best_node_query(options)
    assert err.value.option == option


def test_zero_cores_message():
    with pytest.raises(ConfigError, match=r"^cores: 0 is out of range; give the number of vCPUs .*1 or more"):
        best_node_query(dict(memory="8G", cores=0))


def test_options_become_the_request():
    query = best_node_query(dict(memory="8G", cores=4, type="ct", disk="20G", storage="local-zfs", tags="plb_pin_pve1, web",
                                 pool="db", nodes="pve1;pve2", count=3, fail_when_no_fit=False, method="cpu"))
    request = query.request
    assert (request.memory_bytes, request.cores, request.type, request.disk_bytes) == (8 * GIB, 4, "lxc", 20 * GIB)
    assert (request.storage, request.pool, request.tags, request.nodes) == ("local-zfs", "db", ["plb_pin_pve1", "web"], ["pve1", "pve2"])
    assert (query.count, query.fail_when_no_fit, query.settings.method) == (3, False, "cpu")


def test_defaults_of_optional_options():
    query = best_node_query(dict(memory=1024, cores=1, disk="", fail_when_no_fit=None))
    assert (query.request.type, query.request.disk_bytes, query.request.storage, query.request.nodes) == ("qemu", 0, None, None)
    assert query.count == 1 and query.fail_when_no_fit is True


def test_count_has_an_upper_limit():
    best_node_query(dict(memory="1G", cores=1, count=best_node_options.MAX_NEW_GUESTS))
    with pytest.raises(ConfigError, match="^count: .*a value from 1 to 1000"):
        best_node_query(dict(memory="1G", cores=1, count=best_node_options.MAX_NEW_GUESTS + 1))


def test_collect_options_follow_method_and_mode():
    assert collect_options(settings()) == dict(with_pressure=False, pressure_window="hour", with_local_volumes=False)
    assert collect_options(settings(mode="psi", pressure_window="day", method="disk")) == dict(
        with_pressure=True, pressure_window="day", with_local_volumes=True)


# -- choose ------------------------------------------------------------------------------------------
class FakeModule:
    def __init__(self, **params):
        self.params = params
        self.warnings = []

    def warn(self, text):
        self.warnings.append(text)


def small_cluster():
    return cluster([node("pve1", 64), node("pve2", 64)], [guest(100, "pve1", 40)])


def refuse_to_connect(options):
    raise AssertionError("the cluster must not be read when a snapshot is given")


def test_choose_reads_the_snapshot_file_and_counts_no_api_calls():
    snap = small_cluster()
    snap.api_calls = 6
    module = FakeModule(memory="4G", cores=2, snapshot="saved.json", disk="1G")
    result, failed = choose(OptionAdapter.from_module(module), refuse_to_connect, lambda path: snap if path == "saved.json" else None)
    assert not failed
    assert result["node"] == "pve2" and result["api_calls"] == 0
    assert "warnings" not in result
    assert module.warnings == ["disk is only checked against a storage; give storage to check free space"]


def test_choose_collects_through_the_connection_when_there_is_no_snapshot(monkeypatch):
    snap = small_cluster()
    seen = {}

    def collect(client, warnings, **kwargs):
        seen.update(client=client, **kwargs)
        warnings.append("HA status could not be read")
        return snap

    monkeypatch.setattr(best_node_options, "collect", collect)
    module = FakeModule(memory="4G", cores=2, pressure_window="week")
    result, failed = choose(OptionAdapter.from_module(module), lambda options: ("client for", options.params["memory"]), None)
    assert result["node"] == "pve2" and not failed
    assert seen == dict(client=("client for", "4G"), with_pressure=False, pressure_window="week", with_local_volumes=False)
    assert module.warnings == ["HA status could not be read"]


@pytest.mark.parametrize("fail_when_no_fit, failed", [(True, True), (False, False), (None, True)])
def test_choose_says_whether_a_guest_that_fits_nowhere_fails(fail_when_no_fit, failed):
    module = FakeModule(memory="100G", cores=2, snapshot="saved.json", fail_when_no_fit=fail_when_no_fit)
    result, did_fail = choose(OptionAdapter.from_module(module), refuse_to_connect, lambda path: small_cluster())
    assert did_fail is failed
    assert result["node"] is None and result["msg"].startswith("no node can take the new vm (100.0 GiB memory, 2 cores)")


def test_option_errors_come_before_the_cluster_is_read():
    module = FakeModule(memory="lots", cores=2, snapshot="saved.json")
    with pytest.raises(ConfigError, match="^memory: "):
        choose(OptionAdapter.from_module(module), refuse_to_connect, lambda path: pytest.fail("snapshot read before the options were checked"))


def test_plugin_adapter_takes_resolved_options_and_warns_through_display():
    class Plugin:
        def get_options(self):
            return dict(memory="1G", cores=1)

    class Display:
        def __init__(self):
            self.shown = []

        def warning(self, text):
            self.shown.append(text)

    display = Display()
    adapter = OptionAdapter.from_plugin(Plugin(), display)
    adapter.warn("careful")
    assert adapter.params == dict(memory="1G", cores=1) and display.shown == ["careful"]
