# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The exception family: complete messages, details, and the partial result of a failed run."""

from __future__ import annotations

from ansible_collections.proxlb.balancer.plugins.module_utils.errors import (
    ConfigError, MissingLibraryError, ProxLBError, PveApiError, RunFailed)


def test_config_error_names_the_option_first():
    err = ConfigError("parallel_migrations", "0 is out of range; use a value from 1 to 1000")
    assert str(err) == "parallel_migrations: 0 is out of range; use a value from 1 to 1000"
    assert err.option == "parallel_migrations" and err.details == {"option": "parallel_migrations"}


def test_api_error_keeps_kind_and_status():
    err = PveApiError("permission denied", kind="permission", status=403, privilege="VM.Migrate")
    assert (err.kind, err.status) == ("permission", 403)
    assert err.details == {"kind": "permission", "status": 403, "privilege": "VM.Migrate"}


def test_missing_library_says_how_to_install_it():
    err = MissingLibraryError("proxmoxer", import_traceback="Traceback ...")
    assert "pip install proxmoxer" in str(err) and err.import_traceback == "Traceback ..."


def test_run_failed_carries_what_the_run_did():
    result = {"changed": True, "moves": [{"vmid": 100, "status": "failed"}]}
    err = RunFailed("1 of 1 migration(s) failed: 100 (web1) pve1 -> pve2: aborted", result)
    assert isinstance(err, ProxLBError)
    assert str(err).startswith("1 of 1 migration(s) failed") and err.result is result
