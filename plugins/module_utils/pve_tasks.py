# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PVE migration tasks: the migrate request, PVE's precondition answer, UPIDs, task polling and
the reason of a failed task in PVE's own words.

Pure helpers on PVE answers, plus two reads of a node's task API that any code following a
migration needs. No Ansible imports, no clock.
"""

from __future__ import annotations

import re

from ansible_collections.proxlb.balancer.plugins.module_utils.errors import PveApiError

# Task polling: start fast, grow, cap; never wait longer than a tenth of the time the task has
# run so far, so a 3-second migration is noticed within ~0.3 s and a 20-minute one costs few calls.
POLL_FIRST_S = 0.1
POLL_GROWTH = 1.5
POLL_MAX_S = 3.0
POLL_ELAPSED_SHARE = 0.1

# How long the task status may stay unreadable before the move is given up; sooner when the
# cluster reports the task's node offline (checked at most every NODE_CHECK_S).
LOST_TASK_S = 120.0
NODE_CHECK_S = 5.0
# How long to wait for the HA stack to start the real migration after ``hamigrate`` ended OK.
# The CRM and LRM work in ~10 s rounds; a target in maintenance or offline never gets one.
HA_START_S = 120.0
# Task log lines read to find PVE's last ``ERROR:`` line of a failed migration.
LOG_TAIL_LINES = 500
LOG_MAX_PAGES = 20

_LOG_STAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} ")
_UPID = re.compile(r"^UPID:([^:]+):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):([^:]*):([^:]*):([^:]*):$")


def migrate_path(move):
    """``nodes/{source}/{qemu|lxc}/{vmid}/migrate`` of a move (GET: precondition, POST: start)."""
    return "nodes/%s/%s/%d/migrate" % (move.source, "lxc" if move.type == "lxc" else "qemu", move.vmid)


def poll_interval_s(attempt, elapsed_s):
    """Seconds to wait before poll number ``attempt`` (0-based) of a task running ``elapsed_s``."""
    grown = POLL_FIRST_S * (POLL_GROWTH ** max(0, attempt))
    share = max(POLL_FIRST_S, POLL_ELAPSED_SHARE * max(0.0, elapsed_s))
    return min(POLL_MAX_S, grown, share)


def parse_upid(upid):
    """``UPID:node:pid:pstart:starttime:type:id:user:`` -> dict(node, starttime, type, id, user) or None."""
    match = _UPID.match(str(upid or ""))
    if not match:
        return None
    return dict(node=match.group(1), starttime=int(match.group(4), 16), type=match.group(5), id=match.group(6),
                user=match.group(7))


def task_error(exitstatus, log_lines):
    """PVE's reason for a failed task: its exit status, completed by the last ``ERROR:`` log line.

    ``log_lines`` are the ``t`` texts of ``GET .../tasks/{upid}/log``. Without an ``ERROR:`` line
    (``hamigrate`` failures list the blocking HA rules instead) the last two lines are used.
    """
    status = str(exitstatus or "unknown error").strip()
    texts = [_LOG_STAMP.sub("", str(line)).strip() for line in log_lines or []]
    texts = [t for t in texts if t and not t.startswith("TASK ") and t != "no content"]
    detail = None
    for text in reversed(texts):
        if "ERROR:" in text:
            detail = text[text.index("ERROR:") + len("ERROR:"):].strip()
            break
    if detail is None and texts:
        detail = " ".join(texts[-2:])
    if not detail or detail == status:
        return status
    if detail.startswith(status):
        return detail
    return "%s: %s" % (status, detail)


def precondition_problem(answer, target, kind, with_local_disks):
    """Why PVE's migrate precondition answer rules out a move to ``target`` (None if it does not).

    ``answer`` is ``GET /nodes/{node}/qemu/{vmid}/migrate?target=`` (underscore keys) or, on
    PVE 9, ``GET /nodes/{node}/lxc/{vmid}/migrate`` (dash keys).
    """
    if not isinstance(answer, dict):
        return None
    local_resources = answer.get("local_resources") or []
    if local_resources:
        return "PVE: local resources pin the VM to its node: %s" % ", ".join(str(r) for r in local_resources)
    not_allowed = answer.get("not_allowed_nodes")
    if not_allowed is None:
        not_allowed = answer.get("not-allowed-nodes")
    blocked = (not_allowed or {}).get(target) if isinstance(not_allowed, dict) else None
    if blocked:
        parts = []
        for key, label in (("unavailable_storages", "storages not available there"),
                           ("unavailable-storages", "storages not available there"),
                           ("unavailable-resources", "mapped resources without a mapping there"),
                           ("blocking-ha-resources", "blocked by HA rules")):
            values = blocked.get(key) or []
            if key == "blocking-ha-resources":
                values = ["%s (%s)" % (v.get("sid"), v.get("cause")) if isinstance(v, dict) else str(v) for v in values]
            if values:
                parts.append("%s: %s" % (label, ", ".join(str(v) for v in values)))
        if not parts:
            parts.append(", ".join("%s: %s" % (k, v) for k, v in sorted(blocked.items())))
        return "PVE: target %s not allowed (%s)" % (target, "; ".join(parts))
    allowed = answer.get("allowed_nodes")
    if allowed is None:
        allowed = answer.get("allowed-nodes")
    if isinstance(allowed, list) and target not in allowed and not isinstance(not_allowed, dict):
        return "PVE: target %s is not among the allowed nodes (%s)" % (target, ", ".join(allowed) or "none")
    if kind == "vm" and not with_local_disks:
        disks = [d.get("volid", "?") for d in answer.get("local_disks") or [] if isinstance(d, dict)]
        if disks:
            return "local disks (%s) and with_local_disks is false" % ", ".join(disks)
    return None


def migrate_params(move, running, pve_version, options, precondition=None):
    """Parameters of ``POST /nodes/{source}/{qemu|lxc}/{vmid}/migrate`` for one move."""
    params = {"target": move.target}
    if move.type == "lxc":
        if running:
            # Containers cannot live-migrate: stop, move, start on the target.
            params["restart"] = 1
            params["timeout"] = options.ct_restart_timeout_s
        return params
    if running:
        params["online"] = 1
        # with-conntrack-state exists from PVE 9 on; PVE 8 rejects the whole call with it.
        supported = pve_version[0] >= 9 and (precondition or {}).get("has-dbus-vmstate", 1) not in (0, False, "0")
        if options.with_conntrack_state and supported:
            params["with-conntrack-state"] = 1
    if options.with_local_disks:
        params["with-local-disks"] = 1
    return params


def api_message(err):
    """PVE's own text of an API error (reason phrase) when there is one, else the whole message."""
    details = getattr(err, "details", {}) or {}
    return str(details.get("pve_message") or err).strip()


def task_log_tail(client, node, upid):
    """The last page of a task log as texts (one read unless the log is long); [] when it cannot be read."""
    path = "nodes/%s/tasks/%s/log" % (node, upid)
    lines, start = [], 0
    try:
        for _page in range(LOG_MAX_PAGES):
            page = client.get(path, start=start, limit=LOG_TAIL_LINES) or []
            if page:
                lines = page
            if len(page) < LOG_TAIL_LINES:
                break
            start += len(page)
    except PveApiError:
        pass
    return [line.get("t", "") for line in lines if isinstance(line, dict)]


def started_migration_task(client, move, since, requested_upid):
    """The real ``qmigrate``/``vzmigrate`` task PVE HA started for ``move`` after ``hamigrate``, or None.

    PVE HA runs it on the source node as ``root@pam``, so the node's task list is searched for
    every user (``source=all``), from ``since`` (the ``hamigrate`` start time) on.
    """
    wanted = "vzmigrate" if move.type == "lxc" else "qmigrate"
    params = dict(typefilter=wanted, vmid=move.vmid, source="all", limit=50)
    if since:
        params["since"] = since
    entries = client.get("nodes/%s/tasks" % move.source, **params) or []
    found = [e for e in entries if isinstance(e, dict) and e.get("type") == wanted and e.get("upid") != requested_upid
             and (not since or int(e.get("starttime") or 0) >= since)]
    if not found:
        return None
    # Oldest first: the first migration HA started after our request is ours.
    return min(found, key=lambda e: (int(e.get("starttime") or 0), str(e.get("upid"))))
