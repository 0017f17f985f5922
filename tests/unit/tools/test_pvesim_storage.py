"""Simulated disk moves (move_disk / move_volume), storage listings and replication jobs."""
# pylint: disable=redefined-outer-name

from __future__ import annotations

import pytest
from pvesim_testlib import FAST, wait_for, wait_task

proxmoxer = pytest.importorskip("proxmoxer")

GIB = 1024 ** 3

SCENARIO = {
    "name": "disks",
    "version": "9.0.3",
    "nodes": [{"name": "n1"}, {"name": "n2"}],
    "storages": [
        {"storage": "big", "type": "rbd", "content": "images,rootdir", "total_gib": 1000},
        {"storage": "small", "type": "nfs", "content": "images,rootdir", "total_gib": 100, "used_gib": 10},
        {"storage": "tiny", "type": "zfspool", "content": "images,rootdir", "total_gib": 20, "shared": 1},
        {"storage": "only-n2", "type": "nfs", "content": "images,rootdir", "total_gib": 500, "nodes": "n2"},
        {"storage": "off", "type": "nfs", "content": "images", "total_gib": 500, "disable": 1},
        {"storage": "isos", "type": "nfs", "content": "iso", "total_gib": 500},
        {"storage": "local-lvm", "type": "lvmthin", "content": "images,rootdir", "total_gib": 100},
    ],
    "guests": [
        {"vmid": 100, "node": "n1", "disks": [{"key": "scsi0", "storage": "small", "size_gib": 20},
                                              {"key": "scsi1", "storage": "small", "size_gib": 30}]},
        {"vmid": 101, "node": "n1", "type": "lxc", "status": "stopped", "disks": [{"key": "rootfs", "storage": "small",
                                                                                   "size_gib": 8}]},
        {"vmid": 102, "node": "n1", "type": "lxc", "disks": [{"key": "rootfs", "storage": "small", "size_gib": 8}]},
        {"vmid": 103, "node": "n2", "status": "stopped", "config": {"parent": "snap1"},
         "disks": [{"key": "scsi0", "storage": "small", "size_gib": 10}]},
        {"vmid": 104, "node": "n2", "status": "stopped", "template": 1,
         "disks": [{"key": "scsi0", "storage": "big", "volid": "big:base-104-disk-0", "size_gib": 10}]},
        {"vmid": 105, "node": "n2", "disks": [{"key": "scsi0", "storage": "big", "volid": "big:base-104-disk-0/vm-105-disk-0",
                                               "size_gib": 10}]},
    ],
    "replication": [{"guest": 103, "target": "n1"}],
}


@pytest.fixture
def disks(sim, token_api):
    sim.reset(scenario=SCENARIO, speed=FAST)
    yield token_api


def guest_disks(sim, vmid):
    return {d["key"]: (d["storage"], d["volid"]) for d in sim.state()["guests"][str(vmid)]["disks"]}


def error_of(call):
    with pytest.raises(proxmoxer.core.ResourceException) as err:
        call()
    return err.value.status_code, str(err.value.content or err.value)


def test_online_move_keeps_the_old_volume_as_unused(sim, disks):
    used_before = sim.state()["storages"]
    upid = disks.nodes("n1").qemu(100).move_disk.post(disk="scsi1", storage="big")
    assert ":qmmove:100:" in upid
    status = wait_task(disks, "n1", upid)
    assert status["exitstatus"] == "OK"
    assert guest_disks(sim, 100) == {"scsi0": ("small", "small:vm-100-disk-0"), "scsi1": ("big", "big:vm-100-disk-0"),
                                     "unused0": ("small", "small:vm-100-disk-1")}
    config = disks.nodes("n1").qemu(100).config.get()
    assert config["scsi1"].startswith("big:vm-100-disk-0,") and config["unused0"] == "small:vm-100-disk-1"
    log = [line["t"] for line in disks.nodes("n1").tasks(upid).log.get()]
    assert "drive mirror is starting for drive-scsi1" in log and log[-1] == "TASK OK"
    assert "adding source volume 'small:vm-100-disk-1' as 'unused0' to config" in log
    after = sim.state()["storages"]
    assert after["big"]["used"] == used_before["big"]["used"] + 30 * GIB
    assert after["small"]["used"] == used_before["small"]["used"]            # the old copy is still there


def test_delete_frees_the_source(sim, disks):
    before = sim.state()["storages"]["small"]["used"]
    upid = disks.nodes("n1").qemu(100).move_disk.post(disk="scsi1", storage="big", delete=1)
    assert wait_task(disks, "n1", upid)["exitstatus"] == "OK"
    assert "unused0" not in guest_disks(sim, 100)
    assert sim.state()["storages"]["small"]["used"] == before - 30 * GIB


def test_stopped_container_moves_under_lock_disk(sim, disks):
    upid = disks.nodes("n1").lxc(101).move_volume.post(volume="rootfs", storage="big", delete=1)
    assert ":move_volume:101:" in upid
    assert sim.state()["guests"]["101"]["lock"] == "disk"
    assert error_of(lambda: disks.nodes("n1").lxc(101).move_volume.post(volume="rootfs", storage="small"))[1] \
        .startswith("CT is locked (disk)")
    assert wait_task(disks, "n1", upid)["exitstatus"] == "OK"
    state = sim.state()["guests"]["101"]
    assert state["lock"] is None and guest_disks(sim, 101) == {"rootfs": ("big", "big:vm-101-disk-0")}


@pytest.mark.parametrize("call,status,text", [
    (lambda api: api.nodes("n1").lxc(102).move_volume.post(volume="rootfs", storage="big"), 500,
     "cannot move volumes of a running container"),
    (lambda api: api.nodes("n1").qemu(100).move_disk.post(disk="scsi0", storage="nope"), 500, "storage 'nope' does not exist"),
    (lambda api: api.nodes("n1").qemu(100).move_disk.post(disk="scsi0", storage="off"), 500, "storage 'off' is disabled"),
    (lambda api: api.nodes("n1").qemu(100).move_disk.post(disk="scsi0", storage="isos"), 400, "Parameter verification failed"),
    (lambda api: api.nodes("n1").qemu(100).move_disk.post(disk="scsi0", storage="small"), 500,
     "you can't move to the same storage with same format"),
    (lambda api: api.nodes("n1").qemu(100).move_disk.post(disk="scsi5", storage="big"), 500, "disk 'scsi5' does not exist"),
    (lambda api: api.nodes("n2").qemu(103).move_disk.post(disk="scsi0", storage="big", delete=1), 500,
     "you can't move a disk with snapshots and delete the source"),
    (lambda api: api.nodes("n1").qemu(100).move_disk.post(disk="scsi0", storage="big", digest="0" * 40), 500,
     "detected modified configuration - file changed by other user? Try again."),
    (lambda api: api.nodes("n2").qemu(100).move_disk.post(disk="scsi0", storage="big"), 500,
     "Configuration file 'nodes/n2/qemu-server/100.conf' does not exist"),
    (lambda api: api.nodes("n1").lxc(101).move_volume.post(volume="unused0", storage="big"), 500,
     "cannot move volume 'unused0', only configured volumes can be moved to another storage"),
])
def test_synchronous_refusals(disks, call, status, text):
    code, message = error_of(lambda: call(disks))
    assert code == status and text in message


def test_a_full_target_fails_inside_the_task_and_nothing_moves(sim, disks):
    upid = disks.nodes("n1").qemu(100).move_disk.post(disk="scsi1", storage="tiny")
    status = wait_task(disks, "n1", upid)
    assert status["exitstatus"] == "storage migration failed: zfs error: cannot create 'rpool/data/vm-100-disk-2': out of space"
    assert guest_disks(sim, 100)["scsi1"] == ("small", "small:vm-100-disk-1") and "unused0" not in guest_disks(sim, 100)


def test_a_storage_the_node_cannot_use_fails_inside_the_task(sim, disks):
    status = wait_task(disks, "n1", disks.nodes("n1").qemu(100).move_disk.post(disk="scsi1", storage="only-n2"))
    assert status["exitstatus"] == "storage migration failed: storage 'only-n2' is not available on node 'n1'"
    assert guest_disks(sim, 100)["scsi1"][0] == "small"


def test_injected_failures_keep_the_volume(sim, disks):
    sim.set_faults(disk_move_failure_rate=1.0, seed=1)
    upid = disks.nodes("n1").qemu(100).move_disk.post(disk="scsi1", storage="big")
    status = wait_task(disks, "n1", upid)
    assert status["exitstatus"].startswith("storage migration failed: mirroring error: drive-scsi1")
    assert guest_disks(sim, 100)["scsi1"][0] == "small"


def test_a_second_move_of_the_same_vm_waits_for_the_lock_and_fails(sim, disks):
    sim.reset(scenario=SCENARIO, speed=2)
    first = disks.nodes("n1").qemu(100).move_disk.post(disk="scsi0", storage="big")
    second = disks.nodes("n1").qemu(100).move_disk.post(disk="scsi1", storage="big")
    status = wait_task(disks, "n1", second, timeout=10)
    assert status["exitstatus"] == "can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout"
    assert disks.nodes("n1").tasks(first).status.get()["status"] == "running"
    sim.reset(scenario=SCENARIO, speed=FAST)


def test_the_audit_token_may_not_move(sim, audit_api):
    sim.reset(scenario=SCENARIO, speed=FAST)
    code, message = error_of(lambda: audit_api.nodes("n1").qemu(100).move_disk.post(disk="scsi0", storage="big"))
    assert code == 403 and "Permission check failed (/vms/100, VM.Config.Disk)" in message


def test_listing_marks_linked_clones_and_replication_jobs_are_served(disks):
    content = {c["volid"]: c for c in disks.nodes("n2").storage("big").content.get()}
    assert content["big:base-104-disk-0/vm-105-disk-0"]["parent"] == "base-104-disk-0"
    assert "parent" not in content["big:base-104-disk-0"]
    assert disks.cluster.replication.get() == [{"id": "103-0", "type": "local", "guest": 103, "target": "n1", "jobnum": 0,
                                                "schedule": "*/15", "source": "n2"}]
    assert disks.nodes("n2").qemu(103).config.get()["parent"] == "snap1"


def test_storage_fill_follows_the_moves_in_cluster_resources(sim, disks):
    def used(name):
        return next(r["disk"] for r in disks.cluster.resources.get(type="storage") if r["storage"] == name)
    before = used("big")
    upid = disks.nodes("n1").qemu(100).move_disk.post(disk="scsi0", storage="big", delete=1)
    wait_for(lambda: disks.nodes("n1").tasks(upid).status.get()["status"] == "stopped")
    assert used("big") == before + 20 * GIB
