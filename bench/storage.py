# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Storage balancing benchmark: plans and disk moves on generated clusters served by the simulator.

    python bench/storage.py [--sizes 8x200,20x600,64x2000] [--execute 8x200,20x600] [--speed 200]
                            [--max-moves 20] [--parallel 2] [--balanciness 10]

For every cluster: generate the seeded scenario (``pvesim.generate``; about a fifth of the VMs
have a data disk on the shared ``nfs-vm``, which ends up far fuller than ``ceph-vm``), serve it
over HTTPS and run what ``proxlb_storage_balance`` runs: collect with storages, plan with the
config reads the plan needs, and (for the sizes in ``--execute``) carry the moves out against the
simulator. Printed per cluster: API calls to plan, configs read, plan time, moves, GiB moved,
fill spread of the balanced storages before, planned after, and measured after the moves
(from the simulator's own storage usage), execution wall time and API calls, and whether a
second plan on the result is empty. Times depend on the machine and on ``--speed``.
"""

from __future__ import annotations

import argparse
import sys
import time

from proxlb_import import module_util, pve_api, pvesim

storage_plan = module_util("storage_plan")
runner = module_util("storage_balance_runner")

GIB = 1024 ** 3
TOKEN_ID = "proxlb"
TOKEN_SECRET = "00000000-0000-4000-8000-000000000001"


def parse_sizes(text):
    sizes = []
    for item in (text or "").split(","):
        if item.strip():
            nodes, _sep, guests = item.strip().lower().partition("x")
            sizes.append((int(nodes), int(guests)))
    return sizes


def measured_spread(state, storages):
    fills = [100.0 * state["storages"][name]["used"] / state["storages"][name]["total"] for name in storages]
    return max(fills) - min(fills) if fills else 0.0


def bench(nodes, guests, seed, settings, execute, speed):
    scenario = pvesim.generate(nodes, guests, seed)
    row = dict(cluster="gen:%d:%d:%d" % (nodes, guests, seed))
    with pvesim.Simulator(scenario=scenario, port=0, speed=speed) as sim:
        client = pve_api.open_client(pve_api.ConnectionSettings(
            hosts=["127.0.0.1:%d" % sim.port], token_id=TOKEN_ID, token_secret=TOKEN_SECRET, ca_path=sim.ca_path))
        sim.reset_calls()
        began = time.perf_counter()
        result, _report, _warnings = runner.storage_balance(client, settings, check_mode=True)
        row["plan_s"] = time.perf_counter() - began
        plan = result["plan"]
        calls = sim.calls()["by_endpoint"]
        row.update(plan_calls=sum(calls.values()),
                   configs=sum(v for k, v in calls.items() if k.endswith("/config")),
                   moves=plan["moves_count"], gib=plan["moved_bytes"] / float(GIB),
                   spread_before=plan["spread_pp_before"], spread_planned=plan["spread_pp_after"],
                   stop=plan["stop_reason"], left_alone=len(plan["left_alone"]))
        if not execute:
            return row
        sim.reset_calls()
        began = time.perf_counter()
        done, report, _warnings = runner.storage_balance(client, settings)
        row["exec_s"] = time.perf_counter() - began
        row["exec_calls"] = sum(sim.calls()["by_endpoint"].values())
        row["ok"] = sum(1 for o in report.outcomes if o.status == "ok")
        row["spread_measured"] = measured_spread(sim.state(), done["plan"]["storages"])
        again, _report, _warnings = runner.storage_balance(client, settings, check_mode=True)
        row["second_plan_moves"] = again["plan"]["moves_count"]
    return row


# (column, width, format of a value)
COLUMNS = (("cluster", 14, "%s"), ("plan_calls", 10, "%d"), ("configs", 7, "%d"), ("plan_s", 6, "%.2f"),
           ("moves", 5, "%d"), ("gib", 6, "%.0f"), ("spread_before", 13, "%.1f"), ("spread_planned", 14, "%.1f"),
           ("stop", 14, "%s"), ("left_alone", 10, "%d"), ("ok", 3, "%d"), ("spread_measured", 15, "%.1f"),
           ("exec_s", 6, "%.1f"), ("exec_calls", 10, "%d"), ("second_plan_moves", 17, "%d"))


def line(row=None):
    """One table line: the values of ``row``, or the column names."""
    cells = []
    for name, width, fmt in COLUMNS:
        text = name if row is None else ("-" if row.get(name) is None else fmt % row[name])
        cells.append(text.ljust(width) if fmt == "%s" else text.rjust(width))
    return "  ".join(cells)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--sizes", default="8x200,20x600,64x2000", help="clusters to plan, NODESxGUESTS,...")
    parser.add_argument("--execute", default="8x200,20x600", help="of those, the clusters whose moves are carried out")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--speed", type=float, default=200.0, help="simulator time acceleration for the moves")
    parser.add_argument("--max-moves", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--balanciness", type=float, default=10.0)
    args = parser.parse_args(argv)
    settings = storage_plan.StorageBalanceSettings.from_params(dict(
        max_moves=args.max_moves, parallel_moves=args.parallel, balanciness=args.balanciness))
    execute = set(parse_sizes(args.execute))
    print("storage balancing: max_moves %d, parallel_moves %d, balanciness %g pp, simulator speed %g"
          % (args.max_moves, args.parallel, args.balanciness, args.speed))
    print(line())
    for nodes, guests in parse_sizes(args.sizes):
        row = bench(nodes, guests, args.seed, settings, (nodes, guests) in execute, args.speed)
        print(line(row))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
