# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""proxlb_rebalance without Ansible: plan (or take the given plan), carry it out wave by wave
with re-planning on drift, and report what happened.
"""

from __future__ import annotations

from dataclasses import replace

from ansible_collections.proxlb.balancer.plugins.module_utils import planner
from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ConfigError
from ansible_collections.proxlb.balancer.plugins.module_utils.executor import MOVED_IN_THIS_RUN

# Guest kind of a plan entry (``type``) -> PVE guest type.
GUEST_TYPES = {"vm": "qemu", "ct": "lxc"}


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
