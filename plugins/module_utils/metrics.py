# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Node loads, capacity and fit: all the metric maths of the collection lives here (the lower
bounds on what a plan can reach, built on it, are in ``bounds``).

One unit per resource: memory in bytes, CPU in cores (a guest's ``cpu`` fraction times its
vCPUs, a node's fraction times its threads), disk in bytes of node-local storage. A node's
load in percent is ``load / capacity * 100`` where capacity already has the reserve taken off,
everywhere, so the percentages the planner optimises and the ones it reports are the same.

Hard limits checked for every placement, whatever is being balanced:
- memory: a node's memory in use plus the configured memory of a running guest that arrives
  (it may grow to that size) must stay within ``maxmem - reserve``; once placed, the guest
  counts with the memory it uses, which is what PVE reports on the next collection, so a
  plan and a plan made after it see the same numbers;
- vCPUs: the vCPUs of running guests on a node stay within ``threads * cpu_overcommit``;
- local disk: when volume sizes are known, they must fit the node's local storage.
"""

from __future__ import annotations

import math

from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ConfigError
from ansible_collections.proxlb.balancer.plugins.module_utils.settings import GIB

# In psi mode a node with (almost) no measured pressure would look infinitely roomy; this floor
# (percent) keeps the linear pressure model honest.
PSI_FLOOR_PCT = 0.5
PSI_KEYS = {"memory": "memory_some", "cpu": "cpu_some", "disk": "io_some"}


def guest_weight(guest, method, mode):
    """What one guest contributes to its node's balanced load, in the resource's unit."""
    if method == "disk":
        return float(guest.local_disk_bytes or 0)
    if not guest.running:
        return 0.0
    if method == "memory":
        return float(guest.maxmem_bytes if mode == "assigned" else guest.mem_bytes)
    if mode == "assigned":
        return float(guest.maxcpu)
    return float(guest.cpu) * float(guest.maxcpu)


def memory_need(guest):
    """Room a running guest needs on a node it moves to: it may grow to its configured size."""
    return max(guest.maxmem_bytes, guest.mem_bytes) if guest.running else 0


def memory_use(guest):
    """Memory a guest frees on the node it leaves."""
    return guest.mem_bytes if guest.running else 0


def vcpus(guest):
    return float(guest.maxcpu) if guest.running else 0.0


def local_storage(snapshot):
    """node -> (used_bytes, total_bytes) over node-local storages that hold guest volumes."""
    result = {}
    for storage in snapshot.storages:
        if storage.shared or not storage.holds_guests or storage.status not in ("available", "active"):
            continue
        used, total = result.get(storage.node, (0, 0))
        result[storage.node] = (used + storage.disk_bytes, total + storage.maxdisk_bytes)
    return result


class Model:
    """Mutable per-node state for one planning run over a fixed node list.

    Node index ``i`` refers to ``names[i]``. ``load``/``cap`` are the balanced metric; the
    ``mem_*``, ``vcpu*`` and ``disk*`` arrays are the hard limits.
    """

    def __init__(self, snapshot, settings):
        self.method = settings.method
        self.mode = settings.mode
        self.names = sorted(snapshot.nodes)
        self.index = {name: i for i, name in enumerate(self.names)}
        n = len(self.names)
        self.load = [0.0] * n
        self.cap = [0.0] * n
        self.mem_need = [0.0] * n
        self.mem_cap = [0.0] * n
        self.vcpu = [0.0] * n
        self.vcpu_cap = [0.0] * n
        self.disk = [0.0] * n
        self.disk_cap = [0.0] * n
        storage = local_storage(snapshot)
        weights = {}
        for guest in snapshot.guests.values():
            weights[guest.vmid] = guest_weight(guest, self.method, self.mode)
        on_node = {name: [] for name in self.names}
        for guest in snapshot.guests.values():
            if guest.node in on_node:
                on_node[guest.node].append(guest)
        for name in self.names:
            i = self.index[name]
            node = snapshot.nodes[name]
            guests = on_node[name]
            guest_sum = sum(weights[g.vmid] for g in guests)
            mem_reserve = settings.reserve(name, "memory") * GIB
            cpu_reserve = settings.reserve(name, "cpu")
            disk_reserve = settings.reserve(name, "disk") * GIB
            disk_used, disk_total = storage.get(name, (0, 0))
            self.mem_cap[i] = max(0.0, node.maxmem_bytes - mem_reserve)
            self.mem_need[i] = float(max(node.mem_bytes, sum(memory_use(g) for g in guests)))
            self.vcpu[i] = sum(vcpus(g) for g in guests)
            self.vcpu_cap[i] = max(0.0, node.maxcpu - cpu_reserve) * settings.cpu_overcommit
            self.disk[i] = float(disk_used)
            self.disk_cap[i] = max(0.0, disk_total - disk_reserve)
            if self.method == "memory":
                reported = node.mem_bytes if self.mode != "assigned" else 0.0
                self.cap[i] = self.mem_cap[i]
            elif self.method == "cpu":
                reported = node.cpu * node.maxcpu if self.mode != "assigned" else 0.0
                self.cap[i] = max(0.0, node.maxcpu - cpu_reserve)
            else:
                reported = disk_used if self.mode != "assigned" else 0.0
                self.cap[i] = self.disk_cap[i]
            # Host overhead (kernel, ZFS ARC, ...) is the part of the node's load no guest explains.
            base = max(0.0, reported - guest_sum)
            self.load[i] = base + guest_sum
        if self.mode == "psi":
            self._scale_for_pressure(snapshot)
        self.weights = weights

    def _scale_for_pressure(self, snapshot):
        """psi mode: model a node's pressure as proportional to its used load.

        The measured pressure p at used load u gives a per-node sensitivity p/u; expressing it
        as an effective capacity u*100/p lets the same percent maths predict pressure after moves.
        """
        key = PSI_KEYS[self.method]
        for name in self.names:
            i = self.index[name]
            node = snapshot.nodes[name]
            if not node.online:
                continue
            if key not in node.pressure:
                raise ConfigError("mode", "psi needs pressure data for node %s (PVE 9 RRD); collect with pressure or use mode used" % name)
            pressure = max(float(node.pressure[key]), PSI_FLOOR_PCT)
            if self.load[i] > 0:
                self.cap[i] = self.load[i] * 100.0 / pressure

    # -- queries ---------------------------------------------------------------------------
    def pct(self, i):
        return self.load[i] * 100.0 / self.cap[i] if self.cap[i] > 0 else 0.0

    def pct_after(self, i, delta):
        return (self.load[i] + delta) * 100.0 / self.cap[i] if self.cap[i] > 0 else float("inf")

    def fits(self, i, mem_bytes, vcpu_count, disk_bytes):
        """Would a node take this much more? (memory need, running vCPUs, local disk)"""
        if mem_bytes > 0 and self.mem_need[i] + mem_bytes > self.mem_cap[i]:
            return False
        if vcpu_count > 0 and self.vcpu[i] + vcpu_count > self.vcpu_cap[i] + 1e-9:
            return False
        if disk_bytes > 0 and self.disk[i] + disk_bytes > self.disk_cap[i]:
            return False
        return True

    def why_not_fit(self, i, mem_bytes, vcpu_count, disk_bytes):
        """Human reason a placement does not fit, or None."""
        if mem_bytes > 0 and self.mem_need[i] + mem_bytes > self.mem_cap[i]:
            return "memory: needs %.1f GiB, %.1f GiB free after reserve" % (
                mem_bytes / GIB, max(0.0, self.mem_cap[i] - self.mem_need[i]) / GIB)
        if vcpu_count > 0 and self.vcpu[i] + vcpu_count > self.vcpu_cap[i] + 1e-9:
            return "cpu: %g vCPUs would exceed the overcommit limit of %g" % (self.vcpu[i] + vcpu_count, self.vcpu_cap[i])
        if disk_bytes > 0 and self.disk[i] + disk_bytes > self.disk_cap[i]:
            return "disk: needs %.1f GiB of local storage, %.1f GiB free" % (
                disk_bytes / GIB, max(0.0, self.disk_cap[i] - self.disk[i]) / GIB)
        return None

    def over_capacity(self, i):
        return self.mem_need[i] > self.mem_cap[i]

    # -- updates ---------------------------------------------------------------------------
    def depart(self, i, weight, mem_use, vcpu_count, disk_bytes):
        self.load[i] -= weight
        self.mem_need[i] -= mem_use
        self.vcpu[i] -= vcpu_count
        self.disk[i] -= disk_bytes

    def arrive(self, i, weight, mem_use, vcpu_count, disk_bytes):
        self.load[i] += weight
        self.mem_need[i] += mem_use
        self.vcpu[i] += vcpu_count
        self.disk[i] += disk_bytes


def stats(values):
    """spread (max-min, pp), coefficient of variation, max, min and mean of percentages."""
    if not values:
        return dict(spread_pp=0.0, cv=0.0, max_pct=0.0, min_pct=0.0, mean_pct=0.0)
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / len(values)
    return dict(
        spread_pp=round(max(values) - min(values), 2),
        cv=round(math.sqrt(var) / mean, 4) if mean > 0 else 0.0,
        max_pct=round(max(values), 2),
        min_pct=round(min(values), 2),
        mean_pct=round(mean, 2),
    )
