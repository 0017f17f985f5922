# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One HTTPS PVE simulator (tools/pvesim) for the whole session; ``sim`` resets it to the demo
cluster without faults for each test (a test file that needs another scenario has its own ``sim``)."""

from __future__ import annotations

import os
import sys

import pytest

TOOLS_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "tools"))


@pytest.fixture(scope="session")
def pvesim(tmp_path_factory):
    pytest.importorskip("cryptography")
    pytest.importorskip("proxmoxer")
    if TOOLS_DIR not in sys.path:
        sys.path.insert(0, TOOLS_DIR)
    from pvesim import Simulator  # pylint: disable=import-outside-toplevel
    sim = Simulator(scenario="demo", port=0, cert_dir=str(tmp_path_factory.mktemp("pvesim")), speed=100.0)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def sim(pvesim):
    pvesim.reset(scenario="demo", speed=100.0)
    pvesim.set_faults()
    yield pvesim
    pvesim.set_faults()
