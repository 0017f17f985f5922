# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Storage balancing end to end against the PVE API simulator (real HTTPS client), and the
executor's pure helpers."""

from __future__ import annotations

import os
import sys

import pytest

from ansible_collections.proxlb.balancer.plugins.module_utils import pve_api, storage_executor, storage_plan
from ansible_collections.proxlb.balancer.plugins.module_utils.pve_api import ConnectionSettings
from ansible_collections.proxlb.balancer.plugins.module_utils.storage_balance_runner import inspected_plan, storage_balance
from ansible_collections.proxlb.balancer.plugins.module_utils.collector import collect

GIB = 1024 ** 3
SIM_TOOLS = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "tools"))
SIM_TOKEN = dict(token_id="proxlb", token_secret="00000000-0000-4000-8000-000000000001")

TWO_STORAGES = {
    "name": "two-storages",
    "version": "9.0.3",
    "nodes": [{"name": "n1"}, {"name": "n2"}],
    "storages": [
        {"storage": "big", "type": "rbd", "content": "images,rootdir", "total_gib": 400, "used_gib": 40},
        {"storage": "small", "type": "nfs", "content": "images,rootdir", "total_gib": 200, "used_gib": 10},
    ],
    "guests": [
        {"vmid": 100, "node": "n1", "disks": [{"key": "scsi0", "storage": "small", "size_gib": 40},
                                              {"key": "scsi1", "storage": "small", "size_gib": 50}]},
        {"vmid": 101, "node": "n2", "status": "stopped", "disks": [{"key": "scsi0", "storage": "small", "size_gib": 30}]},
        {"vmid": 102, "node": "n2", "type": "lxc", "disks": [{"key": "rootfs", "storage": "small", "size_gib": 20}]},
        {"vmid": 103, "node": "n1", "disks": [{"key": "scsi0", "storage": "big", "size_gib": 10}]},
    ],
}


@pytest.fixture(scope="module")
def simulator():
    if os.path.isdir(SIM_TOOLS) and SIM_TOOLS not in sys.path:
        sys.path.insert(0, SIM_TOOLS)
    pvesim = pytest.importorskip("pvesim")
    with pvesim.Simulator(scenario=TWO_STORAGES, port=0, speed=200) as sim:
        yield sim


@pytest.fixture
def sim(simulator):
    simulator.reset(TWO_STORAGES, speed=200)
    simulator.set_faults()
    simulator.reset_calls()
    return simulator


def client_for(sim):
    return pve_api.open_client(ConnectionSettings(hosts=["127.0.0.1:%d" % sim.port], ca_path=sim.ca_path, **SIM_TOKEN))


def options(**params):
    return storage_plan.StorageBalanceSettings.from_params(params)


def fill(state, name):
    entry = state["storages"][name]
    return 100.0 * entry["used"] / entry["total"]


def posts(sim):
    return {k: v for k, v in sim.calls()["by_endpoint"].items() if k.startswith("POST")}


def test_check_mode_is_the_plan_and_sends_no_write(sim):
    result, report, _warnings = storage_balance(client_for(sim), options(), check_mode=True)
    assert posts(sim) == {}
    assert result["changed"] and all(o.status == storage_executor.PLANNED for o in report.outcomes)
    assert [(m["vmid"], m["volume"]) for m in result["moves"]] == [(m["vmid"], m["volume"]) for m in result["plan"]["moves"]]
    assert storage_executor.volume_diff(report.outcomes)["after"] == {
        "%d/%s %s" % (m["vmid"], m["name"], m["volume"]): m["to"] for m in result["plan"]["moves"]}


def test_a_run_evens_out_the_storages_and_a_second_run_has_nothing_to_do(sim):
    before = sim.state()
    assert fill(before, "small") - fill(before, "big") > 50
    client = client_for(sim)
    checked, _report, _warnings = storage_balance(client, options(), check_mode=True)
    result, report, warnings = storage_balance(client, options())
    after = sim.state()
    assert warnings == [] and not report.failed and result["changed"]
    assert result["plan"]["moves"] == checked["plan"]["moves"]               # the same plan in check mode and for real
    assert abs(fill(after, "small") - fill(after, "big")) <= 5.0
    assert {o.final_storage for o in report.outcomes} == {"big"} and all(o.kept_as is None for o in report.outcomes)
    for move in result["moves"]:
        disks = {d["key"]: d["storage"] for d in after["guests"][str(move["vmid"])]["disks"]}
        assert disks[move["volume"]] == "big" and not any(k.startswith("unused") for k in disks)
    assert result["storages_final"]["small"]["fill_pct"] == pytest.approx(fill(after, "small"), abs=0.01)
    again, report2, _warnings = storage_balance(client, options())
    assert again["plan"]["moves"] == [] and not again["changed"] and report2.outcomes == []


def test_the_running_container_stays_with_its_reason(sim):
    result, _report, _warnings = storage_balance(client_for(sim), options(), check_mode=True)
    left = {e["vmid"]: e for e in result["plan"]["left_alone"]}
    assert left[102]["reason"] == "running_container"
    assert 102 not in {m["vmid"] for m in result["plan"]["moves"]}


def test_config_reads_are_bounded_by_max_moves(sim):
    storage_balance(client_for(sim), options(max_moves=1), check_mode=True)
    reads = sum(v for k, v in sim.calls()["by_endpoint"].items() if k.endswith("/config"))
    assert 1 <= reads <= 1 * storage_plan.INSPECT_FACTOR


def test_a_failing_move_is_reported_with_pve_text_and_the_volume_stays(sim):
    sim.set_faults(disk_move_failure_rate=1.0, seed=2)
    result, report, _warnings = storage_balance(client_for(sim), options(on_failure="stop"))
    failed = report.failed_moves
    assert len(failed) == 1 and report.stopped
    assert failed[0].error.startswith("storage migration failed:")
    assert failed[0].final_storage == "small" == failed[0].move.source
    assert all(o.status == storage_executor.NOT_STARTED for o in report.outcomes[1:])
    assert "1 of 1 disk move(s) failed" in report.failure_message() and not result["changed"]
    disks = {d["key"]: d["storage"] for d in sim.state()["guests"][str(failed[0].move.vmid)]["disks"]}
    assert disks[failed[0].move.key] == "small"


def test_on_failure_continue_runs_the_rest(sim):
    sim.set_faults(disk_move_failure_rate=1.0, seed=2)
    _result, report, _warnings = storage_balance(client_for(sim), options(on_failure="continue"))
    assert len(report.failed_moves) == len(report.outcomes) > 1 and not report.stopped


def test_keeping_the_source_reports_the_unused_keys(sim):
    result, report, _warnings = storage_balance(client_for(sim), options(delete_source=False))
    assert report.outcomes and all(o.status == storage_executor.OK for o in report.outcomes)
    state = sim.state()
    for outcome in report.outcomes:
        disks = {d["key"]: (d["storage"], d["volid"]) for d in state["guests"][str(outcome.move.vmid)]["disks"]}
        assert outcome.kept_as in disks and disks[outcome.kept_as] == ("small", outcome.move.volid)
    assert any("delete_source is false" in w for w in result["plan"]["warnings"])


def test_two_moves_of_one_guest_never_run_together(sim):
    sim.reset({"nodes": [{"name": "n1"}], "guests": [
        {"vmid": 100, "node": "n1", "disks": [{"key": "scsi0", "storage": "small", "size_gib": 30},
                                              {"key": "scsi1", "storage": "small", "size_gib": 30}]},
        {"vmid": 101, "node": "n1", "disks": [{"key": "scsi0", "storage": "small", "size_gib": 10}]}],
        "storages": [{"storage": "big", "type": "rbd", "total_gib": 1000}, {"storage": "small", "type": "nfs", "total_gib": 100}]},
        speed=200)
    _result, report, _warnings = storage_balance(client_for(sim), options(parallel_moves=4, balanciness=1))
    assert not report.failed
    vmids = [o.move.vmid for o in report.outcomes]
    assert vmids.count(100) == 2
    tasks = [t for t in sim.state()["tasks"] if t["vmid"] == 100]
    assert len(tasks) == 2 and tasks[0]["endtime"] <= tasks[1]["starttime"] + 1


def test_a_move_changed_since_the_plan_is_skipped(sim):
    client = client_for(sim)
    settings = options()
    snapshot = collect(client, with_storage=True)
    selected, kind = storage_plan.select_storages(settings, snapshot)
    plan = inspected_plan(client, snapshot, settings, selected, kind, [])
    first = plan.moves[0]
    sim.lock_guest(first.vmid, "backup")
    report = storage_executor.execute(client, snapshot, plan, settings)
    skipped = [o for o in report.outcomes if o.move.vmid == first.vmid]
    assert skipped and all(o.status == storage_executor.SKIPPED and o.error == "the guest is locked (backup)" for o in skipped)
    assert posts(sim).get("POST /nodes/{node}/qemu/{vmid}/move_disk", 0) == len(
        [m for m in plan.moves if m.vmid != first.vmid])


def test_a_move_that_takes_too_long_is_not_assumed_done(sim):
    sim.reset(TWO_STORAGES, speed=1)
    _result, report, _warnings = storage_balance(client_for(sim), options(move_timeout=1, max_moves=1))
    outcome = report.outcomes[0]
    assert outcome.status == storage_executor.FAILED and outcome.error.startswith("timed out after 1 s (move_timeout)")
    assert outcome.final_storage == outcome.move.source


# -- pure helpers -------------------------------------------------------------------------------------

def test_move_requests():
    vm = storage_plan.VolumeMove(100, "web", "qemu", "pve1", "scsi1", "nfs:vm-100-disk-1", "nfs", "ceph", GIB, running=True)
    ct = storage_plan.VolumeMove(101, "dns", "lxc", "pve2", "rootfs", "nfs:vm-101-disk-0", "nfs", "ceph", GIB)
    assert storage_executor.move_request(vm, options(), "abc") == (
        "nodes/pve1/qemu/100/move_disk", dict(disk="scsi1", storage="ceph", delete=1, digest="abc"))
    assert storage_executor.move_request(ct, options(delete_source=False, bwlimit=1024)) == (
        "nodes/pve2/lxc/101/move_volume", dict(volume="rootfs", storage="ceph", delete=0, bwlimit=1024))
    assert vm.online and not ct.online and vm.label() == "100/web scsi1"


def test_outcomes_and_diff():
    move = storage_plan.VolumeMove(100, "web", "qemu", "pve1", "scsi1", "nfs:vm-100-disk-1", "nfs", "ceph", GIB)
    failed = storage_executor.MoveOutcome(move=move, status=storage_executor.FAILED, error="storage migration failed: x",
                                          final_storage="nfs", upid="UPID:x")
    report = storage_executor.MoveReport(outcomes=[failed])
    assert not report.changed and report.failed
    assert storage_executor.volume_diff(report.outcomes) == {"before": {}, "after": {}}
    assert report.failure_message() == "1 of 1 disk move(s) failed: 100 (web) scsi1 nfs -> ceph: storage migration failed: x"
    done = storage_executor.MoveOutcome(move=move, status=storage_executor.OK, final_storage="ceph")
    assert storage_executor.MoveReport(outcomes=[done]).changed
    assert storage_executor.volume_diff([done]) == {"before": {"100/web scsi1": "nfs"}, "after": {"100/web scsi1": "ceph"}}
    assert done.line() == "100 web scsi1  nfs -> ceph  ok"
