"""Shared constants and polling functions for the pvesim tests."""

from __future__ import annotations

import time

ROOT_PASSWORD = "pvesim"
ROOT_TOKEN = ("proxlb", "00000000-0000-4000-8000-000000000001")
AUDIT_TOKEN = ("ro", "00000000-0000-4000-8000-000000000002")
FAST = 100.0


def api_host(simulator) -> str:
    return "%s:%d" % (simulator.host, simulator.port)


def wait_task(api, node: str, upid: str, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = api.nodes(node).tasks(upid).status.get()
        if status["status"] == "stopped":
            return status
        if time.monotonic() > deadline:
            raise AssertionError("task %s still running after %.0f s" % (upid, timeout))
        time.sleep(0.02)


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within %.1f s" % timeout)
        time.sleep(interval)
