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
        not in HA maintenance, not in O(ignore_nodes)) to take the guests.
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
  include_stopped:
    description:
      - Also move stopped guests off the drained nodes (offline migration).
      - If V(false), stopped guests stay on the node and are listed in RV(staying).
    type: bool
    default: true
  method:
    description:
      - Resource that decides which node takes a guest first (the least loaded node that fits).
      - Memory always has to fit, whatever the method.
    type: str
    choices: [memory, cpu, disk]
    default: memory
  mode:
    description:
      - "How node loads are measured for O(method): V(used), V(assigned) (configured sizes) or
        V(psi) (PVE 9 pressure stall information)."
    type: str
    choices: [used, assigned, psi]
    default: used
  pressure_window:
    description: With O(mode=psi), the time frame the node pressure is averaged over.
    type: str
    choices: [hour, day, week]
    default: hour
  node_resource_reserve:
    description:
      - Capacity kept free on the nodes that take guests, as a mapping of node name (or
        V(defaults) for every node) to C(memory) (GiB), C(cpu) (cores) and C(disk) (GiB).
    type: dict
    default: {}
  cpu_overcommit:
    description: How many vCPUs of running guests a node may carry per host thread.
    type: float
    default: 4.0
  max_moves_per_node:
    description:
      - Largest number of migrations into and out of one node in the same wave.
      - A drain sends every migration out of the drained node, so this is how many of its guests
        move at the same time (together with O(parallel_migrations)).
    type: int
    default: 1
  guest_types:
    description:
      - Kinds of guests that may be moved (V(vm), V(ct)). Guests of another kind on a drained node
        are RV(blocking).
    type: list
    elements: str
    choices: [vm, ct]
    default: [vm, ct]
  ignore_guests:
    description:
      - Guests never moved, by name or VMID; shell wildcards work. On a drained node they are RV(blocking).
      - Guests tagged C(plb_ignore...) are never moved either.
    type: list
    elements: str
    default: []
  ignore_nodes:
    description: Nodes that must not take any guest. They cannot be drained at the same time.
    type: list
    elements: str
    default: []
  pools:
    description:
      - Rules for the guests of PVE resource pools, as a mapping of pool name to C(type)
        (V(affinity) or V(anti-affinity)), C(pin) (nodes they may run on) and C(strict)
        (default V(true); V(false) makes C(pin) a preference).
    type: dict
    default: {}
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
  - proxlb.balancer.attributes
notes:
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

from ansible_collections.proxlb.balancer.plugins.module_utils import executor, planner, rules
from ansible_collections.proxlb.balancer.plugins.module_utils.ansible_glue import connect, create_module, run
from ansible_collections.proxlb.balancer.plugins.module_utils.collector import collect
from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ConfigError, ProxLBError, PveApiError
from ansible_collections.proxlb.balancer.plugins.module_utils.settings import (
    BalanceSettings, balance_argument_spec, check_nodes_known)

STATES = ("drained", "active")
# Why a guest may stay on a drained node without standing in the way of the maintenance.
HARMLESS = ("template", "stopped")
# Balancing options that mean nothing to a drain or a return (no balancing happens).
UNUSED_BALANCE_OPTIONS = ("maintenance_nodes", "max_moves", "balanciness", "memory_threshold", "cpu_threshold",
                          "disk_threshold")
# Rounds of "ask PVE, plan again without what it refuses"; each round only asks about new moves.
PREFLIGHT_ROUNDS = 5


def argument_spec():
    spec = balance_argument_spec()
    for key in UNUSED_BALANCE_OPTIONS:
        spec.pop(key)
    spec["manage_ha_resources"] = dict(spec["manage_ha_resources"], default=True)
    spec.update(executor.execution_argument_spec())
    # A drain is carried out whole: a partial one is what allow_blocking and on_failure describe.
    spec.pop("max_waves")
    spec.update(
        nodes=dict(type="list", elements="str", required=True),
        state=dict(type="str", required=True, choices=list(STATES)),
        allow_blocking=dict(type="bool", default=False),
        return_guests=dict(type="list", elements="dict", default=[]),
    )
    return spec


# -- checks on the request ------------------------------------------------------------------------

def requested_nodes(params, snapshot):
    """O(nodes) without repeats, each one a node of the cluster."""
    nodes = []
    for name in params.get("nodes") or []:
        name = str(name).strip()
        if name and name not in nodes:
            nodes.append(name)
    if not nodes:
        raise ConfigError("nodes", "is empty; name the node(s) to drain or to make active again")
    unknown = [n for n in nodes if n not in snapshot.nodes]
    if unknown:
        raise ConfigError("nodes", "unknown node(s) %s; the cluster has %s" % (", ".join(unknown), ", ".join(sorted(snapshot.nodes))))
    return nodes


def check_drain(nodes, snapshot, settings):
    """Refuse drains that cannot work whatever the guests: every node, or no node left to receive."""
    if set(nodes) >= set(snapshot.nodes):
        raise ConfigError("nodes", "would drain every node of the cluster (%s), so the guests would have nowhere to go;"
                          " drain fewer nodes at a time" % ", ".join(sorted(snapshot.nodes)))
    both = sorted(set(nodes) & set(settings.ignore_nodes))
    if both:
        raise ConfigError("ignore_nodes", "lists %s, also given in nodes; a node cannot be drained and ignored at the same time"
                          % ", ".join(both))
    why_not = {}
    for name in sorted(snapshot.nodes):
        node = snapshot.nodes[name]
        if name in nodes:
            continue
        if not node.online:
            why_not[name] = node.status
        elif node.ha_maintenance:
            why_not[name] = "in PVE HA maintenance"
        elif name in settings.ignore_nodes:
            why_not[name] = "in ignore_nodes"
        else:
            return
    raise ConfigError("nodes", "no node is left to take the guests of %s (%s)"
                      % (", ".join(nodes), ", ".join("%s: %s" % item for item in sorted(why_not.items()))))


def wanted_placements(params, nodes, snapshot):
    """O(return_guests) -> ({vmid: node}, [not_returned]) for the entries that belong to O(nodes)."""
    wanted, gone = {}, []
    for index, item in enumerate(params.get("return_guests") or []):
        where = "return_guests[%d]" % index
        try:
            vmid = int(item["vmid"])
            source = str(item["from"])
        except (KeyError, TypeError, ValueError):
            raise ConfigError(where, "needs vmid and from (an entry of the evacuated list of the drain), got %r" % (item,))
        if source not in nodes:
            continue
        if vmid not in snapshot.guests:
            gone.append(dict(vmid=vmid, name=item.get("name"), node=None, wanted=source, reason="guest no longer exists"))
            continue
        wanted[vmid] = source
    return wanted, gone


# -- asking PVE before anything moves -------------------------------------------------------------

def pve_check(client, snapshot, move, with_local_disks):
    """PVE's migration check for one planned move: (why the guest cannot move at all, {node: why not there}).

    One answer covers every node (PVE 8.4 and later list the refused nodes with their reasons).
    The executor asks again right before each migration; asking up front is what lets the task
    fail, or plan around a refused node, before the first migration.
    """
    kind = "lxc" if move.type == "lxc" else "qemu"
    if kind == "lxc" and snapshot.version < (9, 0, 0):
        return None, {}     # PVE 8 has no migration check for containers
    try:
        answer = client.get("nodes/%s/%s/%d/migrate" % (move.source, kind, move.vmid), target=move.target)
    except PveApiError as err:
        return "PVE refused the migration check: %s" % (err.details.get("pve_message") or err), {}
    if not isinstance(answer, dict):
        return None, {}
    node_lists = ("allowed_nodes", "allowed-nodes", "not_allowed_nodes", "not-allowed-nodes")
    whole = executor.precondition_problem({k: v for k, v in answer.items() if k not in node_lists}, None, move.kind,
                                          with_local_disks)
    if whole:
        return whole, {}
    refused = {}
    for node in sorted(snapshot.nodes):
        if node != move.source:
            problem = executor.precondition_problem(answer, node, move.kind, with_local_disks)
            if problem:
                refused[node] = problem
    return None, refused


def checked_plan(client, snapshot, make_plan, with_local_disks):
    """Plan, ask PVE about each guest that moves, plan again around what it refuses.

    ``make_plan(refused, forbidden)`` plans without the guests in ``refused`` ({vmid: reason})
    and keeps guests away from the nodes in ``forbidden`` ({vmid: {node: reason}}).
    Returns (plan, refused, forbidden).
    """
    refused, forbidden, asked = {}, {}, set()
    result = make_plan(refused, forbidden)
    for _round in range(PREFLIGHT_ROUNDS):
        again = False
        for move in result.moves:
            if move.vmid in asked:
                continue
            asked.add(move.vmid)
            whole, nodes = pve_check(client, snapshot, move, with_local_disks)
            if whole:
                refused[move.vmid] = whole
                again = True
            elif nodes:
                forbidden[move.vmid] = nodes
                again = again or move.target in nodes
        if not again:
            break
        result = make_plan(dict(refused), dict(forbidden))
    return result, refused, forbidden


# -- what stays on a drained node -----------------------------------------------------------------

def guest_entry(guest, **extra):
    entry = dict(vmid=guest.vmid, name=guest.name, node=guest.node)
    entry.update(extra)
    return entry


def remaining_on(snapshot, settings, nodes, plan, extra_reasons=None, unexplained="no move planned"):
    """Guests of ``nodes`` the plan leaves there: (blocking, staying, nowhere_to_go)."""
    moved = {m.vmid for m in plan.moves}
    left = {}
    no_fit = {}
    for entry in plan.data.get("left_alone", []):
        if entry["reason"] == "no_fit":
            no_fit.setdefault(entry["vmid"], []).append(entry)
        else:
            left.setdefault(entry["vmid"], entry["reason"])
    for move in plan.data.get("unsequenced", []):
        no_fit.setdefault(move["vmid"], []).append(dict(rule=move["reason"], detail="no order of migrations to %s fits" % move["to"]))
    left.update(extra_reasons or {})
    constraints = rules.build(snapshot, settings)
    blocking, staying, nowhere = [], [], []
    for vmid in sorted(v for v, g in snapshot.guests.items() if g.node in nodes and v not in moved):
        guest = snapshot.guests[vmid]
        reason = left.get(vmid)
        allowed = constraints.allowed.get(vmid)
        if reason in HARMLESS:
            staying.append(guest_entry(guest, reason=reason))
        elif allowed is not None and not allowed & set(constraints.eligible):
            # Rules tie it to the drained nodes: it cannot move, like a guest with a local device.
            blocking.append(guest_entry(guest, reason="may only run on %s (%s)" % (
                ", ".join(sorted(allowed)), constraints.allowed_why.get(vmid, "rules"))))
        elif vmid in no_fit:
            entries = no_fit[vmid]
            nowhere.append(guest_entry(guest, rule=", ".join(sorted({e["rule"] for e in entries})),
                                       detail=entries[0]["detail"]))
        else:
            reason = reason or _held_by_partner(vmid, constraints.units, left, snapshot) or unexplained
            blocking.append(guest_entry(guest, reason=reason))
    return blocking, staying, nowhere


def _held_by_partner(vmid, units, reasons, snapshot):
    for members in units:
        if vmid in members:
            for other in members:
                if other != vmid and other in reasons:
                    return "affinity with %d (%s), which stays: %s" % (other, snapshot.guests[other].name, reasons[other])
    return None


def describe(entries, key="reason"):
    return "; ".join("%d (%s) on %s: %s" % (e["vmid"], e["name"], e["node"], e[key]) for e in entries)


# -- carrying out -----------------------------------------------------------------------------

def carry_out(client, snapshot, settings, options, todo, replan, check_mode):
    """Check mode: the plan as outcomes. Otherwise execute it. Returns the ExecutionReport."""
    if check_mode:
        return executor.ExecutionReport(outcomes=executor.planned_outcomes([w for w in todo.waves if w]),
                                        nodes_final=executor.node_loads(snapshot, settings))
    return executor.execute(client, snapshot, settings, todo, options, replan=replan)


def moved_guests(report, sources):
    """Moves of the report that took a guest off one of ``sources``: [{vmid, name, from, to}]."""
    result = []
    for outcome in report.outcomes:
        move = outcome.move
        if move.source not in sources:
            continue
        if outcome.status == executor.PLANNED:
            end = move.target
        elif outcome.status == executor.OK:
            end = outcome.final_node or move.target
        else:
            continue
        if end != move.source:
            result.append({"vmid": move.vmid, "name": move.name, "from": move.source, "to": end})
    return result


def node_states(snapshot, nodes):
    states = {}
    for name in nodes:
        node = snapshot.nodes[name]
        guests = snapshot.guests_on(name)
        states[name] = dict(status=node.status, ha_maintenance=node.ha_maintenance, guests=len(guests),
                            running=sum(1 for g in guests if g.running))
    return states


def base_result(client, report, todo, collect_calls, changed, diff):
    result = report.to_dict()
    data = todo.to_dict()
    result.update(changed=changed, plan=data, summary=data.get("summary") or planner.summary(todo),
                  api_calls=dict(total=client.calls, collect=collect_calls, execute=client.calls - collect_calls,
                                 by_endpoint=dict(client.calls_by_endpoint)))
    if diff:
        result["diff"] = executor.placement_diff(report.outcomes)
    return result


def final_snapshot(client, snapshot, warnings):
    """The cluster after the run (one read); the planning snapshot if it cannot be read."""
    try:
        return executor.refreshed(snapshot, client.get("cluster/resources"))
    except PveApiError as err:
        warnings.append("could not read the cluster after the run, so what is left on the nodes is as planned: %s" % err)
        return snapshot


def undone_moves(report):
    """{vmid: why} of moves the run did not carry out (skipped, failed, not started); last outcome per guest."""
    reasons = {}
    for outcome in report.outcomes:
        if outcome.status == executor.SKIPPED:
            reasons[outcome.move.vmid] = outcome.error or "skipped"
        elif outcome.status == executor.FAILED:
            reasons[outcome.move.vmid] = "migration failed: %s" % (outcome.error or "unknown error")
        elif outcome.status == executor.NOT_STARTED:
            reasons[outcome.move.vmid] = "not moved: the run stopped (%s)" % (report.stop_reason or "unknown reason")
        elif outcome.status == executor.OK:
            reasons.pop(outcome.move.vmid, None)
    return reasons


# -- the two states ---------------------------------------------------------------------------

def drain(client, snapshot, params, check_mode, diff, warnings):
    """state=drained. Returns (result, failure message or None)."""
    nodes = requested_nodes(params, snapshot)
    settings = BalanceSettings.from_params(dict(params, maintenance_nodes=nodes))
    options = executor.ExecOptions.from_params(params)
    check_nodes_known(settings, snapshot.nodes)
    check_drain(nodes, snapshot, settings)
    if snapshot.quorate is False:
        if not check_mode:
            raise ProxLBError("the cluster has no quorum, so PVE refuses migrations; restore quorum before draining %s"
                              % ", ".join(nodes))
        warnings.append("the cluster has no quorum; PVE would refuse these migrations")

    def make_plan(refused, forbidden):
        return planner.plan(snapshot, settings, immovable=refused, balance=False, forbidden=forbidden)

    todo, refused, forbidden = checked_plan(client, snapshot, make_plan, options.with_local_disks)
    blocking, staying, nowhere = remaining_on(snapshot, settings, nodes, todo)
    collect_calls = client.calls
    problems = []
    if nowhere:
        problems.append("%d guest(s) have nowhere to go: %s" % (len(nowhere), describe(nowhere, "detail")))
    if blocking and not params.get("allow_blocking"):
        problems.append("%d guest(s) cannot leave: %s (allow_blocking=true drains the rest and leaves them)"
                        % (len(blocking), describe(blocking)))
    if problems:
        report = executor.ExecutionReport(nodes_final=executor.node_loads(snapshot, settings))
        result = base_result(client, report, todo, collect_calls, False, diff)
        result.update(state="drained", nodes=node_states(snapshot, nodes), evacuated=[], blocking=blocking,
                      staying=staying, nowhere_to_go=nowhere)
        return result, "cannot drain %s, nothing was migrated: %s" % (", ".join(nodes), ". ".join(problems))

    def replan(fresh, immovable):
        keep = dict(refused)
        keep.update(immovable)
        return planner.plan(fresh, settings, immovable=keep, balance=False, forbidden=forbidden)

    report = carry_out(client, snapshot, settings, options, todo, replan, check_mode)
    changed = bool(report.outcomes) if check_mode else report.changed
    after = snapshot if check_mode else final_snapshot(client, snapshot, warnings)
    if not check_mode:
        # What is on the nodes now, judged on the cluster as it is after the run.
        left = dict(refused)
        left.update(undone_moves(report))
        empty_plan = planner.Plan(moves=[], waves=[], data=dict(left_alone=[]))
        blocking, staying, _nowhere = remaining_on(after, settings, nodes, empty_plan, _reasons_for(after, settings, left),
                                                   unexplained="still there after the run")
    result = base_result(client, report, todo, collect_calls, changed, diff)
    result.update(state="drained", nodes=node_states(after, nodes), evacuated=moved_guests(report, set(nodes)),
                  blocking=blocking, staying=staying, nowhere_to_go=[])
    for entry in blocking:
        warnings.append("%d (%s) stays on %s: %s" % (entry["vmid"], entry["name"], entry["node"], entry["reason"]))
    if report.failed:
        return result, "%s. Still on %s: %s" % (report.failure_message(), ", ".join(nodes), describe(blocking) or "nothing")
    if blocking and not params.get("allow_blocking"):
        return result, "%s not empty after the run: %s (allow_blocking=true accepts this)" % (", ".join(nodes), describe(blocking))
    return result, None


def _reasons_for(snapshot, settings, known):
    """Why guests stay, for a snapshot taken after the run: rules first, then what the run learned."""
    reasons = dict(rules.build(snapshot, settings).immovable)
    reasons.update(known)
    return reasons


def activate(client, snapshot, params, check_mode, diff, warnings):
    """state=active. Returns (result, failure message or None)."""
    nodes = requested_nodes(params, snapshot)
    settings = BalanceSettings.from_params(params)
    options = executor.ExecOptions.from_params(params)
    check_nodes_known(settings, snapshot.nodes)
    for name in nodes:
        node = snapshot.nodes[name]
        if not node.online:
            warnings.append("node %s is %s; no guest can return to it" % (name, node.status))
        elif node.ha_maintenance:
            warnings.append("node %s is still in PVE HA maintenance, so no guest can return to it; run"
                            " 'ha-manager crm-command node-maintenance disable %s' on a node first" % (name, name))
    wanted, gone = wanted_placements(params, nodes, snapshot)

    def staying_put(refused, forbidden):
        # The way back has one target per guest: a guest PVE will not move there stays.
        result = dict(refused)
        for vmid, refused_nodes in forbidden.items():
            if wanted.get(vmid) in refused_nodes:
                result.setdefault(vmid, refused_nodes[wanted[vmid]])
        return result

    def make_plan(refused, forbidden):
        skip = staying_put(refused, forbidden)
        return planner.plan_placements(snapshot, settings, {v: n for v, n in wanted.items() if v not in skip}, reason="return")

    todo, refused, forbidden = checked_plan(client, snapshot, make_plan, options.with_local_disks)
    refused = staying_put(refused, forbidden)
    collect_calls = client.calls
    not_returned = list(gone)
    for failure in todo.data.get("failures", []):
        for vmid in failure["vmids"]:
            not_returned.append(guest_entry(snapshot.guests[vmid], wanted=wanted[vmid], reason=failure["detail"]))
    for vmid, reason in sorted(refused.items()):
        not_returned.append(guest_entry(snapshot.guests[vmid], wanted=wanted[vmid], reason=reason))

    def replan(fresh, immovable):
        skip = set(refused) | set(immovable)
        return planner.plan_placements(fresh, settings, {v: n for v, n in wanted.items() if v not in skip}, reason="return")

    report = carry_out(client, snapshot, settings, options, todo, replan, check_mode)
    changed = bool(report.outcomes) if check_mode else report.changed
    after = snapshot if check_mode else final_snapshot(client, snapshot, warnings)
    if not check_mode:
        listed = {e["vmid"] for e in not_returned}
        for vmid, reason in sorted(undone_moves(report).items()):
            guest = after.guests.get(vmid)
            if vmid in wanted and vmid not in listed and guest is not None and guest.node != wanted[vmid]:
                not_returned.append(guest_entry(guest, wanted=wanted[vmid], reason=reason))
    result = base_result(client, report, todo, collect_calls, changed, diff)
    sources = {o.move.source for o in report.outcomes}
    returned = [entry for entry in moved_guests(report, sources) if entry["vmid"] in wanted]
    not_returned.sort(key=lambda e: e["vmid"])
    result.update(state="active", nodes=node_states(after, nodes), returned=returned, not_returned=not_returned)
    for entry in not_returned:
        warnings.append("%d (%s) does not return to %s: %s" % (entry["vmid"], entry["name"], entry["wanted"], entry["reason"]))
    if report.failed:
        return result, report.failure_message()
    return result, None


def maintenance(client, params, check_mode=False, diff=False):
    """The whole module without Ansible: (result, failure message or None, warnings)."""
    if params.get("state") not in STATES:
        raise ConfigError("state", "'%s' is not one of %s" % (params.get("state"), ", ".join(STATES)))
    # Options are checked before the first request, node names as soon as the cluster is known.
    settings = BalanceSettings.from_params(params)
    executor.ExecOptions.from_params(params)
    warnings = []
    snapshot = collect(client, with_pressure=settings.mode == "psi", pressure_window=settings.pressure_window,
                       with_local_volumes=settings.method == "disk", warnings=warnings)
    handler = drain if params["state"] == "drained" else activate
    result, failure = handler(client, snapshot, params, check_mode, diff, warnings)
    return result, failure, warnings


def main():
    module = create_module(argument_spec())

    def run_maintenance():
        result, failure, warnings = maintenance(connect(module), module.params, module.check_mode, module._diff)
        for warning in warnings:
            module.warn(warning)
        if failure:
            module.fail_json(msg=failure, **result)
        return result

    run(module, run_maintenance)


if __name__ == "__main__":
    main()
