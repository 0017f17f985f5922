# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collector on recorded-shape PVE 8 and PVE 9 answers, served by path."""

from __future__ import annotations

import json

import pytest

from ansible_collections.proxlb.balancer.plugins.module_utils import collector
from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ConfigError, PveApiError
from ansible_collections.proxlb.balancer.plugins.module_utils.settings import BalanceSettings
from ansible_collections.proxlb.balancer.plugins.module_utils.snapshot import ClusterSnapshot
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.canned_pve import GIB, CannedClient, load


@pytest.fixture
def pve9():
    return CannedClient(load("pve9_cluster.json"))


@pytest.fixture
def pve8():
    return CannedClient(load("pve8_cluster.json"))


# -- PVE 9 --------------------------------------------------------------------------------

def test_pve9_calls_are_the_documented_constant_set(pve9):
    snap = collector.collect(pve9)
    assert pve9.paths == ["/cluster/resources", "/cluster/options", "/cluster/status",
                          "/cluster/ha/status/current", "/cluster/ha/rules", "/cluster/backup", "/cluster/tasks"]
    assert snap.api_calls == 8          # the /version probe of the connection counts once
    assert len(collector.COLLECT_CALLS) == 8


def test_version_is_read_when_the_client_has_no_probe_answer():
    client = CannedClient(load("pve9_cluster.json"), probe=False)
    snap = collector.collect(client)
    assert client.paths[0] == "/version"
    assert snap.api_calls == 8
    assert snap.pve_version == "9.0.3"


def test_pve9_cluster_facts(pve9):
    snap = collector.collect(pve9)
    assert snap.pve_version == "9.0.3"
    assert snap.version == (9, 0, 3)
    assert snap.cluster_name == "prodcluster"
    assert snap.quorate is True
    assert snap.crs == {"ha": "static", "ha-rebalance-on-start": 1}
    assert snap.pools == {"empty": [], "lab": [102], "prod": [100, 101]}


def test_pve9_nodes(pve9):
    nodes = collector.collect(pve9).nodes
    assert list(nodes) == ["pve1", "pve2", "pve3"]
    pve1, pve2, pve3 = nodes["pve1"], nodes["pve2"], nodes["pve3"]
    assert (pve1.status, pve1.maxcpu, pve1.maxmem_bytes, pve1.mem_bytes) == ("online", 48, 269878464512, 91268055040)
    assert pve1.cpu == pytest.approx(0.0431)
    assert (pve1.hastate, pve1.ha_maintenance) == ("online", False)
    assert pve2.maxcpu == 48 and isinstance(pve2.maxcpu, int)          # sent as "48"
    assert (pve2.hastate, pve2.ha_maintenance) == ("maintenance", True)
    assert (pve3.status, pve3.maxcpu, pve3.maxmem_bytes, pve3.mem_bytes, pve3.cpu) == ("offline", 0, 0, 0, 0.0)
    assert pve3.online is False and pve3.pressure == {}


def test_pve9_guests(pve9):
    guests = collector.collect(pve9).guests
    assert list(guests) == [100, 101, 102, 103, 104, 105, 106]

    db = guests[100]
    assert db.mem_bytes == 5179975680                       # memhost wins for running qemu
    assert db.tags == ["plb_anti_affinity_db", "Prod"]     # case kept
    assert db.ha == {"sid": "vm:100", "state": "started", "group": None, "failback": False, "auto_rebalance": False}
    assert db.ha_managed and db.running and db.kind == "vm"

    web = guests[101]
    assert web.mem_bytes == web.maxmem_bytes == 34359738368  # mem > maxmem, memhost 0 -> capped
    assert web.tags == ["web", "Frontend"]                  # ',', ' ' and ';' separators, duplicate dropped
    assert web.ha is None and not web.ha_managed

    tmpl = guests[102]
    assert (tmpl.template, tmpl.status, tmpl.lock, tmpl.pool, tmpl.mem_bytes) == (True, "stopped", "backup", "lab", 0)
    assert tmpl.ha["state"] == "stopped"

    stopped = guests[103]
    assert (stopped.mem_bytes, stopped.cpu) == (0, 0.0)     # stale numbers of a stopped guest dropped

    ct = guests[104]
    assert (ct.vmid, ct.type, ct.kind, ct.maxcpu, ct.mem_bytes) == (104, "lxc", "ct", 2.0, 97730560)
    assert ct.cpu == pytest.approx(0.05)
    assert ct.ha["state"] == "ignored" and not ct.ha_managed
    assert ct.sid == "ct:104"

    unknown = guests[105]
    assert (unknown.status, unknown.name, unknown.node, unknown.maxmem_bytes) == ("unknown", "VM 105", "pve3", 0)

    assert guests[106].type == "lxc" and guests[106].local_disk_bytes is None


def test_pve9_ha_rules_in_pve_order(pve9):
    rules = collector.collect(pve9).ha_rules
    assert [r.rule for r in rules] == ["ha-group-prod", "keep-dbs-apart", "web-with-dns"]
    group_rule, apart, together = rules
    assert group_rule.type == "node-affinity"
    assert group_rule.nodes == {"pve1": 2, "pve2": 0}
    assert group_rule.strict is True and group_rule.disabled is False
    assert apart.affinity == "negative" and apart.resources == ["vm:100", "vm:101"]
    assert together.disabled is True
    assert together.resources == ["ct:104", "vm:101"]        # bare vmid typed from the guest


def test_pve9_storages(pve9):
    storages = collector.collect(pve9).storages
    assert [(s.node, s.storage) for s in storages] == [
        ("pve1", "ceph-vm"), ("pve1", "local"), ("pve1", "local-lvm"), ("pve2", "local-lvm"), ("pve3", "local-lvm")]
    ceph = storages[0]
    assert ceph.shared is True and ceph.content == ["images", "rootdir"] and ceph.holds_guests
    assert storages[1].holds_guests is False
    assert storages[4].status == "unknown" and storages[4].maxdisk_bytes == 0


def test_pressure_averages_each_source_per_online_node(pve9):
    snap = collector.collect(pve9, with_pressure=True)
    assert snap.nodes["pve1"].pressure == {
        "cpu_some": pytest.approx(0.2), "io_full": pytest.approx(0.03), "io_some": pytest.approx(0.1),
        "memory_full": pytest.approx(0.25), "memory_some": pytest.approx(0.75)}
    assert snap.nodes["pve2"].pressure["memory_some"] == 4.0
    assert snap.nodes["pve3"].pressure == {}
    rrd = [r for r in pve9.requests if r[1].endswith("/rrddata")]
    assert [r[1] for r in rrd] == ["/nodes/pve1/rrddata", "/nodes/pve2/rrddata"]
    assert rrd[0][2] == {"timeframe": "hour", "cf": "AVERAGE"}
    assert snap.api_calls == 10


def test_pressure_window_is_checked(pve9):
    with pytest.raises(ConfigError) as err:
        collector.collect(pve9, with_pressure=True, pressure_window="fortnight")
    assert err.value.option == "pressure_window"


def test_pressure_on_pve8_is_a_warning_not_a_call(pve8):
    warnings = []
    snap = collector.collect(pve8, with_pressure=True, warnings=warnings)
    assert not any(p.endswith("/rrddata") for p in pve8.paths)
    assert all(n.pressure == {} for n in snap.nodes.values())
    assert warnings and "PVE 9" in warnings[0]


def test_local_volumes_sum_per_guest_on_its_own_node(pve9):
    snap = collector.collect(pve9, with_local_volumes=True)
    local = {vmid: g.local_disk_bytes for vmid, g in snap.guests.items()}
    assert local == {100: 33 * GIB, 101: 0, 102: 64 * GIB, 103: 0, 104: 4 * GIB, 105: 0, 106: 8 * GIB}
    content = [p for p in pve9.paths if p.endswith("/content")]
    # only local storages holding guest disks, on online nodes
    assert content == ["/nodes/pve1/storage/local-lvm/content", "/nodes/pve2/storage/local-lvm/content"]


def test_a_failing_optional_read_becomes_a_warning(pve9):
    pve9.answers["GET /nodes/pve2/rrddata"] = {"__error__": {"status": 595, "message": "No route to host"}}
    warnings = []
    snap = collector.collect(pve9, with_pressure=True, warnings=warnings)
    assert snap.nodes["pve2"].pressure == {}
    assert len(warnings) == 1 and "pressure of node pve2" in warnings[0] and "No route to host" in warnings[0]


def test_auth_errors_in_optional_reads_are_not_swallowed(pve9):
    pve9.answers["GET /nodes/pve1/rrddata"] = {"__error__": {"status": 401, "message": "no ticket", "kind": "auth"}}
    with pytest.raises(PveApiError):
        collector.collect(pve9, with_pressure=True, warnings=[])


def test_pve9_backup_jobs_as_pve_lists_them(pve9):
    jobs = collector.collect(pve9).backup_jobs
    assert [j.id for j in jobs] == ["backup-5e0a1c2b-7f3d", "backup-db", "backup-lab",
                                    "9b2f0e1d44c1a3e5b7f6a8c9d0e1f2a3b4c5d6e7:1"]   # realm-sync is not a backup job
    nightly, db, lab, legacy = jobs
    assert (nightly.schedule, nightly.enabled, nightly.all_guests, nightly.exclude, nightly.vmids) == (
        "mon..fri 21:00", True, True, [103, 105], [])
    assert (nightly.storage, nightly.next_run, nightly.comment) == ("pbs", 1772658000, "nightly")
    assert (db.enabled, db.vmids, db.all_guests, db.next_run) == (True, [100, 104], False, 1772625600)  # enabled absent = on
    assert (lab.enabled, lab.pool, lab.node, lab.vmids) == (False, "lab", "pve2", [])                 # enabled "0"
    assert (legacy.schedule, legacy.vmids, legacy.next_run) == ("mon,wed 02:30", [101], None)          # dow + starttime


def test_pve9_running_tasks_only(pve9):
    tasks = collector.collect(pve9).running_tasks
    assert [(t.node, t.type, t.vmid, t.user, t.starttime) for t in tasks] == [
        ("pve1", "vzdump", None, "root@pam", 1772618700),            # a job backing up several guests: no id
        ("pve1", "qmigrate", 101, "admin@pve!ops", 1772619120),      # token user from the UPID
        ("pve2", "vzdump", 102, "root@pam", 1772618700),
        ("pve2", "hamigrate", 104, "ha@pve!auto", 1772619000),       # UPID unreadable: the entry's own fields
    ]
    assert tasks[0].upid == "UPID:pve1:00199A2B:0A1B2C3D:69A803CC:vzdump::root@pam:"


@pytest.mark.parametrize("entry, running", [
    ({"upid": "UPID:a:00000001:00000001:69A803CC:vzdump::root@pam:"}, True),
    ({"status": "RUNNING"}, True),
    ({"status": "OK", "endtime": 1}, False),
    ({"status": "job errors"}, False),
    ({"endtime": 1772619000}, False),
])
def test_what_counts_as_running(entry, running):
    entry = dict({"upid": "UPID:a:00000001:00000001:69A803CC:vzdump:100:root@pam:"}, **entry)
    assert bool(collector.running_tasks_from_api([entry])) is running


def test_parse_upid():
    assert collector.parse_upid("UPID:pve1:0012A3F4:07E1B2C3:66F0A1B2:qmigrate:100:root@pam!lb:") == {
        "node": "pve1", "pid": 0x0012A3F4, "pstart": 0x07E1B2C3, "starttime": 0x66F0A1B2, "type": "qmigrate",
        "id": "100", "user": "root@pam!lb"}
    assert collector.parse_upid("UPID:pve-2:0012A3F4:107E1B2C3:66F0A1B2:aptupdate::root@pam:")["id"] == ""
    for bad in (None, "", "UPID:pve1:12:07E1B2C3:66F0A1B2:qmigrate:100:root@pam:", "UPID:pve1:0012A3F4:07E1B2C3:66F0A1B2:qmigrate:100:root@pam"):
        assert collector.parse_upid(bad) is None


@pytest.mark.parametrize("value, vmids", [
    (None, []), ("", []), (100, [100]), ("100,101", [100, 101]), ("100 101;102", [100, 101, 102]),
    ([100, "101"], [100, 101]), ("100,x,100", [100]),
])
def test_vmid_lists(value, vmids):
    assert collector.backup_jobs_from_api([{"id": "j", "vmid": value}])[0].vmids == vmids


def test_legacy_job_on_every_day_is_just_its_time():
    job = collector.backup_jobs_from_api([{"id": "x:1", "dow": "mon,tue,wed,thu,fri,sat,sun", "starttime": "01:15"}])[0]
    assert job.schedule == "01:15"


def test_backup_jobs_without_sys_audit_are_a_warning(pve9):
    pve9.answers["GET /cluster/backup"] = {"__error__": {"status": 403, "kind": "permission",
                                                         "message": "Permission check failed (/, Sys.Audit)"}}
    warnings = []
    snap = collector.collect(pve9, warnings=warnings)
    assert snap.backup_jobs is None and snap.running_tasks           # carried on, tasks still read
    assert len(warnings) == 1 and "/cluster/backup" in warnings[0] and "Sys.Audit" in warnings[0]
    assert snap.api_calls == 8


def test_other_backup_read_errors_are_raised(pve9):
    pve9.answers["GET /cluster/backup"] = {"__error__": {"status": 500, "message": "cfs-lock timeout"}}
    with pytest.raises(PveApiError):
        collector.collect(pve9, warnings=[])


def test_backups_and_tasks_can_be_left_out(pve9):
    snap = collector.collect(pve9, with_backups=False, with_tasks=False)
    assert "/cluster/backup" not in pve9.paths and "/cluster/tasks" not in pve9.paths
    assert snap.backup_jobs is None and snap.running_tasks is None and snap.api_calls == 6


def test_snapshot_saved_before_backup_jobs_still_loads(pve9):
    data = json.loads(collector.collect(pve9).to_json())
    del data["backup_jobs"], data["running_tasks"]
    snap = ClusterSnapshot.from_dict(data)
    assert snap.backup_jobs is None and snap.running_tasks is None and len(snap.guests) == 7


# -- PVE 8 --------------------------------------------------------------------------------

def test_pve8_groups_instead_of_rules(pve8):
    snap = collector.collect(pve8)
    assert "/cluster/ha/rules" not in pve8.paths
    groups_request = [r for r in pve8.requests if r[1] == "/cluster/ha/groups"][0]
    assert groups_request[3] == 0                            # never retried: a 500 there is an answer
    assert [(g.group, g.nodes, g.restricted, g.nofailback) for g in snap.ha_groups] == [
        ("any", {"beta": 0}, False, False),
        ("prod", {"alpha": 2, "beta": 1, "gamma": 0}, True, True)]
    assert snap.ha_rules == []
    assert snap.guests[200].ha == {"sid": "vm:200", "state": "started", "group": "prod", "failback": False, "auto_rebalance": True}


def test_pve8_quirks(pve8):
    snap = collector.collect(pve8)
    assert snap.crs == {"ha": "static", "ha-rebalance-on-start": 1}       # property string parsed
    assert snap.guests[103].vmid == 103 and snap.guests[103].maxcpu == 1.5
    assert snap.guests[200].mem_bytes == 1127792640                      # no memhost on PVE 8
    assert snap.nodes["alpha"].hastate is None                           # node hastate only >= 8.3
    assert snap.nodes["beta"].ha_maintenance is True                     # from the LRM status text
    # gamma is in /cluster/status but has no /cluster/resources entry
    assert list(snap.nodes) == ["alpha", "beta", "gamma"]
    assert snap.nodes["gamma"].status == "offline"
    assert snap.pools == {}
    assert snap.api_calls == 8


def test_pve8_groups_migrated_to_rules_means_no_groups(pve8):
    pve8.answers["GET /cluster/ha/groups"] = {
        "__error__": {"status": 500, "message": "cannot index groups: ha groups have been migrated to rules"}}
    snap = collector.collect(pve8)
    assert snap.ha_groups == []
    assert snap.guests[200].ha["failback"] is True


def test_other_groups_errors_are_raised(pve8):
    pve8.answers["GET /cluster/ha/groups"] = {"__error__": {"status": 403, "message": "Permission check failed (/, Sys.Audit)"}}
    with pytest.raises(PveApiError) as err:
        collector.collect(pve8)
    assert err.value.status == 403


# -- constant calls, determinism, round trip ----------------------------------------------

def generated_cluster(nodes, guests):
    answers = load("pve9_cluster.json")
    resources = []
    for vmid in range(100, 100 + guests):
        resources.append({"id": "qemu/%d" % vmid, "vmid": vmid, "type": "qemu", "node": "n%02d" % (vmid % nodes),
                          "status": "running", "name": "g%d" % vmid, "maxmem": 2 * GIB, "mem": GIB, "maxcpu": 2, "cpu": 0.1})
    for index in range(nodes):
        resources.append({"id": "node/n%02d" % index, "node": "n%02d" % index, "type": "node", "status": "online",
                          "maxmem": 256 * GIB, "mem": 64 * GIB, "maxcpu": 64, "cpu": 0.2})
    answers["GET /cluster/resources"] = resources
    answers["GET /cluster/status"] = [{"type": "cluster", "id": "cluster", "name": "gen", "quorate": 1}]
    return CannedClient(answers)


def test_call_count_does_not_grow_with_the_cluster():
    small, large = generated_cluster(3, 15), generated_cluster(64, 2000)
    small_snap, large_snap = collector.collect(small), collector.collect(large)
    assert len(large_snap.guests) == 2000 and len(large_snap.nodes) == 64
    assert small_snap.api_calls == large_snap.api_calls <= 8
    assert small.paths == large.paths


def test_same_answers_same_snapshot(pve9):
    first = collector.collect(pve9, with_pressure=True, with_local_volumes=True)
    again = collector.collect(CannedClient(load("pve9_cluster.json")), with_pressure=True, with_local_volumes=True)
    assert first.to_json() == again.to_json()


@pytest.mark.parametrize("fixture", ["pve8_cluster.json", "pve9_cluster.json"])
def test_snapshot_json_round_trip(fixture, tmp_path):
    snap = collector.collect(CannedClient(load(fixture)), with_pressure=True, with_local_volumes=True)
    assert ClusterSnapshot.from_json(snap.to_json()) == snap
    path = str(tmp_path / "snap.json")
    snap.save(path)
    assert ClusterSnapshot.load(path) == snap


# -- pure helpers -------------------------------------------------------------------------

@pytest.mark.parametrize("value, tags", [
    (None, []),
    ("", []),
    ("a;b", ["a", "b"]),
    ("plb_pin_PVE1; web ,db", ["plb_pin_PVE1", "web", "db"]),
    ("x;;x", ["x"]),
    (["a", "b"], ["a", "b"]),
])
def test_split_tags(value, tags):
    assert collector.split_tags(value) == tags


def test_parse_node_priorities():
    assert collector.parse_node_priorities("pve1:2,pve2, pve3:0") == {"pve1": 2, "pve2": 0, "pve3": 0}
    assert collector.parse_node_priorities(None) == {}


@pytest.mark.parametrize("value, parsed", [
    ("ha=static,ha-rebalance-on-start=1", {"ha": "static", "ha-rebalance-on-start": 1}),
    ("static", {"ha": "static"}),
    ("ha=dynamic,ha-auto-rebalance=1,ha-auto-rebalance-threshold=30.5", {"ha": "dynamic", "ha-auto-rebalance": 1, "ha-auto-rebalance-threshold": 30.5}),
    ({"ha": "basic"}, {"ha": "basic"}),
])
def test_crs_both_shapes(value, parsed):
    assert collector.crs_from_options({"crs": value}) == parsed


def test_no_crs_is_empty():
    assert collector.crs_from_options({"keyboard": "en-us"}) == {}
    assert collector.crs_from_options(None) == {}


def test_helpers_for_the_executor_parse_a_resources_payload():
    resources = load("pve9_cluster.json")["GET /cluster/resources"]
    assert sorted(collector.nodes_from_resources(resources)) == ["pve1", "pve2", "pve3"]
    guests = collector.guests_from_resources(resources + ["junk", {"type": "openvz", "vmid": 1}])
    assert list(guests) == [100, 101, 102, 103, 104, 105, 106]
    # without the HA status, hastate alone marks a guest as HA-managed
    assert guests[100].ha == {"sid": "vm:100", "state": "started", "group": None, "failback": True, "auto_rebalance": True}
    assert collector.guests_from_resources(None) == {}


def test_standalone_node_takes_quorum_from_ha_status():
    answers = load("pve9_cluster.json")
    answers["GET /cluster/status"] = [{"type": "node", "id": "node/pve1", "name": "pve1", "nodeid": 0, "local": 1, "online": 1}]
    snap = collector.collect(CannedClient(answers))
    assert snap.cluster_name is None
    assert snap.quorate is True


# -- re-reading, saved snapshots --------------------------------------------------------------------

def test_refreshed_takes_placement_from_the_new_answer_and_keeps_what_it_lacks(pve9):
    snap = collector.collect(pve9)
    snap.nodes["pve1"].pressure = {"memory_some": 1.5}
    snap.guests[101].local_disk_bytes = 7 * GIB
    old_ha = dict(snap.guests[100].ha)
    resources = load("pve9_cluster.json")["GET /cluster/resources"]
    for item in resources:
        if item.get("vmid") == 101:
            item["node"] = "pve3"
    fresh = collector.refreshed(snap, resources)
    assert fresh.guests[101].node == "pve3" and fresh.guests[101].local_disk_bytes == 7 * GIB
    assert fresh.nodes["pve1"].pressure == {"memory_some": 1.5}
    assert fresh.guests[100].ha == dict(old_ha, state=fresh.guests[100].ha["state"])
    assert fresh.nodes["pve2"].ha_maintenance is True          # HA status is not in /cluster/resources
    assert fresh.ha_rules == snap.ha_rules and fresh.pve_version == snap.pve_version
    assert snap.guests[101].node != "pve3"                      # the old snapshot is left alone


def test_collect_for_reads_what_the_settings_need(pve9):
    warnings = []
    snap = collector.collect_for(pve9, BalanceSettings.from_params({"mode": "psi", "pressure_window": "day"}), warnings)
    assert warnings == []
    rrd = [r for r in pve9.requests if r[1].endswith("/rrddata")]
    assert rrd and all(r[2]["timeframe"] == "day" for r in rrd)
    assert all(g.local_disk_bytes is None for g in snap.guests.values())


def test_load_snapshot_round_trips_and_names_the_option_on_bad_files(pve9, tmp_path):
    path = tmp_path / "cluster.json"
    snap = collector.collect(pve9)
    path.write_text(snap.to_json())
    assert collector.load_snapshot(str(path)).to_dict() == snap.to_dict()
    with pytest.raises(ConfigError, match=r"^snapshot: cannot read .*missing.json"):
        collector.load_snapshot(str(tmp_path / "missing.json"))
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError, match=r"^snapshot: .* is not a usable snapshot"):
        collector.load_snapshot(str(path))
