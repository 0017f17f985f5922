# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Execution options: defaults, and nonsense refused with the option named."""

from __future__ import annotations

import pytest

from ansible_collections.proxlb.balancer.plugins.module_utils.ansible_glue import execution_argument_spec
from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ConfigError
from ansible_collections.proxlb.balancer.plugins.module_utils.execution_options import ExecOptions


def test_options_defaults_match_the_argument_spec():
    options = ExecOptions.from_params({})
    spec = execution_argument_spec()
    assert options.parallel_migrations == spec["parallel_migrations"]["default"] == 1
    assert options.migration_timeout_s == spec["migration_timeout"]["default"] == 1800
    assert options.on_failure == "stop" and options.max_waves is None
    assert options.with_local_disks and options.with_conntrack_state
    assert options.ct_restart_timeout_s == 180


@pytest.mark.parametrize("key, value", [
    ("parallel_migrations", 0), ("parallel_migrations", -2), ("migration_timeout", 0), ("ct_restart_timeout", 0),
    ("max_waves", 0), ("on_failure", "retry"), ("parallel_migrations", "many"), ("migration_timeout", 1.5),
])
def test_nonsense_options_are_refused_with_the_option_named(key, value):
    with pytest.raises(ConfigError) as err:
        ExecOptions.from_params({key: value})
    assert err.value.option == key
