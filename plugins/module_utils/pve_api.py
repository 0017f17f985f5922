# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A proxmoxer session to the PVE API: auth, TLS, host failover, bounded retries, call counting.

No Ansible imports: modules reach this through ``ansible_glue``, tests and tools use it directly.
Every failure leaves as a ``PveApiError`` (or ``ConfigError``/``MissingLibraryError``) whose
message names the cause and the option that fixes it, and never contains a secret.
"""

from __future__ import annotations

import os
import re
import time
import traceback
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from ansible_collections.proxlb.balancer.plugins.module_utils.errors import (
    ConfigError,
    MissingLibraryError,
    PveApiError,
)

try:
    import requests
    from proxmoxer import ProxmoxAPI
    from proxmoxer.core import AuthenticationError, ResourceException
    HAS_PROXMOXER = True
    PROXMOXER_IMPORT_ERROR = None
except ImportError:
    HAS_PROXMOXER = False
    PROXMOXER_IMPORT_ERROR = traceback.format_exc()

DEFAULT_PORT = 8006
DEFAULT_USER = "root@pam"
DEFAULT_TIMEOUT_S = 5
DEFAULT_RETRIES = 3
BACKOFF_FIRST_S = 0.2
BACKOFF_MAX_S = 2.0

# What a balancer needs and nothing more; quoted in permission errors and the docs.
LEAST_PRIVILEGES = (
    "Sys.Audit on / (cluster status, HA, options, node RRD data), VM.Audit and VM.Migrate on /vms,"
    " Datastore.Audit on /storage, Pool.Audit on /pool"
)

# 500 is what PVE answers for any error raised in a handler, 502-504 come from proxies in front
# of pveproxy: all may clear within seconds. 595-599 are pveproxy failing to reach another node
# (node down, "No route to host"); that rarely heals within a retry window, so one retry only.
RETRY_STATUSES = (500, 502, 503, 504)
NODE_PROXY_STATUSES = (595, 596, 597, 598, 599)

# Path segment after which the next segment is an identifier, for per-endpoint call counts.
_PLACEHOLDERS = {
    "nodes": "{node}",
    "qemu": "{vmid}",
    "lxc": "{vmid}",
    "storage": "{storage}",
    "tasks": "{upid}",
    "pools": "{poolid}",
    "rules": "{rule}",
    "groups": "{group}",
}
_HA_PLACEHOLDERS = {"resources": "{sid}"}

_TOKEN_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9._-]*$")
_ERRNO_RE = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")
_CERT_REASON_RE = re.compile(r"certificate verify failed: ([^'\")(]+)")
_PERM_RE = re.compile(r"\(([^,()]+), ([A-Za-z.]+)\)")


@dataclass
class ConnectionSettings:
    """Where and how to reach the PVE API. Field values are the user's, unvalidated."""

    hosts: List[str] = field(default_factory=list)
    port: int = DEFAULT_PORT
    user: str = DEFAULT_USER
    password: Optional[str] = field(default=None, repr=False)
    token_id: Optional[str] = None
    token_secret: Optional[str] = field(default=None, repr=False)
    validate_certs: bool = True
    ca_path: Optional[str] = None
    timeout: float = DEFAULT_TIMEOUT_S
    retries: int = DEFAULT_RETRIES

    @property
    def uses_token(self):
        return bool(self.token_id or self.token_secret)


# -- option parsing (pure) ---------------------------------------------------------------

def split_hosts(value):
    """``api_host`` as given (list, or a string with commas) -> list of non-empty entries."""
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else [value]
    hosts = []
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            if part:
                hosts.append(part)
    return hosts


def parse_host(entry, default_port=DEFAULT_PORT):
    """One ``api_host`` entry -> ``(host, port)``; a port in the entry wins over ``api_port``.

    Accepts ``pve1``, ``pve1:8006``, ``10.0.0.1``, ``10.0.0.1:8006``, ``[2001:db8::1]``,
    ``[2001:db8::1]:8006``, bare ``2001:db8::1`` and a pasted ``https://pve1:8006/`` URL.
    """
    text = str(entry).strip()
    if "://" in text:
        scheme, _sep, text = text.partition("://")
        if scheme.lower() != "https":
            raise ConfigError("api_host", "'%s': the PVE API is only served over https" % entry)
    text = text.split("/", 1)[0]
    port_text = None
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ConfigError("api_host", "'%s' is not a valid host; write IPv6 addresses as [2001:db8::1] or [2001:db8::1]:8006" % entry)
        port_text = rest[1:] if rest else None
    elif text.count(":") >= 2:
        host = text                      # bare IPv6 address, no port possible
    elif ":" in text:
        host, port_text = text.rsplit(":", 1)
    else:
        host = text
    if not host:
        raise ConfigError("api_host", "'%s' has no host name or address" % entry)
    port = default_port
    if port_text is not None:
        if not port_text.isdigit():
            raise ConfigError("api_host", "'%s': port '%s' is not a number" % (entry, port_text))
        port = int(port_text)
    if not 0 < int(port) < 65536:
        raise ConfigError("api_host", "'%s': port %s is out of range 1-65535" % (entry, port))
    return host, int(port)


def format_host(host, port):
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


def split_token_id(user, token_id):
    """Return ``(user@realm, tokenname)``.

    community.proxmox documents ``api_token_id`` as ``user@realm!tokenid`` but sends it as the
    bare token name together with ``api_user``; both forms are accepted here. The full form
    names its own user, which then wins over ``api_user``.
    """
    token_id = str(token_id).strip()
    if "!" in token_id:
        user, _sep, name = token_id.rpartition("!")
        if "@" not in user:
            raise ConfigError("api_token_id", "'%s': the part before '!' must be a user with realm, e.g. root@pam!proxlb" % token_id)
    else:
        name = token_id
    if not _TOKEN_NAME_RE.match(name):
        raise ConfigError(
            "api_token_id",
            "'%s' is not a valid token id; give the token name (e.g. proxlb, with api_user root@pam) or the full id root@pam!proxlb" % token_id,
        )
    return user, name


def check_settings(settings):
    """Validate ``settings`` before any network traffic; return the ``(host, port)`` list."""
    hosts = split_hosts(settings.hosts)
    if not hosts:
        raise ConfigError("api_host", "no Proxmox VE host given; set api_host (or the PROXMOX_HOST environment variable)"
                                      " to one or more node names or addresses")
    try:
        default_port = int(settings.port or DEFAULT_PORT)
    except (TypeError, ValueError):
        raise ConfigError("api_port", "'%s' is not a port number" % settings.port)
    targets = []
    for entry in hosts:
        target = parse_host(entry, default_port)
        if target not in targets:
            targets.append(target)

    if settings.password and settings.uses_token:
        raise PveApiError(
            "both api_password and api_token_id/api_token_secret are set (from task options or the PROXMOX_PASSWORD,"
            " PROXMOX_TOKEN_ID and PROXMOX_TOKEN_SECRET environment variables); choose one way to log in:"
            " remove api_password to use the API token, or remove the token options to use the password",
            kind="config",
        )
    if settings.uses_token:
        if not settings.token_id or not settings.token_secret:
            missing = "api_token_secret" if settings.token_id else "api_token_id"
            raise ConfigError(missing, "api_token_id and api_token_secret must be given together")
        user, _name = split_token_id(settings.user or DEFAULT_USER, settings.token_id)
    elif settings.password:
        user = settings.user or DEFAULT_USER
    else:
        raise PveApiError(
            "no credentials given; set api_password (PROXMOX_PASSWORD) for api_user, or api_token_id and"
            " api_token_secret (PROXMOX_TOKEN_ID, PROXMOX_TOKEN_SECRET) for an API token",
            kind="config",
        )
    if "@" not in user:
        raise ConfigError("api_user", "'%s' has no realm; write it as user@realm, e.g. root@pam or balancer@pve" % user)
    if settings.ca_path and settings.validate_certs and not os.path.exists(settings.ca_path):
        raise ConfigError("ca_path", "'%s' does not exist; give a PEM file with the cluster's CA (a copy of /etc/pve/pve-root-ca.pem)" % settings.ca_path)
    try:
        timeout = float(settings.timeout)
    except (TypeError, ValueError):
        timeout = -1
    if timeout <= 0:
        raise ConfigError("api_timeout", "must be a positive number of seconds, got '%s'" % settings.timeout)
    if int(settings.retries) < 0:
        raise ConfigError("retries", "must be 0 or more, got %s" % settings.retries)
    return targets


def endpoint_template(method, path):
    """``GET nodes/pve1/qemu/100/status/current`` -> ``GET /nodes/{node}/qemu/{vmid}/status/current``."""
    parts = [p for p in str(path).split("?", 1)[0].split("/") if p]
    out = []
    for index, part in enumerate(parts):
        previous = parts[index - 1] if index else None
        placeholder = _PLACEHOLDERS.get(previous)
        if previous in _HA_PLACEHOLDERS and index >= 2 and parts[index - 2] == "ha":
            placeholder = _HA_PLACEHOLDERS[previous]
        out.append(placeholder or part)
    return "%s /%s" % (method.upper(), "/".join(out))


def backoff_s(attempt):
    """Delay before retry number ``attempt`` (1-based): 0.2, 0.4, 0.8 ... capped at 2 s."""
    return min(BACKOFF_FIRST_S * (2 ** (attempt - 1)), BACKOFF_MAX_S)


# -- failure classification ----------------------------------------------------------------

class _HostDown(Exception):
    """The host did not answer at all (refused, unreachable, timeout); try the next one."""

    def __init__(self, reason, sent):
        super().__init__(reason)
        self.reason = reason
        self.sent = sent      # the request may have reached the server


def _describe_connection_error(exc, timeout):
    if isinstance(exc, requests.exceptions.Timeout):
        return "timed out after %s s" % _fmt_s(timeout)
    text = str(exc)
    match = _ERRNO_RE.search(text)
    if match:
        return match.group(1).strip().rstrip(".").lower()
    if "RemoteDisconnected" in text or "Connection aborted" in text:
        return "connection closed by the server"
    return text[:200]


def _request_not_sent(exc):
    """True when the failure happened before the request left this host (safe to repeat a write)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    try:
        from urllib3.exceptions import NewConnectionError
    except ImportError:  # pragma: no cover - urllib3 ships with requests
        return False
    return isinstance(reason, NewConnectionError)


def _fmt_s(value):
    return ("%g" % float(value)) if value is not None else "?"


def _pve_message(exc):
    """The message PVE put in the reason phrase (proxmoxer's ``content``), plus parameter errors."""
    message = str(getattr(exc, "content", "") or "").strip()
    errors = getattr(exc, "errors", None)
    if not message:
        message = str(getattr(exc, "status_message", "") or "").strip()
    if isinstance(errors, dict) and errors and not isinstance(errors.get("errors"), (bytes, bytearray)):
        message += " (%s)" % ", ".join("%s: %s" % (k, str(v).strip()) for k, v in sorted(errors.items()))
    return message


# -- the client ---------------------------------------------------------------------------

class PveClient:
    """One session to the PVE API on the first host that answers.

    ``calls`` counts every HTTP request attempt (login, probes, retries);
    ``calls_by_endpoint`` counts them by ``METHOD /path/{placeholder}``.
    """

    def __init__(self, settings, sleep=time.sleep):
        self.settings = settings
        self.targets = check_settings(settings)
        self.calls = 0
        self.calls_by_endpoint: Dict[str, int] = {}
        self.host: Optional[str] = None          # "host:port" in use
        self.version_info: Optional[dict] = None  # GET /version answer of the connection probe
        self._api = None
        self._target_index = None
        self._sleep = sleep
        token_user, token_name = (None, None)
        if settings.uses_token:
            token_user, token_name = split_token_id(settings.user or DEFAULT_USER, settings.token_id)
        self._token_user = token_user
        self._token_name = token_name

    # -- identity used in messages, never with a secret
    @property
    def login(self):
        if self._token_name:
            return "API token '%s!%s'" % (self._token_user, self._token_name)
        return "user '%s'" % (self.settings.user or DEFAULT_USER)

    def _count(self, method, path):
        self.calls += 1
        key = endpoint_template(method, path)
        self.calls_by_endpoint[key] = self.calls_by_endpoint.get(key, 0) + 1

    def _scrub(self, text):
        text = str(text)
        for secret in (self.settings.password, self.settings.token_secret):
            if secret and len(str(secret)) >= 4:
                text = text.replace(str(secret), "********")
        return text

    def _error(self, message, kind, status=None, **details):
        return PveApiError(self._scrub(message), kind=kind, status=status, host=self.host, **details)

    # -- connecting ---------------------------------------------------------------------
    def connect(self):
        """Open a session on the first host that answers ``GET /version``; return ``self``."""
        if not HAS_PROXMOXER:
            raise MissingLibraryError("proxmoxer", import_traceback=PROXMOXER_IMPORT_ERROR)
        self._connect_from(0)
        return self

    def _connect_from(self, start):
        failures = []
        count = len(self.targets)
        for offset in range(count):
            index = (start + offset) % count
            host, port = self.targets[index]
            self.host = format_host(host, port)
            try:
                api = self._open(host, port)
                version = self._attempt(api, "GET", "/version", None)
            except _HostDown as down:
                failures.append("%s (%s)" % (self.host, down.reason))
                continue
            except ResourceException as exc:
                # auth and permission answers are final; a node that answers 5xx is as good as down
                if int(exc.status_code) < 500:
                    raise self._http_error("GET", "/version", exc)
                failures.append("%s (HTTP %s %s)" % (self.host, exc.status_code, _pve_message(exc)))
                continue
            self._api = api
            self._target_index = index
            self.version_info = version if isinstance(version, dict) else {}
            return
        self.host = None
        self._api = None
        raise self._error(
            "could not reach the Proxmox VE API on any host: %s. Check api_host and api_port (PROXMOX_HOST,"
            " PROXMOX_PORT), that pveproxy runs on the node and that no firewall blocks the port" % "; ".join(failures),
            kind="unreachable",
            tried=failures,
        )

    def _verify(self):
        if not self.settings.validate_certs:
            return False
        return self.settings.ca_path or True

    def _open(self, host, port):
        kwargs = dict(port=port, verify_ssl=self._verify(), timeout=float(self.settings.timeout), backend="https", service="PVE")
        if self._token_name:
            kwargs.update(user=self._token_user, token_name=self._token_name, token_value=self.settings.token_secret)
        else:
            kwargs.update(user=self.settings.user or DEFAULT_USER, password=self.settings.password)
            self._count("POST", "/access/ticket")   # proxmoxer logs in while constructing
        try:
            return ProxmoxAPI(host, **kwargs)
        except (ValueError, KeyError) as exc:
            # 200 from something that is not the PVE API (a web proxy, another service)
            raise self._error(
                "%s answered the login request with something that is not a Proxmox VE API response (%s);"
                " check api_host and api_port" % (self.host, type(exc).__name__),
                kind="http",
            )
        except (AuthenticationError, requests.exceptions.RequestException) as exc:
            raise self._transport_failure(exc)

    def _transport_failure(self, exc):
        """The exception to raise for a failure below HTTP (or a failed login inside proxmoxer)."""
        if isinstance(exc, AuthenticationError):
            return self._login_failed(str(exc))
        if isinstance(exc, requests.exceptions.SSLError):
            return self._tls_failed(exc)
        reason = _describe_connection_error(exc, self.settings.timeout)
        if isinstance(exc, requests.exceptions.ConnectionError):      # includes ConnectTimeout
            return _HostDown(reason, sent=not _request_not_sent(exc))
        return _HostDown(reason, sent=True)                            # read timeout and the rest

    def _login_failed(self, text):
        match = re.search(r"code: (\d+)", text)
        status = int(match.group(1)) if match else None
        if "Two Factor" in text:
            return self._error(
                "%s has two-factor authentication enabled, which this collection cannot answer; use an API token"
                " (api_token_id, api_token_secret) instead" % self.login,
                kind="auth",
                status=status,
            )
        if status in (401, 403, None):
            return self._error(
                "authentication failed for %s on %s (401 authentication failure). Check api_user (user@realm, e.g."
                " root@pam or balancer@pve; PROXMOX_USER) and api_password (PROXMOX_PASSWORD)" % (self.login, self.host),
                kind="auth",
                status=401 if status is None else status,
            )
        if status in NODE_PROXY_STATUSES or status >= 500:
            return _HostDown("login answered HTTP %d" % status, sent=True)
        return self._error("login as %s on %s failed with HTTP %d" % (self.login, self.host, status), kind="http", status=status)

    def _tls_failed(self, exc):
        match = _CERT_REASON_RE.search(str(exc))
        reason = match.group(1).strip() if match else str(exc)[:200]
        if self.settings.ca_path:
            hint = ("ca_path '%s' is in use: make sure it holds the CA that signed the node certificates"
                    " (/etc/pve/pve-root-ca.pem on a node) and that the api_host name or address is in the"
                    " certificate" % self.settings.ca_path)
        else:
            hint = ("give the cluster's CA with ca_path (PROXMOX_CA_PATH), e.g. a copy of /etc/pve/pve-root-ca.pem"
                    " from a node, or install a certificate from a trusted CA on the nodes")
        return self._error(
            "the TLS certificate of %s could not be verified (%s). To fix this, %s. Only as a last resort, on a"
            " network you trust, set validate_certs: false (PROXMOX_VALIDATE_CERTS)" % (self.host, reason, hint),
            kind="tls",
        )

    # -- requests -----------------------------------------------------------------------
    def get(self, path, **params):
        return self.request("GET", path, params=params)

    def post(self, path, **data):
        return self.request("POST", path, data=data)

    def put(self, path, **data):
        return self.request("PUT", path, data=data)

    def request(self, method, path, params=None, data=None, retries=None):
        """One API call with the retry policy; returns PVE's ``data``.

        Reads (GET) are retried ``retries`` times on connection errors and 500/502-504, after a
        connection error on another host when there is one. Writes are repeated only when the
        request provably never left this host.
        """
        if self._api is None:
            self.connect()
        method = method.upper()
        path = "/" + str(path).strip("/")
        reading = method == "GET"
        retries = self.settings.retries if retries is None else retries
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._attempt(self._api, method, path, params if reading else data)
            except _HostDown as down:
                if attempt > retries or (down.sent and not reading):
                    if down.sent and not reading:
                        raise self._error(
                            "%s %s on %s failed (%s) after the request may have reached PVE; not repeated."
                            " Check the cluster (task list) before running again" % (method, path, self.host, down.reason),
                            kind="timeout" if "timed out" in down.reason else "unreachable",
                        )
                    raise self._error(
                        "%s %s on %s failed after %d attempts: %s. Check that the node is up; raise api_timeout"
                        " (PROXMOX_API_TIMEOUT) if it is only slow" % (method, path, self.host, attempt, down.reason),
                        kind="timeout" if "timed out" in down.reason else "unreachable",
                    )
                self._sleep(backoff_s(attempt))
                if len(self.targets) > 1:
                    self._connect_from(self._target_index + 1)
            except ResourceException as exc:
                status = int(exc.status_code)
                limit = min(1, retries) if status in NODE_PROXY_STATUSES else retries
                if not reading or status not in RETRY_STATUSES + NODE_PROXY_STATUSES or attempt > limit:
                    raise self._http_error(method, path, exc)
                self._sleep(backoff_s(attempt))

    def _attempt(self, api, method, path, payload):
        self._count(method, path)
        resource = api(path.strip("/")) if path.strip("/") else api
        # PVE's form parser takes booleans only as 0/1 ("True" fails its type check)
        payload = dict((k, int(v) if isinstance(v, bool) else v) for k, v in (payload or {}).items())
        try:
            if method == "GET":
                result = resource.get(**payload)
            elif method == "POST":
                result = resource.post(**payload)
            elif method == "PUT":
                result = resource.put(**payload)
            elif method == "DELETE":
                result = resource.delete(**payload)
            else:
                raise ValueError("unsupported HTTP method %s" % method)
        except (AuthenticationError, requests.exceptions.RequestException) as exc:   # login renewal after an hour, too
            raise self._transport_failure(exc)
        if isinstance(result, dict) and set(result) == {"errors"} and isinstance(result["errors"], (bytes, bytearray)):
            raise self._error(
                "%s %s on %s returned something that is not a Proxmox VE API response; check api_host and api_port"
                % (method, path, self.host),
                kind="http",
            )
        return result

    def _http_error(self, method, path, exc):
        status = int(exc.status_code)
        message = _pve_message(exc)
        if status == 401:
            if self._token_name:
                hint = ("Check api_token_id (the token name, e.g. proxlb with api_user root@pam, or the full id"
                        " root@pam!proxlb; PROXMOX_TOKEN_ID) and api_token_secret (the UUID shown when the token was"
                        " created; PROXMOX_TOKEN_SECRET), and that the token exists and has not expired")
            else:
                hint = ("Check api_user (user@realm, e.g. root@pam; PROXMOX_USER) and api_password (PROXMOX_PASSWORD);"
                        " the login ticket may also have expired")
            return self._error(
                "authentication failed for %s on %s (401 %s). %s" % (self.login, self.host, message or "Unauthorized", hint),
                kind="auth",
                status=status,
                method=method,
                path=path,
            )
        if status == 403:
            match = _PERM_RE.search(message)
            needed = ("%s lacks %s on %s. " % (self.login, match.group(2), match.group(1))) if match else ""
            return self._error(
                "permission denied for %s %s on %s (403 %s). %sproxlb.balancer needs at least: %s. For an API token"
                " with privilege separation, grant the roles to the token as well"
                % (method, path, self.host, message or "Forbidden", needed, LEAST_PRIVILEGES),
                kind="permission",
                status=status,
                method=method,
                path=path,
                privilege=match.group(2) if match else None,
            )
        if status in NODE_PROXY_STATUSES:
            message = "%s (the node that owns this resource did not answer the API proxy; is it down?)" % (message or "no answer")
        return self._error(
            "PVE API error on %s %s via %s: %d %s" % (method, path, self.host, status, message),
            kind="http",
            status=status,
            method=method,
            path=path,
            pve_message=message,
        )


def open_client(settings, sleep=time.sleep):
    """Validate ``settings``, connect, and return a ready ``PveClient``."""
    return PveClient(settings, sleep=sleep).connect()


__all__ = [
    "ConnectionSettings",
    "HAS_PROXMOXER",
    "LEAST_PRIVILEGES",
    "PROXMOXER_IMPORT_ERROR",
    "PveClient",
    "backoff_s",
    "check_settings",
    "endpoint_template",
    "format_host",
    "open_client",
    "parse_host",
    "split_hosts",
    "split_token_id",
]
