# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Balancing settings: one validated object built from module options.

Option names follow ProxLB's YAML where they mean the same thing. Validation happens here,
before anything touches the cluster, and every error names the option and the fix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ConfigError

GIB = 1024 ** 3

METHODS = ("memory", "cpu", "disk")
MODES = ("used", "assigned", "psi")
KINDS = ("vm", "ct")
POOL_TYPES = ("affinity", "anti-affinity")
RESERVE_KEYS = ("memory", "cpu", "disk")

# Plan to this fraction of the trigger so that planning again on the result finds nothing to do.
HYSTERESIS = 0.5


def option_defaults():
    """Default of every balancing option by option name (None: unset); the Ansible argument spec
    (``ansible_glue.balance_argument_spec``) takes its defaults from here."""
    return dict(
        method="memory",
        mode="used",
        balanciness=10.0,
        memory_threshold=None,
        cpu_threshold=None,
        disk_threshold=None,
        node_resource_reserve={},
        cpu_overcommit=4.0,
        max_moves=None,
        max_moves_per_node=1,
        guest_types=list(KINDS),
        ignore_guests=[],
        ignore_nodes=[],
        maintenance_nodes=[],
        include_stopped=True,
        pools={},
        manage_ha_resources=False,
        pressure_window="hour",
        backup_guard=30,
        avoid_backup_nodes=True,
        storage_threshold=90.0,
    )


@dataclass
class PoolRule:
    name: str
    type: Optional[str] = None          # affinity | anti-affinity | None (pin only)
    pin: List[str] = field(default_factory=list)
    strict: bool = True


@dataclass
class BalanceSettings:
    method: str = "memory"
    mode: str = "used"
    balanciness: float = 10.0
    thresholds: Dict[str, Optional[float]] = field(default_factory=lambda: {m: None for m in METHODS})
    reserve_default: Dict[str, float] = field(default_factory=dict)        # resource -> GiB (cpu: cores)
    reserve_nodes: Dict[str, Dict[str, float]] = field(default_factory=dict)
    cpu_overcommit: float = 4.0
    max_moves: Optional[int] = None
    max_moves_per_node: int = 1
    guest_types: List[str] = field(default_factory=lambda: list(KINDS))
    ignore_guests: List[str] = field(default_factory=list)
    ignore_nodes: List[str] = field(default_factory=list)
    maintenance_nodes: List[str] = field(default_factory=list)
    include_stopped: bool = True
    pools: Dict[str, PoolRule] = field(default_factory=dict)
    manage_ha_resources: bool = False
    pressure_window: str = "hour"
    backup_guard: int = 30                 # minutes before a scheduled backup during which guests stay
    avoid_backup_nodes: bool = True
    storage_threshold: float = 90.0        # percent a target's local storage may reach after a move

    @property
    def threshold(self):
        """The gate for the selected method, or None."""
        return self.thresholds.get(self.method)

    @property
    def target_spread(self):
        """Spread (percentage points) the planner aims for once balancing is triggered."""
        return self.balanciness * HYSTERESIS

    def reserve(self, node, resource):
        """Reserve for a node in GiB (memory, disk) or cores (cpu); node value wins over defaults."""
        per_node = self.reserve_nodes.get(node, {})
        if resource in per_node:
            return per_node[resource]
        return self.reserve_default.get(resource, 0.0)

    def to_dict(self):
        return dict(
            method=self.method, mode=self.mode, balanciness=self.balanciness,
            memory_threshold=self.thresholds.get("memory"), cpu_threshold=self.thresholds.get("cpu"),
            disk_threshold=self.thresholds.get("disk"),
            node_resource_reserve=dict(self.reserve_nodes, **({"defaults": self.reserve_default} if self.reserve_default else {})),
            cpu_overcommit=self.cpu_overcommit, max_moves=self.max_moves, max_moves_per_node=self.max_moves_per_node,
            guest_types=list(self.guest_types), ignore_guests=list(self.ignore_guests), ignore_nodes=list(self.ignore_nodes),
            maintenance_nodes=list(self.maintenance_nodes), include_stopped=self.include_stopped,
            pools={name: dict(type=p.type, pin=list(p.pin), strict=p.strict) for name, p in sorted(self.pools.items())},
            manage_ha_resources=self.manage_ha_resources, pressure_window=self.pressure_window,
            backup_guard=self.backup_guard, avoid_backup_nodes=self.avoid_backup_nodes,
            storage_threshold=self.storage_threshold,
            target_spread=self.target_spread,
        )

    @classmethod
    def from_params(cls, params):
        """Build and validate settings from a module/lookup parameter dict (unknown keys ignored)."""
        defaults = option_defaults()
        values = {key: params.get(key, default) for key, default in defaults.items()}
        for key, default in defaults.items():
            if values[key] is None:
                values[key] = default
        return cls(
            method=_choice(values, "method", METHODS),
            mode=_choice(values, "mode", MODES),
            balanciness=_number(values, "balanciness", minimum=0.0, maximum=100.0),
            thresholds={m: _threshold(values, m + "_threshold") for m in METHODS},
            reserve_default=_reserve(values["node_resource_reserve"].get("defaults", {}), "defaults"),
            reserve_nodes={node: _reserve(res, node) for node, res in values["node_resource_reserve"].items() if node != "defaults"},
            cpu_overcommit=_number(values, "cpu_overcommit", minimum=0.1, maximum=1000.0),
            max_moves=_optional_int(values, "max_moves", minimum=0),
            max_moves_per_node=int(_number(values, "max_moves_per_node", minimum=1, maximum=1000)),
            guest_types=_kinds(values["guest_types"]),
            ignore_guests=[str(x) for x in values["ignore_guests"]],
            ignore_nodes=[str(x) for x in values["ignore_nodes"]],
            maintenance_nodes=[str(x) for x in values["maintenance_nodes"]],
            include_stopped=bool(values["include_stopped"]),
            pools=_pools(values["pools"]),
            manage_ha_resources=bool(values["manage_ha_resources"]),
            pressure_window=_choice(values, "pressure_window", ("hour", "day", "week")),
            backup_guard=_optional_int(values, "backup_guard", minimum=0),
            avoid_backup_nodes=_bool(values, "avoid_backup_nodes"),
            storage_threshold=_storage_threshold(values),
        )


def _choice(values, key, allowed):
    value = values[key]
    if value not in allowed:
        raise ConfigError(key, "'%s' is not one of %s; use one of those values" % (value, ", ".join(allowed)))
    return value


def _number(values, key, minimum=None, maximum=None):
    value = values[key]
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(key, "'%s' is not a number" % (value,))
    if math.isnan(value) or (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ConfigError(key, "%s is out of range; use a value between %s and %s" % (value, minimum, maximum))
    return value


def _optional_int(values, key, minimum=0):
    if values[key] is None:
        return None
    value = _number(values, key, minimum=minimum)
    if value != int(value):
        raise ConfigError(key, "%s is not a whole number" % value)
    return int(value)


def _bool(values, key):
    value = values[key]
    if not isinstance(value, bool):
        raise ConfigError(key, "expected true or false, got %r" % (value,))
    return value


def _storage_threshold(values):
    value = _number(values, "storage_threshold", minimum=0.0, maximum=100.0)
    if value <= 0:
        raise ConfigError("storage_threshold", "%s leaves no room on any storage; use a percentage above 0 and at most 100" % value)
    return value


def _threshold(values, key):
    if values.get(key) is None:
        return None
    return _number(values, key, minimum=0.0, maximum=100.0)


def _reserve(resources, where):
    option = "node_resource_reserve.%s" % where
    if not isinstance(resources, dict):
        raise ConfigError(option, "expected a mapping like {memory: 8} (GiB), got %r" % (resources,))
    result = {}
    for resource, amount in resources.items():
        if resource not in RESERVE_KEYS:
            raise ConfigError(option, "unknown resource '%s'; use memory (GiB), cpu (cores) or disk (GiB)" % resource)
        try:
            amount = float(amount)
        except (TypeError, ValueError):
            raise ConfigError(option, "%s reserve '%s' is not a number" % (resource, amount))
        if amount < 0:
            raise ConfigError(option, "%s reserve %s is negative; use 0 or more" % (resource, amount))
        result[resource] = amount
    return result


def _kinds(kinds):
    kinds = [str(k).lower() for k in kinds]
    for kind in kinds:
        if kind not in KINDS:
            raise ConfigError("guest_types", "'%s' is not a guest type; use vm and/or ct" % kind)
    if not kinds:
        raise ConfigError("guest_types", "is empty, so nothing could ever move; list vm and/or ct")
    return kinds


def _pools(pools):
    if not isinstance(pools, dict):
        raise ConfigError("pools", "expected a mapping of pool name to {type, pin, strict}")
    result = {}
    for name, rule in sorted(pools.items()):
        option = "pools.%s" % name
        if rule is None:
            rule = {}
        if not isinstance(rule, dict):
            raise ConfigError(option, "expected a mapping with keys type, pin, strict; got %r" % (rule,))
        unknown = set(rule) - {"type", "pin", "strict"}
        if unknown:
            raise ConfigError(option, "unknown key(s) %s; allowed are type, pin, strict" % ", ".join(sorted(unknown)))
        kind = rule.get("type")
        if kind is not None and kind not in POOL_TYPES:
            raise ConfigError(option + ".type", "'%s' is not a pool rule type; use affinity or anti-affinity" % kind)
        pin = rule.get("pin") or []
        if isinstance(pin, str):
            pin = [pin]
        if not isinstance(pin, list) or not all(isinstance(p, str) for p in pin):
            raise ConfigError(option + ".pin", "expected a list of node names")
        strict = rule.get("strict", True)
        if not isinstance(strict, bool):
            raise ConfigError(option + ".strict", "expected true or false, got %r" % (strict,))
        result[str(name)] = PoolRule(name=str(name), type=kind, pin=list(pin), strict=strict)
    return result


def check_nodes_known(settings, node_names):
    """Options that name nodes must name nodes of this cluster (called once a snapshot exists)."""
    known = set(node_names)
    for option in ("maintenance_nodes", "ignore_nodes"):
        unknown = [n for n in getattr(settings, option) if n not in known]
        if unknown:
            raise ConfigError(option, "unknown node(s) %s; the cluster has %s" % (", ".join(unknown), ", ".join(sorted(known))))
    for node in settings.reserve_nodes:
        if node not in known:
            raise ConfigError("node_resource_reserve", "unknown node '%s'; use 'defaults' or one of %s" % (node, ", ".join(sorted(known))))
    for name, pool in settings.pools.items():
        unknown = [n for n in pool.pin if n.lower() not in {k.lower() for k in known}]
        if unknown:
            raise ConfigError("pools.%s.pin" % name, "unknown node(s) %s; the cluster has %s" % (", ".join(unknown), ", ".join(sorted(known))))
