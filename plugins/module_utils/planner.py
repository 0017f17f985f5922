# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plans: mandatory moves first, then moves that pay for themselves, as one ``Plan``.

``plan(snapshot, settings)`` is a pure function: the same snapshot and settings give the same
plan. It builds a ``plan_state.PlanningState`` (the ``metrics.Model`` of the cluster and the
``rules.build`` constraints) and repeats, until a whole pass changes nothing:
1. the mandatory moves of ``mandatory`` (maintenance drain, rule repairs, capacity relief;
   no move budget);
2. if ``balancing.balance_trigger`` says the cluster is out of balance, the improving moves of
   ``balancing.improve_balance``, within ``max_moves``.
Every placement is checked against capacity and rules in the state reached so far, so no
intermediate state overfills a node or breaks a rule. ``sequencer`` then orders the moves into
waves, and the plan reports loads before and after, the ``bounds`` lower bound and the gap to
it, what was left alone and why, failures, conflicts and warnings. ``summary`` renders it for
people; ``validate_moves`` re-checks planned moves against a fresh snapshot before they run.

New guests and returns after maintenance are placed by ``placement``, which gives the same
``Plan``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List

from ansible_collections.proxlb.balancer.plugins.module_utils import balancing, bounds, mandatory, metrics, sequencer
from ansible_collections.proxlb.balancer.plugins.module_utils.plan_state import PlanningState
from ansible_collections.proxlb.balancer.plugins.module_utils.settings import GIB

MAX_ROUNDS = 8                 # mandatory + balancing passes until nothing changes


@dataclass
class Move:
    vmid: int
    name: str
    kind: str              # vm | ct
    type: str              # qemu | lxc
    source: str
    target: str
    reason: str
    mandatory: bool
    wave: int = 0
    mem_bytes: int = 0
    running: bool = False

    def to_dict(self):
        return {"vmid": self.vmid, "name": self.name, "type": self.kind, "from": self.source, "to": self.target,
                "reason": self.reason, "mandatory": self.mandatory, "wave": self.wave, "mem_bytes": self.mem_bytes}


@dataclass
class Plan:
    moves: List[Move]
    waves: List[List[Move]]
    data: Dict[str, object] = field(default_factory=dict)

    @property
    def changed(self):
        return bool(self.moves)

    def to_dict(self):
        result = dict(self.data)
        result["moves"] = [m.to_dict() for m in self.moves]
        result["waves"] = len(self.waves)
        return result


def plan(snapshot, settings, immovable=None, balance=True, forbidden=None):
    """Compute a plan for ``snapshot`` under ``settings`` (pure). See the module docstring.

    ``immovable``: {vmid: reason} of guests that must stay (for example because PVE refused to
    move them). ``forbidden``: {vmid: {node: reason}} of targets a guest must not go to (PVE's
    migration check refused them: storage, mapped devices, HA rules). ``balance=False`` plans only the mandatory moves (a
    node evacuation).
    """
    state = PlanningState(snapshot, settings, immovable, forbidden)
    before = {name: state.model.pct(i) for i, name in enumerate(state.model.names)}
    bound = bounds.plan_lower_bound(state)
    # Balancing can free the room a mandatory move lacked, and a mandatory move can unbalance:
    # repeat until a whole pass changes nothing, so that planning again on the result (which is
    # exactly such a pass) plans nothing.
    trigger, stop_reason = None, None
    for _round in range(MAX_ROUNDS):
        steps = len(state.steps)
        failures = mandatory.plan_mandatory_moves(state)
        round_trigger = balancing.balance_trigger(state) if balance else dict(triggered=False, reason="balancing_off")
        trigger = trigger or round_trigger
        stop_reason = round_trigger["reason"]
        if round_trigger["triggered"]:
            stop_reason = balancing.improve_balance(state)
        if len(state.steps) == steps or stop_reason == "max_moves":
            break
    moves = final_moves(state)
    seq = sequencer.sequence(PlanningState(snapshot, settings, immovable, forbidden), moves, settings.max_moves_per_node)
    return assemble(state, snapshot, settings, before, bound, trigger, stop_reason, failures, seq)


# -- results ---------------------------------------------------------------------------------
def final_moves(state):
    """One move per guest: from where it was to where it ends (chains A->B->C become A->C)."""
    first, last = {}, {}
    for vmid, source, target, reason, is_mandatory in state.steps:
        if vmid not in first:
            first[vmid] = (source, reason, is_mandatory)
        last[vmid] = target
    moves = []
    for vmid, (source, reason, is_mandatory) in first.items():
        target = last[vmid]
        if source == target:
            continue
        g = state.guest(vmid)
        moves.append(Move(vmid=vmid, name=g.name, kind=g.kind, type=g.type, source=state.model.names[source],
                          target=state.model.names[target], reason=reason, mandatory=is_mandatory,
                          mem_bytes=metrics.memory_use(g) or g.maxmem_bytes, running=g.running))
    return moves


def assemble(state, snapshot, settings, before, bound, trigger, stop_reason, failures, seq):
    """The ``Plan`` of a planning run: ``state`` after planning, ``before`` {node: load pct} at the
    start, the lower ``bound``, why balancing ran and stopped, the failures and the sequence."""
    after_model = seq.after
    after = {n: after_model.pct(after_model.index[n]) for n in state.constraints.eligible}
    before_stats = metrics.stats([before[n] for n in state.constraints.eligible])
    after_stats = metrics.stats(list(after.values()))
    moves = seq.moves
    nodes = {}
    for name in state.model.names:
        role = ("maintenance" if name in state.constraints.maintenance else "ignored" if name in state.constraints.ignored_nodes
                else "offline" if not snapshot.nodes[name].online else "balanced")
        i = state.node_index[name]
        nodes[name] = dict(role=role, before_pct=round(before[name], 2), after_pct=round(after_model.pct(i), 2),
                           moves_in=sum(1 for mv in moves if mv.target == name),
                           moves_out=sum(1 for mv in moves if mv.source == name))
    left_alone = [dict(vmid=v, name=snapshot.guests[v].name, node=snapshot.guests[v].node, reason=r)
                  for v, r in sorted(state.constraints.immovable.items())]
    for failure in failures:
        for v in failure["vmids"]:
            left_alone.append(dict(vmid=v, name=snapshot.guests[v].name, node=snapshot.guests[v].node, reason="no_fit",
                                   rule=failure["reason"], detail=failure["detail"]))
    data = dict(
        method=settings.method, mode=settings.mode, settings=settings.to_dict(),
        cluster=dict(pve_version=snapshot.pve_version, cluster_name=snapshot.cluster_name, nodes=len(snapshot.nodes),
                     guests=len(snapshot.guests), api_calls=snapshot.api_calls),
        trigger=trigger, stop_reason=stop_reason, nodes=nodes,
        metrics=dict(before=before_stats, after=after_stats, lower_bound=bound,
                     gap=dict(max_pp=round(after_stats["max_pct"] - bound["max_pct"], 2),
                              spread_pp=round(after_stats["spread_pp"] - bound["spread_pp"], 2))),
        moves_count=len(moves), mandatory_count=sum(1 for mv in moves if mv.mandatory),
        mem_moved_bytes=sum(mv.mem_bytes for mv in moves),
        left_alone=left_alone, failures=failures,
        unsequenced=[mv.to_dict() for mv in seq.unsequenced],
        rule_conflicts=state.constraints.conflicts, warnings=list(state.constraints.warnings) + list(seq.warnings),
    )
    result = Plan(moves=moves, waves=seq.waves, data=data)
    result.data["summary"] = summary(result)
    return result


def summary(plan_or_dict):
    """A short human-readable table: node loads before/after and the moves."""
    data = plan_or_dict.to_dict() if isinstance(plan_or_dict, Plan) else plan_or_dict
    lines = []
    before, after = data["metrics"]["before"], data["metrics"]["after"]
    lines.append("%s (%s): spread %.1f -> %.1f pp, max %.1f -> %.1f %%, %d move(s) in %d wave(s), %.1f GiB"
                 % (data["method"], data["mode"], before["spread_pp"], after["spread_pp"], before["max_pct"], after["max_pct"],
                    data["moves_count"], data["waves"], data["mem_moved_bytes"] / GIB))
    lines.append("%-16s %-12s %8s %8s %4s %4s" % ("node", "role", "before", "after", "in", "out"))
    for name, node in sorted(data["nodes"].items()):
        lines.append("%-16s %-12s %7.1f%% %7.1f%% %4d %4d"
                     % (name, node["role"], node["before_pct"], node["after_pct"], node["moves_in"], node["moves_out"]))
    for move in data["moves"]:
        lines.append("wave %-3d %-5d %-20s %s -> %s  %.1f GiB  %s"
                     % (move["wave"], move["vmid"], move["name"][:20], move["from"], move["to"], move["mem_bytes"] / GIB, move["reason"]))
    if not data["moves"]:
        lines.append("no moves: %s" % data["stop_reason"])
    for conflict in data["rule_conflicts"]:
        lines.append("conflict: %s" % conflict["message"])
    for warning in data["warnings"]:
        lines.append("warning: %s" % warning)
    return "\n".join(lines)


# -- checks for the executor -------------------------------------------------------------------
def validate_moves(snapshot, settings, moves):
    """Which of ``moves`` are no longer valid on a fresh ``snapshot``, applied in order? {vmid: reason}"""
    state = PlanningState(snapshot, settings)
    invalid = {}
    for move in moves:
        guest = snapshot.guests.get(move.vmid)
        if guest is None:
            invalid[move.vmid] = "guest no longer exists"
            continue
        if guest.node != move.source or state.location.get(move.vmid) != state.node_index.get(move.source):
            invalid[move.vmid] = "guest is on %s now, not %s" % (guest.node, move.source)
            continue
        if guest.lock:
            invalid[move.vmid] = "guest is locked (%s)" % guest.lock
            continue
        target = state.node_index.get(move.target)
        if target is None:
            invalid[move.vmid] = "target node %s no longer exists" % move.target
            continue
        why = state.can_place([move.vmid], target)
        if why:
            invalid[move.vmid] = "target %s: %s" % (move.target, why)
            continue
        state.apply([move.vmid], target, move.reason, move.mandatory)
    return invalid
