#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: proxlb_storage_balance
short_description: Even out the fill levels of Proxmox VE storages by moving guest disks
version_added: 0.2.0
author:
  - proxlb.balancer maintainers (!UNKNOWN)
description:
  - Reads the storages of a Proxmox VE cluster and the guest volumes on them, plans which
    volumes to move to which storage so that the storages fill evenly, and moves them through
    the PVE API, one disk move task per volume.
  - "Storages of one kind are balanced: by default every shared storage that can hold guest
    volumes (content C(images) or C(rootdir)); with O(storages) the ones named, either all shared
    or all node-local (then each node's local storages are balanced among themselves; a volume
    never leaves its node)."
  - "A storage's fill is its used space in percent of its size, as PVE reports it. Balancing
    starts when the spread between the fullest and the emptiest storage exceeds O(balanciness)
    percentage points, and then moves volumes until the spread is within half of it, so running
    the module again right after plans no moves. Each move is the one with the best reduction of
    the imbalance per GiB copied (plus a fixed cost per move), so few, well-sized volumes move.
    No storage is filled above O(storage_threshold), and a target must have room for the whole
    volume (its provisioned size)."
  - "Running VMs are moved online (C(move_disk), QEMU drive-mirror; the VM keeps running).
    Stopped VMs and stopped containers are copied offline (C(move_disk) / C(move_volume)).
    Running containers cannot move volumes in PVE and are left alone with that reason."
  - "Left alone, each with its reason in RV(plan.left_alone): guests with snapshots (PVE leaves
    snapshots on the old volume), guests with storage replication jobs, templates and linked
    clones (a move would copy the shared base image in full), locked guests (including
    guests in a running backup, lock C(backup)), ignored guests (tag C(plb_ignore*), O(ignore_guests)),
    unused volumes and volumes no config refers to."
  - "Only the configs of guests whose volumes the plan would move are read (at most three per
    allowed move), not the config of every guest: the plan is made, those configs are read, and
    the plan is made again without what they rule out."
  - "Before each move the guest's config is read again; the move is skipped if the volume moved,
    the guest got locked or snapshotted meanwhile. The move request carries the config digest,
    so PVE itself refuses it if the config changed in between."
  - "Each task is followed until it ends or O(move_timeout) seconds pass; a failed move is
    reported with PVE's own error text. At the end the storages and the configs of the moved
    guests are read again: RV(moves[].final_storage) says where each volume really is."
  - In check mode the plan is computed and returned and no write request is sent.
options:
  method:
    description:
      - What is balanced. V(used) is the space in use on each storage, as PVE reports it.
    type: str
    choices: [used]
    default: used
  storages:
    description:
      - The storages to balance, by storage id.
      - Empty means every shared storage that can hold guest volumes (content C(images) or C(rootdir)).
      - All named storages must be of one kind, shared or node-local, and able to hold guest
        volumes; at least two are needed. A storage that is not active on any online node is
        left out with a warning.
    type: list
    elements: str
    default: []
  balanciness:
    description:
      - Percentage points of fill spread (fullest minus emptiest storage) above which volumes are moved.
      - Once triggered, the plan aims for half of this value.
      - From V(0) to V(100).
    type: float
    default: 10
  storage_threshold:
    description:
      - No move fills a storage above this percentage of its size.
    type: float
    default: 90
  max_moves:
    description:
      - Move at most this many volumes in one run.
      - At most three times as many guest configs are read to find them.
    type: int
    default: 10
  parallel_moves:
    description:
      - How many disk moves run at the same time. Moves of the same guest always run one after
        the other (PVE locks the guest's config for the whole copy).
    type: int
    default: 1
  delete_source:
    description:
      - Remove the old volume once PVE has copied it (C(delete=1)); PVE removes it only after a
        successful copy.
      - If V(false), PVE keeps the old volume in the guest's config as C(unusedN), its own
        default. The source storage is then only relieved once those volumes are removed; the
        plan's C(fill_pct_after) assumes they are, C(fill_pct_after_run) shows the fill with them,
        and RV(moves[].kept_as) names them. A run before they are removed plans from the fill
        levels PVE reports, kept volumes included.
    type: bool
    default: true
  bwlimit:
    description:
      - Bandwidth limit per move in KiB/s (C(bwlimit)); V(0) means unlimited.
      - When not set, PVE applies the limits configured for the datacenter or the storages.
    type: int
  move_timeout:
    description:
      - Seconds (wall clock) to wait for one disk move.
      - A move still running then is reported as failed; it is not cancelled, and
        RV(moves[].final_storage) shows where the volume is at the end.
    type: int
    default: 3600
  on_failure:
    description:
      - What a failed move does to the rest of the run.
      - V(stop) lets the moves already running finish and starts nothing new; V(continue) goes on.
      - Either way the task fails at the end when a move failed, after reporting everything.
    type: str
    choices: [stop, continue]
    default: stop
  guest_types:
    description:
      - Which guests' volumes may move, V(vm) (QEMU) and V(ct) (LXC).
    type: list
    elements: str
    choices: [vm, ct]
    default: [vm, ct]
  ignore_guests:
    description:
      - Guests whose volumes never move, by name or VMID; shell wildcards work (V(db-*)).
      - Guests tagged C(plb_ignore*) are always left alone.
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
    details:
      - Computes and returns the plan; no move is started and no write request is sent.
  diff_mode:
    support: full
    details:
      - Returns the storage of each volume that moves (or would move) before and after.
extends_documentation_fragment:
  - proxlb.balancer.proxlb
  - proxlb.balancer.proxlb.actiongroup
  - proxlb.balancer.attributes
notes:
  - "API requests: seven to read the cluster and its storage configuration, plus one content
    listing per shared storage that can hold guest volumes (with O(storages) naming node-local
    storages: one per node and storage instead); one config read per inspected guest (at most
    three per allowed move) and one read of C(/cluster/replication); per move one config read,
    one POST, the polling of its task and one task log read if it failed; at the end one read of
    C(/cluster/resources) and one config read per started move."
  - "Least privilege: in addition to the read privileges, C(VM.Config.Disk) on the guests
    (C(/vms/{vmid})) and C(Datastore.AllocateSpace) on the target storages (C(/storage/{storage}))."
  - "Fill levels are estimated with the volumes' provisioned sizes. On thin-provisioned storage
    (Ceph RBD, LVM-thin, sparse ZFS, qcow2 files) a volume occupies less, so the real change is
    smaller; the next run starts from the fill levels PVE reports then."
  - "Disk moves read and write the whole volume and load both storages; use O(bwlimit),
    O(max_moves) and a quiet time of day on busy clusters."
seealso:
  - module: proxlb.balancer.proxlb_cluster_info
    description: Node and storage figures of the cluster.
  - module: proxlb.balancer.proxlb_rebalance
    description: Balance guests across nodes instead of volumes across storages.
"""

EXAMPLES = r"""
- name: What would evening out the shared storages do?
  proxlb.balancer.proxlb_storage_balance:
    api_host: pve1.example.com
    api_user: balancer@pve
    api_token_id: proxlb
    api_token_secret: "{{ vault_proxlb_token_secret }}"
  check_mode: true
  diff: true
  register: storage_plan

- name: Show the plan
  ansible.builtin.debug:
    msg: "{{ storage_plan.summary }}"

- name: Balance two Ceph pools, two moves at a time, at most 200 MiB/s each
  proxlb.balancer.proxlb_storage_balance:
    storages: [ceph-ssd, ceph-hdd]
    balanciness: 5
    parallel_moves: 2
    bwlimit: 204800
  register: moved

- name: Keep the old copies as unusedN until checked, VMs only
  proxlb.balancer.proxlb_storage_balance:
    delete_source: false
    guest_types: [vm]
    max_moves: 3
  register: kept

- name: List the old copies to remove later
  ansible.builtin.debug:
    msg: "{{ kept.moves | selectattr('kept_as') | map(attribute='kept_as') | list }}"

- name: Even out the two local pools of every node
  proxlb.balancer.proxlb_storage_balance:
    storages: [local-lvm, local-zfs]
    storage_threshold: 85
"""

RETURN = r"""
changed:
  description:
    - Whether a volume is now on another storage (in check mode, whether a move is planned).
    - Judged from the final config reads, not from task results.
  returned: always
  type: bool
  sample: true
plan:
  description:
    - The plan that was carried out (the same in check mode and in a real run).
  returned: success
  type: dict
  contains:
    kind:
      description: V(shared) or V(local), the kind of storages balanced.
      type: str
    storages:
      description: The storages balanced.
      type: list
      elements: str
    pools:
      description:
        - Per storage (shared) or per C(node/storage) (node-local) its size, used bytes and fill in
          percent before and after the plan (C(size_bytes), C(used_bytes_before), C(fill_pct_before),
          C(used_bytes_after), C(fill_pct_after)) and the nodes that use it.
        - With O(delete_source=false) also C(fill_pct_after_run), the fill while the old copies are kept.
      type: dict
    groups:
      description:
        - Per group of storages balanced together (V(shared), or a node name for node-local
          storages) the spread before and after in percentage points, whether it triggered,
          its moves and why planning stopped.
      type: list
      elements: dict
    spread_pp_before:
      description: Largest fill spread of a group before, in percentage points.
      type: float
    spread_pp_after:
      description: Largest fill spread of a group after the plan, in percentage points.
      type: float
    stop_reason:
      description:
        - V(not_triggered) (spread within O(balanciness)), V(target_reached) (within half of it),
          V(no_gain) (no move that fits helps), V(max_moves).
      type: str
    moves:
      description: The planned moves, in the order they run (see RV(moves) for the fields).
      type: list
      elements: dict
    moves_count:
      description: Number of planned moves.
      type: int
    moved_bytes:
      description: Bytes the planned moves copy (provisioned sizes).
      type: int
    left_alone:
      description:
        - Volumes on the storages that give space that stay, each with C(vmid), C(name), C(type),
          C(node), C(volid), C(volume) (config key when known), C(storage), C(reason) and C(detail).
        - "C(reason) is one of V(ignored), V(template), V(type_excluded), V(node_offline),
          V(locked:<lock>) (V(locked:backup) for a running backup), V(status:<status>),
          V(running_container), V(linked_clone), V(snapshots), V(replicated), V(not_in_config),
          V(unused), V(tpm_running), V(config_unreadable)."
      type: list
      elements: dict
    inspected:
      description: Guest configs read to make the plan.
      type: int
    not_inspected_volumes:
      description: Volumes on storages that give space whose guest's config was not read (beyond the read budget or not needed).
      type: int
    warnings:
      description: Warnings about the plan.
      type: list
      elements: str
    settings:
      description: The options used.
      type: dict
    summary:
      description: The plan as text.
      type: str
  sample: {"kind": "shared", "storages": ["ceph-vm", "nfs-vm"], "spread_pp_before": 58.1, "spread_pp_after": 3.2,
           "stop_reason": "target_reached", "moves_count": 3, "moved_bytes": 644245094400}
summary:
  description: The plan as a short human-readable table.
  returned: success
  type: str
  sample: "storages (shared, used): spread 58.1 -> 3.2 pp, 3 move(s), 600.0 GiB to copy; target_reached"
moves:
  description: One entry per planned volume move, in the order they ran, with its outcome.
  returned: success
  type: list
  elements: dict
  contains:
    vmid:
      description: VMID of the guest.
      type: int
      sample: 110
    name:
      description: Name of the guest.
      type: str
      sample: db01
    type:
      description: V(vm) or V(ct).
      type: str
      sample: vm
    node:
      description: Node the guest runs on; the move's task runs there.
      type: str
      sample: pve1
    volume:
      description: Config key of the volume (C(scsi1), C(efidisk0), C(rootfs), C(mp0), ...).
      type: str
      sample: scsi1
    volid:
      description: The volume before the move.
      type: str
      sample: "nfs-vm:110/vm-110-disk-1.qcow2"
    from:
      description: Storage the volume was on.
      type: str
      sample: nfs-vm
    to:
      description: Storage the volume moves to.
      type: str
      sample: ceph-vm
    size_bytes:
      description: Provisioned size of the volume.
      type: int
      sample: 536870912000
    online:
      description: Whether the volume is copied while the VM runs (drive-mirror).
      type: bool
      sample: true
    reason:
      description: Why it moves (V(balance)).
      type: str
      sample: balance
    status:
      description:
        - V(ok) moved; V(failed) PVE refused the request or the task failed or timed out;
          V(skipped) the config changed since planning (volume moved, lock, snapshot);
          V(not_started) the run stopped before it; V(planned) check mode.
      type: str
      choices: [ok, failed, skipped, not_started, planned]
      sample: ok
    upid:
      description: UPID of the C(qmmove) or C(move_volume) task.
      type: str
      sample: "UPID:pve1:0012A3F4:07E1B2C3:66F0A1B2:qmmove:110:balancer@pve!proxlb:"
    duration_s:
      description: Seconds from the request to the end of the task as seen by the module.
      type: float
      sample: 251.3
    error:
      description: Why the move failed or was skipped, in PVE's words where PVE gave them.
      type: str
      sample: "storage migration failed: mirroring error: drive-scsi1: Input/output error (io-status: ok)"
    final_storage:
      description: Storage the volume's config key points to after the run (V(null) if unknown).
      type: str
      sample: ceph-vm
    kept_as:
      description: With O(delete_source=false), the C(unusedN) key that holds the old copy, else V(null).
      type: str
      sample: null
storages_final:
  description:
    - Fill of each balanced storage (or C(node/storage)) after the run, read from the cluster
      (C(used_bytes), C(size_bytes), C(fill_pct)); in check mode, as read before planning.
  returned: success
  type: dict
  sample: {"ceph-vm": {"used_bytes": 6047313952768, "size_bytes": 32985348833280, "fill_pct": 18.33}}
stopped:
  description: Whether the run stopped early (O(on_failure=stop) after a failure).
  returned: success
  type: bool
  sample: false
stop_reason:
  description: Why the run stopped early, else V(null).
  returned: success
  type: str
  sample: null
progress:
  description: One human-readable line per move and a total.
  returned: success
  type: list
  elements: str
  sample: ["110 db01 scsi1  nfs-vm -> ceph-vm  ok  251.3 s", "1 of 1 move(s) ok, 500.0 GiB copied, in 252.0 s (81 API calls)"]
api_calls:
  description: API requests of the run.
  returned: success
  type: dict
  contains:
    total:
      description: All requests, login and retries included.
      type: int
    plan:
      description: Requests to read the cluster, the storages and the inspected configs.
      type: int
    execute:
      description: Requests made while moving, the final reads included (0 in check mode).
      type: int
    by_endpoint:
      description: Requests per C(METHOD /path/{placeholder}).
      type: dict
  sample: {"total": 96, "plan": 11, "execute": 85, "by_endpoint": {"POST /nodes/{node}/qemu/{vmid}/move_disk": 1}}
duration_s:
  description: Wall-clock seconds spent moving (0 in check mode).
  returned: success
  type: float
  sample: 252.0
diff:
  description: With C(--diff), the storage of every volume that moved (or would move) before and after, keyed C(<vmid>/<name> <key>).
  returned: when diff mode is on
  type: dict
  sample: {"before": {"110/db01 scsi1": "nfs-vm"}, "after": {"110/db01 scsi1": "ceph-vm"}}
msg:
  description: When a move failed or the run stopped, the failed moves with PVE's reasons.
  returned: failure
  type: str
  sample: "1 of 3 disk move(s) failed: 110 (db01) scsi1 nfs-vm -> ceph-vm: storage migration failed: ..."
"""

from ansible_collections.proxlb.balancer.plugins.module_utils.ansible_glue import create_module, run
from ansible_collections.proxlb.balancer.plugins.module_utils.storage_balance_runner import run_storage_balance
from ansible_collections.proxlb.balancer.plugins.module_utils.storage_plan import storage_balance_argument_spec


def main():
    run(create_module(storage_balance_argument_spec()), run_storage_balance)


if __name__ == "__main__":
    main()
