# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The storage balancing plan on hand-built clusters: quality, determinism, what stays and why, bad input."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings as hyp_settings, strategies as st

from ansible_collections.proxlb.balancer.plugins.module_utils import storage_plan
from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ConfigError
from ansible_collections.proxlb.balancer.plugins.module_utils.snapshot import ClusterSnapshot, Guest, Node, Storage, Volume
from ansible_collections.proxlb.balancer.plugins.module_utils.storage import GuestConfig, fill_pct

GIB = 1024 ** 3
NODES = ("pve1", "pve2", "pve3")


def vm(vmid, node, *volumes, kind="qemu", status="running", **kw):
    """A guest with volumes given as (key, storage, size_gib[, volid])."""
    vols = []
    for spec in volumes:
        key, storage, size = spec[:3]
        volid = spec[3] if len(spec) > 3 else "%s:vm-%d-disk-%s" % (storage, vmid, key)
        vols.append(Volume(volid=volid, storage=storage, size_bytes=int(size * GIB), key=key, shared=storage != "local-lvm",
                           content="rootdir" if kind == "lxc" else "images"))
    return Guest(vmid=vmid, name=kw.pop("name", "g%d" % vmid), type=kind, node=node, status=status, volumes=vols, **kw)


def cluster(guests, sizes=None, base=None, restricted=None, content=None):
    """Shared storages (and local-lvm per node) whose used space is a base plus the volumes on them."""
    sizes = sizes or {"ceph": 1000, "nfs": 200}
    base = base or {}
    restricted = restricted or {}
    content = content or {}
    storages = []
    guests = [replace(g, volumes=[replace(v) for v in g.volumes]) for g in guests]
    for name, size in sorted(sizes.items()):
        shared = name != "local-lvm"
        for node in NODES:
            if node not in restricted.get(name, NODES):
                continue
            if shared:
                used = base.get(name, 0) * GIB + sum(v.size_bytes for g in guests for v in g.volumes if v.storage == name)
            else:
                used = base.get(name, 0) * GIB + sum(v.size_bytes for g in guests if g.node == node
                                                     for v in g.volumes if v.storage == name)
            storages.append(Storage(storage=name, node=node, plugintype="nfs" if shared else "lvmthin", shared=shared,
                                    content=list(content.get(name, ["images", "rootdir"])), status="available",
                                    disk_bytes=used, maxdisk_bytes=size * GIB))
    return ClusterSnapshot(pve_version="9.0.3", quorate=True, nodes={n: Node(name=n, status="online") for n in NODES},
                           guests={g.vmid: g for g in guests}, storages=storages)


def configs(snap, **overrides):
    """What reading every guest's config would say (overrides: vmid -> dict of GuestConfig fields)."""
    result = {}
    for vmid, guest in snap.guests.items():
        fields = dict(volumes=list(guest.volumes or []))
        fields.update(overrides.get("g%d" % vmid, {}))
        result[vmid] = GuestConfig(vmid=vmid, **fields)
    return result


def settings(**params):
    return storage_plan.StorageBalanceSettings.from_params(params)


def make_plan(snap, options=None, **kw):
    options = options or settings()
    selected, kind = storage_plan.select_storages(options, snap)
    kw.setdefault("configs", configs(snap))
    return storage_plan.plan(snap, options, selected, kind, **kw)


def applied(snap, result, base=None, sizes=None, restricted=None):
    """The cluster as PVE reports it after the moves (volumes on their targets, fills recomputed)."""
    guests = []
    moved = {(m.vmid, m.volid): m.target for m in result.moves}
    for guest in snap.guests.values():
        volumes = []
        for volume in guest.volumes:
            target = moved.get((guest.vmid, volume.volid))
            if target:
                volume = replace(volume, storage=target, volid="%s:vm-%d-disk-%s" % (target, guest.vmid, volume.key))
            volumes.append(volume)
        guests.append(replace(guest, volumes=volumes))
    return cluster(guests, sizes=sizes, base=base, restricted=restricted)


def fills(snap, name):
    entry = next(s for s in snap.storages if s.storage == name)
    return fill_pct(entry.disk_bytes, entry.maxdisk_bytes)


def busy_nfs():
    """nfs (200 GiB) 85 % full with movable VM disks, ceph (1000 GiB) 10 % full."""
    guests = [vm(100, "pve1", ("scsi0", "ceph", 32), ("scsi1", "nfs", 60)),
              vm(101, "pve2", ("scsi0", "ceph", 32), ("scsi1", "nfs", 40)),
              vm(102, "pve3", ("scsi0", "nfs", 30), status="stopped"),
              vm(103, "pve1", ("scsi0", "ceph", 16), ("scsi1", "nfs", 20)),
              vm(104, "pve2", ("scsi0", "nfs", 10))]
    return cluster(guests, base={"nfs": 10, "ceph": 20})


# -- quality ---------------------------------------------------------------------------------------

def test_a_plan_evens_out_two_shared_storages_within_half_the_balanciness():
    snap = busy_nfs()
    result = make_plan(snap)
    data = result.to_dict()
    assert fills(snap, "nfs") - fills(snap, "ceph") > 70
    assert data["stop_reason"] == "target_reached" and data["spread_pp_after"] <= 5.0
    assert all(m.source == "nfs" and m.target == "ceph" and m.reason == "balance" for m in result.moves)
    after = applied(snap, result, base={"nfs": 10, "ceph": 20})
    assert abs(fills(after, "nfs") - fills(after, "ceph")) == pytest.approx(data["spread_pp_after"], abs=0.01)
    assert data["pools"]["nfs"]["fill_pct_after"] == pytest.approx(fills(after, "nfs"), abs=0.01)
    assert data["moved_bytes"] == sum(m.size_bytes for m in result.moves)


def test_a_second_plan_on_the_result_is_empty():
    snap = busy_nfs()
    first = make_plan(snap)
    again = make_plan(applied(snap, first, base={"nfs": 10, "ceph": 20}))
    assert first.moves and again.moves == []
    assert again.data["stop_reason"] == "not_triggered"


def test_the_same_input_gives_the_same_plan_whatever_the_order():
    snap = busy_nfs()
    shuffled = ClusterSnapshot.from_dict(snap.to_dict())
    items = list(shuffled.guests.items())
    random.Random(4).shuffle(items)
    shuffled.guests = dict(items)
    random.Random(5).shuffle(shuffled.storages)
    assert make_plan(snap).to_dict() == make_plan(shuffled).to_dict() == make_plan(snap).to_dict()


def test_within_balanciness_nothing_moves():
    snap = cluster([vm(100, "pve1", ("scsi0", "nfs", 20)), vm(101, "pve1", ("scsi0", "ceph", 90))])
    result = make_plan(snap, settings(balanciness=10))
    assert fills(snap, "nfs") - fills(snap, "ceph") == pytest.approx(1.0)
    assert result.moves == [] and result.data["stop_reason"] == "not_triggered"


def test_one_well_sized_move_rather_than_many_small_ones():
    # nfs 60 %, ceph 40 % of 200 GiB each: one 20 GiB volume evens them out, so do ten 2 GiB ones.
    guests = [vm(100 + i, "pve1", ("scsi%d" % i, "nfs", 2)) for i in range(50)]
    guests.append(vm(200, "pve2", ("scsi0", "nfs", 20)))
    snap = cluster(guests, sizes={"ceph": 200, "nfs": 200}, base={"ceph": 80})
    result = make_plan(snap)
    assert [(m.vmid, m.size_bytes) for m in result.moves] == [(200, 20 * GIB)]
    assert result.data["spread_pp_after"] == 0.0


def test_no_target_above_storage_threshold_and_room_for_the_whole_volume():
    guests = [vm(100, "pve1", ("scsi0", "nfs", 150)), vm(101, "pve1", ("scsi0", "ceph", 80))]
    snap = cluster(guests, sizes={"ceph": 200, "nfs": 200})
    result = make_plan(snap, settings(storage_threshold=90))
    assert result.moves == [] and result.data["stop_reason"] == "no_gain"
    assert make_plan(snap, settings(storage_threshold=100)).moves == []    # 230 GiB do not fit into 200


def test_max_moves_is_a_hard_limit():
    result = make_plan(busy_nfs(), settings(max_moves=1))
    assert len(result.moves) == 1 and result.data["stop_reason"] == "max_moves"


def test_a_target_the_guest_node_cannot_use_is_not_chosen():
    guests = [vm(100, "pve3", ("scsi0", "nfs", 100)), vm(101, "pve1", ("scsi0", "nfs", 50))]
    snap = cluster(guests, sizes={"ceph": 1000, "nfs": 200}, restricted={"ceph": ("pve1", "pve2")})
    result = make_plan(snap)
    assert [m.vmid for m in result.moves] == [101]


def test_container_volumes_need_rootdir_content():
    guests = [vm(100, "pve1", ("rootfs", "nfs", 100), kind="lxc", status="stopped"), vm(101, "pve1", ("scsi0", "nfs", 60))]
    snap = cluster(guests, content={"ceph": ["images"]})
    assert [m.vmid for m in make_plan(snap).moves] == [101]


def test_three_storages_fill_the_emptier_ones():
    guests = [vm(100 + i, "pve1", ("scsi0", "a", 20)) for i in range(9)]
    snap = cluster(guests, sizes={"a": 200, "b": 200, "c": 400})
    result = make_plan(snap)
    after = applied(snap, result, sizes={"a": 200, "b": 200, "c": 400})
    values = [fills(after, name) for name in ("a", "b", "c")]
    assert max(values) - min(values) <= 5.0 and {m.target for m in result.moves} == {"b", "c"}


def test_local_storages_balance_per_node_and_volumes_stay_on_their_node():
    guests = [vm(100, "pve1", ("scsi0", "local-lvm", 60)), vm(101, "pve1", ("scsi1", "local-lvm", 30)),
              vm(102, "pve2", ("scsi0", "local-lvm", 10))]
    for guest in guests:
        for volume in guest.volumes:
            volume.shared = False
    snap = cluster(guests, sizes={"local-lvm": 100, "local-zfs": 100})
    for entry in snap.storages:
        entry.shared = False
    result = make_plan(snap, settings(storages=["local-lvm", "local-zfs"]))
    assert result.data["kind"] == "local"
    assert {(m.node, m.source, m.target) for m in result.moves} == {("pve1", "local-lvm", "local-zfs")}
    assert result.data["pools"]["pve1/local-zfs"]["fill_pct_after"] > 0
    assert [g["group"] for g in result.data["groups"]] == ["pve1", "pve2", "pve3"]


def test_delete_source_false_reports_the_fill_while_the_old_copies_stay():
    result = make_plan(busy_nfs(), settings(delete_source=False))
    nfs = result.data["pools"]["nfs"]
    assert nfs["fill_pct_after_run"] == nfs["fill_pct_before"] > nfs["fill_pct_after"]
    assert any("delete_source is false" in w for w in result.data["warnings"])


# -- what stays, and why ------------------------------------------------------------------------------

def reasons(result):
    return {(e["vmid"], e["reason"]) for e in result.data["left_alone"]}


def guarded_cluster():
    guests = [
        vm(100, "pve1", ("scsi0", "nfs", 30)),                                          # movable
        vm(101, "pve1", ("rootfs", "nfs", 30), kind="lxc"),                              # running container
        vm(102, "pve1", ("scsi0", "nfs", 30), template=True, status="stopped"),           # template
        vm(103, "pve1", ("scsi0", "nfs", 30, "nfs:base-102-disk-0/vm-103-disk-0")),      # linked clone
        vm(104, "pve1", ("scsi0", "nfs", 30), lock="backup"),                            # backup running
        vm(105, "pve2", ("scsi0", "nfs", 30)),                                          # snapshots (config)
        vm(106, "pve2", ("scsi0", "nfs", 30)),                                          # replicated
        vm(107, "pve2", ("unused0", "nfs", 30)),                                        # unused volume
        vm(108, "pve2", ("scsi0", "nfs", 30)),                                          # not in its config
        vm(109, "pve3", ("tpmstate0", "nfs", 1)),                                       # TPM of a running VM
        vm(110, "pve3", ("scsi0", "nfs", 30), tags=["plb_ignore"]),                     # ignored by tag
        vm(111, "pve3", ("scsi0", "nfs", 30), name="db-main"),                          # ignored by name
        vm(112, "pve3", ("rootfs", "nfs", 30), kind="lxc", status="stopped"),           # stopped container: movable
    ]
    return cluster(guests, sizes={"ceph": 2000, "nfs": 500})


def test_left_alone_with_the_reason():
    snap = guarded_cluster()
    read = configs(snap, g105=dict(snapshot="before-upgrade"), g108=dict(volumes=[]))
    result = make_plan(snap, settings(ignore_guests=["db-*"]), configs=read, replication={106: ["pve3"]})
    assert reasons(result) == {(101, "running_container"), (102, "template"), (103, "linked_clone"), (104, "locked:backup"),
                               (105, "snapshots"), (106, "replicated"), (107, "unused"), (108, "not_in_config"),
                               (109, "tpm_running"), (110, "ignored"), (111, "ignored")}
    assert {m.vmid for m in result.moves} <= {100, 112}
    by_vmid = {e["vmid"]: e for e in result.data["left_alone"]}
    assert "cannot move volumes of a running container" in by_vmid[101]["detail"]
    assert "before-upgrade" in by_vmid[105]["detail"] and "pve3" in by_vmid[106]["detail"]
    assert by_vmid[107]["volume"] == "unused0" and by_vmid[104]["storage"] == "nfs"


def test_guest_types_and_a_fresher_lock_from_the_config():
    snap = guarded_cluster()
    result = make_plan(snap, settings(guest_types=["ct"]), configs=configs(snap, g112=dict(lock="disk")))
    assert (100, "type_excluded") in reasons(result) and (112, "locked:disk") in reasons(result)
    assert result.moves == []


def test_only_guests_whose_config_was_read_move():
    snap = busy_nfs()
    without = make_plan(snap, configs={})
    assert without.moves == [] and without.data["not_inspected_volumes"] == 5
    discovery = make_plan(snap, configs={}, discovery=True)
    assert discovery.moves and [m.vmid for m in discovery.moves] == [m.vmid for m in make_plan(snap).moves]
    one = make_plan(snap, configs={100: configs(snap)[100]})
    assert {m.vmid for m in one.moves} == {100} and one.data["inspected"] == 1


def test_unreadable_configs_are_left_alone():
    snap = busy_nfs()
    read = configs(snap)
    del read[100]
    result = make_plan(snap, configs=read, unreadable={100: "500 Configuration file does not exist"})
    assert (100, "config_unreadable") in reasons(result)
    assert 100 not in {m.vmid for m in result.moves}


def test_moves_carry_what_the_request_needs():
    snap = busy_nfs()
    move = make_plan(snap).moves[0]
    data = move.to_dict()
    assert set(data) == {"vmid", "name", "type", "node", "volume", "volid", "from", "to", "size_bytes", "online", "reason"}
    assert data["volume"] == snap.guests[move.vmid].volumes[-1].key or data["volume"].startswith("scsi")
    stopped = [m for m in make_plan(snap).moves if m.vmid == 102]
    assert all(not m.online for m in stopped)


# -- bad input ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("params,option,text", [
    ({"balanciness": -1}, "balanciness", "-1 is out of range; give 0 to 100"),
    ({"balanciness": "lots"}, "balanciness", "'lots' is not a number"),
    ({"storage_threshold": 150}, "storage_threshold", "out of range"),
    ({"max_moves": 0}, "max_moves", "give a value from 1 to 10000"),
    ({"parallel_moves": 2.5}, "parallel_moves", "not a whole number"),
    ({"bwlimit": -5}, "bwlimit", "out of range"),
    ({"method": "iops"}, "method", "storages are balanced by used"),
    ({"guest_types": ["vm", "pod"]}, "guest_types", "use a non-empty list"),
    ({"storages": ["ceph", " "]}, "storages", "empty name"),
])
def test_bad_options_name_the_option(params, option, text):
    with pytest.raises(ConfigError) as err:
        settings(**params)
    assert err.value.option == option and str(err.value).startswith(option + ": ") and text in str(err.value)


def local_and_iso_cluster():
    snap = busy_nfs()
    for node in NODES:
        snap.storages.append(Storage(storage="local", node=node, content=["iso", "backup"], status="available",
                                     disk_bytes=GIB, maxdisk_bytes=100 * GIB))
        snap.storages.append(Storage(storage="local-lvm", node=node, content=["images", "rootdir"], status="available",
                                     disk_bytes=GIB, maxdisk_bytes=100 * GIB))
    return snap


@pytest.mark.parametrize("storages,text", [
    (["ceph", "nope"], "unknown storage(s) nope; the cluster has ceph, local, local-lvm, nfs"),
    (["ceph", "local-lvm"], "mixes shared storages (ceph) with node-local ones (local-lvm)"),
    (["local", "local-lvm"], "local cannot hold guest volumes (content local: iso,backup)"),
    (["ceph"], "names only ceph; give at least two storages"),
])
def test_storages_are_checked_against_the_cluster(storages, text):
    with pytest.raises(ConfigError) as err:
        storage_plan.select_storages(settings(storages=storages), local_and_iso_cluster())
    assert err.value.option == "storages" and text in str(err.value)


def test_default_storages_are_the_shared_guest_storages():
    assert storage_plan.select_storages(settings(), local_and_iso_cluster()) == (["ceph", "nfs"], "shared")


# -- properties ------------------------------------------------------------------------------------------

@hyp_settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(NODES), st.sampled_from(["a", "b", "c"]), st.integers(1, 80),
                          st.booleans()), min_size=1, max_size=25),
       st.floats(0, 30), st.integers(1, 20))
def test_plans_never_overfill_never_worsen_and_settle(volumes, balanciness, max_moves):
    guests = [vm(100 + i, node, ("scsi0", name, size), status="running" if running else "stopped")
              for i, (node, name, size, running) in enumerate(volumes)]
    sizes = {"a": 400, "b": 300, "c": 800}
    snap = cluster(guests, sizes=sizes)
    options = settings(balanciness=balanciness, max_moves=max_moves, storage_threshold=90)
    result = make_plan(snap, options)
    after = applied(snap, result, sizes=sizes)
    before_values = [fills(snap, n) for n in sizes]
    after_values = [fills(after, n) for n in sizes]
    assert len(result.moves) <= max_moves
    for move in result.moves:
        assert fills(after, move.target) <= 90 + 1e-9
    assert max(after_values) - min(after_values) <= max(before_values) - min(before_values) + 1e-9
    if result.data["stop_reason"] == "target_reached":
        assert make_plan(after, options).moves == []
