"""Backup jobs (``/cluster/backup``), the cluster task list (``/cluster/tasks``) and vzdump runs.

A scenario's ``backup_jobs`` are served as PVE lists them, with ``next-run`` computed from the
schedule. Backups run only when told to (control API, ``Simulator.start_backup``, or the command
line below): a ``vzdump`` task on the guest's node that holds the guest's ``backup`` lock until
it is stopped or its duration is over, as a real backup would.

Command line, against a running simulator (``PVESIM_URL`` and ``PVESIM_CA_PATH`` as exported by
``scripts/with_pvesim.sh`` are the defaults)::

    PYTHONPATH=tools python -m pvesim.backup start 100 --duration 30 [--job backup-nightly]
    PYTHONPATH=tools python -m pvesim.backup stop 100 [--status "job errors"]
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request

JOB_KEYS = {"id", "schedule", "enabled", "vmid", "all", "exclude", "pool", "node", "storage", "mode", "comment",
            "notes-template", "prune-backups", "repeat-missed", "compress"}
# finished tasks kept per node in /cluster/tasks, like the size limit of PVE's broadcast task list
RECENT_TASKS_PER_NODE = 50
BACKUP_USER = "root@pam"

_CALENDAR_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "plugins", "module_utils",
                              "calendar_event.py")
_calendar_module = []


# -- scenario --------------------------------------------------------------------------------

def _vmid_text(value, where: str) -> str | None:
    if value is None:
        return None
    items = value if isinstance(value, (list, tuple)) else str(value).replace(";", ",").replace(" ", ",").split(",")
    vmids = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        if not text.isdigit():
            raise ValueError("%s '%s' is not a VMID" % (where, text))
        vmids.append(text)
    return ",".join(vmids) or None


def normalize_backup_jobs(jobs, node_names: set, pool_ids: set) -> list:
    """The scenario's ``backup_jobs`` -> normalised job dicts; raises ValueError naming the field."""
    if not isinstance(jobs, list):
        raise ValueError("backup_jobs must be a list")
    result = []
    seen = set()
    for index, raw in enumerate(jobs):
        where = "backup_jobs[%d]." % index
        if not isinstance(raw, dict):
            raise ValueError(where.rstrip(".") + " must be an object")
        unknown = sorted(set(raw) - JOB_KEYS)
        if unknown:
            raise ValueError("%sunknown keys: %s" % (where, ", ".join(unknown)))
        job_id = str(raw.get("id") or "").strip()
        if not job_id or job_id in seen:
            raise ValueError(where + ("duplicate id '%s'" % job_id if job_id else "id is required"))
        seen.add(job_id)
        if not isinstance(raw.get("schedule"), str) or not raw["schedule"].strip():
            raise ValueError(where + "schedule is required (a PVE calendar event such as 'mon..fri 21:00')")
        vmid = _vmid_text(raw.get("vmid"), where + "vmid")
        exclude = _vmid_text(raw.get("exclude"), where + "exclude")
        # as PVE: exclude implies all, and a job names its guests by exactly one of all, pool or vmid
        all_guests = 1 if raw.get("all") in (1, True, "1") or exclude else 0
        if sum(1 for chosen in (all_guests, raw.get("pool"), vmid) if chosen) != 1:
            raise ValueError(where + "give exactly one of all (with optional exclude), pool or vmid")
        if raw.get("node") is not None and raw["node"] not in node_names:
            raise ValueError(where + "node '%s' is not a scenario node" % raw["node"])
        if raw.get("pool") is not None and raw["pool"] not in pool_ids:
            raise ValueError(where + "pool '%s' is not a scenario pool" % raw["pool"])
        # kept as written (PVE sends some flags as strings); only JSON booleans become PVE's 0/1
        job = {key: int(raw[key]) if isinstance(raw[key], bool) else raw[key]
               for key in ("enabled", "pool", "node", "comment", "notes-template", "prune-backups", "repeat-missed",
                           "compress") if raw.get(key) is not None}
        job.update(id=job_id, schedule=raw["schedule"], storage=raw.get("storage", "local"), mode=raw.get("mode", "snapshot"))
        if all_guests:
            job["all"] = 1
        if vmid:
            job["vmid"] = vmid
        if exclude:
            job["exclude"] = exclude
        result.append(job)
    return result


# -- next-run --------------------------------------------------------------------------------

def _calendar():
    """The collection's calendar event parser, loaded by path (the simulator is not an Ansible collection)."""
    if not _calendar_module:
        module = None
        if os.path.isfile(_CALENDAR_PATH):
            spec = importlib.util.spec_from_file_location("pvesim_calendar_event", _CALENDAR_PATH)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        _calendar_module.append(module)
    return _calendar_module[0]


def next_run(schedule: str, now: float) -> int | None:
    """PVE's ``next-run``: the next occurrence of the schedule in local time, as epoch seconds."""
    events = _calendar()
    if events is None:
        return None
    try:
        due = events.next_due(schedule, datetime.datetime.fromtimestamp(int(now)))
    except events.CalendarEventError:
        return None
    return int(time.mktime(due.timetuple())) if due is not None else None


# -- API handlers ----------------------------------------------------------------------------

def h_cluster_backup(req):
    req.require("/", "Sys.Audit")
    now = time.time()
    result = []
    for job in req.state.scenario["backup_jobs"]:
        entry = dict(job, type="vzdump")
        due = next_run(job["schedule"], now)
        if due is not None:
            entry["next-run"] = due
        result.append(entry)
    return result


def _task_entry(task) -> dict:
    entry = task.list_entry()
    # the node list says RUNNING; in the cluster list a running task has no status at all
    if task.status == "running":
        entry.pop("status", None)
    return entry


def h_cluster_tasks(req):
    state = req.state
    result = []
    for name in sorted(state.nodes):
        tasks = [t for t in reversed(state.tasks) if t.node == name
                 and (req.can("Sys.Audit") or t.user == req.identity.userid)]
        running = [t for t in tasks if t.status == "running"]
        finished = [t for t in tasks if t.status != "running"][:RECENT_TASKS_PER_NODE]
        chosen = sorted(running + finished, key=lambda t: (t.starttime, t.pid), reverse=True)
        result.extend(_task_entry(task) for task in chosen)
    return result


# -- vzdump runs -----------------------------------------------------------------------------

def running_backup(state, vmid: int):
    for task in reversed(state.tasks):
        if task.type == "vzdump" and task.status == "running" and task.vmid == vmid:
            return task
    return None


def start_backup(state, vmid: int, duration_s: float | None = None, job: str | None = None):
    """Start a vzdump task for one guest; with ``job``, as that job's run (task id empty, as for several guests)."""
    with state.lock:
        guest = state.guests.get(int(vmid))
        if guest is None:
            raise KeyError("no such guest %s" % vmid)
        if job is not None and not any(j["id"] == job for j in state.scenario["backup_jobs"]):
            raise KeyError("no such backup job '%s'" % job)
        if not state.nodes[guest.node].online:
            raise ValueError("node %s of guest %d is offline" % (guest.node, guest.vmid))
        if running_backup(state, guest.vmid) is not None:
            raise ValueError("a backup of guest %d is already running" % guest.vmid)
        if guest.lock:
            raise ValueError("guest %d is locked (%s); vzdump would fail" % (guest.vmid, guest.lock))
        if duration_s is not None and float(duration_s) < 0:
            raise ValueError("duration_s must not be negative")
        task = state.new_task(guest.node, "vzdump", "" if job else str(guest.vmid), BACKUP_USER, vmid=guest.vmid)
        command = "vzdump --job-id %s" % job if job else "vzdump %d --mode snapshot" % guest.vmid
        task.log("INFO: starting new backup job: %s" % command, stamped=False)
        task.log("INFO: Starting Backup of VM %d (%s)" % (guest.vmid, guest.type), stamped=False)
        task.log("INFO: Backup started at %s" % time.strftime("%Y-%m-%d %H:%M:%S"), stamped=False)
        guest.lock = "backup"
        if duration_s is not None:
            state.scheduler.call_later(float(duration_s), finish_backup, state, task, "OK")
        return task


def stop_backup(state, vmid: int, exitstatus: str = "OK"):
    with state.lock:
        task = running_backup(state, int(vmid))
        if task is None:
            raise KeyError("no backup of guest %s is running" % vmid)
        finish_backup(state, task, exitstatus or "OK")
        return task


def finish_backup(state, task, exitstatus: str) -> None:
    if task.status != "running":
        return
    guest = state.guests.get(task.vmid)
    if guest is not None and guest.lock == "backup":
        guest.lock = None
    elapsed = int(time.time()) - task.starttime
    if exitstatus == "OK":
        clock = "%02d:%02d:%02d" % (elapsed // 3600, elapsed // 60 % 60, elapsed % 60)
        task.log("INFO: Finished Backup of VM %d (%s)" % (task.vmid, clock), stamped=False)
        task.log("INFO: Backup job finished successfully", stamped=False)
    else:
        task.log("ERROR: Backup of VM %d failed - %s" % (task.vmid, exitstatus), stamped=False)
    task.finish(exitstatus)


def control(state, parts: list, payload: dict) -> dict:
    """``/_sim/guests/<vmid>/backup`` (start) and ``/_sim/guests/<vmid>/backup/stop``; parts start at the vmid."""
    try:
        vmid = int(parts[0])
    except ValueError as exc:
        raise ValueError("vmid must be an integer") from exc
    if parts[1:] == ["backup"]:
        task = start_backup(state, vmid, payload.get("duration_s"), payload.get("job"))
    elif parts[1:] == ["backup", "stop"]:
        task = stop_backup(state, vmid, payload.get("status", "OK"))
    else:
        raise KeyError("no control endpoint for guest %s: %s" % (vmid, "/".join(parts[1:])))
    return {"vmid": vmid, "upid": task.upid, "node": task.node, "status": task.status, "exitstatus": task.exitstatus}


# -- command line ----------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pvesim.backup", description="Start or stop a simulated backup.")
    parser.add_argument("--url", default=os.environ.get("PVESIM_URL"), help="simulator URL (default: $PVESIM_URL)")
    parser.add_argument("--ca-path", default=os.environ.get("PVESIM_CA_PATH"), help="simulator CA (default: $PVESIM_CA_PATH)")
    sub = parser.add_subparsers(dest="action", required=True)
    start = sub.add_parser("start", help="start a vzdump task for a guest")
    start.add_argument("vmid", type=int)
    start.add_argument("--duration", type=float, default=None, help="wall-clock seconds until it ends (default: until stopped)")
    start.add_argument("--job", default=None, help="run it as this backup job's run")
    stop = sub.add_parser("stop", help="end a guest's running backup")
    stop.add_argument("vmid", type=int)
    stop.add_argument("--status", default="OK", help="exit status (default: OK)")
    args = parser.parse_args(argv)
    if not args.url or not args.ca_path:
        parser.error("--url and --ca-path (or PVESIM_URL and PVESIM_CA_PATH) are required")
    body = {"duration_s": args.duration, "job": args.job} if args.action == "start" else {"status": args.status}
    path = "/_sim/guests/%d/backup%s" % (args.vmid, "" if args.action == "start" else "/stop")
    request = urllib.request.Request(args.url.rstrip("/") + path, data=json.dumps(body).encode("utf-8"), method="POST",
                                     headers={"Content-Type": "application/json"})
    context = ssl.create_default_context(cafile=args.ca_path)
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as answer:  # nosec - loopback simulator
            print(answer.read().decode("utf-8"))
    except urllib.error.HTTPError as err:
        print("pvesim: %s" % err.read().decode("utf-8", "replace"), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
