#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: proxlb_rebalance
short_description: Rebalance guests across the nodes of a Proxmox VE cluster
version_added: 0.1.0
author:
  - proxlb.balancer maintainers (!UNKNOWN)
description:
  - Reads the cluster, plans which guests (QEMU VMs and LXC containers) to migrate where, and
    migrates them through the PVE API, wave by wave.
  - "The plan is the one M(proxlb.balancer.proxlb_plan) returns for the same options: moves that
    are required first (O(maintenance_nodes), rule violations, nodes over memory capacity), then
    moves that improve the balance until the spread of node loads is well within O(balanciness).
    Every move says why in RV(moves[].reason)."
  - "Waves are sets of migrations that may run together: no node is overfilled while a guest is
    in flight (it holds memory on both nodes), and at most O(max_moves_per_node) migrations
    go into or out of a node per wave."
  - "Before each wave after the first, the cluster is read again (one request) and the rest of the
    plan is checked against it. If something changed (a guest was moved or locked by someone
    else, a node went offline or filled up) or a move of the previous wave failed or was skipped,
    the remainder is planned afresh from the current state instead of forcing stale moves."
  - "Before each migration PVE is asked whether it is possible (C(GET .../migrate?target=)).
    Guests PVE refuses (local devices, storage missing on the target, HA rules, local disks
    with O(with_local_disks=false), a lock) are skipped with PVE's reason and the rest of the
    plan is re-checked without them."
  - "Each migration task is followed until it ends or O(migration_timeout) seconds pass. For
    HA-managed guests PVE first runs an C(hamigrate) task that only hands the request to the HA
    stack; the module then finds the real C(qmigrate)/C(vzmigrate) task and follows that."
  - "At the end the cluster is read once more: RV(moves[].final_node) says where every guest of
    the plan really is. A migration that failed or timed out is never assumed to have moved its guest."
  - In check mode the plan is computed and returned and nothing is migrated.
  - Running the module again right after a successful run plans no moves and reports no change.
options:
  max_waves:
    description:
      - Run at most this many waves, then return the rest as RV(remaining) without failing.
      - With O(plan=remaining) of the previous result the next call continues where this one
        stopped, which shows progress wave by wave (the P(proxlb.balancer.rebalance#role) role does this).
      - All waves when not set.
    type: int
  plan:
    description:
      - Carry out this plan instead of computing one; the RV(plan) of
        M(proxlb.balancer.proxlb_plan) or of a check-mode run of this module, or the
        RV(remaining) of a run with O(max_waves).
      - Only its C(moves) are used (C(vmid), C(from), C(to), C(wave) and descriptive fields).
        Moves whose guest is already on its target are dropped; the rest are checked against the
        live cluster before each wave like any plan, and re-planned with the options above when
        the cluster has drifted.
      - This runs the plan that was reviewed rather than a fresh one that may differ.
    type: dict
attributes:
  check_mode:
    support: full
    details:
      - Computes and returns the plan; no migration is started and no write request is sent.
  diff_mode:
    support: full
    details:
      - Returns the node of each guest that moves (or would move) before and after.
extends_documentation_fragment:
  - proxlb.balancer.proxlb
  - proxlb.balancer.execution
  - proxlb.balancer.proxlb.actiongroup
  - proxlb.balancer.balancing
  - proxlb.balancer.balancing.balance
  - proxlb.balancer.attributes
  - proxlb.balancer.report
notes:
  - "API requests: six to read the cluster; then per wave one read of C(/cluster/resources)
    (none before the first wave); per migration one precondition read, one POST and the
    polling of its task; two reads of the task log per failed migration; one final read of
    C(/cluster/resources). Task polling starts at 0.1 s and grows to 3 s, never waiting longer
    than a tenth of the time the task has run, so short migrations are not slowed down."
  - "Needs C(VM.Migrate) on C(/vms) in addition to the read privileges; following HA
    migrations needs C(Sys.Audit) on the nodes (the real migration task runs as C(root@pam))."
  - "Containers that are running are migrated in restart mode (shut down, moved, started);
    they are unavailable meanwhile. Use O(guest_types=[vm]) to leave containers alone."
  - "A migration that failed or timed out is not retried in the same run. A timed-out one may
    still complete later; the guest is locked (C(migrate)) meanwhile, so a later run leaves it alone."
seealso:
  - module: proxlb.balancer.proxlb_plan
    description: The same plan without migrating anything.
  - module: proxlb.balancer.proxlb_cluster_info
    description: Node loads and the snapshot the plan is computed from.
"""

EXAMPLES = r"""
- name: Rebalance memory, one migration at a time
  proxlb.balancer.proxlb_rebalance:
    api_host: pve1.example.com
    api_user: balancer@pve
    api_token_id: proxlb
    api_token_secret: "{{ vault_proxlb_token_secret }}"
  register: rebalance

- name: Show what happened
  ansible.builtin.debug:
    msg: "{{ rebalance.progress }}"

- name: Dry run (same plan, nothing migrated), with the placement diff
  proxlb.balancer.proxlb_rebalance:
    balanciness: 5
  check_mode: true
  diff: true
  register: preview

- name: Empty pve3 for maintenance, two migrations at a time, go on after a failure
  proxlb.balancer.proxlb_rebalance:
    maintenance_nodes: [pve3]
    parallel_migrations: 2
    on_failure: continue

- name: Balance VMs only, keep 16 GiB free on every node, at most 5 moves, no local-disk VMs
  proxlb.balancer.proxlb_rebalance:
    guest_types: [vm]
    node_resource_reserve:
      defaults: {memory: 16}
    max_moves: 5
    with_local_disks: false

- name: Review a plan first, then carry out exactly that plan
  block:
    - name: Plan
      proxlb.balancer.proxlb_rebalance:
      check_mode: true
      register: planned

    - name: Migrate what was planned
      proxlb.balancer.proxlb_rebalance:
        plan: "{{ planned.plan }}"
      when: planned.changed

- name: One wave only; the rest is in remaining (pass it as plan to continue)
  proxlb.balancer.proxlb_rebalance:
    max_waves: 1
  register: first_wave
"""

RETURN = r"""
report_path:
  description: Where the HTML report was written (O(report)).
  returned: when O(report) is set
  type: str
  sample: reports/cluster-plan.html
changed:
  description:
    - Whether a guest now runs on another node (in check mode, whether a move is planned).
    - Judged from the final read of the cluster, not from task results.
  returned: always
  type: bool
  sample: true
plan:
  description:
    - The plan that was carried out, as M(proxlb.balancer.proxlb_plan) returns it (node loads
      before and after, metrics, moves with their waves, what was left alone and why, rule
      conflicts, warnings), or the O(plan) given.
    - Moves added by re-planning during the run are in RV(moves), not here.
  returned: success
  type: dict
  sample: {"method": "memory", "moves_count": 2, "waves": 1, "stop_reason": "target_reached"}
summary:
  description: The plan as a short human-readable table.
  returned: success
  type: str
  sample: "memory (used): spread 31.2 -> 4.0 pp, max 78.0 -> 52.1 %, 2 move(s) in 1 wave(s), 12.0 GiB"
moves:
  description:
    - One entry per move of the run, in the order they ran, with its outcome.
    - A move dropped by re-planning appears as V(skipped); a move re-planned to another node
      appears once, with the new node in C(to) and the old one in C(note).
  returned: success
  type: list
  elements: dict
  contains:
    vmid:
      description: VMID of the guest.
      type: int
      sample: 101
    name:
      description: Name of the guest.
      type: str
      sample: web1
    type:
      description: V(vm) or V(ct).
      type: str
      sample: vm
    from:
      description: Node the guest was on.
      type: str
      sample: pve1
    to:
      description: Node the guest was to move to.
      type: str
      sample: pve2
    reason:
      description: Why it moves, for example V(maintenance), V(rule:anti-affinity:<group>), V(rule:pin), V(capacity), V(balance).
      type: str
      sample: balance
    mandatory:
      description: Whether the move is required (maintenance, rules, capacity) rather than for balance.
      type: bool
      sample: false
    mem_bytes:
      description: Memory of the guest that moves with it.
      type: int
      sample: 8589934592
    wave:
      description: Wave the move ran in (1 for the first).
      type: int
      sample: 1
    status:
      description:
        - V(ok) migrated; V(failed) PVE refused the request or the task failed or timed out;
          V(skipped) PVE's precondition check ruled it out, or the cluster drifted and it was no
          longer valid; V(not_started) the run stopped before it; V(planned) check mode.
      type: str
      choices: [ok, failed, skipped, not_started, planned]
      sample: ok
    upid:
      description: UPID of the migration task (for HA-managed guests the real C(qmigrate)/C(vzmigrate) task).
      type: str
      sample: "UPID:pve1:0012A3F4:07E1B2C3:66F0A1B2:qmigrate:101:balancer@pve!proxlb:"
    ha_upid:
      description: UPID of the C(hamigrate) task of an HA-managed guest, else V(null).
      type: str
      sample: null
    duration_s:
      description: Seconds from the request to the end of the task as seen by the module.
      type: float
      sample: 12.4
    error:
      description:
        - Why the move failed or was skipped, in PVE's words where PVE gave them (task exit
          status and its last C(ERROR:) log line, API error text, precondition reasons).
      type: str
      sample: "migration aborted (duration 00:00:05): online migrate failure"
    note:
      description:
        - Extra information, else V(null).
        - "A move that replaced a planned one after re-planning says which (V(re-planned: was pve1 -> pve3))."
        - A V(ok) move without a request of its own says why; PVE HA migrates guests in positive
          affinity together, so the partner of a migrated guest may already be on its target when
          its wave comes.
      type: str
      sample: null
    final_node:
      description: Node the guest is on after the run, from the final read of the cluster (V(null) if it is gone or unknown).
      type: str
      sample: pve2
waves:
  description: Per executed wave, counts and timings.
  returned: success
  type: list
  elements: dict
  contains:
    wave:
      description: Wave number.
      type: int
    moves:
      description: Moves in the wave.
      type: int
    ok:
      description: Migrations that succeeded.
      type: int
    failed:
      description: Migrations that failed.
      type: int
    skipped:
      description: Moves skipped.
      type: int
    not_started:
      description: Moves not started because the run stopped.
      type: int
    replanned:
      description: Whether the plan was recomputed before this wave.
      type: bool
    duration_s:
      description: Wall-clock seconds of the wave, re-validation included.
      type: float
    longest_s:
      description: Longest migration of the wave in seconds.
      type: float
    api_calls:
      description: API requests the wave made (re-read, precondition checks, POSTs, polling).
      type: int
  sample: [{"wave": 1, "moves": 2, "ok": 2, "failed": 0, "skipped": 0, "not_started": 0, "replanned": false,
            "duration_s": 14.1, "longest_s": 13.9, "api_calls": 31}]
remaining:
  description:
    - What O(max_waves) left for later, in the shape O(plan) accepts (C(moves) with their wave numbers).
    - Empty C(moves) when nothing is left.
  returned: success
  type: dict
  sample: {"moves": [{"vmid": 102, "name": "db1", "type": "vm", "from": "pve1", "to": "pve3", "wave": 2,
           "reason": "balance", "mandatory": false, "mem_bytes": 4294967296}], "waves": 1}
nodes_final:
  description:
    - Per node after the run, from the final read of the cluster; in check mode, as read before planning.
    - C(load_pct) is the balanced load in percent of capacity after reserve, as RV(plan) reports it.
  returned: success
  type: dict
  sample: {"pve1": {"status": "online", "guests": 12, "running": 11, "load_pct": 48.2,
                    "mem_bytes": 66571993088, "maxmem_bytes": 137438953472}}
stopped:
  description: Whether the run stopped early (O(on_failure=stop) after a failure, or the cluster could not be read).
  returned: success
  type: bool
  sample: false
stop_reason:
  description: Why the run stopped early, else V(null).
  returned: success
  type: str
  sample: null
replans:
  description: How many times the remainder of the plan was recomputed during the run.
  returned: success
  type: int
  sample: 0
progress:
  description: One human-readable line per move and per wave.
  returned: success
  type: list
  elements: str
  sample: ["wave 1  101 web1  pve1 -> pve2  ok  12.4 s",
           "wave 1: 1 ok, 0 failed, 0 skipped, 0 not started in 12.6 s (longest migration 12.4 s, 14 API calls)"]
api_calls:
  description: API requests of the run.
  returned: success
  type: dict
  contains:
    total:
      description: All requests, login and retries included.
      type: int
    collect:
      description: Requests to read the cluster before planning.
      type: int
    execute:
      description: Requests made while migrating, the final read included.
      type: int
    by_endpoint:
      description: Requests per C(METHOD /path/{placeholder}).
      type: dict
  sample: {"total": 38, "collect": 6, "execute": 31, "by_endpoint": {"GET /cluster/resources": 3}}
duration_s:
  description: Wall-clock seconds spent migrating (0 in check mode).
  returned: success
  type: float
  sample: 41.7
diff:
  description: With C(--diff), the node of every guest that moved (or would move) before and after, keyed C(<vmid>/<name>).
  returned: when diff mode is on
  type: dict
  sample: {"before": {"101/web1": "pve1"}, "after": {"101/web1": "pve2"}}
msg:
  description: When a migration failed or the run stopped, the failed moves with PVE's reasons.
  returned: failure
  type: str
  sample: "1 of 4 migration(s) failed: 101 (web1) pve1 -> pve2: migration aborted (duration 00:00:05): online migrate failure"
"""

from ansible_collections.proxlb.balancer.plugins.module_utils.ansible_glue import (
    balance_argument_spec, connect, create_module, execution_argument_spec, run)
from ansible_collections.proxlb.balancer.plugins.module_utils.rebalance_runner import run_rebalance


def argument_spec():
    spec = balance_argument_spec()
    spec.update(execution_argument_spec())
    spec.update(plan=dict(type="dict"), report=dict(type="path"))
    return spec


def main():
    run(create_module(argument_spec()), run_rebalance, connect)


if __name__ == "__main__":
    main()
