#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: proxlb_best_node
short_description: Choose the Proxmox VE node a new guest should be created on
version_added: 0.1.0
author:
  - proxlb.balancer maintainers (!UNKNOWN)
description:
  - Reads the cluster (or a snapshot saved by M(proxlb.balancer.proxlb_cluster_info)) and ranks the nodes for a new
    guest of the given size, without changing anything.
  - A node is chosen only if the guest fits there with the same checks the balancing plan uses
    (M(proxlb.balancer.proxlb_plan)) - memory within the node's memory minus O(node_resource_reserve), vCPUs within
    O(cpu_overcommit), the disk on O(storage) - and only if the rules allow it - ProxLB tags
    (C(plb_pin_*), C(plb_affinity_*), C(plb_anti_affinity_*)) in O(tags), pool rules from O(pools),
    O(maintenance_nodes) and O(ignore_nodes).
  - Among the nodes that fit, nodes preferred by a rule come first, then the node whose load is lowest after
    the guest arrives. O(method) and O(mode) decide which load that is.
  - With O(count), several guests are placed one after another, each counted on its node before the next is
    placed, so an anti-affinity tag spreads them over different nodes.
  - The P(proxlb.balancer.best_node#lookup) lookup gives the same answer inline in a template.
options:
  memory:
    description:
      - Memory of the new guest.
      - A whole number of bytes, or a number with a binary unit, for example V(512M), V(8G), V(8GiB),
        V(8192MiB) or V(1T). V(K), V(M), V(G), V(T) and V(P) are powers of 1024, with or without V(iB) or V(B).
      - The guest counts with this much memory on its node, as if it used all of it.
    type: raw
    required: true
  cores:
    description:
      - vCPUs of the new guest (cores times sockets for a VM, cores for a container), 1 or more.
    type: int
    required: true
  disk:
    description:
      - Disk size of the new guest, in the same forms as O(memory).
      - Checked against the free space of O(storage) on each node; without O(storage) it is not checked.
      - When O(storage) is node-local (not shared), the disk also counts against the node's local storage,
        which is what O(method=disk) balances.
    type: raw
  storage:
    description:
      - Storage the guest's disk goes to, for example V(local-lvm) or V(ceph-vm).
      - Only nodes where this storage is available, can hold the guest's disks (content C(images) for a VM,
        C(rootdir) for a container) and has O(disk) free are considered.
    type: str
  type:
    description:
      - Kind of guest, V(vm) (QEMU) or V(ct) (LXC container).
    type: str
    choices: [vm, ct]
    default: vm
  tags:
    description:
      - PVE tags the new guest will carry. The ProxLB rule tags among them apply to it.
      - C(plb_pin_<node>) restricts it to the pinned nodes.
      - C(plb_affinity_<name>) puts it on the node of the existing guests with the same tag.
      - C(plb_anti_affinity_<name>) keeps it off the nodes of existing guests with the same tag.
    type: list
    elements: str
    default: []
  pool:
    description:
      - Pool the new guest will belong to; the rules O(pools) sets for that pool apply to it.
    type: str
  nodes:
    description:
      - Consider only these nodes. Every name must be a node of the cluster.
      - By default every online node that is not a maintenance node or ignored is considered.
    type: list
    elements: str
  count:
    description:
      - Number of guests of this size to place, one after another.
      - RV(nodes) lists the node of each in order; RV(node) is the first.
    type: int
    default: 1
  fail_when_no_fit:
    description:
      - Fail when a guest fits on no node, with a message saying why each node was rejected.
      - With V(false), RV(node) (or the entries of RV(nodes) that could not be placed) is V(null) instead and
        RV(msg) still says why.
    type: bool
    default: true
  snapshot:
    description:
      - Choose offline from a snapshot file written by M(proxlb.balancer.proxlb_cluster_info) (O(proxlb.balancer.proxlb_cluster_info#module:dest) there)
        instead of reading the cluster. The connection options are then not used.
    type: path
attributes:
  check_mode:
    support: full
    details:
      - Never changes anything; runs the same in check mode.
  diff_mode:
    support: N/A
    details:
      - Never changes anything.
extends_documentation_fragment:
  - proxlb.balancer.proxlb
  - proxlb.balancer.proxlb.actiongroup
  - proxlb.balancer.balancing
  - proxlb.balancer.balancing.balance
  - proxlb.balancer.attributes
notes:
  - Reading the cluster takes six API requests whatever its size; O(mode=psi) adds one per node and
    O(method=disk) one per node-local storage.
  - Options of the balancing plan that decide when and how much to move (O(balanciness), thresholds,
    O(max_moves), O(max_moves_per_node), O(guest_types), O(include_stopped)) do not change the answer.
  - The answer is a snapshot of the cluster at the time of the task. Guests created by other means in
    the meantime are not accounted for.
seealso:
  - plugin: proxlb.balancer.best_node
    plugin_type: lookup
  - module: proxlb.balancer.proxlb_plan
  - module: proxlb.balancer.proxlb_cluster_info
"""

EXAMPLES = r"""
- name: Where does an 8 GiB, 4 core VM go?
  proxlb.balancer.proxlb_best_node:
    api_host: pve1.example.com
    api_user: balancer@pve
    api_token_id: proxlb
    api_token_secret: "{{ vault_proxlb_token_secret }}"
    ca_path: /etc/ssl/pve-root-ca.pem
    memory: 8G
    cores: 4
  register: best

- name: Create the VM there
  community.proxmox.proxmox_kvm:
    node: "{{ best.node }}"
    name: web-01
    memory: 8192
    cores: 4

- name: A database VM with a 200 GiB disk on local ZFS, kept apart from the other databases
  proxlb.balancer.proxlb_best_node:
    memory: 32GiB
    cores: 8
    disk: 200G
    storage: local-zfs
    tags: [plb_anti_affinity_db]
    node_resource_reserve:
      defaults: {memory: 16}
  register: best_db

- name: Three web servers spread over different nodes, not on pve3 (maintenance next week)
  proxlb.balancer.proxlb_best_node:
    memory: 4G
    cores: 2
    count: 3
    tags: [plb_anti_affinity_web]
    maintenance_nodes: [pve3]
  register: web

- name: Create them
  community.proxmox.proxmox_kvm:
    node: "{{ item.1 }}"
    name: "web-{{ item.0 + 1 }}"
    memory: 4096
    cores: 2
  loop: "{{ web.nodes | enumerate | list }}"

- name: A container among the candidates only, by CPU load; do not fail when nothing fits
  proxlb.balancer.proxlb_best_node:
    type: ct
    memory: 512M
    cores: 1
    nodes: [pve1, pve2]
    method: cpu
    fail_when_no_fit: false
  register: ct

- name: Say why no node fits
  ansible.builtin.debug:
    msg: "{{ ct.msg }}"
  when: ct.node is none

- name: Offline, on a saved snapshot
  proxlb.balancer.proxlb_best_node:
    snapshot: snapshots/cluster.json
    memory: 16G
    cores: 4
    pool: production
    pools:
      production: {pin: [pve1, pve2], strict: false}
  register: what_if
"""

RETURN = r"""
node:
  description: The chosen node of the (first) guest, or V(null) when it fits nowhere and O(fail_when_no_fit=false).
  returned: success
  type: str
  sample: pve2
nodes:
  description: The chosen node of each guest, in placement order (O(count) entries); V(null) for guests that fit nowhere.
  returned: success
  type: list
  elements: str
  sample: [pve2, pve4, pve1]
ranking:
  description:
    - Every node of the cluster for the (first) guest, best first; nodes that do not fit come last.
  returned: success
  type: list
  elements: dict
  contains:
    node:
      description: Node name.
      type: str
      sample: pve2
    fits:
      description: Whether the guest can go there.
      type: bool
      sample: true
    rank:
      description: Position among the nodes that fit, from 1; V(null) if it does not fit.
      type: int
      sample: 1
    preferred:
      description: Whether a rule prefers this node (the pin of a pool rule that is not strict).
      type: bool
      sample: false
    load_before_pct:
      description: Load of the node (O(method), O(mode)) in percent of its capacity after reserve, before the guest arrives.
      type: float
      sample: 41.5
    load_after_pct:
      description: The same after the guest arrives; V(null) for a node without capacity.
      type: float
      sample: 47.8
    reasons:
      description:
        - "Why the node was rejected, for example C(memory: needs 8.0 GiB, 2.1 GiB free after reserve),
          C(maintenance node (maintenance_nodes)), C(anti-affinity group plb_anti_affinity_db already has 1 guest(s) there),
          C(not allowed by rule:pin), C(storage local-zfs: needs 200.0 GiB, 120.3 GiB free) or
          C(not in the requested nodes)."
        - For a node that fits, V(fits) or V(preferred by rule).
      type: list
      elements: str
      sample: [fits]
placements:
  description:
    - One entry per guest, up to the first that fits nowhere, with its C(node) and its C(ranking) (as in RV(ranking))
      in the state after the guests before it were placed.
  returned: when O(count) is more than 1
  type: list
  elements: dict
  sample: [{node: pve2, ranking: []}]
request:
  description: The new guest as understood, with sizes in bytes.
  returned: success
  type: dict
  sample:
    memory_bytes: 8589934592
    cores: 4
    type: vm
    disk_bytes: 0
    storage: null
    storage_local: false
    tags: []
    pool: null
    nodes: null
    count: 1
msg:
  description: Why a guest fits on no node, node by node. The failure message when O(fail_when_no_fit=true).
  returned: when a guest fits nowhere
  type: str
  sample: >-
    no node can take the new vm (64.0 GiB memory, 8 cores): pve1: memory: needs 64.0 GiB, 20.5 GiB free after reserve;
    pve2: maintenance node (maintenance_nodes)
api_calls:
  description: API requests made to read the cluster (V(0) with O(snapshot)).
  returned: success
  type: int
  sample: 6
"""

from ansible_collections.proxlb.balancer.plugins.module_utils.ansible_glue import balance_argument_spec, connect, create_module, run
from ansible_collections.proxlb.balancer.plugins.module_utils.best_node_options import OptionAdapter, choose
from ansible_collections.proxlb.balancer.plugins.module_utils.collector import load_snapshot


def argument_spec():
    spec = dict(
        memory=dict(type="raw", required=True),
        cores=dict(type="int", required=True),
        disk=dict(type="raw"),
        storage=dict(type="str"),
        type=dict(type="str", default="vm", choices=["vm", "ct"]),
        tags=dict(type="list", elements="str", default=[]),
        pool=dict(type="str"),
        nodes=dict(type="list", elements="str"),
        count=dict(type="int", default=1),
        fail_when_no_fit=dict(type="bool", default=True),
        snapshot=dict(type="path"),
    )
    spec.update(balance_argument_spec())
    return spec


def main():
    module = create_module(argument_spec())

    def answer(_request):
        result, failed = choose(OptionAdapter.from_module(module), connect, load_snapshot)
        if failed:
            module.fail_json(**result)
        return result

    run(module, answer)


if __name__ == "__main__":
    main()
