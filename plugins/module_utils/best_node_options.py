# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one core behind the proxlb_best_node module and the best_node lookup.

Both front ends hand their options over as an ``OptionAdapter`` (``from_module`` for an
AnsibleModule, ``from_plugin`` for a lookup): the option values and a way to warn. ``choose``
does the rest - validates the options into a ``placement.BestNodeQuery``, reads the cluster
(or the snapshot file) and places the guests - so module and lookup give the same answers and
the same messages. The front ends only turn a failure into their own kind of error.
"""

from __future__ import annotations

import re

from ansible_collections.proxlb.balancer.plugins.module_utils.collector import collect
from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ConfigError
from ansible_collections.proxlb.balancer.plugins.module_utils.placement import BestNodeQuery, NewGuest
from ansible_collections.proxlb.balancer.plugins.module_utils.settings import BalanceSettings
from ansible_collections.proxlb.balancer.plugins.module_utils.snapshot import GUEST_TYPES
from ansible_collections.proxlb.balancer.plugins.module_utils.validation import whole_number

SIZE_FORMS = "a whole number of bytes, or a number with a binary unit such as 512M, 8G, 8GiB, 8192MiB or 1T"
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*(?:([kmgtp])(?:i?b)?|b)?$", re.IGNORECASE)
_SIZE_FACTORS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4, "p": 1024 ** 5}
_TYPE_OF_KIND = {kind: guest_type for guest_type, kind in GUEST_TYPES.items()}   # vm -> qemu, ct -> lxc
MAX_NEW_GUESTS = 1000


class OptionAdapter:
    """Resolved options and a warning channel, whichever front end they come from."""

    def __init__(self, params, warn):
        self.params = params
        self.warn = warn

    @classmethod
    def from_module(cls, module):
        return cls(module.params, module.warn)

    @classmethod
    def from_plugin(cls, plugin, display):
        """A plugin's options as resolved by Ansible (direct, vars, environment, ini, defaults)."""
        return cls(plugin.get_options(), display.warning)


def choose(options, connect, load_snapshot):
    """The answer for ``options`` (an ``OptionAdapter``): (result, failed).

    ``connect(options)`` opens the API client and ``load_snapshot(path)`` reads a snapshot file;
    the front ends pass the ones of ``ansible_glue``. Warnings go to ``options.warn``. ``failed``
    is true when a guest fits nowhere and ``fail_when_no_fit`` is on; ``result["msg"]`` then
    says why.
    """
    query = best_node_query(options.params)
    if options.params.get("snapshot"):
        snapshot = load_snapshot(options.params["snapshot"])
        snapshot.api_calls = 0
    else:
        warnings = []
        snapshot = collect(connect(options), warnings=warnings, **collect_options(query.settings))
        for warning in warnings:
            options.warn(warning)
    result = query.answer(snapshot)
    for warning in result.pop("warnings"):
        options.warn(warning)
    return result, "msg" in result and query.fail_when_no_fit


def collect_options(settings):
    """Keyword arguments of ``collector.collect`` for these settings (pressure data, local volumes)."""
    return dict(with_pressure=settings.mode == "psi", pressure_window=settings.pressure_window,
                with_local_volumes=settings.method == "disk")


def best_node_query(options):
    """Validate the options (module parameters or lookup options) into a ``BestNodeQuery``.

    Everything that can be checked without the cluster is checked here, each error naming the
    option and the values it takes.
    """
    kind = options.get("type") or "vm"
    if kind not in _TYPE_OF_KIND:
        raise ConfigError("type", "'%s' is not a guest type; use vm or ct" % kind)
    nodes = options.get("nodes")
    if nodes is not None:
        nodes = [str(n) for n in _as_list(nodes)]
        if not nodes:
            raise ConfigError("nodes", "is empty; leave it out to consider every node")
    disk = options.get("disk")
    request = NewGuest(
        memory_bytes=parse_size(options.get("memory"), "memory"),
        cores=whole_number(options.get("cores"), "cores", 1, meaning="the number of vCPUs (cores) of the guest"),
        type=_TYPE_OF_KIND[kind],
        disk_bytes=0 if disk in (None, "") else parse_size(disk, "disk"),
        storage=options.get("storage") or None,
        tags=[str(t) for t in _as_list(options.get("tags"))],
        pool=options.get("pool") or None,
        nodes=nodes,
    )
    count = whole_number(options.get("count", 1), "count", 1, MAX_NEW_GUESTS, meaning="how many guests to place")
    fail = options.get("fail_when_no_fit")
    return BestNodeQuery(settings=BalanceSettings.from_params(options), request=request, count=count,
                         fail_when_no_fit=True if fail is None else bool(fail))


def parse_size(value, option):
    """Bytes from a whole number or a string with a binary unit (K, M, G, T, P; ``iB``/``B`` optional)."""
    if isinstance(value, bool) or value is None:
        raise ConfigError(option, "%r is not a size; give %s" % (value, SIZE_FORMS))
    if isinstance(value, (int, float)):
        size = float(value)
    else:
        match = _SIZE_RE.match(str(value).strip())
        if not match:
            raise ConfigError(option, "'%s' is not a size; give %s" % (value, SIZE_FORMS))
        size = float(match.group(1)) * _SIZE_FACTORS[(match.group(2) or "").lower()]
    if not 1 <= size < float("inf"):
        raise ConfigError(option, "%s is not a positive size; give %s" % (value, SIZE_FORMS))
    return int(size)


def _as_list(value):
    """A list option as given, or a string of items separated by commas, semicolons or spaces."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [part for part in re.split(r"[,;\s]+", value) if part]
    return list(value)
