# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection imports itself as ``ansible_collections.proxlb.balancer``; a plain pytest run
gets that package path from a temporary directory with a symlink to the repository."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _importable():
    try:
        import ansible_collections.proxlb.balancer.plugins.module_utils.plan_report  # noqa: F401 pylint: disable=unused-import,import-outside-toplevel
    except ImportError:
        return False
    return True


def pytest_configure(config):
    if _importable():
        return
    root = tempfile.mkdtemp(prefix="proxlb-browser-")
    config.add_cleanup(lambda: shutil.rmtree(root, True))
    os.makedirs(os.path.join(root, "ansible_collections", "proxlb"))
    os.symlink(REPO, os.path.join(root, "ansible_collections", "proxlb", "balancer"))
    sys.path.insert(0, root)
    for name in [n for n in sys.modules if n == "ansible_collections" or n.startswith("ansible_collections.")]:
        del sys.modules[name]
