"""HTTPS server: PVE API under /api2/json, control interface under /_sim, and the ``Simulator`` class."""

from __future__ import annotations

import email.utils
import http.cookies
import ipaddress
import json
import shutil
import socket
import ssl
import tempfile
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import api, backup
from .auth import AuthError, Authenticator
from .certs import ensure_certificates
from .errors import ApiError
from .scenarios import ScenarioError
from .state import ClusterState

API_PREFIX = "/api2/json"
CONTROL_PREFIX = "/_sim"
MAX_BODY = 4 * 1024 * 1024


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, handler, simulator: "Simulator", family: int):
        self.address_family = family
        self.simulator = simulator
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pve-api-daemon/3.0"
    sys_version = ""
    # A stalled client must not pin a worker thread forever.
    timeout = 120

    def setup(self):
        super().setup()
        # Headers and body go out in separate writes; without TCP_NODELAY every keep-alive
        # response would wait for the client's delayed ACK (~40 ms).
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        if self.server.simulator.verbose:
            super().log_message(format, *args)

    def version_string(self):
        return self.server_version

    # -- plumbing ---------------------------------------------------------------------------------
    def do_GET(self):  # pylint: disable=invalid-name
        self._handle("GET")

    def do_POST(self):  # pylint: disable=invalid-name
        self._handle("POST")

    def do_PUT(self):  # pylint: disable=invalid-name
        self._handle("PUT")

    def do_DELETE(self):  # pylint: disable=invalid-name
        self._handle("DELETE")

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ApiError(413, "Request Entity Too Large")
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status: int, reason: str, body: bytes | None, extra_headers: dict | None = None) -> None:
        # The reason phrase carries PVE's error text; it must stay one latin-1 line.
        reason = (reason or "").split("\n", 1)[0].strip().encode("latin-1", "replace").decode("latin-1")
        self.send_response(status, reason)
        now = email.utils.formatdate(usegmt=True)
        self.send_header("Cache-Control", "max-age=0")
        self.send_header("Pragma", "no-cache")
        self.send_header("Expires", now)
        self.send_header("Connection", "close" if status >= 400 else "Keep-Alive")
        if body is not None and body:
            self.send_header("Content-Type", "application/json;charset=UTF-8")
        for key, value in (extra_headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: int, reason: str, obj) -> None:
        self._send(status, reason, json.dumps(obj, separators=(",", ":")).encode("utf-8"))

    def _handle(self, method: str) -> None:
        try:
            url = urllib.parse.urlsplit(self.path)
            path = urllib.parse.unquote(url.path)
            if path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/"):
                self._handle_control(method, path[len(CONTROL_PREFIX):] or "/", url.query)
            elif path == API_PREFIX or path.startswith(API_PREFIX + "/"):
                self._handle_api(method, path[len(API_PREFIX):] or "/", url.query)
            else:
                self._send_json(501, "no such uri", {"data": None})
        except (ConnectionError, ssl.SSLError, socket.timeout):
            self.close_connection = True

    # -- PVE API ------------------------------------------------------------------------------------
    def _params(self, query: str, body: bytes) -> dict:
        params: dict = {}
        if body:
            ctype = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
            if ctype == "application/json":
                try:
                    decoded = json.loads(body.decode("utf-8"))
                except ValueError as exc:
                    raise ApiError(400, "Parameter verification failed.", errors={"body": "invalid JSON: %s" % exc}) from exc
                if isinstance(decoded, dict):
                    params.update({k: v for k, v in decoded.items() if v is not None})
            else:
                for key, values in urllib.parse.parse_qs(body.decode("utf-8"), keep_blank_values=True).items():
                    params[key] = values if len(values) > 1 else values[0]
        # Query parameters win over body parameters, as in pveproxy.
        for key, values in urllib.parse.parse_qs(query, keep_blank_values=True).items():
            params[key] = values if len(values) > 1 else values[0]
        return params

    def _error_body(self, state, error: ApiError) -> bytes | None:
        if error.empty_body:
            return None
        body = {"data": None}
        if state.options["error_message_body"]:
            body["message"] = error.message.rstrip("\n") + "\n"
        if error.errors:
            body["errors"] = error.errors
        return json.dumps(body, separators=(",", ":")).encode("utf-8")

    def _handle_api(self, method: str, path: str, query: str) -> None:
        sim = self.server.simulator
        state = sim.cluster
        try:
            body = self._read_body()
        except ApiError as error:
            self._send(error.status, error.message, None)
            return
        faults = state.faults
        if faults.latency_s > 0:
            time.sleep(faults.latency_s)
        try:
            if method == "GET" and body:
                raise ApiError(501, "Unexpected content for method 'GET'")
            params = self._params(query, body)
            if path.rstrip("/") == "/access/ticket" and method == "POST":
                state.count_auth_call()
                self._send_json(200, "OK", {"data": self._login(params)})
                return
            with state.lock:
                route, args = api.find_route(method, path, state.vtuple)
                state.count_call("%s %s" % (method, route.template) if route else "%s %s" % (method, path))
            identity = None
            if route is None or not route.unauthenticated:
                identity = self._authenticate(method)
            if route is None:
                raise ApiError(501, "Method '%s %s' not implemented" % (method, path))
            if method == "GET" and state.faults.http_fails():
                raise ApiError(500, "proxy handler failed: got timeout")
            with state.lock:
                data, extra = api.dispatch(state, identity, method, route, args, params)
                envelope = {"data": data}
                envelope.update(extra)
                payload = json.dumps(envelope, separators=(",", ":")).encode("utf-8")
            self._send(200, "OK", payload)
        except AuthError as error:
            delay = float(state.options.get("auth_failure_delay_s") or 0)
            if delay > 0:
                time.sleep(delay)
            self._send(401, error.reason, None)
        except ApiError as error:
            self._send(error.status, error.message, self._error_body(state, error))
        except (ConnectionError, ssl.SSLError, socket.timeout):
            raise
        except Exception as exc:  # pylint: disable=broad-except
            # A simulator bug must surface as a readable 500, not as a dropped connection.
            traceback.print_exc()
            self._send(500, "pvesim internal error: %s" % exc, None)

    def _login(self, params: dict) -> dict:
        sim = self.server.simulator
        authorization = self.headers.get("Authorization") or ""
        if "PVEAPIToken" in authorization:
            raise ApiError(403, "Permission check failed (URI '/access/ticket' not available with API token, need proper ticket.")
        username = params.get("username")
        password = params.get("password")
        errors = {}
        if not username:
            errors["username"] = "property is missing and it is not optional"
        if password is None:
            errors["password"] = "property is missing and it is not optional"
        if errors:
            raise ApiError(400, "Parameter verification failed.", errors=errors)
        userid = sim.auth.login(str(username), str(password), params.get("realm"))
        if userid is None:
            delay = float(sim.cluster.options.get("auth_failure_delay_s") or 0)
            if delay > 0:
                time.sleep(delay)
            raise ApiError(401, "authentication failure")
        return sim.auth.ticket_response(userid, sim.cluster.scenario["cluster_name"] if len(sim.cluster.nodes) > 1 else None)

    def _authenticate(self, method: str):
        sim = self.server.simulator
        ticket = None
        cookie_header = self.headers.get("Cookie")
        if cookie_header:
            cookies = http.cookies.SimpleCookie()
            try:
                cookies.load(cookie_header)
            except http.cookies.CookieError:
                cookies = {}
            if "PVEAuthCookie" in cookies:
                ticket = cookies["PVEAuthCookie"].value
        identity = sim.auth.identify(ticket, self.headers.get("Authorization"))
        if identity.via_ticket and method != "GET":
            if not sim.auth.verify_csrf(self.headers.get("CSRFPreventionToken"), identity.userid):
                raise AuthError("Permission denied - invalid csrf token")
        return identity

    # -- control interface --------------------------------------------------------------------------
    def _handle_control(self, method: str, path: str, _query: str) -> None:
        sim = self.server.simulator
        try:
            body = self._read_body()
            payload = {}
            if body:
                payload = json.loads(body.decode("utf-8"))
                if payload is None:
                    payload = {}
                if not isinstance(payload, dict):
                    raise ValueError("body must be a JSON object")
            result = sim.control(method, path.rstrip("/") or "/", payload)
            self._send_json(200, "OK", result)
        except KeyError as exc:
            self._send_json(404, "Not Found", {"error": str(exc.args[0] if exc.args else exc)})
        except (ValueError, TypeError, ScenarioError) as exc:
            self._send_json(400, "Bad Request", {"error": str(exc)})
        except ApiError as exc:
            self._send_json(exc.status, exc.message, {"error": exc.message})


class Simulator:
    """A running (or startable) PVE API simulator.

    >>> with Simulator(scenario="demo", speed=100) as sim:
    ...     sim.url, sim.ca_path
    """

    def __init__(self, scenario="demo", port: int = 0, host: str = "127.0.0.1", cert_dir: str | None = None,
                 speed: float | None = 1.0, verbose: bool = False):
        if not is_loopback(host):
            raise ValueError("pvesim only listens on loopback addresses, not '%s'" % host)
        self.host = host
        self.port = int(port)
        self.verbose = verbose
        self._own_cert_dir = cert_dir is None
        self.cert_dir = cert_dir
        self.cluster = ClusterState(scenario, speed)
        self.auth = Authenticator(self.cluster.scenario["users"])
        self.cluster.auth = self.auth
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.ca_path: str | None = None

    # -- lifecycle --------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "https://%s:%d" % (host, self.port)

    def start(self) -> "Simulator":
        if self._server is not None:
            return self
        if self.cert_dir is None:
            self.cert_dir = tempfile.mkdtemp(prefix="pvesim-certs-")
        paths = ensure_certificates(self.cert_dir)
        self.ca_path = paths["ca"]
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(paths["cert"], paths["key"])
        bind_host = "127.0.0.1" if self.host == "localhost" else self.host
        family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
        server = _Server((bind_host, self.port), _Handler, self, family)
        # Handshakes happen lazily in the worker thread, so one slow client cannot block accept().
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        self.port = server.server_address[1]
        self._server = server
        self.cluster.scheduler.start()
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="pvesim-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server = self._server
        if server is not None:
            server.shutdown()
            server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.cluster.scheduler.stop()
        if self._own_cert_dir and self.cert_dir:
            shutil.rmtree(self.cert_dir, ignore_errors=True)
            self.cert_dir = None

    def __enter__(self) -> "Simulator":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- control operations (same as the /_sim HTTP interface) ----------------------------------------
    def state(self) -> dict:
        return self.cluster.snapshot()

    def calls(self) -> dict:
        return self.cluster.calls()

    def reset_calls(self) -> dict:
        self.cluster.reset_calls()
        return self.cluster.calls()

    def reset(self, scenario=None, speed: float | None = None) -> dict:
        self.cluster.load(scenario, speed)
        self.auth.set_users(self.cluster.scenario["users"])
        return self.cluster.snapshot()

    def set_faults(self, **settings) -> dict:
        return self.cluster.set_faults(**settings)

    def node_offline(self, name: str, duration_s: float | None = None) -> None:
        self.cluster.set_node_offline(name, duration_s)

    def node_online(self, name: str) -> None:
        self.cluster.set_node_online(name)

    def reboot(self, name: str, duration_s: float = 1.0) -> None:
        self.cluster.reboot_node(name, duration_s)

    def ha_maintenance(self, name: str, enable: bool = True) -> None:
        self.cluster.set_ha_maintenance(name, enable)

    def lock_guest(self, vmid: int, lock: str | None) -> None:
        self.cluster.lock_guest(vmid, lock)

    def start_backup(self, vmid: int, duration_s: float | None = None, job: str | None = None) -> str:
        return backup.start_backup(self.cluster, vmid, duration_s, job).upid

    def stop_backup(self, vmid: int, status: str = "OK") -> str:
        return backup.stop_backup(self.cluster, vmid, status).upid

    def control(self, method: str, path: str, payload: dict):
        """Dispatch one /_sim request (path without the /_sim prefix)."""
        parts = [p for p in path.split("/") if p]
        if method == "GET" and parts == ["state"]:
            return self.cluster.snapshot()
        if method == "GET" and parts == ["calls"]:
            return self.calls()
        if method == "GET" and parts == ["faults"]:
            return self.cluster.faults.as_dict()
        if method == "GET" and parts == []:
            return {"url": self.url, "scenario": self.cluster.scenario["name"], "version": self.cluster.version}
        if method != "POST":
            raise KeyError("no control endpoint %s %s" % (method, path))
        if parts == ["reset"]:
            snapshot = self.reset(payload.get("scenario"), payload.get("speed"))
            return {"scenario": snapshot["scenario"], "version": snapshot["version"], "speed": snapshot["speed"]}
        if parts == ["calls", "reset"]:
            return self.reset_calls()
        if parts == ["faults"]:
            return self.set_faults(**payload)
        if len(parts) == 3 and parts[0] == "nodes":
            name, action = parts[1], parts[2]
            if action == "offline":
                self.node_offline(name, payload.get("duration_s"))
            elif action == "online":
                self.node_online(name)
            elif action == "reboot":
                self.reboot(name, float(payload.get("duration_s", 1.0)))
            elif action == "ha-maintenance":
                self.ha_maintenance(name, bool(payload.get("enable", True)))
            else:
                raise KeyError("unknown node action '%s'" % action)
            return {"node": name, "status": self.cluster.snapshot()["nodes"][name]}
        if len(parts) == 3 and parts[0] == "guests" and parts[2] == "lock":
            try:
                vmid = int(parts[1])
            except ValueError as exc:
                raise ValueError("vmid must be an integer") from exc
            self.lock_guest(vmid, payload.get("lock"))
            return {"vmid": vmid, "lock": payload.get("lock")}
        if len(parts) >= 3 and parts[0] == "guests" and parts[2] == "backup":
            return backup.control(self.cluster, parts[1:], payload)
        raise KeyError("no control endpoint %s %s" % (method, path))
