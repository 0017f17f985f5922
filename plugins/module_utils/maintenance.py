# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Node maintenance: drain nodes with mandatory moves and bring their guests back.

Everything ``proxlb_maintenance`` does, without Ansible (``run_maintenance`` is its runner): the
drain is planned whole and checked with PVE's own migration check before the first migration; a
drain that cannot fit, or that guests stand in the way of, fails before anything moves.
"""

from __future__ import annotations

from ansible_collections.proxlb.balancer.plugins.module_utils import executor, placement, planner, rules, run_report
from ansible_collections.proxlb.balancer.plugins.module_utils.collector import collect_for, refreshed
from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ConfigError, ProxLBError, PveApiError, RunFailed
from ansible_collections.proxlb.balancer.plugins.module_utils.execution_options import ExecOptions
from ansible_collections.proxlb.balancer.plugins.module_utils.pve_tasks import api_message, migrate_path, precondition_problem
from ansible_collections.proxlb.balancer.plugins.module_utils.settings import BalanceSettings, check_nodes_known

STATES = ("drained", "active")
# Why a guest may stay on a drained node without standing in the way of the maintenance.
HARMLESS = ("template", "stopped")
# Balancing options that mean nothing to a drain or a return (no balancing happens).
UNUSED_BALANCE_OPTIONS = ("maintenance_nodes", "max_moves", "balanciness", "memory_threshold", "cpu_threshold",
                          "disk_threshold")
# Rounds of "ask PVE, plan again without what it refuses"; each round only asks about new moves.
PREFLIGHT_ROUNDS = 5


# -- checks on the request ------------------------------------------------------------------------

def requested_nodes(params, snapshot):
    """O(nodes) without repeats, each one a node of the cluster."""
    nodes = []
    for name in params.get("nodes") or []:
        name = str(name).strip()
        if name and name not in nodes:
            nodes.append(name)
    if not nodes:
        raise ConfigError("nodes", "is empty; name the node(s) to drain or to make active again")
    unknown = [n for n in nodes if n not in snapshot.nodes]
    if unknown:
        raise ConfigError("nodes", "unknown node(s) %s; the cluster has %s" % (", ".join(unknown), ", ".join(sorted(snapshot.nodes))))
    return nodes


def check_drain(nodes, snapshot, settings):
    """Refuse drains that cannot work whatever the guests: every node, or no node left to receive."""
    if set(nodes) >= set(snapshot.nodes):
        raise ConfigError("nodes", "would drain every node of the cluster (%s), so the guests would have nowhere to go;"
                          " drain fewer nodes at a time" % ", ".join(sorted(snapshot.nodes)))
    both = sorted(set(nodes) & set(settings.ignore_nodes))
    if both:
        raise ConfigError("ignore_nodes", "lists %s, also given in nodes; a node cannot be drained and ignored at the same time"
                          % ", ".join(both))
    why_not = {}
    for name in sorted(snapshot.nodes):
        node = snapshot.nodes[name]
        if name in nodes:
            continue
        if not node.online:
            why_not[name] = node.status
        elif node.ha_maintenance:
            why_not[name] = "in PVE HA maintenance"
        elif name in settings.ignore_nodes:
            why_not[name] = "in ignore_nodes"
        else:
            return
    raise ConfigError("nodes", "no node is left to take the guests of %s (%s)"
                      % (", ".join(nodes), ", ".join("%s: %s" % item for item in sorted(why_not.items()))))


def wanted_placements(params, nodes, snapshot):
    """O(return_guests) -> ({vmid: node}, [not_returned]) for the entries that belong to O(nodes)."""
    wanted, gone = {}, []
    for index, item in enumerate(params.get("return_guests") or []):
        where = "return_guests[%d]" % index
        try:
            vmid = int(item["vmid"])
            source = str(item["from"])
        except (KeyError, TypeError, ValueError):
            raise ConfigError(where, "needs vmid and from (an entry of the evacuated list of the drain), got %r" % (item,))
        if source not in nodes:
            continue
        if vmid not in snapshot.guests:
            gone.append(dict(vmid=vmid, name=item.get("name"), node=None, wanted=source, reason="guest no longer exists"))
            continue
        wanted[vmid] = source
    return wanted, gone


# -- asking PVE before anything moves -------------------------------------------------------------

def pve_check(client, snapshot, move, with_local_disks):
    """PVE's migration check for one planned move: (why the guest cannot move at all, {node: why not there}).

    One answer covers every node (PVE 8.4 and later list the refused nodes with their reasons).
    The executor asks again right before each migration; asking up front is what lets the task
    fail, or plan around a refused node, before the first migration.
    """
    if move.type == "lxc" and snapshot.version < (9, 0, 0):
        return None, {}     # PVE 8 has no migration check for containers
    try:
        answer = client.get(migrate_path(move), target=move.target)
    except PveApiError as err:
        return "PVE refused the migration check: %s" % api_message(err), {}
    if not isinstance(answer, dict):
        return None, {}
    node_lists = ("allowed_nodes", "allowed-nodes", "not_allowed_nodes", "not-allowed-nodes")
    whole = precondition_problem({k: v for k, v in answer.items() if k not in node_lists}, None, move.kind,
                                 with_local_disks)
    if whole:
        return whole, {}
    refused = {}
    for node in sorted(snapshot.nodes):
        if node != move.source:
            problem = precondition_problem(answer, node, move.kind, with_local_disks)
            if problem:
                refused[node] = problem
    return None, refused


def checked_plan(client, snapshot, make_plan, with_local_disks):
    """Plan, ask PVE about each guest that moves, plan again around what it refuses.

    ``make_plan(refused, forbidden)`` plans without the guests in ``refused`` ({vmid: reason})
    and keeps guests away from the nodes in ``forbidden`` ({vmid: {node: reason}}).
    Returns (plan, refused, forbidden).
    """
    refused, forbidden, asked = {}, {}, set()
    result = make_plan(refused, forbidden)
    for _round in range(PREFLIGHT_ROUNDS):
        again = False
        for move in result.moves:
            if move.vmid in asked:
                continue
            asked.add(move.vmid)
            whole, nodes = pve_check(client, snapshot, move, with_local_disks)
            if whole:
                refused[move.vmid] = whole
                again = True
            elif nodes:
                forbidden[move.vmid] = nodes
                again = again or move.target in nodes
        if not again:
            break
        result = make_plan(dict(refused), dict(forbidden))
    return result, refused, forbidden


# -- what stays on a drained node -----------------------------------------------------------------

def guest_entry(guest, **extra):
    entry = dict(vmid=guest.vmid, name=guest.name, node=guest.node)
    entry.update(extra)
    return entry


def remaining_on(snapshot, settings, nodes, plan, extra_reasons=None, unexplained="no move planned"):
    """Guests of ``nodes`` the plan leaves there: (blocking, staying, nowhere_to_go)."""
    moved = {m.vmid for m in plan.moves}
    left = {}
    no_fit = {}
    for entry in plan.data.get("left_alone", []):
        if entry["reason"] == "no_fit":
            no_fit.setdefault(entry["vmid"], []).append(entry)
        else:
            left.setdefault(entry["vmid"], entry["reason"])
    for move in plan.data.get("unsequenced", []):
        no_fit.setdefault(move["vmid"], []).append(dict(rule=move["reason"], detail="no order of migrations to %s fits" % move["to"]))
    left.update(extra_reasons or {})
    constraints = rules.build(snapshot, settings)
    blocking, staying, nowhere = [], [], []
    for vmid in sorted(v for v, g in snapshot.guests.items() if g.node in nodes and v not in moved):
        guest = snapshot.guests[vmid]
        reason = left.get(vmid)
        allowed = constraints.allowed.get(vmid)
        if reason in HARMLESS:
            staying.append(guest_entry(guest, reason=reason))
        elif allowed is not None and not allowed & set(constraints.eligible):
            # Rules tie it to the drained nodes: it cannot move, like a guest with a local device.
            blocking.append(guest_entry(guest, reason="may only run on %s (%s)" % (
                ", ".join(sorted(allowed)), constraints.allowed_why.get(vmid, "rules"))))
        elif vmid in no_fit:
            entries = no_fit[vmid]
            nowhere.append(guest_entry(guest, rule=", ".join(sorted({e["rule"] for e in entries})),
                                       detail=entries[0]["detail"]))
        else:
            reason = reason or _held_by_partner(vmid, constraints.units, left, snapshot) or unexplained
            blocking.append(guest_entry(guest, reason=reason))
    return blocking, staying, nowhere


def _held_by_partner(vmid, units, reasons, snapshot):
    for members in units:
        if vmid in members:
            for other in members:
                if other != vmid and other in reasons:
                    return "affinity with %d (%s), which stays: %s" % (other, snapshot.guests[other].name, reasons[other])
    return None


def describe(entries, key="reason"):
    return "; ".join("%d (%s) on %s: %s" % (e["vmid"], e["name"], e["node"], e[key]) for e in entries)


# -- carrying out -----------------------------------------------------------------------------

def carry_out(client, snapshot, settings, options, todo, replan, check_mode):
    """Check mode: the plan as outcomes. Otherwise execute it. Returns the ExecutionReport."""
    if check_mode:
        return run_report.check_mode_report(todo.waves, snapshot, settings)
    return executor.execute(client, snapshot, settings, todo, options, replan=replan)


def moved_guests(report, sources):
    """Moves of the report that took a guest off one of ``sources``: [{vmid, name, from, to}]."""
    result = []
    for outcome in report.outcomes:
        move = outcome.move
        if move.source not in sources:
            continue
        if outcome.status == run_report.PLANNED:
            end = move.target
        elif outcome.status == run_report.OK:
            end = outcome.final_node or move.target
        else:
            continue
        if end != move.source:
            result.append({"vmid": move.vmid, "name": move.name, "from": move.source, "to": end})
    return result


def node_states(snapshot, nodes):
    states = {}
    for name in nodes:
        node = snapshot.nodes[name]
        guests = snapshot.guests_on(name)
        states[name] = dict(status=node.status, ha_maintenance=node.ha_maintenance, guests=len(guests),
                            running=sum(1 for g in guests if g.running))
    return states


def base_result(client, report, todo, collect_calls, changed, diff):
    data = todo.to_dict()
    return run_report.run_result(client, report, data, data.get("summary") or planner.summary(todo), collect_calls,
                                 changed, diff)


def final_snapshot(client, snapshot, warnings):
    """The cluster after the run (one read); the planning snapshot if it cannot be read."""
    try:
        return refreshed(snapshot, client.get("cluster/resources"))
    except PveApiError as err:
        warnings.append("could not read the cluster after the run, so what is left on the nodes is as planned: %s" % err)
        return snapshot


def undone_moves(report):
    """{vmid: why} of moves the run did not carry out (skipped, failed, not started); last outcome per guest."""
    reasons = {}
    for outcome in report.outcomes:
        if outcome.status == run_report.SKIPPED:
            reasons[outcome.move.vmid] = outcome.error or "skipped"
        elif outcome.status == run_report.FAILED:
            reasons[outcome.move.vmid] = "migration failed: %s" % (outcome.error or "unknown error")
        elif outcome.status == run_report.NOT_STARTED:
            reasons[outcome.move.vmid] = "not moved: the run stopped (%s)" % (report.stop_reason or "unknown reason")
        elif outcome.status == run_report.OK:
            reasons.pop(outcome.move.vmid, None)
    return reasons


# -- the two states ---------------------------------------------------------------------------

def drain(client, snapshot, params, check_mode, diff, warnings):
    """state=drained. Returns (result, failure message or None)."""
    nodes = requested_nodes(params, snapshot)
    settings = BalanceSettings.from_params(dict(params, maintenance_nodes=nodes))
    options = ExecOptions.from_params(params)
    check_nodes_known(settings, snapshot.nodes)
    check_drain(nodes, snapshot, settings)
    if snapshot.quorate is False:
        if not check_mode:
            raise ProxLBError("the cluster has no quorum, so PVE refuses migrations; restore quorum before draining %s"
                              % ", ".join(nodes))
        warnings.append("the cluster has no quorum; PVE would refuse these migrations")

    def make_plan(refused, forbidden):
        return planner.plan(snapshot, settings, immovable=refused, balance=False, forbidden=forbidden)

    todo, refused, forbidden = checked_plan(client, snapshot, make_plan, options.with_local_disks)
    blocking, staying, nowhere = remaining_on(snapshot, settings, nodes, todo)
    collect_calls = client.calls
    problems = []
    if nowhere:
        problems.append("%d guest(s) have nowhere to go: %s" % (len(nowhere), describe(nowhere, "detail")))
    if blocking and not params.get("allow_blocking"):
        problems.append("%d guest(s) cannot leave: %s (allow_blocking=true drains the rest and leaves them)"
                        % (len(blocking), describe(blocking)))
    if problems:
        report = run_report.ExecutionReport(nodes_final=run_report.node_loads(snapshot, settings))
        result = base_result(client, report, todo, collect_calls, False, diff)
        result.update(state="drained", nodes=node_states(snapshot, nodes), evacuated=[], blocking=blocking,
                      staying=staying, nowhere_to_go=nowhere)
        return result, "cannot drain %s, nothing was migrated: %s" % (", ".join(nodes), ". ".join(problems))

    def replan(fresh, immovable):
        keep = dict(refused)
        keep.update(immovable)
        return planner.plan(fresh, settings, immovable=keep, balance=False, forbidden=forbidden)

    report = carry_out(client, snapshot, settings, options, todo, replan, check_mode)
    changed = bool(report.outcomes) if check_mode else report.changed
    after = snapshot if check_mode else final_snapshot(client, snapshot, warnings)
    if not check_mode:
        # What is on the nodes now, judged on the cluster as it is after the run.
        left = dict(refused)
        left.update(undone_moves(report))
        empty_plan = planner.Plan(moves=[], waves=[], data=dict(left_alone=[]))
        blocking, staying, _nowhere = remaining_on(after, settings, nodes, empty_plan, _reasons_for(after, settings, left),
                                                   unexplained="still there after the run")
    result = base_result(client, report, todo, collect_calls, changed, diff)
    result.update(state="drained", nodes=node_states(after, nodes), evacuated=moved_guests(report, set(nodes)),
                  blocking=blocking, staying=staying, nowhere_to_go=[])
    for entry in blocking:
        warnings.append("%d (%s) stays on %s: %s" % (entry["vmid"], entry["name"], entry["node"], entry["reason"]))
    if report.failed:
        return result, "%s. Still on %s: %s" % (report.failure_message(), ", ".join(nodes), describe(blocking) or "nothing")
    if blocking and not params.get("allow_blocking"):
        return result, "%s not empty after the run: %s (allow_blocking=true accepts this)" % (", ".join(nodes), describe(blocking))
    return result, None


def _reasons_for(snapshot, settings, known):
    """Why guests stay, for a snapshot taken after the run: rules first, then what the run learned."""
    reasons = dict(rules.build(snapshot, settings).immovable)
    reasons.update(known)
    return reasons


def activate(client, snapshot, params, check_mode, diff, warnings):
    """state=active. Returns (result, failure message or None)."""
    nodes = requested_nodes(params, snapshot)
    settings = BalanceSettings.from_params(params)
    options = ExecOptions.from_params(params)
    check_nodes_known(settings, snapshot.nodes)
    for name in nodes:
        node = snapshot.nodes[name]
        if not node.online:
            warnings.append("node %s is %s; no guest can return to it" % (name, node.status))
        elif node.ha_maintenance:
            warnings.append("node %s is still in PVE HA maintenance, so no guest can return to it; run"
                            " 'ha-manager crm-command node-maintenance disable %s' on a node first" % (name, name))
    wanted, gone = wanted_placements(params, nodes, snapshot)

    def staying_put(refused, forbidden):
        # The way back has one target per guest: a guest PVE will not move there stays.
        result = dict(refused)
        for vmid, refused_nodes in forbidden.items():
            if wanted.get(vmid) in refused_nodes:
                result.setdefault(vmid, refused_nodes[wanted[vmid]])
        return result

    def make_plan(refused, forbidden):
        skip = staying_put(refused, forbidden)
        return placement.plan_placements(snapshot, settings, {v: n for v, n in wanted.items() if v not in skip}, reason="return")

    todo, refused, forbidden = checked_plan(client, snapshot, make_plan, options.with_local_disks)
    refused = staying_put(refused, forbidden)
    collect_calls = client.calls
    not_returned = list(gone)
    for failure in todo.data.get("failures", []):
        for vmid in failure["vmids"]:
            not_returned.append(guest_entry(snapshot.guests[vmid], wanted=wanted[vmid], reason=failure["detail"]))
    for vmid, reason in sorted(refused.items()):
        not_returned.append(guest_entry(snapshot.guests[vmid], wanted=wanted[vmid], reason=reason))

    def replan(fresh, immovable):
        skip = set(refused) | set(immovable)
        return placement.plan_placements(fresh, settings, {v: n for v, n in wanted.items() if v not in skip}, reason="return")

    report = carry_out(client, snapshot, settings, options, todo, replan, check_mode)
    changed = bool(report.outcomes) if check_mode else report.changed
    after = snapshot if check_mode else final_snapshot(client, snapshot, warnings)
    if not check_mode:
        listed = {e["vmid"] for e in not_returned}
        for vmid, reason in sorted(undone_moves(report).items()):
            guest = after.guests.get(vmid)
            if vmid in wanted and vmid not in listed and guest is not None and guest.node != wanted[vmid]:
                not_returned.append(guest_entry(guest, wanted=wanted[vmid], reason=reason))
    result = base_result(client, report, todo, collect_calls, changed, diff)
    sources = {o.move.source for o in report.outcomes}
    returned = [entry for entry in moved_guests(report, sources) if entry["vmid"] in wanted]
    not_returned.sort(key=lambda e: e["vmid"])
    result.update(state="active", nodes=node_states(after, nodes), returned=returned, not_returned=not_returned)
    for entry in not_returned:
        warnings.append("%d (%s) does not return to %s: %s" % (entry["vmid"], entry["name"], entry["wanted"], entry["reason"]))
    if report.failed:
        return result, report.failure_message()
    return result, None


def run_maintenance(request):
    """The module result for ``request`` (see ``request.Request``).

    Raises ``RunFailed`` with the result when the drain or return cannot be done (nothing was
    migrated then) or did not fully succeed.
    """
    params = request.params
    if params.get("state") not in STATES:
        raise ConfigError("state", "'%s' is not one of %s" % (params.get("state"), ", ".join(STATES)))
    # Options are checked before the first request, node names as soon as the cluster is known.
    settings = BalanceSettings.from_params(params)
    ExecOptions.from_params(params)
    client = request.connect()
    snapshot = collect_for(client, settings, request.warnings)
    handler = drain if params["state"] == "drained" else activate
    result, failure = handler(client, snapshot, params, request.check_mode, request.diff, request.warnings)
    request.write_report(result)
    if failure:
        raise RunFailed(failure, result)
    return result
