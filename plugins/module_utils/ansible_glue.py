# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The only module_utils file that knows Ansible: shared connection options, the AnsibleModule
factory and the one place where the collection's errors become ``fail_json``.
"""

from __future__ import annotations

import os

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib

from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ConfigError, MissingLibraryError, ProxLBError
from ansible_collections.proxlb.balancer.plugins.module_utils.snapshot import ClusterSnapshot
from ansible_collections.proxlb.balancer.plugins.module_utils.pve_api import (
    DEFAULT_PORT,
    DEFAULT_TIMEOUT_S,
    DEFAULT_USER,
    ConnectionSettings,
    open_client,
)

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


def run(module, fn):
    """Call ``fn()`` and ``exit_json`` with the dict it returns; every collection error ends here.

    ``ProxLBError`` and its kinds become one ``fail_json`` with the error's own message and an
    ``error`` dict (``type``, ``kind``, ``status``, ``option``, ...); a missing library becomes
    Ansible's standard ``missing_required_lib`` message.
    """
    try:
        result = fn()
    except MissingLibraryError as err:
        module.fail_json(msg=missing_required_lib(err.library), exception=err.import_traceback, error=error_details(err))
    except ProxLBError as err:
        module.fail_json(msg=str(err), error=error_details(err))
    module.exit_json(**result)


def load_snapshot(path):
    """A snapshot saved by proxlb_cluster_info; a clear ConfigError names the option otherwise."""
    try:
        return ClusterSnapshot.load(path)
    except (IOError, OSError) as err:
        raise ConfigError("snapshot", "cannot read %s (%s); give a file written by proxlb_cluster_info dest" % (path, err))
    except ValueError as err:
        raise ConfigError("snapshot", "%s is not a usable snapshot: %s" % (path, err))


def write_if_changed(module, content, dest, option="dest"):
    """Write ``content`` to ``dest`` unless it already holds it; True when it changed (or would, in check mode)."""
    directory = os.path.dirname(os.path.abspath(dest))
    if not os.path.isdir(directory):
        raise ConfigError(option, "directory %s does not exist; create it or choose another path" % directory)
    try:
        with open(dest) as handle:
            if handle.read() == content:
                return False
    except (IOError, OSError):
        pass
    if not module.check_mode:
        tmp = os.path.join(module.tmpdir, "proxlb_%s.json" % option)
        with open(tmp, "w") as handle:
            handle.write(content)
        module.atomic_move(tmp, dest)
    return True
