# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # Options of every module that plans moves or placements: proxlb_plan, proxlb_rebalance,
    # proxlb_best_node and proxlb_maintenance. Names follow ProxLB's YAML where they mean the same thing.
    DOCUMENTATION = r"""
options:
  method:
    description:
      - Resource whose load decides where guests go.
      - V(memory) is memory, V(cpu) is CPU in cores (a guest's CPU fraction times its vCPUs against the node's
        threads), V(disk) is node-local storage that holds guest volumes (volume sizes are read with one extra
        request per local storage).
      - Balancing evens this load out across the nodes; a guest that has to move (maintenance, rules) goes to the
        node where it is lowest among those the guest fits on. Memory always has to fit, whatever the method.
    type: str
    choices: [memory, cpu, disk]
    default: memory
  mode:
    description:
      - How a guest's share of the resource is counted.
      - V(used) counts what guests use now (PVE 9 C(memhost) for VM memory).
      - V(assigned) counts configured sizes of running guests (memory, vCPUs).
      - V(psi) compares the nodes' pressure stall information (PVE 9 only; one extra request per node),
        estimating each node's pressure after a move from its measured pressure per unit of use.
        Loads are then in percent of time stalled.
    type: str
    choices: [used, assigned, psi]
    default: used
  pressure_window:
    description: Time frame over which node pressure is averaged for O(mode=psi).
    type: str
    choices: [hour, day, week]
    default: hour
  backup_guard:
    description:
      - Minutes before a scheduled backup job (C(/cluster/backup)) during which the guests it covers
        are left where they are, so that a migration does not race the backup.
      - Guests in a running backup and guests already migrating are always left alone.
      - V(0) keeps only those two holds.
    type: int
    default: 30
  avoid_backup_nodes:
    description:
      - A node running a backup is neither the source nor the target of any move while it runs.
    type: bool
    default: true
  storage_threshold:
    description:
      - A node is no target for a guest when its local storage would be above this percentage once
        the guest's disks arrive. A node that lacks one of the guest's storages is never a target.
      - Percent, above 0 and at most 100.
    type: float
    default: 90
  node_resource_reserve:
    description:
      - Capacity held back on nodes, as in ProxLB. Keys are node names or V(defaults); values are
        mappings of V(memory) and V(disk) in GiB and V(cpu) in cores. A node's own value wins over V(defaults).
      - The reserve is taken off the node's capacity everywhere, in the loads reported, the loads
        balanced and every fit check.
    type: dict
    default: {}
  cpu_overcommit:
    description:
      - Running guests' vCPUs on a node may reach this many per host thread. A placement beyond it is never planned.
    type: float
    default: 4.0
  max_moves_per_node:
    description: Largest number of migrations into, and out of, one node in the same wave.
    type: int
    default: 1
  guest_types:
    description: Guest types that may be moved; guests of other types stay where they are (their load still counts).
    type: list
    elements: str
    choices: [vm, ct]
    default: [vm, ct]
  ignore_guests:
    description:
      - Guests that never move, by name or VM id; shell wildcards allowed (V(veeam-*)). Case-insensitive.
      - Same effect as the tag C(plb_ignore). Their load still counts on their node.
    type: list
    elements: str
    default: []
  ignore_nodes:
    description: Nodes that are neither balanced nor used as targets; their guests stay.
    type: list
    elements: str
    default: []
  include_stopped:
    description:
      - Also move stopped guests (offline migration), for example off a node that is being emptied.
      - If V(false), stopped guests stay where they are.
    type: bool
    default: true
  pools:
    description:
      - Rules for the guests of PVE pools, as in ProxLB. Keys are pool names, values mappings with
        C(type) (V(affinity) keeps the pool's guests on one node, V(anti-affinity) on different nodes),
        C(pin) (list of nodes) and C(strict) (default V(true); V(false) makes C(pin) a preference).
    type: dict
    default: {}
notes:
  - "Rules come from guest tags (case-insensitive): C(plb_affinity_<group>) and C(plb_include_<group>) keep guests
    on one node, C(plb_anti_affinity_<group>) and C(plb_exclude_<group>) on different nodes, C(plb_ignore*)
    never moves a guest, C(plb_pin_<node>) restricts it to that node (several pins form a set). PVE 9 HA rules
    (node-affinity with priorities and C(strict), resource-affinity positive and negative) and PVE 8 HA groups
    (restricted groups are hard, priorities are preferences) apply as PVE applies them."
  - Affinity groups merge when they share a guest and move as one. An anti-affinity group with more guests
    than usable nodes is spread evenly with a warning. Contradicting rules are reported in C(rule_conflicts);
    the rest of the plan proceeds.
  - No planned state, including every state between waves, puts a node over its memory (after reserve)
    or over O(cpu_overcommit); a running guest only lands where it can grow to its configured memory.
"""

    # When balancing starts and how far it goes, and the nodes to empty on the way: proxlb_plan,
    # proxlb_rebalance and proxlb_best_node (a drain by proxlb_maintenance does not balance).
    BALANCE = r"""
options:
  balanciness:
    description:
      - Balancing starts when the spread between the most and the least loaded node (percentage points)
        is larger than this.
      - Once started, the plan aims for half of it, so that planning again right after a rebalance finds
        nothing to do.
      - With O(mode=psi), in percent of time stalled.
    type: float
    default: 10
  memory_threshold:
    description:
      - Balance by memory only when the most loaded node is at or above this percentage.
      - A gate on top of O(balanciness) (ProxLB treats thresholds as an alternative trigger).
    type: float
  cpu_threshold:
    description: Like O(memory_threshold), for O(method=cpu).
    type: float
  disk_threshold:
    description: Like O(memory_threshold), for O(method=disk).
    type: float
  max_moves:
    description:
      - Largest number of balancing migrations one plan may hold. Mandatory moves (maintenance drain,
        rule repairs, relieving a node over capacity) are not limited.
      - Unset means no limit.
    type: int
  maintenance_nodes:
    description:
      - Nodes to empty. Every guest that may move leaves them (mandatory moves), and they never receive one.
      - Nodes that PVE HA reports in maintenance mode are treated the same way.
    type: list
    elements: str
    default: []
  manage_ha_resources:
    description:
      - On PVE 9.2 and later with the CRS option C(ha-auto-rebalance) on, PVE balances HA resources
        itself; they are left to PVE (their load still counts) unless this is V(true).
    type: bool
    default: false
"""
