# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The best_node lookup: same answers and messages as the module core, options from every source."""

from __future__ import annotations

import pytest

from ansible.errors import AnsibleLookupError
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import lookup_loader
from ansible.template import Templar

from ansible_collections.proxlb.balancer.plugins.module_utils.best_node_options import best_node_query
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.cluster_builder import cluster, guest, node


@pytest.fixture
def snapshot_file(tmp_path):
    snap = cluster([node("pve1", 64), node("pve2", 64), node("pve3", 16)],
                   [guest(100, "pve1", 46), guest(101, "pve2", 30), guest(102, "pve2", 1, tags=["plb_anti_affinity_db"])])
    path = tmp_path / "cluster.json"
    snap.save(str(path))
    return snap, str(path)


def lookup():
    loader = DataLoader()
    return lookup_loader.get("proxlb.balancer.best_node", loader=loader, templar=Templar(loader=loader))


@pytest.mark.parametrize("options", [
    dict(memory="4G", cores=2),
    dict(memory="20G", cores=2),
    dict(memory=4 * 1024 ** 3, cores=2, tags=["plb_anti_affinity_db"], maintenance_nodes=["pve3"]),
    dict(memory="1G", cores=1, count=3, tags=["plb_anti_affinity_web"]),
])
def test_lookup_answers_like_the_module_core(snapshot_file, options):
    snap, path = snapshot_file
    expected = best_node_query(options).answer(snap)["nodes"]
    assert lookup().run([], variables={}, snapshot=path, **options) == expected


def test_one_guest_gives_a_one_element_list(snapshot_file):
    assert lookup().run([], variables={}, snapshot=snapshot_file[1], memory="4G", cores=2) == ["pve3"]


@pytest.mark.parametrize("options, message", [
    (dict(memory="lots", cores=2), r"^memory: 'lots' is not a size; give .*8GiB"),
    (dict(memory="8G", cores=0), r"^cores: 0 is out of range"),
    (dict(memory="8G", cores=1, nodes=["pve9"]), r"^nodes: unknown node\(s\) pve9; the cluster has pve1, pve2, pve3$"),
    (dict(memory="80G", cores=1), r"^no node can take the new vm \(80.0 GiB memory, 1 cores\): pve1: memory: .*; pve2: .*; pve3: "),
])
def test_errors_carry_the_module_messages(snapshot_file, options, message):
    with pytest.raises(AnsibleLookupError, match=message):
        lookup().run([], variables={}, snapshot=snapshot_file[1], **options)


def test_no_fit_without_failing_gives_none(snapshot_file):
    assert lookup().run([], variables={}, snapshot=snapshot_file[1], memory="80G", cores=1, fail_when_no_fit=False) == [None]


def test_terms_are_refused(snapshot_file):
    with pytest.raises(AnsibleLookupError, match="takes no terms"):
        lookup().run(["8G"], variables={}, snapshot=snapshot_file[1], memory="8G", cores=1)


def test_connection_options_come_from_environment_and_variables(snapshot_file, monkeypatch):
    monkeypatch.setenv("PROXMOX_HOST", "pve1.example.com,pve2.example.com")
    monkeypatch.setenv("PROXMOX_TOKEN_ID", "from-env")
    monkeypatch.setenv("PROXMOX_VALIDATE_CERTS", "false")
    plugin = lookup()
    plugin.run([], variables={"proxlb_api_token_id": "from-vars", "proxlb_api_port": 8443},
               snapshot=snapshot_file[1], memory="1G", cores=1)
    assert plugin.get_option("api_host") == ["pve1.example.com", "pve2.example.com"]
    assert plugin.get_option("api_token_id") == "from-vars"
    assert plugin.get_option("api_port") == 8443
    assert plugin.get_option("validate_certs") is False
    assert plugin.get_option("api_user") == "root@pam"
