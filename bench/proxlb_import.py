# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make the collection and the simulator importable from a plain Python process.

The collection's code imports itself as ``ansible_collections.proxlb.balancer``; outside an
Ansible run that package path does not exist, so a temporary directory gets
``ansible_collections/proxlb/balancer`` as a symlink to the repository and goes on ``sys.path``.
``tools/`` goes on ``sys.path`` for ``pvesim``.
"""

from __future__ import annotations

import atexit
import importlib
import os
import shutil
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PREFIX = "ansible_collections.proxlb.balancer.plugins.module_utils."


def _link_collection():
    root = tempfile.mkdtemp(prefix="proxlb-bench-")
    atexit.register(shutil.rmtree, root, True)
    namespace = os.path.join(root, "ansible_collections", "proxlb")
    os.makedirs(namespace)
    os.symlink(REPO, os.path.join(namespace, "balancer"))
    sys.path.insert(0, root)
    sys.path.insert(0, os.path.join(REPO, "tools"))


def module_util(name):
    """``plugins/module_utils/<name>.py`` of this repository, imported."""
    return importlib.import_module(PREFIX + name)


_link_collection()
collector = module_util("collector")
metrics = module_util("metrics")
placement = module_util("placement")
planner = module_util("planner")
pve_api = module_util("pve_api")
rules = module_util("rules")
settings = module_util("settings")
snapshot = module_util("snapshot")
pvesim = importlib.import_module("pvesim")
