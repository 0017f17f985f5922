# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The only module_utils file that knows Ansible: the argument specs of the option families
(connection, balancing, execution), the AnsibleModule factory and the one place where the
collection's errors become ``fail_json``.

Option defaults live with the pure code that validates the options (``settings``,
``execution_options``); the specs here add Ansible's types and choices.
"""

from __future__ import annotations

import os

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib

from ansible_collections.proxlb.balancer.plugins.module_utils import execution_options, settings
from ansible_collections.proxlb.balancer.plugins.module_utils.errors import MissingLibraryError, ProxLBError, RunFailed
from ansible_collections.proxlb.balancer.plugins.module_utils.pve_api import (
    DEFAULT_PORT,
    DEFAULT_TIMEOUT_S,
    DEFAULT_USER,
    ConnectionSettings,
    open_client,
)
from ansible_collections.proxlb.balancer.plugins.module_utils.request import Request

# Error details that are safe to hand back to the user next to ``msg`` (never credentials).
_DETAIL_KEYS = ("kind", "status", "option", "method", "path", "host", "tried", "privilege", "library")


def connection_argument_spec():
    """Connection options: names, defaults and PROXMOX_* fallbacks as in community.proxmox."""
    return dict(
        api_host=dict(type="list", elements="str", fallback=(env_fallback, ["PROXMOX_HOST"])),
        api_port=dict(type="int", fallback=(env_fallback, ["PROXMOX_PORT"])),
        api_user=dict(type="str", default=DEFAULT_USER, fallback=(env_fallback, ["PROXMOX_USER"])),
        api_password=dict(type="str", no_log=True, fallback=(env_fallback, ["PROXMOX_PASSWORD"])),
        api_token_id=dict(type="str", no_log=False, fallback=(env_fallback, ["PROXMOX_TOKEN_ID"])),
        api_token_secret=dict(type="str", no_log=True, fallback=(env_fallback, ["PROXMOX_TOKEN_SECRET"])),
        validate_certs=dict(type="bool", default=True, fallback=(env_fallback, ["PROXMOX_VALIDATE_CERTS"])),
        ca_path=dict(type="path", fallback=(env_fallback, ["PROXMOX_CA_PATH"])),
        api_timeout=dict(type="int", default=DEFAULT_TIMEOUT_S, fallback=(env_fallback, ["PROXMOX_API_TIMEOUT"])),
    )


def balance_argument_spec():
    """Balancing options shared by every planning module (validated by ``settings.BalanceSettings``)."""
    return _with_defaults(settings.option_defaults(), dict(
        method=dict(type="str", choices=list(settings.METHODS)),
        mode=dict(type="str", choices=list(settings.MODES)),
        balanciness=dict(type="float"),
        memory_threshold=dict(type="float"),
        cpu_threshold=dict(type="float"),
        disk_threshold=dict(type="float"),
        node_resource_reserve=dict(type="dict"),
        cpu_overcommit=dict(type="float"),
        max_moves=dict(type="int"),
        max_moves_per_node=dict(type="int"),
        guest_types=dict(type="list", elements="str", choices=list(settings.KINDS)),
        ignore_guests=dict(type="list", elements="str"),
        ignore_nodes=dict(type="list", elements="str"),
        maintenance_nodes=dict(type="list", elements="str"),
        include_stopped=dict(type="bool"),
        pools=dict(type="dict"),
        manage_ha_resources=dict(type="bool"),
        pressure_window=dict(type="str", choices=["hour", "day", "week"]),
        backup_guard=dict(type="int"),
        avoid_backup_nodes=dict(type="bool"),
        storage_threshold=dict(type="float"),
    ))


def execution_argument_spec():
    """Options that control how a plan is carried out (validated by ``execution_options.ExecOptions``)."""
    return _with_defaults(execution_options.option_defaults(), dict(
        parallel_migrations=dict(type="int"),
        migration_timeout=dict(type="int"),
        with_local_disks=dict(type="bool"),
        with_conntrack_state=dict(type="bool"),
        ct_restart_timeout=dict(type="int"),
        on_failure=dict(type="str", choices=list(execution_options.ON_FAILURE)),
        max_waves=dict(type="int"),
    ))


def _with_defaults(defaults, spec):
    """``spec`` with each option's default from ``defaults``; an option there without one has none."""
    if set(defaults) != set(spec):
        raise ValueError("argument spec and defaults name different options: %s"
                         % ", ".join(sorted(set(defaults) ^ set(spec))))
    for key, default in defaults.items():
        if default is not None:
            spec[key]["default"] = default
    return spec


def create_module(argument_spec, **kwargs):
    """AnsibleModule with the connection options merged in; check mode supported by default.

    Password and token together are reported by ``pve_api`` rather than by a
    ``mutually_exclusive`` rule, so the message can say where each value came from
    (task options or PROXMOX_* variables) and what to remove.
    """
    spec = connection_argument_spec()
    spec.update(argument_spec)
    kwargs.setdefault("supports_check_mode", True)
    kwargs["required_together"] = [("api_token_id", "api_token_secret")] + list(kwargs.get("required_together") or [])
    return AnsibleModule(argument_spec=spec, **kwargs)


def settings_from_params(params):
    """Module parameters -> ``ConnectionSettings`` (validation happens in ``pve_api``)."""
    return ConnectionSettings(
        hosts=list(params.get("api_host") or []),
        port=params.get("api_port") or DEFAULT_PORT,
        user=params.get("api_user") or DEFAULT_USER,
        password=params.get("api_password"),
        token_id=params.get("api_token_id"),
        token_secret=params.get("api_token_secret"),
        validate_certs=params.get("validate_certs", True) is not False,
        ca_path=params.get("ca_path"),
        timeout=params.get("api_timeout") or DEFAULT_TIMEOUT_S,
    )


def connect(module):
    """A connected ``PveClient`` for the module's connection options."""
    return open_client(settings_from_params(module.params))


def error_details(err):
    """The user-safe part of ``err.details`` as plain JSON types."""
    details = {"type": type(err).__name__}
    for key in _DETAIL_KEYS:
        value = getattr(err, "details", {}).get(key)
        if value is None:
            continue
        details[key] = value if isinstance(value, (int, bool, list)) else str(value)
    return details


class ModuleRequest(Request):
    """A ``Request`` for a runner from an ``AnsibleModule``: its parameters, check and diff mode,
    and Ansible's atomic file replacement."""

    def __init__(self, module, connect_to):
        super().__init__(module.params, lambda: connect_to(module), check_mode=module.check_mode, diff=module._diff)
        self.module = module

    def replace_file(self, content, dest):
        tmp = os.path.join(self.module.tmpdir, "proxlb_%s" % os.path.basename(dest))
        with open(tmp, "w") as handle:
            handle.write(content)
        self.module.atomic_move(tmp, dest)


def run(module, runner, connect_to=connect):
    """``runner(request)`` for the module, then ``exit_json``; every collection error ends here.

    ``connect_to(module)`` opens the PVE connection when the runner asks for it. Warnings the
    runner collected are shown whatever the outcome. ``RunFailed`` becomes ``fail_json`` with its
    message and the partial result (what was done before the failure); other ``ProxLBError`` kinds
    become one ``fail_json`` with the error's own message and an ``error`` dict (``type``,
    ``kind``, ``status``, ``option``, ...); a missing library becomes Ansible's standard
    ``missing_required_lib`` message.
    """
    request = ModuleRequest(module, connect_to)
    failure = None
    try:
        result = runner(request)
    except RunFailed as err:
        result, failure = err.result, dict(msg=str(err))
    except MissingLibraryError as err:
        result, failure = {}, dict(msg=missing_required_lib(err.library), exception=err.import_traceback,
                                   error=error_details(err))
    except ProxLBError as err:
        result, failure = {}, dict(msg=str(err), error=error_details(err))
    for warning in request.warnings:
        module.warn(warning)
    if failure is not None:
        module.fail_json(**dict(result, **failure))
    module.exit_json(**result)
