# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""proxlb_rebalance without Ansible: the given plan option, re-planning, and whole runs on the
scripted cluster."""

from __future__ import annotations

import pytest

from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ConfigError
from ansible_collections.proxlb.balancer.plugins.module_utils.rebalance_runner import moves_from_plan
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.fake_pve import FakePve


def test_moves_from_plan_keeps_waves_and_drops_what_is_done():
    pve = FakePve(guests={100: {}, 101: {"node": "pve2"}, 102: {}})
    data = {"moves": [dict(vmid=100, name="g100", type="vm", **{"from": "pve1", "to": "pve2"}, wave=1),
                      dict(vmid=101, name="g101", type="vm", **{"from": "pve1", "to": "pve2"}, wave=1),
                      dict(vmid=102, name="g102", type="vm", **{"from": "pve1", "to": "pve3"}, wave=2)]}
    waves = moves_from_plan(data, pve.snapshot())
    assert [[m.vmid for m in w] for w in waves] == [[100], [102]]
    assert waves[1][0].type == "qemu" and waves[1][0].running
    with pytest.raises(ConfigError):
        moves_from_plan({"moves": [{"vmid": 1}]}, pve.snapshot())
