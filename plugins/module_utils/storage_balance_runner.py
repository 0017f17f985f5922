# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Everything ``proxlb_storage_balance`` does, without Ansible: read, inspect, plan, move, report.

1. Collect the cluster with storages and volumes (``collector.collect(with_storage=True)``; for
   node-local storages also one content listing per node and selected storage).
2. Plan once assuming every guest may move, read the configs of the guests whose volumes the
   plan would move (snapshots, fresh lock, config keys) and the replication jobs, and plan again;
   repeat while the plan picks guests not read yet, at most ``max_moves x INSPECT_FACTOR`` config
   reads in all. The final plan moves only volumes of guests whose config was read.
3. Check mode stops here (no write request). Otherwise ``storage_executor.execute``.
"""

from __future__ import annotations

import time

from ansible_collections.proxlb.balancer.plugins.module_utils import storage_executor, storage_plan
from ansible_collections.proxlb.balancer.plugins.module_utils.collector import (
    add_volumes, collect, read_guest_configs, replication_targets)
from ansible_collections.proxlb.balancer.plugins.module_utils.errors import PveApiError, RunFailed


def _read_local_volumes(client, snapshot, selected, warnings):
    """One content listing per (online node, selected local storage active there)."""
    for storage in snapshot.storages:
        node = snapshot.nodes.get(storage.node)
        if storage.storage not in selected or storage.shared or not storage.active or node is None or not node.online:
            continue
        try:
            entries = client.get("/nodes/%s/storage/%s/content" % (storage.node, storage.storage))
        except PveApiError as err:
            if err.kind in ("auth", "tls", "config"):
                raise
            warnings.append("could not read volumes on storage %s of node %s: %s" % (storage.storage, storage.node, err))
            continue
        add_volumes(snapshot, storage.storage, entries, node=storage.node)


def _read_replication(client, warnings):
    try:
        return replication_targets(client.get("/cluster/replication"))
    except PveApiError as err:
        if err.kind in ("auth", "tls", "config"):
            raise
        warnings.append("could not read the replication jobs (%s); replicated guests are not recognised" % err)
        return {}


def inspected_plan(client, snapshot, settings, selected, kind, warnings):
    """Plan, read the configs the plan needs, plan again (see the module docstring). Returns the plan."""
    configs, unreadable, replication = {}, {}, None
    budget = settings.inspect_budget
    while True:
        draft = storage_plan.plan(snapshot, settings, selected, kind, configs, replication, unreadable, discovery=True)
        wanted = [vmid for vmid in draft.guests if vmid not in configs and vmid not in unreadable]
        room = budget - len(configs) - len(unreadable)
        if not wanted or room <= 0:
            break
        if replication is None:
            replication = _read_replication(client, warnings)
        configs.update(read_guest_configs(client, snapshot, wanted[:room], unreadable))
        for vmid in wanted[:room]:
            if vmid not in configs:
                unreadable.setdefault(vmid, "the guest is gone")
    return storage_plan.plan(snapshot, settings, selected, kind, configs, replication, unreadable)


def storage_balance(client, settings, check_mode=False, sleep=time.sleep, clock=time.monotonic):
    """Run the whole storage balance -> (the module's result without ``diff``, the ``MoveReport``, warnings)."""
    warnings = []
    snapshot = collect(client, with_storage=True, warnings=warnings)
    selected, kind = storage_plan.select_storages(settings, snapshot)
    if kind == storage_plan.LOCAL:
        _read_local_volumes(client, snapshot, set(selected), warnings)
    result_plan = inspected_plan(client, snapshot, settings, selected, kind, warnings)
    plan_calls = client.calls
    if check_mode:
        report = storage_executor.planned_report(result_plan)
    else:
        report = storage_executor.execute(client, snapshot, result_plan, settings, sleep=sleep, clock=clock)
    plan_data = result_plan.to_dict()
    result = report.to_dict()
    result.update(
        changed=report.changed,
        plan=plan_data,
        summary=plan_data["summary"],
        api_calls=dict(total=client.calls, plan=plan_calls, execute=client.calls - plan_calls,
                       by_endpoint=dict(getattr(client, "calls_by_endpoint", {}))),
    )
    if check_mode:
        result["storages_final"] = {label: dict(used_bytes=p["used_bytes_before"], size_bytes=p["size_bytes"],
                                                fill_pct=p["fill_pct_before"]) for label, p in plan_data["pools"].items()}
    return result, report, warnings + list(plan_data["warnings"]) + report.warnings


def run_storage_balance(request):
    """The module result for a ``request.Request``; a failed move raises ``RunFailed`` with the result."""
    # Options are checked before the first request, storage names as soon as the cluster is known.
    settings = storage_plan.StorageBalanceSettings.from_params(request.params)
    result, report, warnings = storage_balance(request.connect(), settings, check_mode=request.check_mode)
    if request.diff:
        result["diff"] = storage_executor.volume_diff(report.outcomes)
    request.warnings.extend(warnings)
    for outcome in report.outcomes:
        if outcome.status == storage_executor.SKIPPED:
            move = outcome.move
            request.warnings.append("skipped %d (%s) %s %s -> %s: %s"
                                    % (move.vmid, move.name, move.key, move.source, move.target, outcome.error))
    if report.failed:
        raise RunFailed(report.failure_message(),
                        {key: value for key, value in result.items() if key not in ("plan", "summary")})
    return result
