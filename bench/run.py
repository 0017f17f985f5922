# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planner benchmark: speed and quality on generated clusters served by the PVE simulator.

    python bench/run.py [--quick] [--sizes 3x15,8x120,...] [--seeds N] [--out bench/RESULTS.md]
                        [--execute | --execute-only] [--exec-speed 20]

For every cluster: generate a seeded scenario, serve it with tools/pvesim over HTTPS, collect a
snapshot through the real client, plan with default settings, apply the plan the way PVE would
report the result and plan again, and compare with a greedy hot -> cold baseline (greedy.py)
that has to reach the same final spread. Then time best-node placement on the largest cluster.
With --execute (or --execute-only) it also runs plans against the simulator with the executor
(execute.py) and adds that section to the report. See bench/README.md for the columns and the targets.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time

import after
import execute
import greedy
from proxlb_import import REPO, collector, placement, planner, pve_api, pvesim, settings as settings_mod

GIB = 1024 ** 3
DEFAULT_SIZES = "3x15,5x40,8x120,16x460,32x2000,64x6000"
QUICK_SIZES = "3x15,8x120,16x460"
MANY_SEEDS_BELOW = 1000        # clusters with fewer guests run with --seeds seeds, larger ones with seed 1
PLAN_REPEATS = 3
TOKEN_ID = "proxlb"
TOKEN_SECRET = "00000000-0000-4000-8000-000000000001"
NEW_GUEST = {"memory_bytes": 4 * GIB, "cores": 2}
BEST_NODE_COUNTS = (1, 50)

TARGET_PLAN_S = 2.0
TARGET_BEST_NODE_S = 0.1
TARGET_BEST_NODE_50_S = 1.0
TARGET_BOUND_SLACK_PP = 1.0


# -- running -----------------------------------------------------------------------------------
def parse_sizes(text):
    sizes = []
    for item in text.split(","):
        item = item.strip().lower()
        if not item:
            continue
        nodes, sep, guests = item.partition("x")
        if not sep or not nodes.isdigit() or not guests.isdigit():
            raise argparse.ArgumentTypeError("'%s' is not NODESxGUESTS, e.g. 8x120" % item)
        sizes.append((int(nodes), int(guests)))
    if not sizes:
        raise argparse.ArgumentTypeError("no cluster sizes given")
    return sizes


def cases(sizes, seeds):
    result = []
    for nodes, guests in sizes:
        count = seeds if guests < MANY_SEEDS_BELOW else 1
        result.extend((nodes, guests, seed) for seed in range(1, count + 1))
    return result


def collect(scenario):
    """Serve ``scenario`` and collect it through the real client: (snapshot, api_calls, seconds)."""
    with pvesim.Simulator(scenario=scenario, port=0) as sim:
        conn = pve_api.ConnectionSettings(hosts=[sim.host], port=sim.port, user="root@pam", token_id=TOKEN_ID,
                                          token_secret=TOKEN_SECRET, ca_path=sim.ca_path)
        sim.reset_calls()
        start = time.perf_counter()
        client = pve_api.open_client(conn)
        snap = collector.collect(client)
        seconds = time.perf_counter() - start
        calls = sim.calls()["total"]
    return snap, calls, seconds


def best_of(repeats, func, *args, **kwargs):
    """(fastest wall time in seconds, results of every run)."""
    best, results = None, []
    for _run in range(repeats):
        start = time.perf_counter()
        results.append(func(*args, **kwargs))
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    return best, results


def move_key(plan):
    return [(m.vmid, m.source, m.target, m.wave) for m in plan.moves]


def bench_cluster(nodes, guests, seed, settings, repeats):
    """One row of the report: collection, plan, second plan and greedy comparison."""
    snap, calls, collect_s = collect(pvesim.generate(nodes, guests, seed))
    row = {"cluster": "%dx%d s%d" % (nodes, guests, seed), "nodes": nodes, "guests": guests, "seed": seed,
           "calls": calls, "collect_s": collect_s, "balanciness": settings.balanciness, "snapshot": snap, "notes": []}
    plan = _bench_plan(row, snap, settings, repeats)
    _bench_greedy(row, snap, settings, [m for m in plan.moves if m.mandatory])
    return row


def _bench_plan(row, snap, settings, repeats):
    plan_s, plans = best_of(repeats, planner.plan, snap, settings)
    plan = plans[0]
    data = plan.data
    found = data["metrics"]
    if any(move_key(p) != move_key(plan) for p in plans[1:]):
        row["notes"].append("plans differ between runs")
    if data.get("unsequenced"):
        row["notes"].append("%d unsequenced move(s)" % len(data["unsequenced"]))
    result = after.apply_moves(snap, plan.moves)
    measured = after.balance_stats(result, settings)["spread_pp"]
    if abs(measured - found["after"]["spread_pp"]) > 0.05:
        row["notes"].append("reported spread %.2f, measured after applying %.2f" % (found["after"]["spread_pp"], measured))
    hot = after.overcommitted(result, settings)
    if hot:
        row["notes"].append("overcommitted after the plan: %s" % ", ".join(hot))
    second = planner.plan(result, settings)
    row.update({
        "plan_s": plan_s, "moves": len(plan.moves), "mandatory": data["mandatory_count"], "gib": data["mem_moved_bytes"] / GIB,
        "spread_before": found["before"]["spread_pp"], "spread_after": found["after"]["spread_pp"], "spread_measured": measured,
        "max_before": found["before"]["max_pct"], "max_after": found["after"]["max_pct"],
        "bound_spread": found["lower_bound"]["spread_pp"], "bound_binding": found["lower_bound"]["binding"],
        "gap": found["gap"]["spread_pp"], "stop": data["stop_reason"], "waves": len(plan.waves),
        "second_moves": len(second.moves),
    })
    return plan


def _bench_greedy(row, snap, settings, mandatory):
    """Greedy runs start after our mandatory moves, which count for them too."""
    start = after.apply_moves(snap, mandatory)
    target = row["spread_measured"]
    for key, run_target, largest_first in (("greedy", target, True), ("small", target, False), ("floor", 0.0, True)):
        result = greedy.balance(start, settings, run_target, largest_first=largest_first)
        moves = _chain(mandatory, result.moves)
        row[key + "_moves"] = len(moves)
        row[key + "_gib"] = sum(m.mem_bytes for m in moves) / GIB
        row[key + "_spread"] = after.balance_stats(after.apply_moves(snap, moves), settings)["spread_pp"]
        row[key + "_stop"] = result.stop_reason
        row[key + "_reached"] = result.stop_reason == "target_reached"


def _chain(first, then):
    """Moves ``first`` followed by ``then``, one per guest (A->B->C becomes A->C)."""
    origin, final = {}, {}
    for move in list(first) + list(then):
        origin.setdefault(move.vmid, move)
        final[move.vmid] = move.target
    return [greedy.GreedyMove(vmid=vmid, source=move.source, target=final[vmid], mem_bytes=move.mem_bytes)
            for vmid, move in origin.items() if move.source != final[vmid]]


def best_node_timing(row, settings, repeats):
    snap = row["snapshot"]
    request = placement.NewGuest(**NEW_GUEST)
    results = []
    for count in BEST_NODE_COUNTS:
        seconds, runs = best_of(repeats, placement.place_new_guests, snap, settings, request, count=count)
        placed = runs[0][0]
        results.append({"cluster": row["cluster"], "count": count, "seconds": seconds, "per_answer": seconds / count,
                        "placed": sum(1 for p in placed if p is not None), "nodes_used": len({p for p in placed if p})})
    return results


# -- targets -----------------------------------------------------------------------------------
def spread_ok(row):
    """Final spread within balanciness when the bound allows it, else within 1 pp of the bound."""
    final = row["spread_measured"]
    if row["bound_spread"] <= row["balanciness"]:
        return final <= row["balanciness"] + 1e-6
    return final <= row["bound_spread"] + TARGET_BOUND_SLACK_PP + 1e-6


def beats_greedy(row):
    """better (fewer moves and less memory), even (neither more), worse, n/a (nobody moved), or
    greedy short (greedy could not reach our spread)."""
    if not row["greedy_reached"]:
        return "greedy short"
    if row["moves"] == 0 and row["greedy_moves"] == 0:
        return "n/a"
    gib, greedy_gib = round(row["gib"], 1), round(row["greedy_gib"], 1)
    if row["moves"] < row["greedy_moves"] and gib < greedy_gib:
        return "better"
    if row["moves"] <= row["greedy_moves"] and gib <= greedy_gib:
        return "even"
    return "worse"


def targets(rows, best):
    checks = []
    big = [r for r in rows if (r["nodes"], r["guests"]) == (64, 6000)] or [max(rows, key=lambda r: r["guests"])]
    slow = [r for r in big if r["plan_s"] >= TARGET_PLAN_S]
    checks.append(("%s plan < %g s" % (big[0]["cluster"].split()[0], TARGET_PLAN_S), not slow,
                   ", ".join("%s %.3f s" % (r["cluster"], r["plan_s"]) for r in big)))
    again = [r for r in rows if r["second_moves"]]
    checks.append(("second plan makes 0 moves on every cluster", not again,
                   ", ".join("%s: %d" % (r["cluster"], r["second_moves"]) for r in again) or "all 0"))
    wide = [r for r in rows if not spread_ok(r)]
    detail = ", ".join("%s: %.2f (bound %.2f, greedy floor %.2f)" % (r["cluster"], r["spread_measured"], r["bound_spread"], r["floor_spread"])
                       for r in wide)
    checks.append(("final spread <= balanciness when the bound allows, else <= bound + %g pp" % TARGET_BOUND_SLACK_PP, not wide,
                   detail or "all clusters"))
    verdicts = {r["cluster"]: beats_greedy(r) for r in rows}
    worse = [c for c, v in verdicts.items() if v == "worse"]
    detail = "; ".join("%s: %d vs %d moves, %.1f vs %.1f GiB" % (r["cluster"], r["moves"], r["greedy_moves"], r["gib"], r["greedy_gib"])
                       for r in rows if r["cluster"] in worse) or "never worse"
    for verdict, text in (("better", "Better on"), ("even", "Even (one equal, none more) on"),
                          ("greedy short", "Greedy could not reach our spread on")):
        same = [c for c, v in verdicts.items() if v == verdict]
        if same:
            detail += ". %s %s" % (text, ", ".join(same))
    checks.append(("fewer migrations and less memory moved than greedy for the same spread", not worse, detail))
    for entry in best:
        if entry["count"] == 1:
            checks.append(("best node < %g ms per answer" % (TARGET_BEST_NODE_S * 1000), entry["seconds"] < TARGET_BEST_NODE_S,
                           "%s: %.1f ms" % (entry["cluster"], entry["seconds"] * 1000)))
        else:
            checks.append(("best node count %d < %g s" % (entry["count"], TARGET_BEST_NODE_50_S), entry["seconds"] < TARGET_BEST_NODE_50_S,
                           "%s: %.3f s (%.1f ms per answer)" % (entry["cluster"], entry["seconds"], entry["per_answer"] * 1000)))
    return checks


# -- output ------------------------------------------------------------------------------------
def _ratio(ours, theirs):
    return "%.2f" % (ours / theirs) if theirs else "-"


def markdown_table(header, lines):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out.extend("| " + " | ".join(str(cell) for cell in line) + " |" for line in lines)
    return "\n".join(out)


def plan_table(rows):
    header = ["cluster", "API calls", "collect s", "plan s", "moves", "mand.", "GiB moved", "spread pp before -> after",
              "max % before -> after", "bound spread pp", "gap pp", "stop", "waves", "2nd plan moves"]
    lines = []
    for r in rows:
        lines.append([r["cluster"], r["calls"], "%.3f" % r["collect_s"], "%.3f" % r["plan_s"], r["moves"], r["mandatory"],
                      "%.1f" % r["gib"], "%.2f -> %.2f" % (r["spread_before"], r["spread_after"]),
                      "%.1f -> %.1f" % (r["max_before"], r["max_after"]), "%.2f (%s)" % (r["bound_spread"], r["bound_binding"]),
                      "%.2f" % r["gap"], r["stop"], r["waves"], r["second_moves"]])
    return markdown_table(header, lines)


def greedy_table(rows):
    header = ["cluster", "target spread pp", "ours moves", "ours GiB", "greedy moves", "greedy GiB", "greedy spread pp",
              "moves ours/greedy", "GiB ours/greedy", "verdict", "smallest-first moves / GiB", "greedy floor pp (moves, stop)"]
    lines = []
    for r in rows:
        lines.append([r["cluster"], "%.2f" % r["spread_measured"], r["moves"], "%.1f" % r["gib"], r["greedy_moves"],
                      "%.1f" % r["greedy_gib"], "%.2f%s" % (r["greedy_spread"], "" if r["greedy_reached"] else " (%s)" % r["greedy_stop"]),
                      _ratio(r["moves"], r["greedy_moves"]), _ratio(r["gib"], r["greedy_gib"]), beats_greedy(r),
                      "%d / %.1f%s" % (r["small_moves"], r["small_gib"], "" if r["small_reached"] else " (%s)" % r["small_stop"]),
                      "%.2f (%d, %s)" % (r["floor_spread"], r["floor_moves"], r["floor_stop"])])
    return markdown_table(header, lines)


def best_table(best):
    header = ["cluster", "new guests", "computation s", "per answer ms", "placed", "nodes used"]
    lines = [[b["cluster"], b["count"], "%.3f" % b["seconds"], "%.1f" % (b["per_answer"] * 1000), b["placed"], b["nodes_used"]]
             for b in best]
    return markdown_table(header, lines)


def target_table(checks):
    return markdown_table(["target", "result", "detail"], [[name, "met" if ok else "MISSED", detail] for name, ok, detail in checks])


def notes_block(rows):
    lines = []
    for r in rows:
        lines.extend("- %s: %s" % (r["cluster"], note) for note in r["notes"])
    return "\n".join(lines)


def report(rows, best, checks, settings, quick):
    today = datetime.date.today().isoformat()
    parts = [
        "# Planner benchmark results",
        "",
        "Date: %s. Machine: %d CPU cores. Run: `python bench/run.py%s`." % (today, os.cpu_count() or 0, " --quick" if quick else ""),
        "Settings: defaults (method %s, mode %s, balanciness %g, target spread %g pp). Column meanings: bench/README.md."
        % (settings.method, settings.mode, settings.balanciness, settings.target_spread),
        "",
        "## Plan",
        "",
        plan_table(rows),
        "",
        "## Against the greedy baseline (same final spread)",
        "",
        greedy_table(rows),
        "",
        "## Best node (computation only; new guest: %d GiB, %d cores)" % (NEW_GUEST["memory_bytes"] // GIB, NEW_GUEST["cores"]),
        "",
        best_table(best),
        "",
        "## Targets",
        "",
        target_table(checks),
    ]
    notes = notes_block(rows)
    if notes:
        parts += ["", "## Notes", "", notes]
    return "\n".join(parts) + "\n"


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Benchmark the balancing planner on simulated clusters.")
    parser.add_argument("--quick", action="store_true", help="small clusters, one seed (%s)" % QUICK_SIZES)
    parser.add_argument("--sizes", type=parse_sizes, help="comma-separated NODESxGUESTS (default %s)" % DEFAULT_SIZES)
    parser.add_argument("--seeds", type=int, help="seeds per cluster under %d guests (default 3, --quick 1)" % MANY_SEEDS_BELOW)
    parser.add_argument("--out", help="write the report here (default bench/RESULTS.md; --quick writes none)")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when a target is missed")
    parser.add_argument("--execute", action="store_true", help="also run the execution benchmark (bench/execute.py)")
    parser.add_argument("--execute-only", action="store_true",
                        help="run only the execution benchmark; the report file keeps its planner sections")
    parser.add_argument("--exec-speed", type=float, default=execute.DEFAULT_SPEED,
                        help="simulator speed for the execution benchmark (default %g)" % execute.DEFAULT_SPEED)
    args = parser.parse_args(argv)
    args.sizes = args.sizes or parse_sizes(QUICK_SIZES if args.quick else DEFAULT_SIZES)
    if args.seeds is None:
        args.seeds = 1 if args.quick else 3
    if args.out is None and not args.quick:
        args.out = os.path.join(REPO, "bench", "RESULTS.md")
    return args


def run(sizes, seeds, settings):
    """(rows, best-node timings) for every cluster of the run."""
    rows = []
    for nodes, guests, seed in cases(sizes, seeds):
        print("%dx%d seed %d ..." % (nodes, guests, seed), file=sys.stderr, flush=True)
        rows.append(bench_cluster(nodes, guests, seed, settings, PLAN_REPEATS))
    largest = max(rows, key=lambda r: (r["guests"], r["nodes"]))
    print("best node on %s ..." % largest["cluster"], file=sys.stderr, flush=True)
    return rows, best_node_timing(largest, settings, PLAN_REPEATS)


def log(text):
    print(text, file=sys.stderr, flush=True)


def main(argv=None):
    args = parse_args(argv)
    checks = []
    exec_text = None
    if args.execute or args.execute_only:
        exec_rows = execute.run_all(args.exec_speed, log=log)
        exec_text = execute.section(exec_rows, args.exec_speed)
        checks.extend(execute.checks(exec_rows))
    if args.execute_only:
        text = exec_text
        if args.out:
            execute.store_section(args.out, text)
    else:
        settings = settings_mod.BalanceSettings.from_params({})
        rows, best = run(args.sizes, args.seeds, settings)
        checks = targets(rows, best) + checks
        text = report(rows, best, checks, settings, args.quick)
        # Without --execute an existing execution section of the report file is kept.
        extra = exec_text or execute.existing_section(args.out)
        if extra:
            text += "\n" + extra
        if args.out:
            with open(args.out, "w", encoding="utf-8") as handle:
                handle.write(text)
    print(text)
    if args.out:
        log("written to %s" % os.path.relpath(args.out))
    missed = [name for name, ok, _detail in checks if not ok]
    if missed:
        log("%d target(s) missed" % len(missed))
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
