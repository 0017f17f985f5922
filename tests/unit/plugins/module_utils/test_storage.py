# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Storages and volumes in the model: collection in a bounded number of calls, config parsing,
old snapshot files, and the placement checks of storage.py."""

from __future__ import annotations

import copy
import json
import os

import pytest

from ansible_collections.proxlb.balancer.plugins.module_utils import collector, storage
from ansible_collections.proxlb.balancer.plugins.module_utils.errors import PveApiError
from ansible_collections.proxlb.balancer.plugins.module_utils.snapshot import ClusterSnapshot, Guest, Node, Storage, Volume

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
GIB = 1024 ** 3


class CannedClient:
    """Answers by ``METHOD /path``; counts calls like ``PveClient``."""

    def __init__(self, answers):
        self.answers = answers
        self.calls = 0
        self.paths = []
        self.version_info = copy.deepcopy(answers["GET /version"])

    def get(self, path, **params):
        return self.request("GET", path, params=params)

    def request(self, method, path, params=None, data=None, retries=None):
        self.calls += 1
        self.paths.append(path)
        key = "%s %s" % (method, path)
        if key not in self.answers:
            raise PveApiError("PVE API error on %s: 501 not implemented" % key, kind="http", status=501)
        answer = self.answers[key]
        if isinstance(answer, dict) and "__error__" in answer:
            raise PveApiError("PVE API error on %s: %s" % (key, answer["__error__"]), kind="http", status=500)
        return copy.deepcopy(answer)


def pve9_with_storage():
    with open(os.path.join(FIXTURES, "pve9_cluster.json")) as handle:
        answers = json.load(handle)
    resources = answers["GET /cluster/resources"]
    for node in ("pve1", "pve2"):
        resources.append({"id": "storage/%s/nfs-vm" % node, "storage": "nfs-vm", "node": node, "type": "storage",
                          "plugintype": "nfs", "status": "available", "shared": 1, "content": "images,rootdir",
                          "disk": 600 * GIB, "maxdisk": 1024 * GIB})
    vmids = sorted(int(e["vmid"]) for e in resources if e["type"] in ("qemu", "lxc"))
    answers["GET /storage"] = [
        {"storage": "local", "type": "dir", "content": "iso,vztmpl,backup", "digest": "d"},
        {"storage": "local-lvm", "type": "lvmthin", "content": "rootdir,images", "digest": "d"},
        {"storage": "ceph-vm", "type": "rbd", "content": "images,rootdir", "shared": 1, "digest": "d"},
        {"storage": "nfs-vm", "type": "nfs", "content": "images,rootdir", "shared": 1, "digest": "d"},
        {"storage": "old-nfs", "type": "nfs", "content": "images", "shared": 1, "disable": 1, "nodes": "pve1", "digest": "d"},
    ]
    answers["GET /nodes/pve1/storage/ceph-vm/content"] = [
        {"volid": "ceph-vm:vm-%d-disk-0" % vmid, "vmid": vmid, "size": 32 * GIB, "format": "raw", "content": "images"}
        for vmid in vmids] + [
        {"volid": "ceph-vm:vm-999-disk-0", "vmid": 999, "size": 8 * GIB, "format": "raw", "content": "images"},
        {"volid": "ceph-vm:iso-like", "size": GIB, "format": "raw", "content": "iso"}]
    answers["GET /nodes/pve1/storage/nfs-vm/content"] = [
        {"volid": "nfs-vm:%d/vm-%d-disk-1.qcow2" % (vmids[0], vmids[0]), "vmid": vmids[0], "size": 100 * GIB,
         "format": "qcow2", "content": "images"},
        {"volid": "nfs-vm:base-%d-disk-0/vm-%d-disk-2" % (vmids[1], vmids[0]), "vmid": vmids[0], "size": 10 * GIB,
         "format": "raw", "content": "images", "parent": "base-%d-disk-0" % vmids[1]}]
    return answers, vmids


# -- collection -------------------------------------------------------------------------------

def test_storage_adds_one_config_call_and_one_listing_per_shared_guest_storage():
    answers, _vmids = pve9_with_storage()
    client = CannedClient(answers)
    snap = collector.collect(client, with_storage=True)
    assert client.paths[7:] == ["/storage", "/nodes/pve1/storage/ceph-vm/content", "/nodes/pve1/storage/nfs-vm/content"]
    assert snap.api_calls == 8 + 1 + 2
    assert len(collector.STORAGE_CALLS) == 2


def test_volumes_land_on_their_guests_and_leftovers_are_skipped():
    answers, vmids = pve9_with_storage()
    snap = collector.collect(CannedClient(answers), with_storage=True)
    first = snap.guests[vmids[0]]
    assert [(v.volid, v.storage, v.size_bytes, v.shared, v.key) for v in first.volumes] == [
        ("ceph-vm:vm-%d-disk-0" % vmids[0], "ceph-vm", 32 * GIB, True, None),
        ("nfs-vm:%d/vm-%d-disk-1.qcow2" % (vmids[0], vmids[0]), "nfs-vm", 100 * GIB, True, None),
        ("nfs-vm:base-%d-disk-0/vm-%d-disk-2" % (vmids[1], vmids[0]), "nfs-vm", 10 * GIB, True, None)]
    assert first.volumes[1].format == "qcow2" and first.volumes[2].parent == "base-%d-disk-0" % vmids[1]
    assert all(len(snap.guests[v].volumes) == 1 for v in vmids[1:])
    assert 999 not in snap.guests
    assert storage.guest_storages(first) == ["ceph-vm", "nfs-vm"]


def test_disabled_storages_are_kept_with_enabled_false():
    answers, _vmids = pve9_with_storage()
    snap = collector.collect(CannedClient(answers), with_storage=True)
    old = [s for s in snap.storages if s.storage == "old-nfs"]
    assert [(s.node, s.enabled, s.active, s.shared) for s in old] == [("pve1", False, False, True)]
    assert all(s.enabled for s in snap.storages if s.storage != "old-nfs")
    assert ("pve1", "nfs-vm") in collector.shared_guest_storages(snap) or ("pve2", "nfs-vm") in collector.shared_guest_storages(snap)


def test_without_storage_nothing_changes():
    answers, _vmids = pve9_with_storage()
    client = CannedClient(answers)
    snap = collector.collect(client)
    assert snap.api_calls == 8 and "/storage" not in client.paths
    assert all(g.volumes is None for g in snap.guests.values())


def test_a_failing_listing_is_a_warning():
    answers, _vmids = pve9_with_storage()
    answers["GET /nodes/pve1/storage/nfs-vm/content"] = {"__error__": "storage 'nfs-vm' is not online"}
    warnings = []
    snap = collector.collect(CannedClient(answers), with_storage=True, warnings=warnings)
    assert len(warnings) == 1 and "volumes on shared storage nfs-vm" in warnings[0]
    assert all(v.storage == "ceph-vm" for g in snap.guests.values() for v in g.volumes)


def test_call_count_does_not_grow_with_the_guests():
    counts = []
    for guests in (3, 300):
        answers, _vmids = pve9_with_storage()
        resources = answers["GET /cluster/resources"]
        for index in range(guests):
            vmid = 1000 + index
            resources.append({"id": "qemu/%d" % vmid, "vmid": vmid, "node": "pve1", "type": "qemu", "status": "running",
                              "name": "g%d" % vmid, "maxmem": GIB, "mem": GIB // 2, "maxcpu": 1, "cpu": 0.1})
            answers["GET /nodes/pve1/storage/nfs-vm/content"].append(
                {"volid": "nfs-vm:vm-%d-disk-0" % vmid, "vmid": vmid, "size": GIB, "content": "images"})
        snap = collector.collect(CannedClient(answers), with_storage=True)
        counts.append(snap.api_calls)
        assert len(snap.guests[1000 + guests - 1].volumes) == 1
    assert counts[0] == counts[1] == 11


def test_old_snapshot_files_load_and_new_ones_round_trip(tmp_path):
    answers, vmids = pve9_with_storage()
    snap = collector.collect(CannedClient(answers), with_storage=True)
    assert ClusterSnapshot.from_json(snap.to_json()) == snap
    old = json.loads(snap.to_json())
    for guest in old["guests"].values():
        del guest["volumes"]
    for entry in old["storages"]:
        del entry["enabled"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    loaded = ClusterSnapshot.load(str(path))
    assert all(g.volumes is None for g in loaded.guests.values())
    assert all(s.enabled for s in loaded.storages)
    assert loaded.guests[vmids[0]].name == snap.guests[vmids[0]].name


# -- guest configs ------------------------------------------------------------------------------

QEMU_CONFIG = {
    "scsi0": "ceph-vm:vm-100-disk-0,iothread=1,size=32G",
    "scsi1": "nfs-vm:100/vm-100-disk-1.qcow2,size=512M",
    "ide2": "nfs-vm:iso/debian.iso,media=cdrom",
    "ide0": "none,media=cdrom",
    "sata0": "/dev/disk/by-id/ata-SAMSUNG,size=1T",
    "efidisk0": "local-lvm:vm-100-disk-2,efitype=4m,size=4M",
    "unused0": "ceph-vm:vm-100-disk-9",
    "net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0",
    "parent": "before-upgrade",
    "digest": "51b7599f869b9a3f564804a0aed290f3de803292",
}


def test_qemu_config_volumes():
    config = collector.guest_config(100, QEMU_CONFIG, "qemu", shared_storages=("ceph-vm", "nfs-vm"))
    assert [(v.key, v.volid, v.storage, v.size_bytes, v.shared) for v in config.volumes] == [
        ("efidisk0", "local-lvm:vm-100-disk-2", "local-lvm", 4 * 1024 ** 2, False),
        ("scsi0", "ceph-vm:vm-100-disk-0", "ceph-vm", 32 * GIB, True),
        ("scsi1", "nfs-vm:100/vm-100-disk-1.qcow2", "nfs-vm", 512 * 1024 ** 2, True),
        ("unused0", "ceph-vm:vm-100-disk-9", "ceph-vm", 0, True)]
    assert config.snapshot == "before-upgrade" and config.digest == QEMU_CONFIG["digest"] and config.lock is None
    assert config.volume("ceph-vm:vm-100-disk-9").unused and not config.volume("ceph-vm:vm-100-disk-0").unused
    assert config.volume("nope") is None


def test_lxc_config_volumes_skip_bind_mounts():
    config = collector.guest_config(101, {"rootfs": "local-lvm:vm-101-disk-0,size=8G", "mp0": "/srv/host,mp=/data",
                                          "mp1": "volume=nfs-vm:subvol-101-disk-1,mp=/x,size=10G", "lock": "backup",
                                          "template": 1}, "lxc", ("nfs-vm",))
    assert [(v.key, v.volid, v.size_bytes, v.content, v.shared) for v in config.volumes] == [
        ("mp1", "nfs-vm:subvol-101-disk-1", 10 * GIB, "rootdir", True),
        ("rootfs", "local-lvm:vm-101-disk-0", 8 * GIB, "rootdir", False)]
    assert config.lock == "backup" and config.template and config.snapshot is None


@pytest.mark.parametrize("text,size", [("32G", 32 * GIB), ("512M", 512 * 1024 ** 2), ("1T", 1024 * GIB),
                                       ("4096", 4096), ("1.5G", int(1.5 * GIB)), ("", 0), (None, 0), ("big", 0)])
def test_parse_size(text, size):
    assert collector.parse_size(text) == size


def test_read_guest_configs_one_call_each_and_errors_noted():
    answers, vmids = pve9_with_storage()
    snap = collector.collect(CannedClient(answers), with_storage=True)
    guest = snap.guests[vmids[0]]
    answers["GET /nodes/%s/%s/%d/config" % (guest.node, guest.type, guest.vmid)] = QEMU_CONFIG
    client = CannedClient(answers)
    errors = {}
    configs = collector.read_guest_configs(client, snap, [vmids[0], vmids[1]], errors)
    assert client.calls == 2
    assert list(configs) == [vmids[0]] and configs[vmids[0]].snapshot == "before-upgrade"
    assert list(errors) == [vmids[1]] and "501" in errors[vmids[1]]


def test_replication_targets():
    jobs = [{"id": "100-0", "guest": 100, "target": "pve2", "type": "local"},
            {"id": "100-1", "guest": 100, "target": "pve3", "type": "local", "disable": 1},
            {"id": "105-0", "target": "pve1"}]
    assert collector.replication_targets(jobs) == {100: ["pve2", "pve3"], 105: ["pve1"]}
    assert collector.replication_targets(None) == {}


# -- placement checks ------------------------------------------------------------------------------

def placement_cluster():
    nodes = {n: Node(name=n, status="online") for n in ("pve1", "pve2", "pve3")}
    storages = []
    for name in ("pve1", "pve2", "pve3"):
        storages.append(Storage(storage="ceph-vm", node=name, shared=True, content=["images", "rootdir"], status="available",
                                disk_bytes=100 * GIB, maxdisk_bytes=1000 * GIB))
        storages.append(Storage(storage="local-lvm", node=name, content=["images", "rootdir"], status="available",
                                disk_bytes={"pve1": 10, "pve2": 80, "pve3": 10}[name] * GIB, maxdisk_bytes=100 * GIB))
    storages.append(Storage(storage="fast", node="pve1", shared=False, content=["images"], status="available",
                            disk_bytes=0, maxdisk_bytes=100 * GIB))
    storages.append(Storage(storage="nfs", node="pve1", shared=True, content=["images"], status="available",
                            disk_bytes=0, maxdisk_bytes=100 * GIB))
    storages.append(Storage(storage="nfs", node="pve2", shared=True, content=["images"], status="available", enabled=False))
    storages.append(Storage(storage="nfs", node="pve3", shared=True, content=["images"], status="unknown"))
    guests = {
        100: Guest(vmid=100, name="web", type="qemu", node="pve1", status="running",
                   volumes=[Volume("ceph-vm:vm-100-disk-0", "ceph-vm", 32 * GIB, "scsi0", True),
                            Volume("local-lvm:vm-100-disk-1", "local-lvm", 20 * GIB, "scsi1", False)]),
        101: Guest(vmid=101, name="nfsuser", type="qemu", node="pve1", status="running",
                   volumes=[Volume("nfs:vm-101-disk-0", "nfs", 10 * GIB, "scsi0", True)]),
        102: Guest(vmid=102, name="ct", type="lxc", node="pve1", status="stopped",
                   volumes=[Volume("fast:vm-102-disk-0", "fast", 8 * GIB, "rootfs", False, "rootdir")]),
        103: Guest(vmid=103, name="unknown", type="qemu", node="pve1", status="running"),
    }
    return ClusterSnapshot(pve_version="9.0.3", nodes=nodes, guests=guests, storages=storages)


def test_node_has_every_storage_or_says_which_is_missing():
    snap = placement_cluster()
    assert storage.node_storage_problem(snap, snap.guests[100], "pve2") is None
    assert storage.node_storage_problem(snap, snap.guests[101], "pve2") == "storage nfs (scsi0) is disabled on pve2"
    assert storage.node_storage_problem(snap, snap.guests[101], "pve3") == "storage nfs (scsi0) is not active on pve3"
    assert storage.node_storage_problem(snap, snap.guests[102], "pve2") == "storage fast (rootfs) is not available on pve2"
    assert storage.node_storage_problem(snap, snap.guests[101], "pve1") is None      # where it already runs


def test_content_type_must_fit_the_guest():
    snap = placement_cluster()
    snap.storages.append(Storage(storage="fast", node="pve2", content=["images"], status="available", maxdisk_bytes=GIB))
    problem = storage.node_storage_problem(snap, snap.guests[102], "pve2")
    assert problem == "storage fast (rootfs) on pve2 has no content type rootdir (it holds images)"


def test_local_storage_threshold():
    snap = placement_cluster()
    guest = snap.guests[100]
    assert storage.local_storage_problem(snap, guest, "pve3") is None          # 10 + 20 GiB of 100
    problem = storage.local_storage_problem(snap, guest, "pve2")               # 80 + 20 GiB of 100
    assert problem == ("local storage local-lvm on pve2 would be 100.0 % full with the 20.0 GiB of local volumes (scsi1)"
                       " (storage_threshold 90 %)")
    assert storage.local_storage_problem(snap, guest, "pve2", threshold_pct=100) is None
    assert storage.local_storage_problem(snap, guest, "pve1") is None          # nothing arrives


def test_unknown_volumes_are_never_held_against_a_guest():
    snap = placement_cluster()
    unknown = snap.guests[103]
    assert storage.guest_storages(unknown) is None
    assert storage.placement_problem(snap, unknown, "pve2") is None


def test_placement_problem_names_the_rule():
    snap = placement_cluster()
    assert storage.placement_problem(snap, snap.guests[101], "pve2") == dict(
        rule=storage.RULE_STORAGE_MISSING, detail="storage nfs (scsi0) is disabled on pve2")
    assert storage.placement_problem(snap, snap.guests[100], "pve2")["rule"] == storage.RULE_STORAGE_FULL
    assert storage.placement_problem(snap, snap.guests[100], "pve3") is None
