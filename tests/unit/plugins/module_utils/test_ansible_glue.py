# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Ansible glue: argument specs of the option families, and errors turned into one failure."""

from __future__ import annotations

import json
import os

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.proxlb.balancer.plugins.module_utils import ansible_glue, execution_options, settings
from ansible_collections.proxlb.balancer.plugins.module_utils.ansible_glue import (
    balance_argument_spec, create_module, execution_argument_spec, run)
from ansible_collections.proxlb.balancer.plugins.module_utils.errors import (
    ConfigError, MissingLibraryError, PveApiError, RunFailed)

TOKEN = dict(api_host=["pve1"], api_token_id="proxlb", api_token_secret="5f0e6c1a-3b7d-4c2e-9a41-0d2b8e7f6a11")


def run_runner(capsys, runner, connect_to=None, **args):
    """``ansible_glue.run`` on a real AnsibleModule with ``args``; the JSON it printed."""
    with patch_module_args(dict(TOKEN, **args)):
        module = create_module(dict(dest=dict(type="path")))
        with pytest.raises(SystemExit):
            run(module, runner, connect_to or (lambda _module: "client"))
    return json.loads(capsys.readouterr().out)


def warnings_of(result):
    """The warning texts of a result (ansible-core 2.19 returns them as summaries)."""
    return [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]


# -- argument specs ---------------------------------------------------------------------------

def test_spec_defaults_are_the_pure_defaults():
    for spec, defaults in ((balance_argument_spec(), settings.option_defaults()),
                           (execution_argument_spec(), execution_options.option_defaults())):
        assert set(spec) == set(defaults)
        for key, default in defaults.items():
            assert spec[key].get("default") == default, key
            assert ("default" in spec[key]) == (default is not None), key
    assert balance_argument_spec()["guest_types"] == dict(type="list", elements="str", choices=["vm", "ct"],
                                                          default=["vm", "ct"])


def test_specs_are_fresh_each_time():
    spec = balance_argument_spec()
    spec["ignore_guests"]["default"].append("web*")
    assert balance_argument_spec()["ignore_guests"]["default"] == []


def test_a_spec_that_misses_a_default_is_refused():
    with pytest.raises(ValueError, match="max_waves"):
        ansible_glue._with_defaults({"parallel_migrations": 1},
                                    dict(parallel_migrations=dict(type="int"), max_waves=dict(type="int")))


# -- run: one place for every outcome -----------------------------------------------------------

def test_success_exits_with_the_result_and_the_warnings(capsys):
    def runner(request):
        request.warnings.append("could not read pressure of node pve2")
        return dict(changed=False, client=request.connect(), check=request.check_mode, diff=request.diff)

    result = run_runner(capsys, runner, _ansible_check_mode=True)
    assert result["client"] == "client" and result["check"] is True and result["diff"] is False
    assert "could not read pressure of node pve2" in warnings_of(result)
    assert "failed" not in result


def test_a_failed_run_returns_what_it_did_next_to_the_message(capsys):
    def runner(request):
        request.warnings.append("skipped 101 (db1) pve1 -> pve3: locked (backup)")
        raise RunFailed("1 of 2 migration(s) failed", dict(changed=True, moves=[{"vmid": 100, "status": "failed"}]))

    result = run_runner(capsys, runner)
    assert result["failed"] is True and result["msg"] == "1 of 2 migration(s) failed"
    assert result["changed"] is True and result["moves"] == [{"vmid": 100, "status": "failed"}]
    assert "skipped 101 (db1) pve1 -> pve3: locked (backup)" in warnings_of(result)
    assert "error" not in result


def test_other_errors_become_one_failure_with_safe_details(capsys):
    def bad_option(request):
        raise ConfigError("dest", "directory /nowhere does not exist; create it or choose another path")

    result = run_runner(capsys, bad_option)
    assert result["failed"] is True and result["msg"].startswith("dest: directory /nowhere")
    assert result["error"] == {"type": "ConfigError", "option": "dest"}

    def refuse(_module):
        raise PveApiError("authentication failed for root@pam", kind="auth", status=401)

    result = run_runner(capsys, lambda request: request.connect(), connect_to=refuse)
    assert result["error"] == {"type": "PveApiError", "kind": "auth", "status": 401}
    assert TOKEN["api_token_secret"] not in json.dumps(result)


def test_a_missing_library_gets_ansibles_message(capsys):
    def runner(request):
        raise MissingLibraryError("proxmoxer", import_traceback="ImportError: No module named 'proxmoxer'")

    result = run_runner(capsys, runner)
    assert result["failed"] is True and result["msg"].startswith("Failed to import the required Python library (proxmoxer)")
    assert result["error"] == {"type": "MissingLibraryError", "library": "proxmoxer"}


def test_files_are_replaced_through_ansible(capsys, tmp_path):
    dest = tmp_path / "out.json"

    def runner(request):
        return dict(changed=request.write_if_changed("{}\n", request.params["dest"]))

    assert run_runner(capsys, runner, dest=str(dest))["changed"] is True
    assert dest.read_text() == "{}\n"
    assert run_runner(capsys, runner, dest=str(dest))["changed"] is False


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
