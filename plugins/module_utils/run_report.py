# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The report of a run: each move's outcome, each wave's counts and timings, where the guests
ended up, and the result dict the modules return.

The same report describes a real run (``executor.execute``) and a check-mode run
(``check_mode_report``: every move ``planned``). No Ansible imports, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from ansible_collections.proxlb.balancer.plugins.module_utils import metrics

# Move outcomes.
OK = "ok"
FAILED = "failed"
SKIPPED = "skipped"
NOT_STARTED = "not_started"
PLANNED = "planned"        # check mode: the move would run


@dataclass
class MoveOutcome:
    move: object
    wave: int
    status: str = NOT_STARTED
    upid: Optional[str] = None
    ha_upid: Optional[str] = None
    duration_s: Optional[float] = None
    error: Optional[str] = None
    final_node: Optional[str] = None
    note: Optional[str] = None

    def to_dict(self):
        data = self.move.to_dict()
        data.update(wave=self.wave, status=self.status, upid=self.upid, ha_upid=self.ha_upid,
                    duration_s=None if self.duration_s is None else round(self.duration_s, 2),
                    error=self.error, final_node=self.final_node, note=self.note)
        return data

    def line(self):
        """One progress line: ``wave 1  101 web1  pve1 -> pve2  ok  4.2 s``."""
        move = self.move
        text = "wave %d  %d %s  %s -> %s  %s" % (self.wave, move.vmid, move.name, move.source, move.target, self.status)
        if self.duration_s is not None:
            text += "  %.1f s" % self.duration_s
        if self.final_node and self.final_node != move.target and self.status != NOT_STARTED:
            text += "  (now on %s)" % self.final_node
        if self.error or self.note:
            text += "  - %s" % (self.error or self.note)
        return text


@dataclass
class WaveReport:
    wave: int
    moves: int = 0
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    not_started: int = 0
    replanned: bool = False
    duration_s: float = 0.0
    longest_s: float = 0.0          # longest migration of the wave
    api_calls: int = 0

    def to_dict(self):
        data = dict(self.__dict__)
        data["duration_s"] = round(self.duration_s, 2)
        data["longest_s"] = round(self.longest_s, 2)
        return data


@dataclass
class ExecutionReport:
    outcomes: List[MoveOutcome] = field(default_factory=list)
    waves: List[WaveReport] = field(default_factory=list)
    remaining: List[List[object]] = field(default_factory=list)   # waves deferred by max_waves
    stopped: bool = False
    stop_reason: Optional[str] = None
    replans: int = 0
    nodes_final: Dict[str, dict] = field(default_factory=dict)
    warnings: List[str] = field(default_factory=list)
    api_calls: int = 0
    duration_s: float = 0.0

    @property
    def failed_moves(self):
        return [o for o in self.outcomes if o.status == FAILED]

    @property
    def changed(self):
        """True when a guest of the plan is no longer where it was (what really happened)."""
        for o in self.outcomes:
            if o.final_node is not None and o.final_node != o.move.source:
                return True
            if o.final_node is None and o.status == OK:
                return True
        return False

    @property
    def failed(self):
        return bool(self.failed_moves) or self.stopped

    def remaining_moves(self):
        moves = []
        last = max([w.wave for w in self.waves] + [o.wave for o in self.outcomes] + [0])
        for index, wave in enumerate(self.remaining):
            number = last + index + 1
            for move in wave:
                data = move.to_dict()
                data["wave"] = number
                moves.append(data)
        return moves

    def progress(self):
        lines = [o.line() for o in self.outcomes]
        for wave in self.waves:
            lines.append("wave %d: %d ok, %d failed, %d skipped, %d not started in %.1f s (longest migration %.1f s,"
                         " %d API calls)%s" % (wave.wave, wave.ok, wave.failed, wave.skipped, wave.not_started,
                                               wave.duration_s, wave.longest_s, wave.api_calls,
                                               ", re-planned before it" if wave.replanned else ""))
        if self.stop_reason:
            lines.append("stopped: %s" % self.stop_reason)
        return lines

    def failure_message(self):
        parts = []
        failed = self.failed_moves
        if failed:
            parts.append("%d of %d migration(s) failed: %s" % (
                len(failed), len([o for o in self.outcomes if o.upid or o.status == FAILED]),
                "; ".join("%d (%s) %s -> %s: %s" % (o.move.vmid, o.move.name, o.move.source, o.move.target, o.error)
                          for o in failed)))
        if self.stopped:
            not_started = sum(1 for o in self.outcomes if o.status == NOT_STARTED)
            parts.append("stopped (%s); %d move(s) not started" % (self.stop_reason, not_started))
        return ". ".join(parts)

    def to_dict(self):
        return dict(
            moves=[o.to_dict() for o in self.outcomes],
            waves=[w.to_dict() for w in self.waves],
            stopped=self.stopped,
            stop_reason=self.stop_reason,
            replans=self.replans,
            nodes_final=self.nodes_final,
            api_calls=self.api_calls,
            duration_s=round(self.duration_s, 2),
            progress=self.progress(),
        )


def planned_outcomes(waves):
    """Check mode: the moves of ``waves`` as outcomes that would run (status ``planned``)."""
    outcomes = []
    for index, wave in enumerate(waves):
        number = (wave[0].wave or index + 1) if wave else index + 1
        outcomes.extend(MoveOutcome(move=m, wave=number, status=PLANNED) for m in wave)
    return outcomes


def placement_diff(outcomes):
    """``{before: {"vmid/name": node}, after: {...}}`` for guests that moved (or would, in check mode)."""
    before, after = {}, {}
    for outcome in outcomes:
        move = outcome.move
        if outcome.status == PLANNED:
            end = move.target
        elif outcome.final_node is not None:
            end = outcome.final_node
        else:
            end = move.target if outcome.status == OK else move.source
        if end == move.source:
            continue
        key = "%d/%s" % (move.vmid, move.name)
        before[key] = move.source
        after[key] = end
    return dict(before=before, after=after)


def node_loads(snapshot, settings):
    """Per node: status, guests and the balanced load in percent (as the plan reports it)."""
    model = metrics.Model(snapshot, settings)
    loads = {}
    for name in model.names:
        node = snapshot.nodes[name]
        guests = snapshot.guests_on(name)
        loads[name] = dict(status=node.status, guests=len(guests), running=sum(1 for g in guests if g.running),
                           load_pct=round(model.pct(model.index[name]), 2), mem_bytes=node.mem_bytes,
                           maxmem_bytes=node.maxmem_bytes)
    return loads


def check_mode_report(waves, snapshot, settings, max_waves=None):
    """Check mode: the waves that would run as ``planned`` outcomes, the rest as ``remaining``."""
    waves = [w for w in waves if w]
    limit = len(waves) if max_waves is None else max_waves
    return ExecutionReport(outcomes=planned_outcomes(waves[:limit]), remaining=waves[limit:],
                           nodes_final=node_loads(snapshot, settings))


def run_result(client, report, plan_data, summary, collect_calls, changed, diff):
    """What a module returns for a run: the report, the plan it carried out and the API calls.

    ``collect_calls`` is the client's count when the cluster had been read (and checked) and the
    run began; ``diff`` adds the placement diff (Ansible's diff mode).
    """
    result = report.to_dict()
    result.update(changed=changed, plan=plan_data, summary=summary,
                  api_calls=dict(total=client.calls, collect=collect_calls, execute=client.calls - collect_calls,
                                 by_endpoint=dict(client.calls_by_endpoint)))
    if diff:
        result["diff"] = placement_diff(report.outcomes)
    return result
