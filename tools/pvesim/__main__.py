"""Command line: ``python -m pvesim --scenario demo --port 0 --ready-file /tmp/pvesim.json``."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading

from .scenarios import ScenarioError
from .server import Simulator, is_loopback


def _write_ready_file(path: str, sim: Simulator) -> None:
    data = {"url": sim.url, "host": sim.host, "port": sim.port, "ca_path": os.path.abspath(sim.ca_path), "pid": os.getpid()}
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
        handle.write("\n")
    # Readers poll for the file; os.replace makes it appear complete or not at all.
    os.replace(tmp, path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pvesim", description="Loopback HTTPS simulator of the Proxmox VE API.")
    parser.add_argument("--scenario", default="demo",
                        help="demo | pve8 | pve9 | path to a scenario JSON file | gen:<nodes>:<guests>:<seed> (default: demo)")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8006, help="TCP port; 0 picks a free one (default: 8006)")
    parser.add_argument("--cert-dir", default=None,
                        help="directory for ca.pem and the server certificate (reused when valid; default: a temporary directory)")
    parser.add_argument("--speed", type=float, default=None,
                        help="time acceleration of migrations and HA delays (default: the scenario's, usually 1)")
    parser.add_argument("--ready-file", default=None, help="write url/host/port/ca_path/pid as JSON here once listening")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if not is_loopback(args.host):
        print("pvesim: refusing to listen on non-loopback address %s" % args.host, file=sys.stderr)
        return 2
    try:
        sim = Simulator(scenario=args.scenario, port=args.port, host=args.host, cert_dir=args.cert_dir,
                        speed=args.speed, verbose=args.verbose)
        sim.start()
    except (ScenarioError, OSError, ValueError) as exc:
        print("pvesim: %s" % exc, file=sys.stderr)
        return 2
    stop = threading.Event()

    def _on_signal(_signum, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        if args.ready_file:
            _write_ready_file(args.ready_file, sim)
        print("pvesim ready on %s" % sim.url, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        if args.ready_file:
            try:
                os.remove(args.ready_file)
            except OSError:
                pass
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
