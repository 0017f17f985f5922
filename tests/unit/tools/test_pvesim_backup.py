"""Backup jobs, the cluster task list and simulated vzdump runs in pvesim."""

from __future__ import annotations

import copy
import datetime
import json
import os

import pytest

from pvesim import ScenarioError, load_scenario
from pvesim import backup as pvesim_backup
from pvesim_testlib import FAST, api_host, wait_for, wait_task

proxmoxer = pytest.importorskip("proxmoxer")
requests = pytest.importorskip("requests")
ResourceException = proxmoxer.core.ResourceException

DEMO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "tools", "pvesim", "scenarios", "demo.json")
JOBS = [
    {"id": "backup-nightly", "schedule": "mon..fri 21:00", "all": 1, "exclude": [160, 161], "storage": "pbs"},
    {"id": "backup-db", "schedule": "*/4:00", "vmid": [110, 111], "node": "pve1", "enabled": "0"},
    {"id": "backup-prod", "schedule": "sat 03:00", "pool": "prod", "enabled": True, "comment": "weekly"},
    {"id": "backup-odd", "schedule": "not a schedule", "vmid": "100"},
]


def demo_with(jobs=None, users=None):
    with open(DEMO) as handle:
        scenario = json.load(handle)
    scenario["backup_jobs"] = copy.deepcopy(JOBS if jobs is None else jobs)
    if users is not None:
        scenario["users"] = users
    return scenario


@pytest.fixture
def jobs_sim(sim):
    sim.reset(scenario=demo_with(), speed=FAST)
    return sim


def _control(sim, path, body=None, status=200):
    resp = requests.post(sim.url + "/_sim" + path, json=body, verify=sim.ca_path, timeout=10)
    assert resp.status_code == status, resp.text
    return resp.json()


# -- /cluster/backup -----------------------------------------------------------------------

def test_backup_jobs_listed_as_pve_does(jobs_sim, token_api):
    jobs = {job["id"]: job for job in token_api.cluster.backup.get()}
    assert list(jobs) == ["backup-nightly", "backup-db", "backup-prod", "backup-odd"]
    nightly = jobs["backup-nightly"]
    assert (nightly["type"], nightly["all"], nightly["exclude"], nightly["storage"], nightly["mode"]) == (
        "vzdump", 1, "160,161", "pbs", "snapshot")
    assert "enabled" not in nightly and "vmid" not in nightly            # enabled only when set, as in jobs.cfg
    assert (jobs["backup-db"]["vmid"], jobs["backup-db"]["enabled"], jobs["backup-db"]["node"]) == ("110,111", "0", "pve1")
    assert (jobs["backup-prod"]["pool"], jobs["backup-prod"]["enabled"]) == ("prod", 1)   # JSON true -> PVE's 1


def test_next_run_is_the_next_occurrence_in_local_time(jobs_sim, token_api):
    jobs = {job["id"]: job for job in token_api.cluster.backup.get()}
    now = datetime.datetime.now()
    nightly = datetime.datetime.fromtimestamp(jobs["backup-nightly"]["next-run"])
    assert now < nightly <= now + datetime.timedelta(days=3)            # a weekday evening within three days
    assert (nightly.weekday() < 5, nightly.hour, nightly.minute) == (True, 21, 0)
    four_hourly = datetime.datetime.fromtimestamp(jobs["backup-db"]["next-run"])
    assert now < four_hourly <= now + datetime.timedelta(hours=4) and four_hourly.hour % 4 == 0
    assert "next-run" not in jobs["backup-odd"]                         # PVE cannot compute one either


def test_backup_jobs_need_sys_audit(sim):
    users = [{"userid": "root@pam", "password": "pvesim", "privs": "all"},
             {"userid": "vmonly@pve", "password": "vmonly", "privs": ["VM.Audit", "VM.Migrate"]}]
    sim.reset(scenario=demo_with(users=users), speed=FAST)
    api = proxmoxer.ProxmoxAPI(api_host(sim), user="vmonly@pve", password="vmonly", verify_ssl=sim.ca_path, timeout=10)
    with pytest.raises(ResourceException) as err:
        api.cluster.backup.get()
    assert err.value.status_code == 403 and "Sys.Audit" in str(err.value)


@pytest.mark.parametrize("job, message", [
    ({"id": "x", "schedule": "daily", "all": 1, "bogus": 1}, "unknown keys: bogus"),
    ({"id": "x", "all": 1}, "schedule is required"),
    ({"schedule": "daily", "all": 1}, "id is required"),
    ({"id": "x", "schedule": "daily", "all": 1, "vmid": "100"}, "exactly one of"),
    ({"id": "x", "schedule": "daily"}, "exactly one of"),
    ({"id": "x", "schedule": "daily", "all": 1, "node": "pve9"}, "node 'pve9'"),
    ({"id": "x", "schedule": "daily", "pool": "nope"}, "pool 'nope'"),
    ({"id": "x", "schedule": "daily", "vmid": "100,abc"}, "'abc' is not a VMID"),
])
def test_bad_jobs_are_refused(job, message):
    with pytest.raises(ScenarioError) as err:
        load_scenario(demo_with(jobs=[job]))
    assert message in str(err.value) and "backup_jobs[0]" in str(err.value)


def test_exclude_implies_all_and_duplicates_are_refused():
    jobs = load_scenario(demo_with(jobs=[{"id": "x", "schedule": "daily", "exclude": "100"}]))["backup_jobs"]
    assert (jobs[0]["all"], jobs[0]["exclude"]) == (1, "100")
    with pytest.raises(ScenarioError):
        load_scenario(demo_with(jobs=[{"id": "x", "schedule": "daily", "all": 1}] * 2))
    assert load_scenario("demo")["backup_jobs"] == []


# -- vzdump runs and /cluster/tasks --------------------------------------------------------

def test_a_running_backup_locks_the_guest_and_shows_in_the_task_list(jobs_sim, token_api):
    upid = jobs_sim.start_backup(110)
    assert upid.startswith("UPID:pve1:") and ":vzdump:110:root@pam:" in upid
    resources = {r["vmid"]: r for r in token_api.cluster.resources.get(type="vm")}
    assert resources[110]["lock"] == "backup"
    entry = next(t for t in token_api.cluster.tasks.get() if t["upid"] == upid)
    assert (entry["type"], entry["id"], entry["node"]) == ("vzdump", "110", "pve1")
    assert "status" not in entry and "endtime" not in entry              # running: neither, as in PVE
    with pytest.raises(ResourceException) as err:
        token_api.nodes("pve1").qemu(110).migrate.post(target="pve2", online=1)
    assert "VM is locked (backup)" in str(err.value)

    jobs_sim.stop_backup(110)
    entry = next(t for t in token_api.cluster.tasks.get() if t["upid"] == upid)
    assert entry["status"] == "OK" and entry["endtime"] >= entry["starttime"]
    assert jobs_sim.state()["guests"]["110"]["lock"] is None
    log = [line["t"] for line in token_api.nodes("pve1").tasks(upid).log.get()]
    assert log[0].startswith("INFO: starting new backup job") and log[-1] == "TASK OK"


def test_a_job_run_has_no_task_id_and_ends_by_itself(jobs_sim, token_api):
    upid = jobs_sim.start_backup(151, duration_s=0.2, job="backup-nightly")
    assert ":vzdump::root@pam:" in upid and upid.startswith("UPID:pve3:")
    assert wait_task(token_api, "pve3", upid)["exitstatus"] == "OK"
    assert jobs_sim.state()["guests"]["151"]["lock"] is None


def test_a_failed_backup_ends_with_its_error(jobs_sim, token_api):
    upid = jobs_sim.start_backup(100)
    jobs_sim.stop_backup(100, status="job errors")
    assert token_api.nodes("pve1").tasks(upid).status.get()["exitstatus"] == "job errors"


def test_migrations_of_the_simulator_are_in_the_task_list(jobs_sim, token_api):
    upid = token_api.nodes("pve1").qemu(100).migrate.post(target="pve2", online=1)
    running = next(t for t in token_api.cluster.tasks.get() if t["upid"] == upid)
    assert (running["type"], running["id"], running["user"], running["tokenid"]) == ("qmigrate", "100", "root@pam", "proxlb")
    assert "status" not in running
    wait_task(token_api, "pve1", upid)
    assert next(t for t in token_api.cluster.tasks.get() if t["upid"] == upid)["status"] == "OK"


def test_task_list_is_newest_first_per_node_and_filtered_without_sys_audit(sim):
    users = [{"userid": "root@pam", "password": "pvesim", "privs": "all"},
             {"userid": "ops@pve", "password": "ops", "privs": ["VM.Audit", "VM.Migrate"]}]
    sim.reset(scenario=demo_with(users=users), speed=FAST)
    root = proxmoxer.ProxmoxAPI(api_host(sim), user="root@pam", password="pvesim", verify_ssl=sim.ca_path, timeout=10)
    ops = proxmoxer.ProxmoxAPI(api_host(sim), user="ops@pve", password="ops", verify_ssl=sim.ca_path, timeout=10)
    backup_upid = sim.start_backup(110)
    mine = ops.nodes("pve1").qemu(100).migrate.post(target="pve2", online=1)
    everything = root.cluster.tasks.get()
    assert [t["upid"] for t in everything] == [mine, backup_upid]      # both on pve1, the later one first
    assert [t["upid"] for t in ops.cluster.tasks.get()] == [mine]       # only the caller's own tasks


def test_control_endpoints_and_their_errors(jobs_sim):
    started = _control(jobs_sim, "/guests/110/backup", {"duration_s": None})
    assert (started["vmid"], started["node"], started["status"]) == (110, "pve1", "running")
    assert "already running" in _control(jobs_sim, "/guests/110/backup", status=400)["error"]
    stopped = _control(jobs_sim, "/guests/110/backup/stop", {"status": "OK"})
    assert (stopped["upid"], stopped["status"], stopped["exitstatus"]) == (started["upid"], "stopped", "OK")
    assert "no backup of guest 110" in _control(jobs_sim, "/guests/110/backup/stop", status=404)["error"]
    assert "no such guest" in _control(jobs_sim, "/guests/999/backup", status=404)["error"]
    assert "no such backup job" in _control(jobs_sim, "/guests/110/backup", {"job": "nope"}, status=404)["error"]
    jobs_sim.lock_guest(111, "snapshot")
    assert "locked (snapshot)" in _control(jobs_sim, "/guests/111/backup", status=400)["error"]
    jobs_sim.node_offline("pve4")
    assert "offline" in _control(jobs_sim, "/guests/124/backup", status=400)["error"]


def test_reset_ends_backups(jobs_sim):
    jobs_sim.start_backup(110, duration_s=30)
    jobs_sim.reset()
    state = jobs_sim.state()
    assert state["tasks"] == [] and state["guests"]["110"]["lock"] is None


def test_command_line_helper(jobs_sim, capsys):
    args = ["--url", jobs_sim.url, "--ca-path", jobs_sim.ca_path]
    assert pvesim_backup.main(args + ["start", "110", "--duration", "30"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "running"
    assert jobs_sim.state()["guests"]["110"]["lock"] == "backup"
    assert pvesim_backup.main(args + ["stop", "110", "--status", "job errors"]) == 0
    assert json.loads(capsys.readouterr().out)["exitstatus"] == "job errors"
    assert pvesim_backup.main(args + ["stop", "110"]) == 1
    assert "no backup of guest 110" in capsys.readouterr().err
    wait_for(lambda: jobs_sim.state()["guests"]["110"]["lock"] is None)
