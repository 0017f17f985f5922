# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PVE task helpers on recorded answer shapes: polling, UPIDs, task errors, the migrate
precondition and the migrate request."""

from __future__ import annotations

import pytest

from ansible_collections.proxlb.balancer.plugins.module_utils import pve_tasks
from ansible_collections.proxlb.balancer.plugins.module_utils.errors import PveApiError
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


def test_migrate_path_by_guest_type():
    assert pve_tasks.migrate_path(move(100, "pve1", "pve2")) == "nodes/pve1/qemu/100/migrate"
    assert pve_tasks.migrate_path(move(200, "pve3", "pve2", kind="ct")) == "nodes/pve3/lxc/200/migrate"


def test_api_message_prefers_pves_reason_phrase():
    assert pve_tasks.api_message(PveApiError("PVE API error: 500 VM is locked", status=500,
                                             pve_message="VM is locked (backup)")) == "VM is locked (backup)"
    assert pve_tasks.api_message(PveApiError(" connection refused ", kind="unreachable")) == "connection refused"


class TaskLog:
    """``GET .../tasks/{upid}/log`` over ``lines`` texts, paged like PVE; or failing."""

    def __init__(self, lines, error=None):
        self.lines = lines
        self.error = error
        self.reads = []

    def get(self, path, start=0, limit=50):
        self.reads.append((path, start, limit))
        if self.error:
            raise self.error
        return [dict(n=i + 1, t=t) for i, t in enumerate(self.lines)][start:start + limit]


def test_log_tail_reads_one_page_of_a_short_log_and_pages_to_the_end_of_a_long_one():
    short = TaskLog(["starting migration", "ERROR: online migrate failure", "TASK ERROR: migration aborted"])
    assert pve_tasks.task_log_tail(short, "pve1", "UPID:x") == short.lines
    assert short.reads == [("nodes/pve1/tasks/UPID:x/log", 0, pve_tasks.LOG_TAIL_LINES)]
    long_log = TaskLog(["line %d" % i for i in range(pve_tasks.LOG_TAIL_LINES * 2 + 7)])
    tail = pve_tasks.task_log_tail(long_log, "pve1", "UPID:x")
    assert tail == long_log.lines[-7:] and len(long_log.reads) == 3
    unreadable = TaskLog([], error=PveApiError("403 Permission check failed", kind="permission", status=403))
    assert pve_tasks.task_log_tail(unreadable, "pve1", "UPID:x") == []


class TaskList:
    def __init__(self, entries):
        self.entries = entries
        self.asked = []

    def get(self, path, **params):
        self.asked.append((path, params))
        return self.entries


def test_the_real_migration_is_the_oldest_one_started_after_the_ha_request():
    ha = "UPID:pve1:00001000:00000000:66F0A100:hamigrate:100:balancer@pve!lb:"
    entries = [dict(upid="UPID:pve1:2:0:66F0A190:qmigrate:100:root@pam:", type="qmigrate", starttime=0x66F0A190),
               dict(upid="UPID:pve1:1:0:66F0A110:qmigrate:100:root@pam:", type="qmigrate", starttime=0x66F0A110),
               dict(upid="UPID:pve1:0:0:66F0A000:qmigrate:100:root@pam:", type="qmigrate", starttime=0x66F0A000),
               dict(upid=ha, type="hamigrate", starttime=0x66F0A100)]
    client = TaskList(entries)
    found = pve_tasks.started_migration_task(client, move(100, "pve1", "pve2"), 0x66F0A100, ha)
    assert found["upid"] == "UPID:pve1:1:0:66F0A110:qmigrate:100:root@pam:"
    wanted = dict(typefilter="qmigrate", vmid=100, source="all", limit=50, since=0x66F0A100)
    assert client.asked == [("nodes/pve1/tasks", wanted)]
    assert pve_tasks.started_migration_task(TaskList([]), move(200, "pve1", "pve2", kind="ct"), None, ha) is None
