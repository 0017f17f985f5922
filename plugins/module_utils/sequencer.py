# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Moves -> waves that are safe to run in parallel.

During a wave every migration holds memory on its source AND its target (a live migration
copies the guest before the source lets go), and for rules a guest in flight counts as present
on both nodes. Each arrival must also leave room for the guest to grow to its configured size.
A wave is built only from moves that fit under those conditions, with at most
``max_moves_per_node`` migrations into and out of any node. When nothing can start (two guests
must swap and neither fits first), one of them is parked on a third node and finishes later;
moves that still cannot be ordered are returned as ``unsequenced``, never dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import List


@dataclass
class Sequence:
    waves: List[list]
    moves: List[object]                 # every move, in wave order, wave numbers set (1-based)
    unsequenced: List[object] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    after: object = None                # metrics.Model after every sequenced wave


def sequence(state, moves, limit):
    """Order ``moves`` (planner order: mandatory first) into waves on ``state`` (mutated)."""
    pending = list(moves)
    waves, warnings = [], []
    while pending:
        wave = _build_wave(state, pending, limit, keep_order=True) or _build_wave(state, pending, limit, keep_order=False)
        if not wave:
            parked = _park(state, pending, limit)
            if parked is None:
                break
            park, pending = parked
            _admit(state, park, {}, {}, limit)
            wave = [park]
        _finish(state, wave)
        number = len(waves) + 1
        waves.append([replace(m, wave=number) for m in wave])
        done = {id(m) for m in wave}
        pending = [m for m in pending if id(m) not in done]
    if pending:
        warnings.append("%d move(s) could not be ordered without overfilling a node or breaking a rule; they are not planned"
                        % len(pending))
    ordered = [m for wave in waves for m in wave]
    return Sequence(waves=waves, moves=ordered, unsequenced=pending, warnings=warnings, after=state.model)


def _build_wave(state, pending, limit, keep_order):
    """Moves that can start together now.

    With ``keep_order`` a move waits while an earlier pending move touches one of its nodes:
    each node then sees its moves in the planner's order, and the planner checked every move in
    exactly that state, so the plan's own path is always found. Without it (only when nothing
    could start) any move that fits may go first.
    """
    wave, ins, outs, held = [], {}, {}, set()
    for move in pending:
        if keep_order and (move.source in held or move.target in held):
            held.update((move.source, move.target))
        elif _admit(state, move, ins, outs, limit):
            wave.append(move)
        elif keep_order:
            held.update((move.source, move.target))
    return wave


def _admit(state, move, ins, outs, limit):
    """Reserve room for ``move`` in the wave being built, if it can start now."""
    a, b = state.node_index[move.source], state.node_index[move.target]
    if state.location.get(move.vmid) != a or ins.get(b, 0) >= limit or outs.get(a, 0) >= limit:
        return False
    if state.can_place([move.vmid], b) is not None:
        return False
    state.arrive(move.vmid, b)
    ins[b] = ins.get(b, 0) + 1
    outs[a] = outs.get(a, 0) + 1
    return True


def _finish(state, wave):
    """The wave is done: sources let go of what left them."""
    for move in wave:
        state.depart(move.vmid, state.node_index[move.source])
        state.location[move.vmid] = state.node_index[move.target]


def _park(state, pending, limit):
    """Break a deadlock: move a guest that must leave a blocked target to a third node first."""
    sources = {}
    for move in pending:
        sources.setdefault(move.source, []).append(move)
    for blocked in pending:
        for leaving in sources.get(blocked.target, []):
            for c in sorted(state.eligible, key=lambda i: (state.model.pct(i), state.model.names[i])):
                name = state.model.names[c]
                if name in (leaving.source, leaving.target) or state.can_place([leaving.vmid], c) is not None:
                    continue
                park = replace(leaving, target=name, reason="parking")
                rest = replace(leaving, source=name)
                updated = [rest if m is leaving else m for m in pending]
                return park, updated
    return None
