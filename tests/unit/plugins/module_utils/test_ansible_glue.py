# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Ansible glue: argument specs of the option families, and errors turned into one failure."""

from __future__ import annotations

import os

import pytest

from ansible_collections.proxlb.balancer.plugins.module_utils.ansible_glue import balance_argument_spec, execution_argument_spec


# -- the rebalance role mirrors the module's options ------------------------------------------

def test_role_variables_mirror_the_module_options_in_defaults_and_argument_specs():
    yaml = pytest.importorskip("yaml")
    role = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "roles", "rebalance")
    with open(os.path.join(role, "defaults", "main.yml")) as handle:
        defaults = yaml.safe_load(handle)
    with open(os.path.join(role, "meta", "argument_specs.yml")) as handle:
        specs = yaml.safe_load(handle)["argument_specs"]["main"]["options"]
    module = balance_argument_spec()
    module.update(execution_argument_spec())
    module = {key: value for key, value in module.items() if key != "max_waves"}   # the role drives waves itself
    assert set(defaults) == set(specs) == {"rebalance_" + key for key in module}
    for key, option in module.items():
        name = "rebalance_" + key
        assert defaults[name] == option.get("default"), name
        assert specs[name].get("default") == option.get("default"), name
        assert specs[name]["type"] == option["type"], name
        assert specs[name].get("choices") == option.get("choices"), name
