# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PVE task helpers on recorded answer shapes: polling, UPIDs, task errors, the migrate
precondition and the migrate request."""

from __future__ import annotations

import pytest

from ansible_collections.proxlb.balancer.plugins.module_utils import pve_tasks
from ansible_collections.proxlb.balancer.plugins.module_utils.execution_options import ExecOptions
from ansible_collections.proxlb.balancer.plugins.module_utils.pve_tasks import (
    migrate_params, parse_upid, poll_interval_s, precondition_problem, task_error)
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.fake_pve import move


def test_poll_interval_grows_caps_and_stays_within_a_tenth_of_elapsed():
    assert poll_interval_s(0, 0.0) == pytest.approx(0.1)
    intervals = [poll_interval_s(n, 1000.0) for n in range(30)]
    assert intervals == sorted(intervals) and intervals[-1] == pve_tasks.POLL_MAX_S
    for elapsed in (0.5, 2.0, 7.0, 15.0, 40.0):
        for attempt in range(20):
            assert poll_interval_s(attempt, elapsed) <= max(0.1, 0.1 * elapsed) + 1e-9


def test_parse_upid():
    info = parse_upid("UPID:pve1:0012A3F4:07E1B2C3:66F0A1B2:qmigrate:100:root@pam!lb:")
    assert info == dict(node="pve1", starttime=0x66F0A1B2, type="qmigrate", id="100", user="root@pam!lb")
    assert parse_upid("not a upid") is None


def test_task_error_quotes_the_last_error_line():
    lines = ["2021-02-15 17:57:57 starting migration of VM 100 to node 'pve2'",
             "2021-02-15 17:57:57 ERROR: Failed to sync data - can't migrate VM - check log",
             "2021-02-15 17:57:57 aborting phase 1 - cleanup resources",
             "2021-02-15 17:57:57 ERROR: migration aborted (duration 00:00:01): Failed to sync data - can't migrate VM - check log",
             "TASK ERROR: migration aborted"]
    assert task_error("migration aborted", lines) == \
        "migration aborted (duration 00:00:01): Failed to sync data - can't migrate VM - check log"
    ha = ["Requesting HA migration for VM 100 to node pve3", "cannot migrate resource 'vm:100' to node 'pve3':",
          "- resource 'vm:100' on target node 'pve3' violates node-affinity rule 'pin'", "TASK ERROR: command failed"]
    message = task_error("command 'ha-manager migrate vm:100 pve3' failed: exit code 255", ha)
    assert message.startswith("command 'ha-manager migrate vm:100 pve3' failed") and "node-affinity rule 'pin'" in message
    assert task_error("unexpected status", []) == "unexpected status"


def test_precondition_problems_carry_pves_reasons():
    assert precondition_problem({"running": 1, "local_resources": ["usb0", "hostpci0"]}, "pve2", "vm", True) == \
        "PVE: local resources pin the VM to its node: usb0, hostpci0"
    answer = {"allowed_nodes": ["pve2"], "not_allowed_nodes": {"pve2": {}, "pve3": {
        "unavailable_storages": ["fastpool"], "blocking-ha-resources": [{"sid": "vm:104", "cause": "resource-affinity"}]}}}
    assert precondition_problem(answer, "pve2", "vm", True) is None
    problem = precondition_problem(answer, "pve3", "vm", True)
    assert "fastpool" in problem and "vm:104 (resource-affinity)" in problem
    lxc9 = {"running": 0, "allowed-nodes": ["pve2"], "not-allowed-nodes": {}}
    assert precondition_problem(lxc9, "pve2", "ct", True) is None
    assert "not among the allowed nodes" in precondition_problem({"allowed-nodes": ["pve2"]}, "pve3", "ct", True)
    disks = {"running": 1, "local_disks": [{"volid": "local-lvm:vm-101-disk-0"}]}
    assert precondition_problem(disks, "pve2", "vm", True) is None
    assert "local-lvm:vm-101-disk-0" in precondition_problem(disks, "pve2", "vm", False)
    # PVE 8.0-8.3 leave the node lists out for running VMs: nothing to judge
    assert precondition_problem({"running": 1, "local_disks": [], "local_resources": []}, "pve3", "vm", True) is None


def test_migrate_params_by_guest_kind_state_and_version():
    options = ExecOptions()
    vm = move(100, "pve1", "pve2")
    expected = {"target": "pve2", "online": 1, "with-local-disks": 1, "with-conntrack-state": 1}
    assert migrate_params(vm, True, (9, 0, 3), options) == expected
    # PVE 8 rejects every migration that names with-conntrack-state
    assert "with-conntrack-state" not in migrate_params(vm, True, (8, 4, 1), options)
    assert "with-conntrack-state" not in migrate_params(vm, True, (9, 0, 3), options, {"has-dbus-vmstate": 0})
    assert migrate_params(vm, False, (9, 0, 3), options) == {"target": "pve2", "with-local-disks": 1}
    off = ExecOptions(with_local_disks=False, with_conntrack_state=False)
    assert migrate_params(vm, True, (9, 0, 3), off) == {"target": "pve2", "online": 1}
    ct = move(200, "pve1", "pve2", kind="ct")
    assert migrate_params(ct, True, (9, 0, 3), options) == {"target": "pve2", "restart": 1, "timeout": 180}
    assert migrate_params(ct, False, (8, 4, 1), options) == {"target": "pve2"}
