#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: proxlb_maintenance
short_description: Drain Proxmox VE nodes for maintenance and bring their guests back
version_added: 0.1.0
author:
  - proxlb.balancer maintainers (!UNKNOWN)
description:
  - "O(state=drained) moves every guest (QEMU VMs and LXC containers) off the nodes in O(nodes)
    through the PVE API, so that they can be patched, rebooted or switched off."
  - "The whole evacuation is planned before anything moves: every guest gets a target node where
    it fits (memory with reserve, CPU with O(cpu_overcommit)) at every step of the sequence, and
    placement rules are kept: guests of an affinity group move together to one node, anti-affinity
    groups stay on different nodes, pinned guests only go to nodes they are pinned to. The rules
    are the ones M(proxlb.balancer.proxlb_plan) reads (C(plb_*) tags, O(pools), PVE HA rules and groups)."
  - "If some guest has nowhere to go, the task fails before the first migration and says, per guest,
    why every other node was rejected (RV(nowhere_to_go))."
  - "Guests that would stay on a drained node because they must not or cannot move - ignored
    (C(plb_ignore) tags, O(ignore_guests)), locked, held by local devices PVE reports in its migration
    check, pinned to the drained nodes only, excluded by O(guest_types), on an offline node - are RV(blocking). They fail
    the task before the first migration unless O(allow_blocking=true), which drains the rest and
    leaves them where they are. Templates, and stopped guests with O(include_stopped=false), stay
    without blocking (RV(staying))."
  - "Before migrating, PVE's own migration check (C(GET .../migrate?target=)) is asked once for every
    guest the plan moves, and the plan is made again around what PVE refuses: guests with local
    devices stay (RV(blocking)), nodes that lack a storage or a device mapping of a guest, or that HA
    rules keep it from, are not used for it. So these problems show up before the first migration."
  - "Migrations run wave by wave like in M(proxlb.balancer.proxlb_rebalance): the cluster is re-read
    before each wave and the rest of the evacuation is planned again when it drifted; HA-managed
    guests are followed through C(hamigrate) to the real migration task."
  - "Nodes that PVE reports in HA maintenance mode are never used as targets, whether listed in
    O(nodes) or not. This module does not switch PVE HA maintenance mode on or off: PVE has no API
    request for it (C(ha-manager crm-command node-maintenance) on a node does it; the
    P(proxlb.balancer.rolling_update#role) role runs it)."
  - "O(state=active) moves the guests in O(return_guests) (the RV(evacuated) list of the drain)
    back to the nodes they came from, as far as they still fit and the rules allow; those that do
    not are listed in RV(not_returned) and stay where they are."
  - In check mode the same plan is made (including PVE's migration checks, which only read) and
    returned; nothing is migrated.
  - Running the drain again on a drained node plans no moves and reports no change.
options:
  nodes:
    description:
      - Names of the nodes to drain (O(state=drained)) or to make active again (O(state=active)).
      - Draining every node of the cluster is refused; so is a drain that leaves no node (online,
        not in HA maintenance, not in O(ignore_nodes)) to take the guests, and a node that is also in
        O(ignore_nodes).
    type: list
    elements: str
    required: true
  state:
    description:
      - V(drained) moves every guest off O(nodes).
      - V(active) moves the guests of O(return_guests) back to O(nodes).
    type: str
    required: true
    choices: [drained, active]
  allow_blocking:
    description:
      - With O(state=drained), drain what can move and leave RV(blocking) guests on the node
        instead of failing before the first migration.
      - They are still reported in RV(blocking) and as warnings.
    type: bool
    default: false
  return_guests:
    description:
      - With O(state=active), the guests to bring back, as the RV(evacuated) list of the drain
        returned it (C(vmid) and C(from) are used; C(name) and C(to) are informative).
      - Only entries whose C(from) is one of O(nodes) are considered, so the list of a drain of
        several nodes can be given while they come back one by one.
      - A guest goes back wherever it is now; one already on its C(from) node needs nothing.
    type: list
    elements: dict
    default: []
  manage_ha_resources:
    description:
      - Move HA-managed guests also when PVE 9.2 or later balances HA resources itself (CRS
        C(ha-auto-rebalance)).
      - Defaults to V(true) here, unlike in M(proxlb.balancer.proxlb_rebalance), because a drain has
        to empty the node; with V(false) such guests on a drained node are RV(blocking) (PVE HA node
        maintenance would move them instead).
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    details:
      - Plans the drain or the return, asks PVE's migration check (read only) and returns the plan;
        nothing is migrated. RV(changed) says whether moves would run.
  diff_mode:
    support: full
    details:
      - Returns the node of every guest that moves (or would move) before and after.
extends_documentation_fragment:
  - proxlb.balancer.proxlb
  - proxlb.balancer.execution
  - proxlb.balancer.proxlb.actiongroup
  - proxlb.balancer.balancing
  - proxlb.balancer.attributes
  - proxlb.balancer.report
notes:
  - "A drain sends every migration out of the drained nodes, so O(max_moves_per_node) is how many of
    their guests move at the same time (together with O(parallel_migrations))."
  - "API requests: six to read the cluster; one migration check per planned move before the first
    migration; then what M(proxlb.balancer.proxlb_rebalance) needs per wave and per migration; one
    read of C(/cluster/resources) at the end to see what is left on the nodes."
  - "A drain also carries out the other required moves the plan finds (rule violations, nodes over
    memory capacity), as M(proxlb.balancer.proxlb_plan) would; RV(evacuated) lists only the moves off
    the drained nodes, which are the ones to bring back."
  - "The cluster must have quorum; PVE refuses migrations otherwise."
  - "Needs C(VM.Migrate) on C(/vms) besides the read privileges."
  - "The P(proxlb.balancer.evacuate_node#role) role drains one node, waits until it is empty and shows what
    moved where; P(proxlb.balancer.rolling_update#role) drains, patches, reboots and refills the nodes of a
    cluster one at a time."
seealso:
  - module: proxlb.balancer.proxlb_plan
    description: Preview a drain with O(proxlb.balancer.proxlb_plan#module:maintenance_nodes).
  - module: proxlb.balancer.proxlb_rebalance
"""

EXAMPLES = r"""
- name: Dry run - what would draining pve2 do? (nothing moves)
  proxlb.balancer.proxlb_maintenance:
    api_host: pve1.example.com
    api_user: balancer@pve
    api_token_id: proxlb
    api_token_secret: "{{ vault_proxlb_token_secret }}"
    nodes: [pve2]
    state: drained
  check_mode: true
  diff: true
  register: preview

- name: Drain pve2, two migrations at a time, keeping 8 GiB free on every node
  proxlb.balancer.proxlb_maintenance:
    nodes: [pve2]
    state: drained
    max_moves_per_node: 2
    parallel_migrations: 2
    node_resource_reserve:
      defaults: {memory: 8}
  register: drain

- name: Show what moved where
  ansible.builtin.debug:
    msg: "{{ drain.progress }}"

- name: Drain pve3 but leave its ignored and pass-through guests there
  proxlb.balancer.proxlb_maintenance:
    nodes: [pve3]
    state: drained
    allow_blocking: true
  register: drain_pve3

- name: After maintenance, bring the guests back where they still fit
  proxlb.balancer.proxlb_maintenance:
    nodes: [pve2]
    state: active
    return_guests: "{{ drain.evacuated }}"
  register: back

- name: Say which guests could not return
  ansible.builtin.debug:
    var: back.not_returned
  when: back.not_returned | length > 0
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
  returned: always
  type: bool
  sample: true
state:
  description: O(state) as given.
  returned: success
  type: str
  sample: drained
nodes:
  description:
    - Per node of O(nodes), after the run (in check mode, as read before planning), with
      C(status), C(ha_maintenance) (PVE HA reports the node in maintenance mode), C(guests)
      (guests whose configuration is on the node) and C(running).
  returned: success
  type: dict
  sample: {"pve2": {"status": "online", "ha_maintenance": false, "guests": 2, "running": 0}}
evacuated:
  description:
    - With O(state=drained), the guests moved off the drained nodes, with C(vmid), C(name), C(from)
      and C(to) (where the guest really is after the run).
    - In check mode, the moves that would run.
    - Give this list as O(return_guests) with O(state=active) to bring the guests back.
  returned: success
  type: list
  elements: dict
  sample: [{"vmid": 101, "name": "web1", "from": "pve2", "to": "pve3"}]
blocking:
  description:
    - "With O(state=drained), guests that stay on a drained node although they run or could run
      there, with C(vmid), C(name), C(node) and C(reason) (V(ignored), V(locked:<lock>),
      V(type_excluded), V(node_offline), V(status:<status>), V(ha_managed_by_pve), V(rule_conflict),
      PVE's reason from its migration check such as C(PVE: local resources pin the VM to its node: hostpci0),
      the error of a migration that failed, or the affinity partner that keeps a guest)."
  returned: success
  type: list
  elements: dict
  sample: [{"vmid": 170, "name": "gpu01", "node": "pve2", "reason": "PVE: local resources pin the VM to its node: hostpci0"}]
staying:
  description:
    - "With O(state=drained), guests that stay on a drained node without blocking the maintenance:
      templates (V(template)) and, with O(include_stopped=false), stopped guests (V(stopped))."
  returned: success
  type: list
  elements: dict
  sample: [{"vmid": 190, "name": "tmpl-debian13", "node": "pve2", "reason": "template"}]
nowhere_to_go:
  description:
    - With O(state=drained), guests of the drained nodes for which no target exists, with C(vmid),
      C(name), C(node), C(rule) (the required move that failed, e.g. V(maintenance)) and C(detail)
      (why each node was rejected). When not empty the task fails and nothing was migrated.
  returned: success
  type: list
  elements: dict
  sample: [{"vmid": 111, "name": "db02", "node": "pve2", "rule": "maintenance",
            "detail": "pve1: memory: needs 32.0 GiB, 17.0 GiB free after reserve; pve3: not allowed by rule:pin"}]
returned:
  description:
    - With O(state=active), the guests moved back, with C(vmid), C(name), C(from) and C(to).
    - In check mode, the moves that would run.
  returned: success
  type: list
  elements: dict
  sample: [{"vmid": 101, "name": "web1", "from": "pve3", "to": "pve2"}]
not_returned:
  description:
    - With O(state=active), guests of O(return_guests) that stay where they are, with C(vmid),
      C(name), C(node) (where the guest is, V(null) if it no longer exists), C(wanted) (its node
      before the drain) and C(reason).
  returned: success
  type: list
  elements: dict
  sample: [{"vmid": 110, "name": "db01", "node": "pve1", "wanted": "pve2",
            "reason": "pve2: memory: needs 32.0 GiB, 20.5 GiB free after reserve"}]
plan:
  description:
    - The plan that was carried out, in the structure M(proxlb.balancer.proxlb_plan) returns (node
      loads before and after, moves with reasons and waves, what was left alone and why, failures,
      rule conflicts, warnings).
    - Moves added by re-planning during the run are in RV(moves), not here.
  returned: success
  type: dict
  sample: {"moves_count": 4, "waves": 4, "stop_reason": "balancing_off"}
summary:
  description: The plan as a short human-readable table.
  returned: success
  type: str
moves:
  description:
    - One entry per move of the run with its outcome, as in M(proxlb.balancer.proxlb_rebalance)
      (C(vmid), C(name), C(type), C(from), C(to), C(reason), C(mandatory), C(mem_bytes), C(wave),
      C(status), C(upid), C(ha_upid), C(duration_s), C(error), C(final_node)).
    - C(status) is V(ok), V(failed), V(skipped), V(not_started) or, in check mode, V(planned).
  returned: success
  type: list
  elements: dict
  sample: [{"vmid": 101, "name": "web1", "type": "vm", "from": "pve2", "to": "pve3", "reason": "maintenance",
            "mandatory": true, "mem_bytes": 4294967296, "wave": 1, "status": "ok", "upid": "UPID:pve2:...",
            "ha_upid": null, "duration_s": 8.2, "error": null, "final_node": "pve3"}]
waves:
  description: Per executed wave, counts and timings (as in M(proxlb.balancer.proxlb_rebalance)).
  returned: success
  type: list
  elements: dict
progress:
  description: One human-readable line per move and per wave.
  returned: success
  type: list
  elements: str
  sample: ["wave 1  101 web1  pve2 -> pve3  ok  8.2 s"]
stopped:
  description: Whether the run stopped early (O(on_failure=stop) after a failure, or the cluster could not be read).
  returned: success
  type: bool
stop_reason:
  description: Why the run stopped early, else V(null).
  returned: success
  type: str
replans:
  description: How many times the rest of the plan was recomputed during the run.
  returned: success
  type: int
nodes_final:
  description: Per node after the run (C(status), C(guests), C(running), C(load_pct), C(mem_bytes), C(maxmem_bytes)).
  returned: success
  type: dict
api_calls:
  description: API requests of the run, C(total), C(collect) (reading and checking before the first migration),
    C(execute) and C(by_endpoint).
  returned: success
  type: dict
  sample: {"total": 41, "collect": 10, "execute": 31, "by_endpoint": {"GET /cluster/resources": 4}}
duration_s:
  description: Wall-clock seconds spent migrating (0 in check mode).
  returned: success
  type: float
diff:
  description: With C(--diff), the node of every guest that moved (or would move) before and after, keyed C(<vmid>/<name>).
  returned: when diff mode is on
  type: dict
  sample: {"before": {"101/web1": "pve2"}, "after": {"101/web1": "pve3"}}
msg:
  description: Why the task failed - guests with nowhere to go, blocking guests, failed migrations.
  returned: failure
  type: str
  sample: "cannot drain pve2, nothing was migrated: 111 (db02) has nowhere to go: pve1: memory: needs 32.0 GiB, 17.0 GiB free after reserve"
"""

from ansible_collections.proxlb.balancer.plugins.module_utils.ansible_glue import (
    balance_argument_spec, connect, create_module, execution_argument_spec, run)
from ansible_collections.proxlb.balancer.plugins.module_utils.maintenance import STATES, UNUSED_BALANCE_OPTIONS, run_maintenance


def argument_spec():
    spec = balance_argument_spec()
    for key in UNUSED_BALANCE_OPTIONS:
        spec.pop(key)
    spec["manage_ha_resources"] = dict(spec["manage_ha_resources"], default=True)
    spec.update(execution_argument_spec())
    # A drain is carried out whole: a partial one is what allow_blocking and on_failure describe.
    spec.pop("max_waves")
    spec.update(
        nodes=dict(type="list", elements="str", required=True),
        state=dict(type="str", required=True, choices=list(STATES)),
        allow_blocking=dict(type="bool", default=False),
        return_guests=dict(type="list", elements="dict", default=[]),
        report=dict(type="path"),
    )
    return spec


def main():
    run(create_module(argument_spec()), run_maintenance, connect)


if __name__ == "__main__":
    main()
