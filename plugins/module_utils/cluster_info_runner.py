# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""proxlb_cluster_info without Ansible: read the cluster, summarise the nodes, optionally save
the snapshot."""

from __future__ import annotations

from ansible_collections.proxlb.balancer.plugins.module_utils.collector import collect


def run_cluster_info(request):
    """The module result for ``request`` (see ``request.Request``)."""
    params = request.params
    snapshot = collect(request.connect(), with_pressure=params["with_pressure"], pressure_window=params["pressure_window"],
                       with_local_volumes=params["with_local_volumes"], warnings=request.warnings)
    result = dict(
        changed=False,
        pve_version=snapshot.pve_version,
        cluster_name=snapshot.cluster_name,
        quorate=snapshot.quorate,
        guests_count=len(snapshot.guests),
        api_calls=snapshot.api_calls,
        nodes=node_summary(snapshot),
        snapshot=snapshot.to_dict(),
    )
    if params["dest"]:
        result["changed"] = request.write_if_changed(snapshot.to_json(indent=1) + "\n", params["dest"])
    return result


def node_summary(snapshot):
    """Per-node view for RV(nodes): usage in percent and guest counts."""
    summary = {}
    for name, node in snapshot.nodes.items():
        guests = snapshot.guests_on(name)
        summary[name] = dict(
            status=node.status,
            maxmem_bytes=node.maxmem_bytes,
            mem_bytes=node.mem_bytes,
            mem_pct=_pct(node.mem_bytes, node.maxmem_bytes),
            maxcpu=node.maxcpu,
            cpu_pct=round(100.0 * node.cpu, 1),
            guests=len(guests),
            running=sum(1 for g in guests if g.running),
            ha_maintenance=node.ha_maintenance,
        )
    return summary


def _pct(part, whole):
    return round(100.0 * part / whole, 1) if whole else 0.0
