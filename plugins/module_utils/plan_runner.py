# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""proxlb_plan without Ansible: read the cluster (or a saved snapshot), plan, optionally save
the plan."""

from __future__ import annotations

import json

from ansible_collections.proxlb.balancer.plugins.module_utils import planner
from ansible_collections.proxlb.balancer.plugins.module_utils.collector import collect_for, load_snapshot
from ansible_collections.proxlb.balancer.plugins.module_utils.settings import BalanceSettings


def run_plan(request):
    """The module result for ``request`` (see ``request.Request``); never changes the cluster."""
    params = request.params
    settings = BalanceSettings.from_params(params)
    if params["snapshot"]:
        snapshot = load_snapshot(params["snapshot"])
    else:
        snapshot = collect_for(request.connect(), settings, request.warnings)
    plan = planner.plan(snapshot, settings)
    data = plan.to_dict()
    result = dict(changed=False, plan=data, summary=data["summary"], summary_lines=data["summary"].splitlines(),
                  changed_nodes=sorted({m.source for m in plan.moves} | {m.target for m in plan.moves}))
    if params["dest"]:
        result["dest"] = params["dest"]
        result["changed"] = request.write_if_changed(json.dumps(data, indent=1, sort_keys=True) + "\n", params["dest"])
    if request.write_report(result):
        result["changed"] = True
    return result
