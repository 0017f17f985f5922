# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lookup side of proxlb_best_node: lookup options in, the module's answer out.

The module hands its ``AnsibleModule`` to ``proxlb_best_node.choose``; the lookup hands it an
``OptionAdapter`` with the same two things that function uses (``params`` and ``warn``), so the
lookup and the module run one code path and give the same answers and messages.
"""

from __future__ import annotations

from ansible.errors import AnsibleLookupError

from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ProxLBError
from ansible_collections.proxlb.balancer.plugins.modules.proxlb_best_node import choose


class OptionAdapter:
    """A plugin's resolved options (direct, vars, environment, ini, defaults) shaped like a module."""

    def __init__(self, plugin, display):
        self.params = plugin.get_options()
        self._display = display

    def warn(self, text):
        self._display.warning(text)


def best_nodes(plugin, display):
    """Node names for the options set on ``plugin``; every failure is an ``AnsibleLookupError``."""
    adapter = OptionAdapter(plugin, display)
    try:
        query, result = choose(adapter)
    except ProxLBError as err:
        raise AnsibleLookupError(str(err))
    if "msg" in result and query.fail_when_no_fit:
        raise AnsibleLookupError(result["msg"])
    return result["nodes"]
