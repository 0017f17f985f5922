"""pvesim - a loopback HTTPS simulator of the Proxmox VE REST API.

See README.md in this directory for the scenario format, the command line and the control API.
"""

from __future__ import annotations

from .generator import generate
from .scenarios import ScenarioError, load_scenario
from .server import Simulator

__all__ = ["Simulator", "ScenarioError", "generate", "load_scenario"]
