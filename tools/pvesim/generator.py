"""Deterministic generator of large, realistic scenarios (``gen:<nodes>:<guests>:<seed>``).

The guest size mix follows what large PVE fleets look like (mostly small VMs, a long tail of big
ones, ~10 % containers); nodes are heterogeneous and sized so the cluster as a whole sits at
roughly 60 % memory use, but guests are placed unevenly so some nodes run noticeably hotter.

Storage: every guest boots from the shared ``ceph-vm`` (or, for some, node-local ``local-lvm``);
about a fifth of the VMs also have a data disk on a second shared storage, ``nfs-vm``, which is
sized so that it ends up much fuller than ``ceph-vm`` (something for storage balancing to do).
The data disks come from their own random stream, so they leave everything else as it was.
"""

from __future__ import annotations

import random

from .units import GIB, MIB, TIB

MAX_NODES = 64
MAX_GUESTS = 6000
TARGET_MEM_USE = 0.6

# (vCPUs, memory MiB, share in percent) for VMs.
VM_SIZES = ((1, 1792, 48), (2, 3584, 25), (4, 7168, 11), (8, 14336, 11), (8, 57344, 4), (16, 28672, 1))
CT_SIZES = ((1, 512, 40), (1, 1024, 30), (2, 2048, 20), (4, 4096, 10))
ROLES_BY_CPU = {1: ("web", "app", "dns", "mon", "proxy"), 2: ("app", "api", "cache", "queue"), 4: ("api", "search", "ci"),
                8: ("db", "analytics", "build"), 16: ("db", "warehouse")}
# Relative node sizes; 1.0 stands for the "256 GiB / 32 threads" class.
NODE_CLASSES = (1.0, 2.0, 3.0, 2.0, 1.0, 3.0, 2.0)


def _pick(rng: random.Random, table):
    total = sum(row[-1] for row in table)
    point = rng.uniform(0, total)
    for row in table:
        point -= row[-1]
        if point <= 0:
            return row
    return table[-1]


def _round_to(value: float, step: int) -> int:
    return max(step, int(round(value / step)) * step)


def generate(nodes: int, guests: int, seed: int, version: str = "9.0.3") -> dict:
    """Return a scenario dict with ``nodes`` nodes and ``guests`` guests, identical for identical arguments."""
    if not 1 <= int(nodes) <= MAX_NODES:
        raise ValueError("nodes must be between 1 and %d" % MAX_NODES)
    if not 0 <= int(guests) <= MAX_GUESTS:
        raise ValueError("guests must be between 0 and %d" % MAX_GUESTS)
    nodes, guests = int(nodes), int(guests)
    rng = random.Random("pvesim-gen:%d:%d:%d" % (nodes, guests, seed))
    pve9 = int(str(version).split(".", 1)[0]) >= 9

    guest_list = _make_guests(rng, guests)
    node_names = ["pve%d" % (i + 1) if nodes < 10 else "pve%02d" % (i + 1) for i in range(nodes)]
    node_list = _make_nodes(rng, node_names, guest_list)
    _place(rng, node_list, guest_list)
    _decorate(rng, node_list, guest_list)
    ha = _make_ha(rng, guest_list, node_names, pve9)
    nfs_total = _add_data_disks(random.Random("pvesim-gen-disks:%d:%d:%d" % (nodes, guests, seed)), guest_list)

    for guest in guest_list:
        guest.pop("_mem", None)
    for node in node_list:
        node.pop("_cap", None)
        node.pop("_hot", None)
        node.pop("_used", None)
    scenario = {
        "name": "gen:%d:%d:%d" % (nodes, guests, seed),
        "description": "Generated cluster: %d nodes, %d guests, seed %d" % (nodes, guests, seed),
        "version": version,
        "cluster_name": "gen%d" % seed,
        "crs": {"ha": "static", "ha-rebalance-on-start": 1},
        "storages": [
            {"storage": "local", "type": "dir", "content": "iso,vztmpl,backup", "path": "/var/lib/vz",
             "total": 100 * GIB, "used": 14 * GIB},
            {"storage": "local-lvm", "type": "lvmthin", "content": "rootdir,images", "total": 2 * TIB, "used": 0,
             "config": {"thinpool": "data", "vgname": "pve"}},
            {"storage": "ceph-vm", "type": "rbd", "content": "images,rootdir", "total": max(10, nodes * 8) * TIB,
             "used": 0, "config": {"pool": "vm", "krbd": 0}},
            {"storage": "nfs-vm", "type": "nfs", "content": "images,rootdir", "path": "/mnt/pve/nfs-vm", "total": nfs_total,
             "used": nfs_total // 20, "config": {"server": "10.10.250.5", "export": "/srv/vm"}},
        ],
        "nodes": node_list,
        "pools": [{"poolid": "prod", "comment": "Production"}, {"poolid": "dev", "comment": "Development"},
                  {"poolid": "infra", "comment": "Infrastructure"}],
        "guests": guest_list,
        "ha": ha,
    }
    return scenario


def _make_guests(rng: random.Random, count: int) -> list:
    result = []
    role_counters: dict = {}
    vmid = 100
    for _index in range(count):
        vmid += 1 if rng.random() < 0.9 else rng.randint(2, 5)
        is_ct = rng.random() < 0.10
        cores, mem_mib, _share = _pick(rng, CT_SIZES if is_ct else VM_SIZES)
        role = "ct" if is_ct else rng.choice(ROLES_BY_CPU[cores])
        role_counters[role] = role_counters.get(role, 0) + 1
        template = 1 if (not is_ct and rng.random() < 0.01) else 0
        status = "stopped" if template or rng.random() < 0.07 else "running"
        fraction = rng.uniform(0.2, 0.6) if is_ct else rng.uniform(0.45, 0.92)
        # Heavy-tailed CPU: most guests idle at a few percent, a handful busy.
        cpu = round(min(1.0, rng.paretovariate(1.7) * 0.012), 4)
        guest = {
            "vmid": vmid,
            "name": "%s-%04d" % (role if not is_ct else rng.choice(("dns", "proxy", "mon", "git", "cache")), role_counters[role]),
            "type": "lxc" if is_ct else "qemu",
            "status": status,
            "template": template,
            "memory": mem_mib,
            "mem_fraction": round(fraction, 3),
            "cores": cores,
            "cpu": cpu,
            "_mem": mem_mib * MIB * fraction if status == "running" else 0,
        }
        result.append(guest)
    return result


def _make_nodes(rng: random.Random, names: list, guest_list: list) -> list:
    used = sum(g["_mem"] for g in guest_list)
    base_per_node = 4 * GIB
    needed = used / TARGET_MEM_USE + base_per_node * len(names) / TARGET_MEM_USE
    classes = [NODE_CLASSES[i % len(NODE_CLASSES)] for i in range(len(names))]
    unit = needed / sum(classes)
    nodes = []
    for index, name in enumerate(names):
        mem_gib = _round_to(unit * classes[index] / GIB, 32)
        threads = max(8, _round_to(mem_gib / 8, 8))
        nodes.append({
            "name": name,
            "ip": "10.10.%d.%d" % (index // 200, 11 + index % 200),
            "maxmem_gib": mem_gib,
            "maxcpu": threads,
            "base_mem_gib": 4,
            "base_cpu": round(threads * 0.01, 2),
            "_cap": mem_gib * GIB,
            # Placement bias: a few nodes attract more guests than their share.
            "_hot": 1.0,
            "_used": base_per_node,
        })
    hot = rng.sample(range(len(nodes)), max(1, len(nodes) // 4)) if len(nodes) > 1 else []
    for index, node in enumerate(nodes):
        node["_hot"] = rng.uniform(1.2, 1.4) if index in hot else rng.uniform(0.75, 1.0)
    return nodes


def _place(rng: random.Random, nodes: list, guest_list: list) -> None:
    order = sorted(guest_list, key=lambda g: (-g["_mem"], g["vmid"]))
    for guest in order:
        best = None
        best_score = None
        for node in nodes:
            after = node["_used"] + guest["_mem"]
            if after > node["_cap"] * 0.92:
                continue
            score = after / (node["_cap"] * node["_hot"]) + rng.random() * 0.02
            if best_score is None or score < best_score:
                best, best_score = node, score
        if best is None:
            # Nothing fits under the cap: take the node that ends up least loaded.
            need = guest["_mem"]
            best = min(nodes, key=lambda n, extra=need: (n["_used"] + extra) / n["_cap"])
        best["_used"] += guest["_mem"]
        guest["node"] = best["name"]


def _decorate(rng: random.Random, nodes: list, guest_list: list) -> None:
    node_names = [n["name"] for n in nodes]
    running_qemu = [g for g in guest_list if g["type"] == "qemu" and g["status"] == "running"]
    for guest in guest_list:
        tags = []
        if rng.random() < 0.08:
            tags.append(rng.choice(("prod", "dev", "backup", "monitoring", "linux", "windows")))
        if rng.random() < 0.01:
            tags.append("plb_ignore")
        if guest["type"] == "qemu" and rng.random() < 0.005:
            tags.append("plb_pin_%s" % guest["node"])
        if tags:
            guest["tags"] = ";".join(sorted(set(tags)))
        roll = rng.random()
        if roll < 0.12:
            guest["pool"] = "prod"
        elif roll < 0.18:
            guest["pool"] = "dev"
        elif roll < 0.21:
            guest["pool"] = "infra"
        local = rng.random() < (0.10 if guest["type"] == "qemu" else 0.3)
        size_gib = rng.choice((16, 32, 32, 64, 100)) if guest["type"] == "qemu" else rng.choice((8, 8, 16, 32))
        key = "scsi0" if guest["type"] == "qemu" else "rootfs"
        guest["disks"] = [{"key": key, "storage": "local-lvm" if local else "ceph-vm", "size_gib": size_gib}]
        if guest["type"] == "qemu" and rng.random() < 0.004:
            guest["devices"] = {"hostpci0": "0000:%02x:00.0,pcie=1" % rng.randint(1, 0x80)}
    # Affinity groups (kept together) and anti-affinity groups (on distinct nodes) per 500 guests.
    groups = max(1, len(running_qemu) // 500) if len(running_qemu) >= 6 else 0
    for index in range(groups):
        pair = rng.sample(running_qemu, 2)
        for guest in pair:
            guest["tags"] = _add_tag(guest.get("tags"), "plb_affinity_grp%d" % index)
        spread = []
        for guest in rng.sample(running_qemu, min(len(running_qemu), 12)):
            if guest["node"] not in {g["node"] for g in spread} and "plb_affinity" not in guest.get("tags", ""):
                spread.append(guest)
            if len(spread) == min(3, len(node_names)):
                break
        for guest in spread:
            guest["tags"] = _add_tag(guest.get("tags"), "plb_anti_affinity_db%d" % index)


def _add_data_disks(rng: random.Random, guest_list: list) -> int:
    """Give about a fifth of the VMs a data disk on nfs-vm; returns a size for nfs-vm that they fill to ~65 %."""
    total = 0
    for guest in guest_list:
        if guest["type"] != "qemu" or guest["template"] or rng.random() >= 0.2:
            continue
        size_gib = rng.choice((20, 50, 50, 100, 100, 200, 500))
        guest["disks"].append({"key": "scsi1", "storage": "nfs-vm", "size_gib": size_gib})
        total += size_gib * GIB
    return max(TIB, _round_to(total / 0.6 / GIB, 256) * GIB)


def _add_tag(tags: str | None, tag: str) -> str:
    items = [t for t in (tags or "").split(";") if t]
    if tag not in items:
        items.append(tag)
    return ";".join(sorted(items))


def _make_ha(rng: random.Random, guest_list: list, node_names: list, pve9: bool) -> dict:
    candidates = [g for g in guest_list if g["status"] == "running" and not g.get("devices")]
    managed = [g for g in candidates if rng.random() < 0.08]
    resources = []
    for guest in managed:
        kind = "vm" if guest["type"] == "qemu" else "ct"
        resources.append({"sid": "%s:%d" % (kind, guest["vmid"]), "state": "started"})
    ha = {"resources": resources}
    if not managed or len(node_names) < 2:
        return ha
    sid = {g["vmid"]: "%s:%d" % ("vm" if g["type"] == "qemu" else "ct", g["vmid"]) for g in managed}
    if pve9:
        rules = []
        strict_members = managed[: max(1, len(managed) // 10)]
        for index, guest in enumerate(strict_members[:20]):
            others = [n for n in node_names if n != guest["node"]]
            nodes = "%s:2,%s" % (guest["node"], rng.choice(others))
            rules.append({"rule": "pin-%d" % guest["vmid"], "type": "node-affinity", "resources": sid[guest["vmid"]],
                          "nodes": nodes, "strict": 1 if index % 2 == 0 else 0})
        by_node: dict = {}
        for guest in managed:
            by_node.setdefault(guest["node"], []).append(guest)
        together = [members for members in by_node.values() if len(members) >= 2]
        if together:
            pair = together[0][:2]
            rules.append({"rule": "keep-together", "type": "resource-affinity", "affinity": "positive",
                          "resources": ",".join(sid[g["vmid"]] for g in pair)})
        apart = []
        for members in by_node.values():
            apart.append(members[0])
            if len(apart) == 2:
                break
        if len(apart) == 2:
            rules.append({"rule": "keep-apart", "type": "resource-affinity", "affinity": "negative",
                          "resources": ",".join(sid[g["vmid"]] for g in apart)})
        ha["rules"] = rules
    else:
        groups = []
        for index in range(min(3, len(node_names))):
            first = node_names[index]
            second = node_names[(index + 1) % len(node_names)]
            groups.append({"group": "grp%d" % index, "nodes": "%s:2,%s" % (first, second), "restricted": index % 2})
        ha["groups"] = groups
        for resource, guest in zip(resources, managed):
            for index, group in enumerate(groups):
                names = [n.split(":", 1)[0] for n in group["nodes"].split(",")]
                if guest["node"] in names and index % 2 == 0:
                    resource["group"] = group["group"]
                    break
    return ha
