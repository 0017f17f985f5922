# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fingerprints of the plans made for the bench clusters, to prove a change left plans alone.

    python bench/digest.py [--sizes 3x15,...] [--seeds N] [--out FILE] [--compare FILE]

For every bench cluster (the same seeded clusters as run.py), collect it through the simulator,
plan with default settings and several option sets, and write one line per plan: the cluster,
the options, the number of moves and a hash of the moves (vmid, from, to, wave, reason). With
``--compare`` the lines are checked against an earlier file and every difference is printed;
the exit status is 1 when any plan changed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys

import run
from proxlb_import import planner, pvesim, settings as settings_mod

OPTION_SETS = {
    "default": {},
    "cpu-assigned": {"method": "cpu", "mode": "assigned"},
    "memory-assigned": {"mode": "assigned"},
    "drain": {"maintenance_nodes": ["node01"]},
}


def plan_lines(sizes, seeds):
    lines = []
    for nodes, guests, seed in run.cases(sizes, seeds):
        snap, _calls, _seconds = run.collect(pvesim.generate(nodes, guests, seed))
        for name, options in OPTION_SETS.items():
            params = dict(options)
            if "maintenance_nodes" in params:
                params["maintenance_nodes"] = [sorted(snap.nodes)[0]]
            settings = settings_mod.BalanceSettings.from_params(params)
            plan = planner.plan(snap, settings)
            moves = [(m.vmid, m.source, m.target, m.wave, m.reason) for m in plan.moves]
            digest = hashlib.sha256(json.dumps(moves).encode()).hexdigest()[:16]
            lines.append("%dx%d s%d %-16s moves=%-4d %s" % (nodes, guests, seed, name, len(moves), digest))
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=run.parse_sizes, default=run.parse_sizes(run.DEFAULT_SIZES))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out")
    parser.add_argument("--compare")
    args = parser.parse_args(argv)
    lines = plan_lines(args.sizes, args.seeds)
    text = "\n".join(lines) + "\n"
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    if args.compare:
        with open(args.compare) as handle:
            before = handle.read().splitlines()
        changed = [(a, b) for a, b in zip(before, lines) if a != b]
        for a, b in changed:
            print("changed:\n  before %s\n  after  %s" % (a, b))
        if len(before) != len(lines):
            print("the number of plans differs: %d before, %d now" % (len(before), len(lines)))
        print("%d plan(s) compared, %d changed" % (len(lines), len(changed)))
        return 1 if changed or len(before) != len(lines) else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
