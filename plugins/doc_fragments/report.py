# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # The HTML plan report: shared by proxlb_plan, proxlb_rebalance and proxlb_maintenance.
    DOCUMENTATION = r"""
options:
  report:
    description:
      - Write the plan (and, for a run, what became of each move) as one self-contained HTML page
        to this path on the host that runs the module, for review, an approval step or a change record.
      - The page has its style sheet and charts inline and references nothing outside itself.
      - It carries no time stamp, so it only changes, and the task only reports a change for it,
        when the plan or its outcome changes.
      - For a run, planned moves are shown next to what was done, failed moves highlighted; in
        check mode the page shows the dry run and is written too (it changes nothing in the cluster).
      - A failed run still writes its page before the task fails.
      - The directory must exist.
    type: path
"""
