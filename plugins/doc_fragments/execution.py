# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # How a plan is carried out: shared by proxlb_rebalance and proxlb_maintenance.
    DOCUMENTATION = r"""
options:
  parallel_migrations:
    description:
      - How many migrations run at the same time within a wave.
      - Waves already respect O(max_moves_per_node), so raising this does not overload a node.
    type: int
    default: 1
  migration_timeout:
    description:
      - Seconds (wall clock) to wait for one migration, HA hand-over included.
      - A migration still running then is reported as failed; it is not cancelled, and the
        C(final_node) of the move shows where the guest really is at the end.
    type: int
    default: 1800
  with_local_disks:
    description:
      - Migrate VMs with disks on node-local storage along with their disks (C(with-local-disks)).
      - If V(false), such VMs are not moved and are reported with the list of their local disks.
    type: bool
    default: true
  with_conntrack_state:
    description:
      - Keep the connection tracking state of running VMs across a live migration
        (C(with-conntrack-state)).
      - Only sent to PVE 9 and later; PVE 8 rejects migrations that name it, so it is never sent there.
    type: bool
    default: true
  ct_restart_timeout:
    description:
      - Running containers cannot be live-migrated; they are shut down, moved and started again
        (restart mode). This is how many seconds PVE waits for the shutdown before stopping them.
    type: int
    default: 180
  on_failure:
    description:
      - What a failed migration does to the rest of the run.
      - V(stop) lets the migrations already running finish and starts nothing new.
      - V(continue) goes on with the remaining moves; the failed guest stays where it is and
        the rest of the plan is re-checked without it.
      - Either way the task fails at the end when a migration failed, after reporting everything.
    type: str
    choices: [stop, continue]
    default: stop
"""
