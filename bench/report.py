# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTML plan report benchmark: page size and render time on generated clusters.

    python bench/report.py [--sizes 5x40,16x460,64x6000] [--drain N] [--repeats 5]

For every cluster: generate a seeded scenario (seed 1), serve it with tools/pvesim, collect it
through the real client, plan with default settings (and, with --drain N, once more draining the
first N nodes, which makes hundreds of moves on the large clusters), render the plan alone and
with a run result shaped like proxlb_rebalance's (every move ok, node memory known), and print
the page size and the fastest render time. Prints only; nothing is written.
"""

from __future__ import annotations

import argparse
import json
import time

import run
from proxlb_import import module_util, planner, pvesim, settings as settings_mod

plan_report = module_util("plan_report")

GIB = 1024 ** 3
DEFAULT_SIZES = "5x40,16x460,64x6000"


def run_result(plan_dict, snapshot):
    """What proxlb_rebalance returns after a run in which every move went through."""
    moves = [dict(m, status="ok", upid=None, ha_upid=None, duration_s=10.0, error=None, note=None, final_node=m["to"])
             for m in plan_dict["moves"]]
    waves = sorted({m["wave"] for m in moves})
    return dict(plan=plan_dict, moves=moves, stopped=False, stop_reason=None, replans=0,
                waves=[dict(wave=w, moves=sum(1 for m in moves if m["wave"] == w), ok=sum(1 for m in moves if m["wave"] == w),
                            failed=0, skipped=0, not_started=0, replanned=False, duration_s=10.0, longest_s=10.0, api_calls=8)
                       for w in waves],
                nodes_final={name: dict(status=node.status, mem_bytes=node.mem_bytes, maxmem_bytes=node.maxmem_bytes)
                             for name, node in snapshot.nodes.items()},
                api_calls=dict(total=6 + 8 * len(waves), collect=6, execute=8 * len(waves), by_endpoint={}), duration_s=10.0 * len(waves))


def fastest(repeats, func, *args, **kwargs):
    best, result = None, None
    for _run in range(repeats):
        start = time.perf_counter()
        result = func(*args, **kwargs)
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    return best, result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=run.parse_sizes, default=run.parse_sizes(DEFAULT_SIZES))
    parser.add_argument("--drain", type=int, default=4, help="also plan a drain of the first N nodes (0: no drain)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    header = "%-10s %-10s %6s %6s %8s %10s %10s %10s %10s" % (
        "cluster", "options", "moves", "waves", "left", "plan KiB", "page KiB", "run KiB", "render ms")
    print(header)
    print("-" * len(header))
    for nodes, guests in args.sizes:
        snap, _calls, _seconds = run.collect(pvesim.generate(nodes, guests, 1))
        option_sets = [("defaults", {})]
        if args.drain:
            option_sets.append(("drain %d" % args.drain, {"maintenance_nodes": sorted(snap.nodes)[:args.drain]}))
        for label, options in option_sets:
            data = planner.plan(snap, settings_mod.BalanceSettings.from_params(options)).to_dict()
            seconds, page = fastest(args.repeats, plan_report.render_plan_html, data)
            run_seconds, run_page = fastest(args.repeats, plan_report.render_result_html, run_result(data, snap))
            print("%-10s %-10s %6d %6d %8d %10.1f %10.1f %10.1f %5.1f/%4.1f" % (
                "%dx%d" % (nodes, guests), label, len(data["moves"]), data["waves"], len(data["left_alone"]),
                len(json.dumps(data)) / 1024.0, len(page.encode("utf-8")) / 1024.0, len(run_page.encode("utf-8")) / 1024.0,
                seconds * 1000, run_seconds * 1000))
    print("\nrender ms: plan alone / plan with the run; fastest of %d. Sizes are UTF-8 bytes of the page." % args.repeats)


if __name__ == "__main__":
    main()
