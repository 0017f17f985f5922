# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One call of a module as its runner sees it, without Ansible.

A runner (``plan_runner``, ``rebalance_runner``, ``maintenance``, ``cluster_info_runner``) takes a
``Request`` and returns the module result, raises ``RunFailed`` with the partial result when a
run fails after doing something, or raises another ``ProxLBError`` when nothing was done. The
Ansible glue builds the request from an ``AnsibleModule``; tests and tools build one directly.
"""

from __future__ import annotations

import os

from ansible_collections.proxlb.balancer.plugins.module_utils import plan_report
from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ConfigError


class Request:
    """Module parameters, check and diff mode, the way to the PVE API and the warnings so far."""

    def __init__(self, params, connect, check_mode=False, diff=False):
        self.params = params
        self.check_mode = check_mode
        self.diff = diff
        self.warnings = []
        self._connect = connect

    def connect(self):
        """A connected PVE client for the request's connection options (the first request is made here)."""
        return self._connect()

    def write_if_changed(self, content, dest, option="dest"):
        """Write ``content`` to ``dest`` unless it already holds it; True when it changed (or would, in check mode)."""
        directory = os.path.dirname(os.path.abspath(dest))
        if not os.path.isdir(directory):
            raise ConfigError(option, "directory %s does not exist; create it or choose another path" % directory)
        try:
            with open(dest) as handle:
                if handle.read() == content:
                    return False
        except (IOError, OSError):
            pass
        if not self.check_mode:
            self.replace_file(content, dest)
        return True

    def write_report(self, result):
        """Write the HTML page of ``result`` to the ``report`` option, if set; adds ``report_path``.

        The page is written in check mode too (it shows the dry run) and never carries the
        current time, so an unchanged cluster leaves the file as it is. True when the file changed.
        """
        dest = self.params.get("report")
        if not dest:
            return False
        html = plan_report.render_result_html(result)
        directory = os.path.dirname(os.path.abspath(dest))
        if not os.path.isdir(directory):
            raise ConfigError("report", "directory %s does not exist; create it or choose another path" % directory)
        result["report_path"] = dest
        try:
            with open(dest) as handle:
                if handle.read() == html:
                    return False
        except (IOError, OSError):
            pass
        self.replace_file(html, dest)
        return True

    def replace_file(self, content, dest):
        """Put ``content`` at ``dest`` in one step: a temporary file next to it, then a rename."""
        tmp = "%s.%d.tmp" % (dest, os.getpid())
        with open(tmp, "w") as handle:
            handle.write(content)
        os.replace(tmp, dest)
