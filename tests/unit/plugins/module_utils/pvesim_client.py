# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A real client to the simulator of the ``pvesim`` fixture, and what tests read back from it."""

from __future__ import annotations

import json

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.proxlb.balancer.plugins.module_utils import pve_api

TOKEN = ("proxlb", "00000000-0000-4000-8000-000000000001")


def client_for(sim):
    return pve_api.open_client(pve_api.ConnectionSettings(
        hosts=["127.0.0.1:%d" % sim.port], user="root@pam", token_id=TOKEN[0], token_secret=TOKEN[1],
        validate_certs=True, ca_path=sim.ca_path, timeout=10))


def placements(sim):
    return {int(v): g["node"] for v, g in sim.state()["guests"].items()}


def writes(sim):
    return [key for key in sim.calls()["by_endpoint"] if not key.startswith("GET ")]


def defaults(module):
    """Module parameters as AnsibleModule would pass them: every option of ``module``, defaults filled in."""
    return {key: spec.get("default") for key, spec in module.argument_spec().items()}


def run_module(module, sim, monkeypatch, capsys, check=False, diff=False, **args):
    """Run ``module.main()`` with a real client to ``sim``; (failed, result)."""
    return run_main(module, lambda _module: client_for(sim), monkeypatch, capsys, check=check, diff=diff, **args)


def run_main(module, connect, monkeypatch, capsys, check=False, diff=False, **args):
    """Run ``module.main()`` with ``connect(module)`` as its connection; (failed, result)."""
    monkeypatch.setattr(module, "connect", connect)
    args = dict(args, api_host=["127.0.0.1"], api_token_id=TOKEN[0], api_token_secret=TOKEN[1],
                _ansible_check_mode=check, _ansible_diff=diff)
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    result = json.loads(capsys.readouterr().out)
    return bool(result.get("failed")), result
