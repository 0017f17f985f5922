"""Build a scenario from a ``/cluster/resources`` dump of a real cluster.

``pvesh get /cluster/resources --output-format json > cluster.json`` (or the API answer with its
``{"data": [...]}`` envelope) is enough to rehearse a rebalance on a copy of one's own cluster.
What the dump cannot tell (disk layout, HA rules, passthrough devices) gets neutral defaults:
each guest gets one disk of its ``maxdisk`` size on the first shared storage, HA-managed guests
(those with ``hastate``) become HA resources without rules.
"""

from __future__ import annotations

from .units import GIB


def looks_like_resources(data) -> bool:
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    return isinstance(data, list) and all(isinstance(entry, dict) and "type" in entry for entry in data)


def scenario_from_resources(data, name: str = "imported", version: str = "9.0.3") -> dict:
    entries = data["data"] if isinstance(data, dict) else data
    node_entries = [e for e in entries if e.get("type") == "node"]
    guest_entries = [e for e in entries if e.get("type") in ("qemu", "lxc") and "vmid" in e and "node" in e]
    storage_entries = [e for e in entries if e.get("type") == "storage" and "storage" in e]
    all_nodes = sorted(e["node"] for e in node_entries)

    storages = {}
    for entry in storage_entries:
        sid = entry["storage"]
        storage = storages.setdefault(sid, {
            "storage": sid, "type": entry.get("plugintype", "dir"), "content": entry.get("content", "images,rootdir"),
            "shared": int(entry.get("shared", 0)), "total": int(entry.get("maxdisk", 0) or GIB), "used": 0, "_nodes": set(),
        })
        storage["_nodes"].add(entry["node"])
        storage["total"] = max(storage["total"], int(entry.get("maxdisk", 0) or 0))
        if storage["shared"]:
            storage["used"] = max(storage["used"], int(entry.get("disk", 0) or 0))
        else:
            # Per-node usage differs; keep the smallest as the guest-independent base.
            storage["used"] = min(storage["used"] or int(entry.get("disk", 0) or 0), int(entry.get("disk", 0) or 0))
    for storage in storages.values():
        nodes = sorted(storage.pop("_nodes"))
        if nodes != all_nodes:
            storage["nodes"] = nodes
    shared_images = [s["storage"] for s in storages.values() if s["shared"] and "images" in s["content"]]
    if not storages or not shared_images:
        storages.setdefault("shared-vm", {"storage": "shared-vm", "type": "rbd", "content": "images,rootdir", "shared": 1,
                                          "total": 100 * 1024 * GIB, "used": 0})
        shared_images = ["shared-vm"]
    disk_storage = shared_images[0]

    running_mem = {node: 0 for node in all_nodes}
    running_cores = {node: 0.0 for node in all_nodes}
    guests = []
    pools = set()
    ha_resources = []
    for entry in sorted(guest_entries, key=lambda e: int(e["vmid"])):
        if entry["node"] not in running_mem:
            continue
        status = entry.get("status", "stopped")
        if status not in ("running", "stopped", "paused"):
            status = "stopped"
        template = int(entry.get("template", 0) or 0)
        if template:
            status = "stopped"
        maxmem = int(entry.get("maxmem", 0) or GIB)
        mem = int(entry.get("mem", 0) or 0)
        maxcpu = max(1, int(round(float(entry.get("maxcpu", 1) or 1))))
        cpu = float(entry.get("cpu", 0) or 0)
        guest = {"vmid": int(entry["vmid"]), "type": entry["type"], "node": entry["node"], "name": entry.get("name", ""),
                 "status": status, "template": template, "maxmem": maxmem, "maxcpu": maxcpu}
        if status != "stopped":
            guest["mem"] = mem
            guest["cpu"] = cpu
            running_mem[entry["node"]] += mem
            running_cores[entry["node"]] += cpu * maxcpu
        for key in ("tags", "pool", "lock"):
            if entry.get(key):
                guest[key] = entry[key]
        if entry.get("pool"):
            pools.add(entry["pool"])
        size = int(entry.get("maxdisk", 0) or 0) or 8 * GIB
        guest["disks"] = [{"key": "scsi0" if entry["type"] == "qemu" else "rootfs", "storage": disk_storage, "size": size}]
        if not guest["name"]:
            del guest["name"]
        guests.append(guest)
        if entry.get("hastate"):
            ha_resources.append({"sid": "%s:%d" % ("vm" if entry["type"] == "qemu" else "ct", int(entry["vmid"])),
                                 "state": "stopped" if entry["hastate"] == "stopped" else "started"})

    # Guest volumes are added on top of a storage's base usage, so take them out of the reported one.
    placed = sum(g["disks"][0]["size"] for g in guests)
    storages[disk_storage]["used"] = max(0, storages[disk_storage]["used"] - placed)

    nodes = []
    for entry in sorted(node_entries, key=lambda e: e["node"]):
        node_name = entry["node"]
        maxmem = int(entry.get("maxmem", 0) or 64 * GIB)
        maxcpu = int(entry.get("maxcpu", 0) or 16)
        used = int(entry.get("mem", 0) or 0)
        busy = float(entry.get("cpu", 0) or 0) * maxcpu
        node = {"name": node_name, "maxmem": maxmem, "maxcpu": maxcpu,
                # The host's own share is what the node uses beyond its running guests.
                "base_mem": max(512 * 1024 * 1024, used - running_mem[node_name]) if used else 2 * GIB,
                "base_cpu": round(max(0.0, busy - running_cores[node_name]), 3),
                "status": "online" if entry.get("status", "online") == "online" else "offline"}
        if entry.get("maxdisk"):
            node["rootfs_total"] = int(entry["maxdisk"])
            node["rootfs_used"] = int(entry.get("disk", 0) or 0)
        if entry.get("hastate") == "maintenance":
            node["ha_maintenance"] = True
        nodes.append(node)

    scenario = {
        "name": name,
        "description": "Imported from a /cluster/resources dump (%d nodes, %d guests)" % (len(nodes), len(guests)),
        "version": version,
        "storages": list(storages.values()),
        "nodes": nodes,
        "pools": [{"poolid": pool} for pool in sorted(pools)],
        "guests": guests,
        "ha": {"resources": ha_resources},
    }
    return scenario
