# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cluster after a list of migrations, and how balanced a cluster is.

``apply_moves`` mirrors what PVE reports on the next collection once the migrations ran: each
moved guest sits on its target, and the node figures follow the guests, the way the simulator
derives them (node memory = host base + memory of the guests on it; node CPU = busy cores /
threads, at most 1.0). Node-local storage usage is left as it was (the bench collects without
per-volume sizes, so guests carry no local disk figures).
"""

from __future__ import annotations

from dataclasses import replace

from proxlb_import import metrics, rules


def apply_moves(snapshot, moves):
    """A new snapshot with ``moves`` (anything with vmid, source, target) done in order (pure)."""
    guests = dict(snapshot.guests)
    nodes = dict(snapshot.nodes)
    for move in moves:
        guest = guests[move.vmid]
        if guest.node != move.source:
            raise ValueError("guest %d is on %s, the move starts on %s" % (move.vmid, guest.node, move.source))
        mem = guest.mem_bytes if guest.status != "stopped" else 0
        cores = guest.cpu * guest.maxcpu if guest.status == "running" else 0.0
        nodes[move.source] = _shifted(nodes[move.source], -mem, -cores)
        nodes[move.target] = _shifted(nodes[move.target], mem, cores)
        guests[move.vmid] = replace(guest, node=move.target)
    return replace(snapshot, nodes=nodes, guests=guests)


def _shifted(node, mem, cores):
    cpu = node.cpu
    if node.maxcpu:
        cpu = min(1.0, max(0.0, (node.cpu * node.maxcpu + cores) / node.maxcpu))
    return replace(node, mem_bytes=max(0, node.mem_bytes + mem), cpu=cpu)


def balance_stats(snapshot, settings):
    """metrics.stats of the balanced resource over the nodes that take part in balancing."""
    model = metrics.Model(snapshot, settings)
    eligible = rules.build(snapshot, settings).eligible
    return metrics.stats([model.pct(model.index[name]) for name in eligible])


def overcommitted(snapshot, settings):
    """Nodes whose memory in use exceeds their capacity after the reserve."""
    model = metrics.Model(snapshot, settings)
    return [name for name in model.names if model.over_capacity(model.index[name])]
