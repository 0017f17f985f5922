"""Fixtures for the pvesim simulator tests: one HTTPS simulator per session, reset before each test."""
# pylint: disable=redefined-outer-name

from __future__ import annotations

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS_DIR = os.path.abspath(os.path.join(HERE, "..", "..", "..", "tools"))
# The simulator package lives outside the collection's Python tree, and the shared test module next to
# this file must import the same way under plain pytest and under ansible-test's collection loader.
for path in (TOOLS_DIR, HERE):
    if path not in sys.path:
        sys.path.insert(0, path)

from pvesim import Simulator  # noqa: E402  pylint: disable=wrong-import-position
from pvesim_testlib import AUDIT_TOKEN, FAST, ROOT_PASSWORD, ROOT_TOKEN, api_host  # noqa: E402  pylint: disable=wrong-import-position


@pytest.fixture(scope="session")
def session_sim(tmp_path_factory):
    sim = Simulator(scenario="demo", port=0, cert_dir=str(tmp_path_factory.mktemp("pvesim-certs")), speed=FAST)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def sim(session_sim):
    session_sim.reset(scenario="demo", speed=FAST)
    session_sim.set_faults()
    yield session_sim
    session_sim.set_faults()


@pytest.fixture
def root_api(sim):
    proxmoxer = pytest.importorskip("proxmoxer")
    return proxmoxer.ProxmoxAPI(api_host(sim), user="root@pam", password=ROOT_PASSWORD, verify_ssl=sim.ca_path, timeout=10)


@pytest.fixture
def token_api(sim):
    proxmoxer = pytest.importorskip("proxmoxer")
    return proxmoxer.ProxmoxAPI(api_host(sim), user="root@pam", token_name=ROOT_TOKEN[0], token_value=ROOT_TOKEN[1],
                                verify_ssl=sim.ca_path, timeout=10)


@pytest.fixture
def audit_api(sim):
    proxmoxer = pytest.importorskip("proxmoxer")
    return proxmoxer.ProxmoxAPI(api_host(sim), user="audit@pve", token_name=AUDIT_TOKEN[0], token_value=AUDIT_TOKEN[1],
                                verify_ssl=sim.ca_path, timeout=10)
