# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hand-built clusters for planner tests: sizes in GiB, loads derived from the guests."""

from __future__ import annotations

import random
from dataclasses import replace

from ansible_collections.proxlb.balancer.plugins.module_utils.settings import GIB, BalanceSettings
from ansible_collections.proxlb.balancer.plugins.module_utils.snapshot import ClusterSnapshot, Guest, Node


def node(name, mem_gib=64, threads=16, status="online", base_gib=2.0, **kw):
    return Node(name=name, status=status, maxcpu=threads, maxmem_bytes=int(mem_gib * GIB), mem_bytes=int(base_gib * GIB), **kw)


def guest(vmid, host, mem_gib=4, used=1.0, cores=2, cpu=0.2, kind="qemu", status="running", tags=(), name=None, **kw):
    running = status == "running"
    return Guest(vmid=vmid, name=name or "g%d" % vmid, type=kind, node=host, status=status, maxcpu=cores,
                 cpu=cpu if running else 0.0, maxmem_bytes=int(mem_gib * GIB),
                 mem_bytes=int(mem_gib * used * GIB) if running else 0, tags=list(tags), **kw)


def cluster(nodes, guests, version="9.0.3", ha_rules=(), ha_groups=(), pools=None, crs=None, storages=()):
    """A snapshot whose node memory/cpu include the guests placed on them (as PVE reports)."""
    nodes = [replace(n) for n in nodes]
    guests = [replace(g) for g in guests]
    snap = ClusterSnapshot(pve_version=version, cluster_name="test", quorate=True,
                           nodes={n.name: n for n in nodes}, guests={g.vmid: g for g in guests},
                           storages=list(storages), ha_rules=list(ha_rules), ha_groups=list(ha_groups),
                           pools=dict(pools or {}), crs=dict(crs or {}))
    for n in snap.nodes.values():
        if n.status != "online":
            continue
        on = [g for g in guests if g.node == n.name and g.status == "running"]
        n.mem_bytes += sum(g.mem_bytes for g in on)
        n.cpu = min(1.0, sum(g.cpu * g.maxcpu for g in on) / n.maxcpu)
    if pools is None:
        for g in guests:
            if g.pool:
                snap.pools.setdefault(g.pool, []).append(g.vmid)
    return snap


def hot_cluster(extra_guests=(), **node_kw):
    """pve1 carries ten 8 GiB guests, pve2 and pve3 almost nothing."""
    nodes = [node("pve1", 128, **node_kw), node("pve2", 128), node("pve3", 128)]
    guests = [guest(100 + i, "pve1", mem_gib=8, used=0.9) for i in range(10)] + list(extra_guests)
    return cluster(nodes, guests)


def settings(**kw):
    return BalanceSettings.from_params(kw)


def placements(snapshot, plan):
    """vmid -> node of every guest once the plan has run."""
    where = {vmid: g.node for vmid, g in snapshot.guests.items()}
    for move in plan.moves:
        where[move.vmid] = move.target
    return where


def apply_moves(snapshot, moves):
    """The snapshot as PVE would report it after the moves: guests moved, node usage follows."""
    data = snapshot.to_dict()
    new = ClusterSnapshot.from_dict(data)
    for move in moves:
        g = new.guests[move.vmid]
        assert g.node == move.source, "move of %d from %s but it is on %s" % (move.vmid, move.source, g.node)
        if g.status == "running":
            new.nodes[move.source].mem_bytes -= g.mem_bytes
            new.nodes[move.target].mem_bytes += g.mem_bytes
            src, dst = new.nodes[move.source], new.nodes[move.target]
            src.cpu = max(0.0, src.cpu - g.cpu * g.maxcpu / src.maxcpu)
            dst.cpu = dst.cpu + g.cpu * g.maxcpu / dst.maxcpu
        g.node = move.target
    return new


def random_cluster(seed, n_nodes=None, n_guests=None):
    """A seeded cluster with uneven placement, tags and HA rules, for property tests."""
    rnd = random.Random(seed)
    n_nodes = n_nodes or rnd.randint(3, 8)
    n_guests = n_guests or rnd.randint(10, 60)
    nodes = [node("n%02d" % i, mem_gib=rnd.choice([64, 128, 256]), threads=rnd.choice([16, 32, 64])) for i in range(n_nodes)]
    sizes = [(1, 1.75), (2, 3.5), (4, 7), (8, 14), (8, 56)]
    weights = [48, 25, 11, 11, 4]
    guests = []
    hot = rnd.randrange(n_nodes)
    for k in range(n_guests):
        cores, mem = rnd.choices(sizes, weights)[0]
        host = nodes[hot if rnd.random() < 0.35 else rnd.randrange(n_nodes)]
        tags = []
        r = rnd.random()
        if r < 0.1:
            tags.append("plb_anti_affinity_grp%d" % rnd.randrange(2))
        elif r < 0.15:
            tags.append("plb_affinity_pair%d" % rnd.randrange(3))
        elif r < 0.18:
            tags.append("plb_pin_%s" % rnd.choice(nodes).name)
        elif r < 0.2:
            tags.append("plb_ignore")
        status = "stopped" if rnd.random() < 0.1 else "running"
        guests.append(guest(100 + k, host.name, mem_gib=mem, used=rnd.uniform(0.3, 1.0), cores=cores,
                            cpu=rnd.uniform(0.0, 0.6), status=status, tags=tags,
                            kind="lxc" if rnd.random() < 0.1 else "qemu"))
    # Start from a state that respects capacity: drop guests that would overfill their node.
    kept, used = [], {n.name: n.mem_bytes for n in nodes}
    caps = {n.name: n.maxmem_bytes for n in nodes}
    for g in guests:
        if used[g.node] + g.maxmem_bytes <= caps[g.node]:
            kept.append(g)
            used[g.node] += g.mem_bytes
    return cluster(nodes, kept)
