# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one exception family of the collection.

Pure code raises these; the Ansible glue turns them into ``fail_json`` (modules) or
``AnsibleError`` (lookups) in exactly one place each.
"""

from __future__ import annotations


class ProxLBError(Exception):
    """Base error: ``str(err)`` is a complete, user-facing message that names the fix."""

    def __init__(self, message, **details):
        super().__init__(message)
        self.message = message
        self.details = details


class ConfigError(ProxLBError):
    """An option value is invalid. Raised before anything touches the cluster."""

    def __init__(self, option, message, **details):
        super().__init__("%s: %s" % (option, message), option=option, **details)
        self.option = option


class PveApiError(ProxLBError):
    """The PVE API could not be used (unreachable, auth, permission, TLS, HTTP error).

    ``kind`` is one of: unreachable, auth, permission, tls, http, timeout, config.
    ``status`` is the HTTP status code when there was one.
    """

    def __init__(self, message, kind="http", status=None, **details):
        super().__init__(message, kind=kind, status=status, **details)
        self.kind = kind
        self.status = status


class MissingLibraryError(ProxLBError):
    """A Python library the collection needs on the controller is not installed.

    ``import_traceback`` keeps the original ImportError text for ``fail_json(exception=...)``.
    """

    def __init__(self, library, import_traceback=None, **details):
        super().__init__(
            "the Python library %s is required on the host that runs the module (usually the controller);"
            " install it with 'pip install %s'" % (library, library),
            library=library,
            **details
        )
        self.library = library
        self.import_traceback = import_traceback


class RunFailed(ProxLBError):
    """A run failed after it had done or checked something; ``result`` is what it did.

    ``result`` is the module result as far as it goes (moves with their outcomes, what is left,
    API calls, ...). The Ansible glue returns it next to the message (``fail_json(msg=..., **result)``),
    so every module reports what happened before a failure the same way.
    """

    def __init__(self, message, result, **details):
        super().__init__(message, **details)
        self.result = result
