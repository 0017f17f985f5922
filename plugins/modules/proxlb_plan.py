#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: proxlb_plan
short_description: Compute a balancing plan for a Proxmox VE cluster
version_added: 0.1.0
author:
  - proxlb.balancer maintainers (!UNKNOWN)
description:
  - Reads the cluster (or a snapshot saved by M(proxlb.balancer.proxlb_cluster_info)) and computes which
    guests to migrate where, without changing anything.
  - Mandatory moves come first (drain maintenance nodes, repair rule violations, relieve nodes over memory
    capacity), then balancing moves, each of which must pay for itself. Moves are ordered into waves that are
    safe to run in parallel.
  - The same snapshot and options always give the same plan, and planning again on the planned result gives
    no moves.
  - M(proxlb.balancer.proxlb_rebalance) computes the same plan and executes it.
options:
  snapshot:
    description:
      - Plan offline from a snapshot file written by M(proxlb.balancer.proxlb_cluster_info) (O(dest) there)
        instead of reading the cluster. The connection options are then not used.
    type: path
  dest:
    description:
      - Also write the plan as JSON to this file on the host that runs the module.
      - The task reports a change only when the file content changed; in check mode it is not written.
    type: path
attributes:
  check_mode:
    support: full
    details:
      - Never changes the cluster. With O(dest), the file is not written in check mode.
  diff_mode:
    support: none
extends_documentation_fragment:
  - proxlb.balancer.proxlb
  - proxlb.balancer.proxlb.actiongroup
  - proxlb.balancer.balancing
  - proxlb.balancer.balancing.balance
  - proxlb.balancer.attributes
  - proxlb.balancer.report
seealso:
  - module: proxlb.balancer.proxlb_rebalance
  - module: proxlb.balancer.proxlb_cluster_info
"""

EXAMPLES = r"""
- name: Plan a memory rebalance and show it
  proxlb.balancer.proxlb_plan:
    api_host: pve1.example.com
    api_user: balancer@pve
    api_token_id: proxlb
    api_token_secret: "{{ vault_proxlb_token_secret }}"
    ca_path: /etc/ssl/pve-root-ca.pem
  register: plan

- name: Print the plan
  ansible.builtin.debug:
    msg: "{{ plan.summary_lines }}"

- name: Plan CPU balancing by configured vCPUs, keeping 16 GiB free on every node
  proxlb.balancer.proxlb_plan:
    method: cpu
    mode: assigned
    balanciness: 15
    node_resource_reserve:
      defaults: {memory: 16}
      pve4: {memory: 32}
    max_moves: 10
  register: plan

- name: What would emptying pve2 for maintenance do?
  proxlb.balancer.proxlb_plan:
    maintenance_nodes: [pve2]
    pools:
      databases: {type: anti-affinity}
      web: {pin: [pve1, pve3], strict: false}
    ignore_guests: ["veeam-*"]
  register: drain

- name: Fail when a guest has nowhere to go
  ansible.builtin.assert:
    that: drain.plan.left_alone | selectattr('reason', 'eq', 'no_fit') | list | length == 0

- name: What-if, offline, on a saved snapshot; keep the plan as a file
  proxlb.balancer.proxlb_plan:
    snapshot: snapshots/cluster.json
    dest: plans/cluster-plan.json
    balanciness: 5
"""

RETURN = r"""
report_path:
  description: Where the HTML report was written (O(report)).
  returned: when O(report) is set
  type: str
  sample: reports/cluster-plan.html
summary:
  description: The plan as a short human-readable table (node loads before and after, then the moves).
  returned: success
  type: str
summary_lines:
  description: RV(summary) split into lines, for C(ansible.builtin.debug).
  returned: success
  type: list
  elements: str
changed_nodes:
  description: Nodes that send or receive a guest in the plan.
  returned: success
  type: list
  elements: str
dest:
  description: The file the plan was written to (or would be, in check mode).
  returned: when O(dest) is set
  type: str
plan:
  description: The plan. The same structure comes back from M(proxlb.balancer.proxlb_rebalance).
  returned: success
  type: dict
  contains:
    method:
      description: The balanced resource (O(method)).
      type: str
      sample: memory
    mode:
      description: How guests were counted (O(mode)).
      type: str
      sample: used
    settings:
      description: Every balancing option as used, plus C(target_spread), the spread the plan aims for.
      type: dict
    cluster:
      description: C(pve_version), C(cluster_name), C(nodes) and C(guests) (counts) and C(api_calls) of the collection.
      type: dict
      sample: {pve_version: 9.0.3, cluster_name: prod, nodes: 5, guests: 40, api_calls: 6}
    trigger:
      description:
        - Why balancing did or did not start, for the state after the mandatory moves.
        - C(spread_pp) and C(max_pct) of the balanced nodes, C(balanciness), C(threshold) (or null),
          C(triggered) and C(reason) (V(balanced), V(below_threshold), V(spread_above_balanciness),
          V(fewer_than_two_nodes)).
      type: dict
      sample: {spread_pp: 41.2, max_pct: 86.5, balanciness: 10.0, threshold: null, triggered: true, reason: spread_above_balanciness}
    stop_reason:
      description:
        - Why planning stopped. V(target_reached) (spread within half of O(balanciness)), V(no_gain)
          (no move pays for itself), V(max_moves), or the trigger reason when balancing did not start.
      type: str
      sample: target_reached
    nodes:
      description:
        - Per node (keyed by name) C(role) (V(balanced), V(maintenance), V(ignored) or V(offline)),
          C(before_pct) and C(after_pct) (load of the balanced resource, percent of capacity after reserve),
          C(moves_in) and C(moves_out).
      type: dict
      sample: {pve1: {role: balanced, before_pct: 86.5, after_pct: 51.0, moves_in: 0, moves_out: 4}}
    metrics:
      description:
        - C(before) and C(after) statistics over the balanced nodes, each with C(spread_pp) (max - min,
          percentage points), C(cv) (coefficient of variation), C(max_pct), C(min_pct) and C(mean_pct).
        - C(lower_bound) on what any plan could reach, with C(max_pct), C(spread_pp), C(average_pct) and
          C(binding), the bound that decides (V(average), V(largest_item) or V(fixed_load)).
        - C(gap) between the plan and the bound, C(max_pp) and C(spread_pp).
      type: dict
    moves:
      description: The migrations, in execution order.
      type: list
      elements: dict
      contains:
        vmid:
          description: VM id.
          type: int
        name:
          description: Guest name.
          type: str
        type:
          description: V(vm) or V(ct).
          type: str
        from:
          description: Source node.
          type: str
        to:
          description: Target node.
          type: str
        reason:
          description:
            - Why the guest moves, for example V(maintenance), V(rule:anti-affinity:plb_anti_affinity_db),
              V(rule:affinity:plb_affinity_web), V(rule:pin), V(rule:ha-node-affinity:<rule>),
              V(rule:ha-group:<group>), V(rule:pool-pin:<pool>), V(capacity), V(balance) or V(parking)
              (a temporary stop so that two guests can swap).
          type: str
        mandatory:
          description: Whether the move repairs something (maintenance, rules, capacity) rather than balances.
          type: bool
        wave:
          description: Wave number, from 1; moves of one wave can run at the same time.
          type: int
        mem_bytes:
          description: Memory the migration copies (what the guest uses; its configured size when stopped).
          type: int
    waves:
      description: Number of waves.
      type: int
    moves_count:
      description: Number of moves.
      type: int
    mandatory_count:
      description: Number of mandatory moves.
      type: int
    mem_moved_bytes:
      description: Memory copied by all moves together.
      type: int
    left_alone:
      description:
        - Guests that stay although they might have moved, with C(vmid), C(name), C(node) and C(reason), one of
          V(ignored), V(template), V(type_excluded), V(ignored_node), V(node_offline), V(locked:<lock>),
          V(status:<status>), V(stopped), V(ha_managed_by_pve), V(rule_conflict) or V(no_fit).
        - V(no_fit) entries carry C(rule) (the mandatory move that could not be made) and C(detail)
          (why each node was rejected).
      type: list
      elements: dict
    failures:
      description: Mandatory moves that could not be planned, with C(vmids), C(node), C(reason) and C(detail).
      type: list
      elements: dict
    unsequenced:
      description: Moves that no order could run without overfilling a node or breaking a rule; they are not planned.
      type: list
      elements: dict
    rule_conflicts:
      description: Contradicting rules, with C(kind), C(message) and the C(guests) involved.
      type: list
      elements: dict
    warnings:
      description: Things worth knowing about the plan (HA maintenance nodes, oversized anti-affinity groups, ...).
      type: list
      elements: str
    summary:
      description: Same as RV(summary).
      type: str
"""

from ansible_collections.proxlb.balancer.plugins.module_utils.ansible_glue import (
    balance_argument_spec, connect, create_module, run)
from ansible_collections.proxlb.balancer.plugins.module_utils.plan_runner import run_plan


def argument_spec():
    spec = dict(snapshot=dict(type="path"), dest=dict(type="path"), report=dict(type="path"))
    spec.update(balance_argument_spec())
    return spec


def main():
    run(create_module(argument_spec()), run_plan, connect)


if __name__ == "__main__":
    main()
