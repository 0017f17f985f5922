"""Disk moves: ``move_disk`` (QEMU) and ``move_volume`` (LXC) as timed tasks, and replication jobs.

The synchronous checks and their error texts follow qemu-server's ``move_vm_disk`` and
pve-container's ``move_volume``; the task (``qmmove`` / ``move_volume``) copies the volume at the
migration bandwidth, then points the config key at the new volume and either keeps the old one
as ``unusedN`` (PVE's default) or removes it. The target's fill changes only when the task ends.
A container holds the lock ``disk`` while its volume moves; a VM's config carries no lock (PVE
only holds the config file lock), so a second move of the same VM fails inside its task.
"""

from __future__ import annotations

import re

from .errors import ApiError, param_error, perm_error
from .state import fmt_size

QEMU_DRIVE_RE = re.compile(r"^(ide\d|sata\d|scsi\d{1,2}|virtio\d{1,2}|efidisk0|tpmstate0|unused\d{1,3})$")
LXC_VOLUME_RE = re.compile(r"^(rootfs|mp\d{1,3}|unused\d{1,3})$")
MODIFIED = "detected modified configuration - file changed by other user? Try again."
FILE_STORAGE_TYPES = ("dir", "nfs", "cifs", "cephfs", "glusterfs", "btrfs")


class DiskMove:
    """One running qmmove/move_volume task and what it will do."""

    def __init__(self, task, guest, disk: dict, target: str, delete: bool, bwlimit_kib, online: bool):
        self.task = task
        self.guest = guest
        self.disk = disk
        self.source = disk["storage"]
        self.target = target
        self.delete = delete
        self.bwlimit_kib = bwlimit_kib
        self.online = online
        self.finished = False


def _moving(guest):
    move = getattr(guest, "disk_move", None)
    return move if move is not None and not move.finished else None


def _pool_free(state, storage: dict, node: str, this: DiskMove) -> int:
    """Free bytes of the storage as seen from ``node``, minus what other running moves into it already claim."""
    key = (None if storage["shared"] else node, storage["storage"])
    free = storage["total"] - state.storage_usage().get(key, 0)
    for other in state.guests.values():
        move = _moving(other)
        if move is not None and move is not this and move.target == storage["storage"] \
                and (storage["shared"] or other.node == node):
            free -= move.disk["size"]
    return free


def _no_space_error(storage: dict, guest, disk: dict, online: bool, free: int) -> tuple:
    """(log lines, task error) of a copy that runs out of space, in the words of the storage type."""
    name = "vm-%d-disk-%d" % (guest.vmid, len(guest.disks))
    if storage["type"] in ("lvm", "lvmthin"):
        vg = storage["config"].get("vgname", "pve")
        text = "lvcreate '%s/%s' error:   Volume group \"%s\" has insufficient free space (%d extents): %d required." % (
            vg, name, vg, max(0, free) // (4 * 1024 * 1024), disk["size"] // (4 * 1024 * 1024))
        return [], "storage migration failed: %s" % text
    if storage["type"] == "zfspool":
        pool = storage["config"].get("pool", "rpool/data")
        return [], "storage migration failed: zfs error: cannot create '%s/%s': out of space" % (pool, name)
    if guest.type == "lxc":
        return ["rsync: [receiver] write failed on \"/var/lib/lxc/%d/.copy-volume-1/var/lib/data\": No space left on device (28)"
                % guest.vmid], "command 'rsync --stats -X -A --numeric-ids -aH --whole-file --sparse --one-file-system" \
                               " '--bwlimit=0' /var/lib/lxc/%d/.copy-volume-2/ /var/lib/lxc/%d/.copy-volume-1' failed:" \
                               " exit code 11" % (guest.vmid, guest.vmid)
    drive = "drive-%s" % disk["key"]
    if online:
        return ["%s: Cancelling block job" % drive, "%s: Done." % drive], \
            "storage migration failed: block job (mirror) error: %s: No space left on device (io-status: nospace)" % drive
    return [], "storage migration failed: qemu-img: error while writing at byte %d: No space left on device" % max(0, free)


def _injected_error(guest, disk: dict, online: bool) -> tuple:
    drive = "drive-%s" % disk["key"]
    if guest.type == "lxc":
        return ["rsync error: error in file IO (code 11) at receiver.c(380) [receiver=3.2.7]"], \
            "command 'rsync --stats -X -A --numeric-ids -aH --whole-file --sparse --one-file-system '--bwlimit=0'" \
            " /var/lib/lxc/%d/.copy-volume-2/ /var/lib/lxc/%d/.copy-volume-1' failed: exit code 11" % (guest.vmid, guest.vmid)
    if online:
        return ["%s: Cancelling block job" % drive, "%s: Done." % drive], \
            "storage migration failed: mirroring error: %s: Input/output error (io-status: ok)" % drive
    return [], "storage migration failed: copy failed: command '/usr/bin/qemu-img convert -p -n -f raw -O raw' failed: exit code 1"


def _storage_checks(state, name: str, content: str) -> dict:
    storage = state.storages.get(name)
    if storage is None:
        raise ApiError(500, "storage '%s' does not exist" % name)
    if storage["disable"]:
        raise ApiError(500, "storage '%s' is disabled" % name)
    if content not in storage["content"].split(","):
        what = "vm images" if content == "images" else "container directories"
        raise param_error({"storage": "storage '%s' does not support %s" % (name, what)})
    return storage


def request_move(state, identity, node: str, vmid: int, gtype: str, params: dict, config_digest) -> str:
    """PVE's synchronous checks of move_disk / move_volume, then the task; returns the UPID.

    ``config_digest(guest)`` is the digest ``GET .../config`` reports for the guest.
    """
    key_name = "disk" if gtype == "qemu" else "volume"
    key = params[key_name]
    target = params.get("storage")
    if not identity.has("VM.Config.Disk"):
        raise perm_error("/vms/%d" % vmid, "VM.Config.Disk")
    if target and not identity.has("Datastore.AllocateSpace"):
        raise perm_error("/storage/%s" % target, "Datastore.AllocateSpace")
    pattern = QEMU_DRIVE_RE if gtype == "qemu" else LXC_VOLUME_RE
    if not pattern.match(key):
        raise param_error({key_name: "value '%s' does not have a value in the enumeration of %s keys" % (
            key, "drive" if gtype == "qemu" else "volume")})
    guest = state.guest_on(node, vmid, gtype)
    if params.get("target-vmid") is not None:
        raise ApiError(501, "Method 'POST %s' with target-vmid is not simulated" % key_name)
    if not target:
        message = "both 'storage' and 'target-vmid' missing, either needs to be set"
        raise param_error({"storage": message, "target-vmid": message})
    kind = "VM" if gtype == "qemu" else "CT"
    if guest.lock:
        raise ApiError(500, "%s is locked (%s)" % (kind, guest.lock))
    delete = bool(params.get("delete"))
    snapshots = bool(guest.spec["config"].get("parent"))
    if gtype == "lxc":
        if guest.running:
            raise ApiError(500, "cannot move volumes of a running container")
        if key.startswith("unused"):
            raise ApiError(500, "cannot move volume '%s', only configured volumes can be moved to another storage" % key)
    disk = next((d for d in guest.disks if d["key"] == key), None)
    if disk is None:
        raise ApiError(500, "disk '%s' does not exist" % key if gtype == "qemu" else "volume '%s' does not exist" % key)
    if gtype == "qemu":
        if params.get("digest") and params["digest"] != config_digest(guest):
            raise ApiError(500, MODIFIED)
        if disk["storage"] == target and not params.get("format"):
            raise ApiError(500, "you can't move to the same storage with same format")
        _storage_checks(state, target, "images")
        if snapshots and delete:
            raise ApiError(500, "you can't move a disk with snapshots and delete the source")
    else:
        if snapshots and delete:
            raise ApiError(500, "you can't move a volume with snapshots and delete the source")
        if params.get("digest") and params["digest"] != config_digest(guest):
            raise ApiError(500, MODIFIED)
        # pve-container takes the lock here and checks the storage only inside the worker.
        guest.lock = "disk"
    task = state.new_task(guest.node, "qmmove" if gtype == "qemu" else "move_volume", str(vmid), identity.userid,
                          identity.tokenid, vmid=vmid)
    move = DiskMove(task, guest, disk, target, delete, params.get("bwlimit"), gtype == "qemu" and guest.running)
    _start(state, move)
    return task.upid


def _start(state, move: DiskMove) -> None:
    guest, disk, task = move.guest, move.disk, move.task
    if guest.type == "qemu" and _moving(guest) is not None:
        # The worker waits for the config lock held by the running move, then gives up.
        state.scheduler.call_later(state.scaled(2.0), _fail, move,
                                   "can't lock file '/var/lock/qemu-server/lock-%d.conf' - got timeout" % guest.vmid, [])
        return
    guest.disk_move = move
    if guest.type == "qemu":
        task.log("copying volume '%s' from current storage '%s' to target storage '%s'" % (
            disk["volid"], move.source, move.target), stamped=False)
    else:
        task.log("moving volume '%s' (%s) to storage '%s'" % (disk["key"], disk["volid"], move.target), stamped=False)
    storage = state.storages.get(move.target)
    problem = None
    if storage is None:
        problem = ([], "storage '%s' does not exist" % move.target)
    elif guest.type == "lxc" and storage["disable"]:
        problem = ([], "storage '%s' is disabled" % move.target)
    elif guest.type == "lxc" and "rootdir" not in storage["content"].split(","):
        problem = ([], "storage '%s' does not support container directories" % move.target)
    elif not state.storage_on_node(storage, guest.node):
        problem = ([], "storage migration failed: storage '%s' is not available on node '%s'" % (move.target, guest.node))
    if problem is not None:
        state.scheduler.call_later(state.scaled(0.5), _fail, move, problem[1], problem[0])
        return
    bandwidth = float(state.options["migration_bandwidth"])
    if move.bwlimit_kib:
        bandwidth = min(bandwidth, float(move.bwlimit_kib) * 1024)
    duration = max(float(state.options["min_migration_s"]), disk["size"] / bandwidth)
    free = _pool_free(state, storage, guest.node, move)
    if free < disk["size"]:
        lines, error = _no_space_error(storage, guest, disk, move.online, free)
        state.scheduler.call_later(state.scaled(duration * max(0.05, free / float(disk["size"] or 1))), _fail, move,
                                   error, lines)
        return
    if guest.type == "qemu" and move.online:
        task.log("drive mirror is starting for drive-%s" % disk["key"], stamped=False)
    if state.faults.disk_move_fails():
        lines, error = _injected_error(guest, disk, move.online)
        state.scheduler.call_later(state.scaled(duration * 0.5), _fail, move, error, lines)
    else:
        state.scheduler.call_later(state.scaled(duration), _complete, state, move, duration)


def _release(move: DiskMove) -> None:
    move.finished = True
    guest = move.guest
    if getattr(guest, "disk_move", None) is move:
        guest.disk_move = None
    if guest.type == "lxc" and guest.lock == "disk":
        guest.lock = None


def _fail(move: DiskMove, error: str, lines: list) -> None:
    """The copy failed: the config still points at the old volume, nothing new is kept."""
    if move.finished:
        return
    for line in lines:
        move.task.log(line, stamped=False)
    _release(move)
    move.task.finish(error)


def _next_disk_name(guest, storage: str) -> str:
    taken = {d["volid"] for d in guest.disks}
    index = 0
    while "%s:vm-%d-disk-%d" % (storage, guest.vmid, index) in taken:
        index += 1
    return "%s:vm-%d-disk-%d" % (storage, guest.vmid, index)


def _next_unused(guest) -> str:
    taken = {d["key"] for d in guest.disks}
    index = 0
    while "unused%d" % index in taken:
        index += 1
    return "unused%d" % index


def _complete(state, move: DiskMove, duration: float) -> None:
    if move.finished:
        return
    guest, disk, task = move.guest, move.disk, move.task
    if not state.nodes[guest.node].online:
        _fail(move, "storage migration failed: node '%s' not reachable" % guest.node, [])
        return
    size = fmt_size(disk["size"])
    if guest.type == "qemu":
        drive = "drive-%s" % disk["key"]
        if move.online:
            task.log("%s: transferred %s of %s (100.00%%) in %ds, ready" % (drive, size, size, int(duration)), stamped=False)
            task.log("all 'mirror' jobs are ready", stamped=False)
            task.log("%s: Completing block job..." % drive, stamped=False)
            task.log("%s: Completed successfully." % drive, stamped=False)
            task.log("%s: mirror-job finished" % drive, stamped=False)
        else:
            task.log("transferred %s of %s (100.00%%)" % (size, size), stamped=False)
    else:
        task.log("Number of files: 28,514 (reg: 22,061, dir: 2,917, link: 3,502, special: 34)", stamped=False)
        task.log("Total transferred file size: %d bytes" % int(disk["size"] * guest.spec["disk_used_fraction"]), stamped=False)
    old = dict(disk)
    disk["volid"] = _next_disk_name(guest, move.target)
    disk["storage"] = move.target
    if move.delete:
        task.log("removing source volume '%s' after successful copy" % old["volid"], stamped=False)
    else:
        key = _next_unused(guest)
        task.log("adding source volume '%s' as '%s' to config" % (old["volid"], key), stamped=False)
        guest.disks.append({"key": key, "storage": old["storage"], "volid": old["volid"], "size": old["size"], "mp": None,
                            "replicate": old["replicate"]})
    _release(move)
    task.finish("OK")


# -- replication -------------------------------------------------------------------------------------

def replication_jobs(state, identity) -> list:
    """``GET /cluster/replication``: the scenario's jobs the caller may see (VM.Audit)."""
    if not identity.has("VM.Audit"):
        return []
    result = []
    for job in state.scenario.get("replication", []):
        guest = state.guests.get(job["guest"])
        entry = {"id": job["id"], "type": "local", "guest": job["guest"], "target": job["target"], "jobnum": job["jobnum"],
                 "schedule": job["schedule"]}
        if guest is not None:
            entry["source"] = guest.node
        if job.get("disable"):
            entry["disable"] = 1
        result.append(entry)
    return result
