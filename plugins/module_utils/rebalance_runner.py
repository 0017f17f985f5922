# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""proxlb_rebalance without Ansible: plan (or take the given plan), carry it out wave by wave
with re-planning on drift, and report what happened.
"""

from __future__ import annotations

from dataclasses import replace

from ansible_collections.proxlb.balancer.plugins.module_utils import planner, run_report
from ansible_collections.proxlb.balancer.plugins.module_utils.collector import collect_for
from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ConfigError, RunFailed
from ansible_collections.proxlb.balancer.plugins.module_utils.execution_options import ExecOptions
from ansible_collections.proxlb.balancer.plugins.module_utils.executor import MOVED_IN_THIS_RUN, execute
from ansible_collections.proxlb.balancer.plugins.module_utils.settings import BalanceSettings, check_nodes_known

# Guest kind of a plan entry (``type``) -> PVE guest type.
GUEST_TYPES = {"vm": "qemu", "ct": "lxc"}


def run_rebalance(request):
    """The module result for ``request`` (see ``request.Request``).

    Raises ``RunFailed`` when a migration failed or the run stopped early, with everything that
    happened but the plan itself (it is in the input or an earlier result).
    """
    params = request.params
    # Options are checked before the first request, node names as soon as the cluster is known.
    settings = BalanceSettings.from_params(params)
    options = ExecOptions.from_params(params)
    client = request.connect()
    snapshot = collect_for(client, settings, request.warnings)
    check_nodes_known(settings, snapshot.nodes)
    if params["plan"] is not None:
        todo = given_plan(params["plan"], snapshot)
        plan_data = params["plan"]
        summary = plan_data.get("summary") or "\n".join(
            "wave %d  %d %s  %s -> %s  %s" % (m.wave, m.vmid, m.name, m.source, m.target, m.reason) for m in todo.moves)
    else:
        todo = planner.plan(snapshot, settings)
        plan_data = todo.to_dict()
        summary = plan_data.get("summary") or planner.summary(todo)
    collect_calls = client.calls

    if request.check_mode:
        report = run_report.check_mode_report(todo.waves, snapshot, settings, options.max_waves)
        changed = bool(report.outcomes) or bool(report.remaining)
    else:
        report = execute(client, snapshot, settings, todo, options, replan=replanner(settings))
        changed = report.changed

    result = run_report.run_result(client, report, plan_data, summary, collect_calls, changed, request.diff)
    result["remaining"] = dict(moves=report.remaining_moves(), waves=len(report.remaining))
    request.warnings.extend(report.warnings)
    for outcome in report.outcomes:
        if outcome.status == run_report.SKIPPED:
            request.warnings.append("skipped %d (%s) %s -> %s: %s" % (
                outcome.move.vmid, outcome.move.name, outcome.move.source, outcome.move.target, outcome.error))
    # The report of a failed run is written before the failure, and shows the plan next to it.
    request.write_report(result)
    if report.failed:
        raise RunFailed(report.failure_message(),
                        {key: value for key, value in result.items() if key not in ("plan", "summary")})
    return result


def replanner(settings):
    """``replan`` for the executor: plan afresh, with the move budget reduced by what already moved."""
    def replan(snapshot, immovable):
        current = settings
        if settings.max_moves is not None:
            done = sum(1 for reason in immovable.values() if reason == MOVED_IN_THIS_RUN)
            current = replace(settings, max_moves=max(0, settings.max_moves - done))
        return planner.plan(snapshot, current, immovable=immovable)
    return replan


def given_plan(data, snapshot):
    """O(plan): a plan returned earlier, as a ``planner.Plan`` of the moves still to do."""
    waves = moves_from_plan(data, snapshot)
    return planner.Plan(moves=[m for wave in waves for m in wave], waves=waves, data=dict(data))


def moves_from_plan(plan_data, snapshot):
    """Rebuild the waves of a plan returned earlier (``Plan.to_dict()`` or ``remaining``).

    Moves whose guest already sits on its target are done and dropped; the rest keep their wave
    numbers. Returns a list of waves (lists of ``planner.Move``), validated later like any plan.
    """
    if not isinstance(plan_data, dict) or not isinstance(plan_data.get("moves"), list):
        raise ConfigError("plan", "expected a plan as returned by proxlb_plan or proxlb_rebalance (a dict with 'moves')")
    by_wave = {}
    for index, item in enumerate(plan_data["moves"]):
        where = "plan.moves[%d]" % index
        if not isinstance(item, dict):
            raise ConfigError(where, "expected a move with vmid, from, to and wave")
        try:
            vmid = int(item["vmid"])
            source, target = str(item["from"]), str(item["to"])
        except (KeyError, TypeError, ValueError):
            raise ConfigError(where, "needs vmid, from and to, got %r" % (item,))
        guest = snapshot.guests.get(vmid)
        if guest is not None and guest.node == target:
            continue
        kind = str(item.get("type") or (guest.kind if guest else "vm"))
        move = planner.Move(
            vmid=vmid, name=str(item.get("name") or (guest.name if guest else vmid)), kind=kind,
            type=guest.type if guest else GUEST_TYPES.get(kind, "qemu"), source=source, target=target,
            reason=str(item.get("reason") or "balance"), mandatory=bool(item.get("mandatory")),
            wave=int(item.get("wave") or 1), mem_bytes=int(item.get("mem_bytes") or 0),
            running=bool(guest and guest.running))
        by_wave.setdefault(move.wave, []).append(move)
    return [by_wave[w] for w in sorted(by_wave)]
