# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan report in a real browser: headless Chromium loads the page from a file with every
network feature it has turned off, the DOM it built must hold every node and every move, and
screenshots are left in tests/output/report/ for people to look at.

Run with ``make report-browser-test`` (part of ``make test``). Chromium comes from Debian's
``chromium`` package, installed here with apt-get when it is missing and the machine allows it;
the tests are skipped, saying why, only where it cannot be installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from ansible_collections.proxlb.balancer.plugins.module_utils import execution_options, executor, plan_report, planner
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils import plan_cases
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.cluster_builder import settings

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUTPUT = os.path.join(REPO, "tests", "output", "report")
BROWSERS = ("chromium", "chromium-browser")
BROWSER_TIMEOUT_S = 180
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--hide-scrollbars")
WHEN = "2026-12-02 18:00 UTC"


def _find_browser():
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


def _apt_install():
    """Why installing failed, or None."""
    if not shutil.which("apt-get"):
        return "there is no apt-get"
    if os.geteuid() != 0:
        return "installing needs root"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for steps in ((["apt-get", "install", "-y", "-q", "chromium"],),
                  (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"])):
        if all(subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False).returncode == 0
               for cmd in steps):
            return None
    return "apt-get install -y chromium failed"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    path = _find_browser()
    if path is None:
        why = _apt_install()
        path = _find_browser()
        if path is None:
            pytest.skip("headless Chromium is needed and could not be installed (%s); install Debian's chromium package" % why)
    profile = str(tmp_path_factory.mktemp("chromium-profile"))

    def run(*args):
        result = subprocess.run([path] + list(FLAGS) + ["--user-data-dir=%s" % profile] + list(args), capture_output=True,
                                text=True, timeout=BROWSER_TIMEOUT_S, check=False)
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout
    return run


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """name -> (plan, page html): the demo plan, the demo run with failed migrations, 64 nodes / 6000 guests."""
    pytest.importorskip("cryptography")
    pytest.importorskip("proxmoxer")
    pvesim = plan_cases.simulator_module()
    result = {}
    with pvesim.Simulator(scenario="demo", port=0, cert_dir=str(tmp_path_factory.mktemp("pvesim")), speed=200.0) as sim:
        snap = plan_cases.collect(sim)
        plan = planner.plan(snap, settings())
        result["demo-plan"] = (plan.to_dict(), plan_report.render_plan_html(plan.to_dict(), generated_at=WHEN))
        sim.set_faults(migration_failure_rate=0.4, seed=2)
        run = executor.execute(plan_cases.client(sim), snap, settings(), plan,
                               execution_options.ExecOptions.from_params({"on_failure": "continue", "parallel_migrations": 2}))
        outcome = dict(run.to_dict(), plan=plan.to_dict())
        result["demo-run"] = (plan.to_dict(), plan_report.render_result_html(outcome, generated_at=WHEN))
        sim.reset(scenario=pvesim.generate(64, 6000, 1))
        big = plan_cases.collect(sim)
    plan = planner.plan(big, settings(maintenance_nodes=plan_cases.first_nodes(big, 3))).to_dict()
    result["64-nodes"] = (plan, plan_report.render_plan_html(plan, generated_at=WHEN))
    return result


@pytest.mark.parametrize("name", ["demo-plan", "demo-run", "64-nodes"])
def test_the_browser_builds_every_node_and_move(browser, pages, name):
    plan, html = pages[name]
    os.makedirs(OUTPUT, exist_ok=True)
    path = os.path.join(OUTPUT, name + ".html")
    with open(path, "w") as handle:
        handle.write(html)
    dom = plan_cases.Page(browser("--dump-dom", "file://" + path))
    for node in plan["nodes"]:
        assert node in dom.all_text, node
    assert len(plan["moves"]) > 0
    for move in plan["moves"]:
        assert dom.has_move(move), move
    assert "Node loads" in dom.all_text and "Quality" in dom.all_text


@pytest.mark.parametrize("name, size", [("demo-plan", "1280,2000"), ("demo-run", "1280,2600"), ("64-nodes", "1280,2000"),
                                        ("demo-plan-phone", "390,1800")])
def test_screenshots_for_people_to_look_at(browser, pages, name, size):
    page = name.replace("-phone", "")
    os.makedirs(OUTPUT, exist_ok=True)
    path = os.path.join(OUTPUT, page + ".html")
    with open(path, "w") as handle:
        handle.write(pages[page][1])
    shot = os.path.join(OUTPUT, name + ".png")
    if os.path.exists(shot):
        os.remove(shot)
    browser("--screenshot=%s" % shot, "--window-size=%s" % size, "file://" + path)
    with open(shot, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
