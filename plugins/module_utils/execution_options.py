# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options that control how a plan is carried out, validated before anything touches the cluster.

The Ansible argument spec of these options (``ansible_glue.execution_argument_spec``) takes its
defaults from ``option_defaults`` here, so a default is written once. No Ansible imports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ConfigError
from ansible_collections.proxlb.balancer.plugins.module_utils.validation import whole_number

ON_FAILURE = ("stop", "continue")


def option_defaults():
    """Default of every execution option by option name (None: unset means no limit)."""
    return dict(
        parallel_migrations=1,
        migration_timeout=1800,
        with_local_disks=True,
        with_conntrack_state=True,
        ct_restart_timeout=180,
        on_failure="stop",
        max_waves=None,
    )


_DEFAULTS = option_defaults()


@dataclass
class ExecOptions:
    parallel_migrations: int = _DEFAULTS["parallel_migrations"]
    migration_timeout_s: int = _DEFAULTS["migration_timeout"]
    with_local_disks: bool = _DEFAULTS["with_local_disks"]
    with_conntrack_state: bool = _DEFAULTS["with_conntrack_state"]
    ct_restart_timeout_s: int = _DEFAULTS["ct_restart_timeout"]
    on_failure: str = _DEFAULTS["on_failure"]
    max_waves: Optional[int] = _DEFAULTS["max_waves"]

    @classmethod
    def from_params(cls, params):
        """Validate execution options from a module parameter dict (None means the default)."""
        values = {}
        for key, default in option_defaults().items():
            value = params.get(key)
            values[key] = default if value is None else value
        if values["on_failure"] not in ON_FAILURE:
            raise ConfigError("on_failure", "'%s' is not one of %s" % (values["on_failure"], ", ".join(ON_FAILURE)))
        max_waves = values["max_waves"]
        return cls(
            parallel_migrations=whole_number(values["parallel_migrations"], "parallel_migrations", 1, 1000),
            migration_timeout_s=whole_number(values["migration_timeout"], "migration_timeout", 1, 7 * 24 * 3600),
            with_local_disks=bool(values["with_local_disks"]),
            with_conntrack_state=bool(values["with_conntrack_state"]),
            ct_restart_timeout_s=whole_number(values["ct_restart_timeout"], "ct_restart_timeout", 1, 24 * 3600),
            on_failure=values["on_failure"],
            max_waves=None if max_waves is None else whole_number(values["max_waves"], "max_waves", 1, 1000000),
        )
