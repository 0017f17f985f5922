#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: proxlb_cluster_info
short_description: Read a Proxmox VE cluster into a snapshot for balancing
version_added: 0.1.0
author:
  - proxlb.balancer maintainers (!UNKNOWN)
description:
  - Reads nodes, guests (QEMU VMs and LXC containers), storages, pools, HA rules or groups and
    the cluster resource scheduler (CRS) settings of a Proxmox VE 8 or 9 cluster through its REST API.
  - Returns the whole picture as RV(snapshot), plus a per-node summary in RV(nodes).
  - The snapshot is what the planning modules of this collection work on; save it with O(dest)
    to plan offline later or to rehearse on the simulator.
  - "Uses a fixed number of API requests whatever the cluster size: C(GET /version),
    C(/cluster/resources), C(/cluster/options), C(/cluster/status), C(/cluster/ha/status/current)
    and C(/cluster/ha/rules) (PVE 9) or C(/cluster/ha/groups) (PVE 8).
    O(with_pressure) and O(with_local_volumes) add requests per node."
options:
  dest:
    description:
      - Also write the snapshot as JSON to this file on the host that runs the module.
      - The task reports a change only when the file content changed.
      - In check mode the file is not written; the task reports whether it would change.
    type: path
  with_pressure:
    description:
      - Also read the pressure stall information (PSI) of every online node, averaged over
        O(pressure_window), into C(pressure) of each node (percent of time stalled).
      - Needs PVE 9 or later; on PVE 8 a warning is returned and no pressure is read.
      - Adds one request per online node.
    type: bool
    default: false
  pressure_window:
    description:
      - Time frame over which O(with_pressure) averages the node pressure.
    type: str
    choices: [hour, day, week, month, year]
    default: hour
  with_local_volumes:
    description:
      - Also sum the size of each guest's volumes on node-local storage (not shared, holding
        disk images or container volumes) into C(local_disk_bytes) of the guest.
      - Guests with all disks on shared storage get V(0). Without this option C(local_disk_bytes) is V(null).
      - Adds one request per node-local guest storage of every online node.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    details:
      - Reads only. With O(dest), the file is not written in check mode.
  diff_mode:
    support: none
extends_documentation_fragment:
  - proxlb.balancer.proxlb
  - proxlb.balancer.proxlb.actiongroup
  - proxlb.balancer.attributes
seealso:
  - name: Proxmox VE API viewer
    description: Reference of the endpoints this module reads.
    link: https://pve.proxmox.com/pve-docs/api-viewer/
"""

EXAMPLES = r"""
- name: Read the cluster with an API token
  proxlb.balancer.proxlb_cluster_info:
    api_host: pve1.example.com
    api_user: balancer@pve
    api_token_id: proxlb
    api_token_secret: "{{ vault_proxlb_token_secret }}"
    ca_path: /etc/ssl/pve-root-ca.pem
  register: cluster

- name: Show memory use per node
  ansible.builtin.debug:
    msg: "{{ item.key }}: {{ item.value.mem_pct }} % memory, {{ item.value.running }} running guests"
  loop: "{{ cluster.nodes | dict2items }}"

- name: Set the connection once for every module of the collection, with failover
  module_defaults:
    group/proxlb.balancer.proxlb:
      api_host:
        - pve1.example.com
        - pve2.example.com
        - "[2001:db8::13]:8006"
      api_token_id: balancer@pve!proxlb
      api_token_secret: "{{ vault_proxlb_token_secret }}"
      ca_path: /etc/ssl/pve-root-ca.pem
  block:
    - name: Save a snapshot for offline planning, with node pressure and local disk sizes
      proxlb.balancer.proxlb_cluster_info:
        dest: "{{ playbook_dir }}/snapshots/cluster-{{ ansible_date_time.date }}.json"
        with_pressure: true
        pressure_window: day
        with_local_volumes: true
      register: cluster

    - name: Stop when a node is down or HA reports maintenance
      ansible.builtin.assert:
        that:
          - cluster.quorate
          - cluster.nodes | dict2items | rejectattr('value.status', 'eq', 'online') | list | length == 0
          - cluster.nodes | dict2items | selectattr('value.ha_maintenance') | list | length == 0
        fail_msg: Cluster {{ cluster.cluster_name }} is not healthy enough to rebalance.

- name: Use the PROXMOX_* environment (as set by an AWX/AAP Proxmox credential)
  proxlb.balancer.proxlb_cluster_info:
  environment:
    PROXMOX_HOST: pve1.example.com,pve2.example.com
    PROXMOX_USER: root@pam
    PROXMOX_PASSWORD: "{{ vault_pve_root_password }}"
  register: cluster

- name: List the HA-managed guests
  ansible.builtin.debug:
    msg: "{{ cluster.snapshot.guests.values() | selectattr('ha') | map(attribute='name') | list }}"
"""

RETURN = r"""
pve_version:
  description: Version of pve-manager on the node that answered.
  returned: success
  type: str
  sample: 9.0.3
cluster_name:
  description: Name of the cluster; V(null) for a single node without a cluster.
  returned: success
  type: str
  sample: prodcluster
quorate:
  description: Whether the cluster has quorum; V(null) if PVE did not say.
  returned: success
  type: bool
  sample: true
guests_count:
  description: Number of guests (VMs and containers, templates included) visible to the API user.
  returned: success
  type: int
  sample: 42
api_calls:
  description:
    - API requests made to build the snapshot, retries included, login excluded.
    - Six at most without O(with_pressure) and O(with_local_volumes), whatever the cluster size.
  returned: success
  type: int
  sample: 6
nodes:
  description: Summary per node, keyed by node name.
  returned: success
  type: dict
  contains:
    status:
      description: V(online), V(offline) or V(unknown).
      type: str
      sample: online
    maxmem_bytes:
      description: Memory of the node.
      type: int
      sample: 269878464512
    mem_bytes:
      description: Memory in use on the node.
      type: int
      sample: 91268055040
    mem_pct:
      description: Memory in use, percent of C(maxmem_bytes), one decimal.
      type: float
      sample: 33.8
    maxcpu:
      description: CPU threads of the node.
      type: int
      sample: 48
    cpu_pct:
      description: CPU in use, percent of all threads, one decimal.
      type: float
      sample: 4.3
    guests:
      description: Guests whose configuration is on this node, templates included.
      type: int
      sample: 14
    running:
      description: Guests running on this node.
      type: int
      sample: 12
    ha_maintenance:
      description: PVE HA reports the node in maintenance mode.
      type: bool
      sample: false
  sample:
    pve1: {status: online, maxmem_bytes: 269878464512, mem_bytes: 91268055040, mem_pct: 33.8,
           maxcpu: 48, cpu_pct: 4.3, guests: 14, running: 12, ha_maintenance: false}
snapshot:
  description:
    - The cluster snapshot the planning modules work on; the same content O(dest) saves.
    - Numbers have one type and unit each (C(_bytes) in bytes; C(cpu) a fraction 0..1 of the
      object's own CPUs), whatever PVE version sent them.
  returned: success
  type: dict
  contains:
    format:
      description: Version of the snapshot layout.
      type: int
      sample: 1
    pve_version:
      description: Same as RV(pve_version).
      type: str
    cluster_name:
      description: Same as RV(cluster_name).
      type: str
    quorate:
      description: Same as RV(quorate).
      type: bool
    api_calls:
      description: Same as RV(api_calls).
      type: int
    nodes:
      description:
        - Nodes keyed by name, with C(name), C(status), C(maxcpu), C(cpu), C(maxmem_bytes), C(mem_bytes),
          C(maxdisk_bytes), C(disk_bytes) (root file system), C(hastate) (HA node state, PVE 8.3+),
          C(ha_maintenance) and C(pressure).
        - C(pressure) holds C(cpu_some), C(memory_some), C(memory_full), C(io_some) and C(io_full)
          in percent with O(with_pressure), and is empty otherwise.
      type: dict
      sample:
        pve1: {name: pve1, status: online, maxcpu: 48, cpu: 0.043, maxmem_bytes: 269878464512, mem_bytes: 91268055040,
               maxdisk_bytes: 100861726720, disk_bytes: 13268889600, hastate: online, ha_maintenance: false, pressure: {}}
    guests:
      description:
        - Guests keyed by VM id (as a string), with C(vmid), C(name), C(type) (V(qemu) or V(lxc)), C(node),
          C(status), C(template), C(maxcpu), C(cpu), C(maxmem_bytes), C(mem_bytes), C(maxdisk_bytes), C(disk_bytes),
          C(tags) (list, case kept), C(pool), C(lock), C(ha), C(local_disk_bytes) and C(pressure).
        - C(mem_bytes) is the host memory the guest uses (PVE 9 C(memhost) for running VMs), never more
          than C(maxmem_bytes); V(0) for stopped guests.
        - C(ha) is V(null) for guests not managed by PVE HA, else C(sid), C(state), C(group), C(failback)
          and C(auto_rebalance).
      type: dict
      sample:
        "100": {vmid: 100, name: db01, type: qemu, node: pve1, status: running, template: false, maxcpu: 4.0,
                cpu: 0.02, maxmem_bytes: 8589934592, mem_bytes: 5179975680, maxdisk_bytes: 34359738368, disk_bytes: 0,
                tags: [plb_anti_affinity_db, prod], pool: prod, lock: null,
                ha: {sid: "vm:100", state: started, group: null, failback: true, auto_rebalance: true},
                local_disk_bytes: null, pressure: {}}
    storages:
      description: One entry per storage and node, with C(storage), C(node), C(plugintype), C(shared),
        C(content) (list), C(status), C(disk_bytes) and C(maxdisk_bytes).
      type: list
      elements: dict
    pools:
      description: Pool name to the sorted VM ids of its guests.
      type: dict
      sample: {prod: [100, 101]}
    ha_rules:
      description:
        - PVE 9 HA rules in PVE's order, with C(rule), C(type) (V(node-affinity) or V(resource-affinity)),
          C(resources) (list of V(vm:100)/V(ct:101)), C(nodes) (node to priority), C(strict), C(affinity)
          (V(positive) or V(negative)) and C(disabled).
      type: list
      elements: dict
    ha_groups:
      description: PVE 8 HA groups, with C(group), C(nodes) (node to priority), C(restricted) and C(nofailback).
      type: list
      elements: dict
    crs:
      description: Cluster resource scheduler settings from the datacenter options, keys as PVE names them.
      type: dict
      sample: {ha: static, ha-rebalance-on-start: 1}
"""

from ansible_collections.proxlb.balancer.plugins.module_utils.ansible_glue import connect, create_module, run
from ansible_collections.proxlb.balancer.plugins.module_utils.cluster_info_runner import run_cluster_info
from ansible_collections.proxlb.balancer.plugins.module_utils.collector import PRESSURE_WINDOWS


def argument_spec():
    return dict(
        dest=dict(type="path"),
        with_pressure=dict(type="bool", default=False),
        pressure_window=dict(type="str", default="hour", choices=list(PRESSURE_WINDOWS)),
        with_local_volumes=dict(type="bool", default=False),
    )


def main():
    run(create_module(argument_spec()), run_cluster_info, connect)


if __name__ == "__main__":
    main()
