# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module tests give module arguments with ansible.module_utils.testing.patch_module_args,
which ansible-core has from 2.19 on. On 2.18 an equivalent is registered under the same name:
it hands the arguments to AnsibleModule the way 2.18 reads them, as the JSON in
basic._ANSIBLE_ARGS."""

from __future__ import annotations

import contextlib
import json
import sys
import types
from unittest import mock

from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes

try:
    import ansible.module_utils.testing  # noqa: F401  pylint: disable=unused-import
except ImportError:
    @contextlib.contextmanager
    def _patch_module_args(args=None):
        payload = to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": {} if args is None else args}))
        with mock.patch.object(basic, "_ANSIBLE_ARGS", payload):
            yield

    _testing = types.ModuleType("ansible.module_utils.testing")
    _testing.patch_module_args = _patch_module_args
    sys.modules["ansible.module_utils.testing"] = _testing
