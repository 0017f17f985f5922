# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PveClient: option parsing, and the real proxmoxer/requests stack against a loopback HTTPS server."""

from __future__ import annotations

import datetime
import json
import os
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from ansible_collections.proxlb.balancer.plugins.module_utils import pve_api
from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ConfigError, PveApiError
from ansible_collections.proxlb.balancer.plugins.module_utils.pve_api import ConnectionSettings, PveClient

TOKEN_SECRET = "5f0e6c1a-3b7d-4c2e-9a41-0d2b8e7f6a11"
PASSWORD = "s3cret-Passw0rd"
VERSION = {"version": "9.0.3", "release": "9.0", "repoid": "025864202ebb6109"}


# -- option parsing -----------------------------------------------------------------------

@pytest.mark.parametrize("entry, expected", [
    ("pve1", ("pve1", 8006)),
    ("pve1.example.com:8443", ("pve1.example.com", 8443)),
    ("10.0.0.11", ("10.0.0.11", 8006)),
    ("10.0.0.11:8006", ("10.0.0.11", 8006)),
    ("[2001:db8::1]", ("2001:db8::1", 8006)),
    ("[2001:db8::1]:9006", ("2001:db8::1", 9006)),
    ("2001:db8::1", ("2001:db8::1", 8006)),
    ("::1", ("::1", 8006)),
    (" pve1 ", ("pve1", 8006)),
    ("https://pve1:8006/", ("pve1", 8006)),
    ("https://[2001:db8::1]:8006", ("2001:db8::1", 8006)),
])
def test_parse_host(entry, expected):
    assert pve_api.parse_host(entry, 8006) == expected


def test_entry_port_wins_over_api_port():
    assert pve_api.parse_host("pve1", 9000) == ("pve1", 9000)
    assert pve_api.parse_host("pve1:8006", 9000) == ("pve1", 8006)


@pytest.mark.parametrize("entry, fragment", [
    ("pve1:abc", "not a number"),
    ("pve1:70000", "out of range"),
    ("[2001:db8::1", "IPv6"),
    ("[2001:db8::1]x", "IPv6"),
    (":8006", "no host"),
    ("http://pve1", "https"),
])
def test_parse_host_errors_name_api_host(entry, fragment):
    with pytest.raises(ConfigError) as err:
        pve_api.parse_host(entry, 8006)
    assert err.value.option == "api_host"
    assert fragment in str(err.value)
    assert str(err.value).startswith("api_host: ")


def test_split_hosts():
    assert pve_api.split_hosts("pve1, pve2,,") == ["pve1", "pve2"]
    assert pve_api.split_hosts(["pve1", "pve2,pve3"]) == ["pve1", "pve2", "pve3"]
    assert pve_api.split_hosts(None) == []


@pytest.mark.parametrize("user, token_id, expected", [
    ("root@pam", "proxlb", ("root@pam", "proxlb")),
    ("root@pam", "balancer@pve!proxlb", ("balancer@pve", "proxlb")),
    ("root@pam", "svc@ldap-corp!lb.2", ("svc@ldap-corp", "lb.2")),
])
def test_split_token_id_accepts_both_forms(user, token_id, expected):
    assert pve_api.split_token_id(user, token_id) == expected


@pytest.mark.parametrize("token_id", ["root!lb", "root@pam!", "1abc", "lb=secret"])
def test_split_token_id_rejects_bad_ids(token_id):
    with pytest.raises(ConfigError) as err:
        pve_api.split_token_id("root@pam", token_id)
    assert err.value.option == "api_token_id"


def settings(**kwargs):
    kwargs.setdefault("hosts", ["pve1"])
    if "password" not in kwargs:
        kwargs.setdefault("token_id", "proxlb")
        kwargs.setdefault("token_secret", TOKEN_SECRET)
    return ConnectionSettings(**kwargs)


def test_both_password_and_token_is_one_clear_error():
    with pytest.raises(PveApiError) as err:
        pve_api.check_settings(settings(password=PASSWORD, token_id="proxlb", token_secret=TOKEN_SECRET))
    message = str(err.value)
    assert err.value.kind == "config"
    assert "api_password" in message and "api_token_id/api_token_secret" in message and "choose one" in message
    assert PASSWORD not in message and TOKEN_SECRET not in message


def test_no_credentials():
    with pytest.raises(PveApiError) as err:
        pve_api.check_settings(ConnectionSettings(hosts=["pve1"]))
    assert err.value.kind == "config"
    assert "api_password" in str(err.value) and "api_token_secret" in str(err.value)


def test_missing_host_names_api_host_and_env():
    with pytest.raises(ConfigError) as err:
        pve_api.check_settings(settings(hosts=[]))
    assert "api_host" in str(err.value) and "PROXMOX_HOST" in str(err.value)


@pytest.mark.parametrize("kwargs, option", [
    (dict(token_id="proxlb", token_secret=None), "api_token_secret"),
    (dict(token_id=None, token_secret=TOKEN_SECRET), "api_token_id"),
    (dict(user="root", password=PASSWORD), "api_user"),
    (dict(ca_path="/nonexistent/ca.pem"), "ca_path"),
    (dict(timeout=0), "api_timeout"),
    (dict(port="x"), "api_port"),
])
def test_config_errors_name_the_option(kwargs, option):
    with pytest.raises(ConfigError) as err:
        pve_api.check_settings(settings(**kwargs))
    assert err.value.option == option


def test_ca_path_is_ignored_without_validation():
    assert pve_api.check_settings(settings(ca_path="/nonexistent/ca.pem", validate_certs=False)) == [("pve1", 8006)]


def test_targets_are_deduplicated_and_keep_order():
    assert pve_api.check_settings(settings(hosts=["b", "a:8006", "b:8006", "[::1]"])) == [("b", 8006), ("a", 8006), ("::1", 8006)]


def test_secrets_stay_out_of_repr():
    text = repr(settings(password=None, token_id="lb", token_secret=TOKEN_SECRET)) + repr(settings(password=PASSWORD, token_id=None))
    assert TOKEN_SECRET not in text and PASSWORD not in text


@pytest.mark.parametrize("method, path, key", [
    ("get", "/cluster/resources", "GET /cluster/resources"),
    ("GET", "nodes/pve1/qemu/100/status/current", "GET /nodes/{node}/qemu/{vmid}/status/current"),
    ("POST", "/nodes/pve1/lxc/104/migrate", "POST /nodes/{node}/lxc/{vmid}/migrate"),
    ("GET", "/nodes/pve1/tasks/UPID:pve1:0012A3F4:07E1B2C3:66F0A1B2:qmigrate:100:root@pam:/status",
     "GET /nodes/{node}/tasks/{upid}/status"),
    ("POST", "/cluster/ha/resources/vm:100/migrate", "POST /cluster/ha/resources/{sid}/migrate"),
    ("GET", "/nodes/pve2/storage/local-lvm/content?content=images", "GET /nodes/{node}/storage/{storage}/content"),
    ("GET", "/cluster/ha/status/current", "GET /cluster/ha/status/current"),
])
def test_endpoint_template(method, path, key):
    assert pve_api.endpoint_template(method, path) == key


def test_backoff_is_exponential_and_capped():
    assert [pve_api.backoff_s(n) for n in range(1, 7)] == [0.2, 0.4, 0.8, 1.6, 2.0, 2.0]


# -- a loopback HTTPS PVE stand-in ----------------------------------------------------------

@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA and a server certificate for 127.0.0.1/localhost, like a PVE cluster's own CA."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    directory = tmp_path_factory.mktemp("pki")
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (x509.CertificateBuilder().subject_name(name("Proxmox Virtual Environment")).issuer_name(name("Proxmox Virtual Environment"))
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                                            encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
               .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name("pve1")).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {name_: str(directory / name_) for name_ in ("ca.pem", "cert.pem", "key.pem")}
    with open(paths["ca.pem"], "wb") as handle:
        handle.write(ca_cert.public_bytes(serialization.Encoding.PEM))
    with open(paths["cert.pem"], "wb") as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths["key.pem"], "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return paths


class StubPve:
    """Speaks enough of the PVE API envelope: reason-phrase errors, ticket and token auth.

    ``routes`` maps ``"METHOD /path"`` to a list of answers served in turn (the last one
    repeats); an answer is ``(status, data_or_message)`` or ``("sleep", seconds, answer)``.
    """

    def __init__(self, pki):
        self.routes = {"GET /version": [(200, VERSION)]}
        self.seen = []
        self.connections = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                BaseHTTPRequestHandler.setup(self)
                stub.connections.append(self.connection)

            def do_GET(self):
                try:
                    stub.handle(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass        # the client gave up first (timeout tests)

            do_POST = do_PUT = do_DELETE = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pki["cert.pem"], pki["key.pem"])
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def host(self):
        return "127.0.0.1:%d" % self.port

    def stop(self):
        """Go away like a dead node: stop listening and drop kept-alive connections."""
        self.server.shutdown()
        self.server.server_close()
        for connection in self.connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
                connection.close()
            except OSError:
                pass

    def authorized(self, request, body):
        header = request.headers.get("Authorization", "")
        if header == "PVEAPIToken=root@pam!proxlb=%s" % TOKEN_SECRET:
            return True
        return "PVEAuthCookie=PVE:root@pam:TICKET" in request.headers.get("Cookie", "")

    def handle(self, request):
        url = urlsplit(request.path)
        path = url.path[len("/api2/json"):]
        length = int(request.headers.get("Content-Length") or 0)
        body = parse_qs(request.rfile.read(length).decode()) if length else {}
        key = "%s %s" % (request.command, path)
        self.seen.append((key, parse_qs(url.query), body))
        if key == "POST /access/ticket":
            if body.get("username") == ["root@pam"] and body.get("password") == [PASSWORD]:
                return self.reply(request, 200, {"ticket": "PVE:root@pam:TICKET", "CSRFPreventionToken": "CSRF", "username": "root@pam"})
            time.sleep(0.05)
            return self.reply(request, 401, "authentication failure")
        if not self.authorized(request, body):
            return self.reply(request, 401, "No ticket", empty=True)
        answers = self.routes.get(key)
        if not answers:
            return self.reply(request, 501, "Method '%s' not implemented" % key)
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if answer[0] == "sleep":
            time.sleep(answer[1])
            answer = answer[2]
        return self.reply(request, *answer)

    @staticmethod
    def reply(request, status, payload, empty=False):
        if status == 200:
            body = json.dumps({"data": payload}).encode()
            request.send_response(200)
        else:
            message = payload if isinstance(payload, str) else payload["message"]
            errors = payload.get("errors") if isinstance(payload, dict) else None
            request.send_response(status, message)
            document = {"data": None, "message": message + "\n"}
            if errors:
                document["errors"] = errors
            body = b"" if empty else json.dumps(document).encode()
        request.send_header("Content-Type", "application/json;charset=UTF-8")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)


@pytest.fixture
def stub(pki):
    server = StubPve(pki)
    yield server
    server.stop()


def dead_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Sleeps(list):
    def __call__(self, seconds):
        self.append(seconds)


def client_for(stub, pki, sleeps=None, **kwargs):
    kwargs.setdefault("hosts", [stub.host])
    kwargs.setdefault("ca_path", pki["ca.pem"])
    kwargs.setdefault("timeout", 2)
    return PveClient(settings(**kwargs), sleep=sleeps if sleeps is not None else Sleeps())


# -- the client on the wire -----------------------------------------------------------------

def test_token_auth_reads_and_counts(stub, pki):
    stub.routes["GET /cluster/resources"] = [(200, [{"id": "node/pve1", "type": "node"}])]
    client = client_for(stub, pki).connect()
    assert client.host == stub.host
    assert client.version_info == VERSION
    assert client.get("/cluster/resources") == [{"id": "node/pve1", "type": "node"}]
    assert client.get("cluster/resources") == [{"id": "node/pve1", "type": "node"}]
    assert client.calls == 3
    assert client.calls_by_endpoint == {"GET /version": 1, "GET /cluster/resources": 2}


def test_token_id_in_full_form(stub, pki):
    client = client_for(stub, pki, user="someone@pve", token_id="root@pam!proxlb").connect()
    assert client.version_info == VERSION


def test_password_auth_logs_in_once_and_counts_it(stub, pki):
    stub.routes["POST /nodes/pve1/qemu/100/migrate"] = [(200, "UPID:pve1:0012A3F4:07E1B2C3:66F0A1B2:qmigrate:100:root@pam:")]
    client = client_for(stub, pki, password=PASSWORD).connect()
    assert client.post("/nodes/pve1/qemu/100/migrate", target="pve2", online=True).startswith("UPID:pve1:")
    assert client.calls_by_endpoint == {"POST /access/ticket": 1, "GET /version": 1, "POST /nodes/{node}/qemu/{vmid}/migrate": 1}
    assert stub.seen[-1][2] == {"target": ["pve2"], "online": ["1"]}


def test_get_sends_query_parameters(stub, pki):
    stub.routes["GET /nodes/pve1/rrddata"] = [(200, [])]
    client_for(stub, pki).get("/nodes/pve1/rrddata", timeframe="hour", cf="AVERAGE")
    assert stub.seen[-1][1] == {"timeframe": ["hour"], "cf": ["AVERAGE"]}


def test_failover_skips_a_dead_host(stub, pki):
    dead = "127.0.0.1:%d" % dead_port()
    client = client_for(stub, pki, hosts=[dead, stub.host]).connect()
    assert client.host == stub.host
    assert client.calls_by_endpoint["GET /version"] == 2


def test_failover_within_a_session(pki):
    first, second = StubPve(pki), StubPve(pki)
    try:
        for server in (first, second):
            server.routes["GET /cluster/status"] = [(200, [{"type": "cluster", "name": "c"}])]
        sleeps = Sleeps()
        client = client_for(first, pki, sleeps=sleeps, hosts=[first.host, second.host]).connect()
        first.stop()
        assert client.get("/cluster/status") == [{"type": "cluster", "name": "c"}]
        assert client.host == second.host
        assert sleeps == [0.2]
    finally:
        second.stop()


def test_nothing_reachable_lists_every_host(pki):
    ports = dead_port(), dead_port()
    client = PveClient(settings(hosts=["127.0.0.1:%d" % ports[0], "localhost:%d" % ports[1]], ca_path=pki["ca.pem"]), sleep=Sleeps())
    with pytest.raises(PveApiError) as err:
        client.connect()
    message = str(err.value)
    assert err.value.kind == "unreachable"
    assert "127.0.0.1:%d (connection refused)" % ports[0] in message
    assert "localhost:%d" % ports[1] in message
    assert "api_host" in message and "api_port" in message and "firewall" in message
    assert len(err.value.details["tried"]) == 2


def test_unverifiable_certificate_is_a_tls_error(stub, pki):
    client = client_for(stub, pki, ca_path=None)
    with pytest.raises(PveApiError) as err:
        client.connect()
    message = str(err.value)
    assert err.value.kind == "tls"
    assert "could not be verified" in message
    assert "ca_path" in message and "PROXMOX_CA_PATH" in message and "/etc/pve/pve-root-ca.pem" in message
    assert "validate_certs: false" in message and "last resort" in message
    assert client.calls_by_endpoint == {"GET /version": 1}           # no failover, no retry


def test_validate_certs_false_connects_without_the_ca(stub, pki):
    assert client_for(stub, pki, ca_path=None, validate_certs=False).connect().version_info == VERSION


def test_wrong_token_is_an_auth_error_without_the_secret(stub, pki):
    client = client_for(stub, pki, token_id="proxlb", token_secret="ffffffff-0000-4000-8000-000000000000")
    with pytest.raises(PveApiError) as err:
        client.connect()
    message = str(err.value)
    assert (err.value.kind, err.value.status) == ("auth", 401)
    assert "root@pam!proxlb" in message and "api_token_id" in message and "api_token_secret" in message
    assert "ffffffff-0000-4000-8000-000000000000" not in message
    assert client.calls == 1                                           # 401 is final: no retry, no failover


def test_wrong_password_is_an_auth_error_without_the_password(stub, pki):
    client = client_for(stub, pki, password="WrongPassw0rd!", hosts=[stub.host, stub.host.replace("127.0.0.1", "localhost")])
    with pytest.raises(PveApiError) as err:
        client.connect()
    message = str(err.value)
    assert err.value.kind == "auth"
    assert "root@pam" in message and "api_user" in message and "api_password" in message
    assert "WrongPassw0rd!" not in message
    assert client.calls == 1


def test_permission_denied_names_the_privilege(stub, pki):
    stub.routes["POST /nodes/pve1/qemu/100/migrate"] = [(403, "Permission check failed (/vms/100, VM.Migrate)")]
    client = client_for(stub, pki).connect()
    with pytest.raises(PveApiError) as err:
        client.post("/nodes/pve1/qemu/100/migrate", target="pve2")
    message = str(err.value)
    assert (err.value.kind, err.value.status) == ("permission", 403)
    assert "Permission check failed (/vms/100, VM.Migrate)" in message
    assert "lacks VM.Migrate on /vms/100" in message
    for privilege in ("Sys.Audit", "VM.Audit", "VM.Migrate", "Datastore.Audit", "Pool.Audit"):
        assert privilege in message
    assert err.value.details["privilege"] == "VM.Migrate"


def test_reads_retry_server_errors_with_backoff(stub, pki):
    stub.routes["GET /cluster/resources"] = [(503, "service unavailable"), (500, "cluster not ready - no quorum?"), (200, [])]
    sleeps = Sleeps()
    client = client_for(stub, pki, sleeps=sleeps).connect()
    assert client.get("/cluster/resources") == []
    assert sleeps == [0.2, 0.4]
    assert client.calls_by_endpoint["GET /cluster/resources"] == 3


def test_reads_give_up_after_the_retries(stub, pki):
    stub.routes["GET /cluster/options"] = [(500, "cannot read datacenter.cfg")]
    sleeps = Sleeps()
    client = client_for(stub, pki, sleeps=sleeps, retries=2).connect()
    with pytest.raises(PveApiError) as err:
        client.get("/cluster/options")
    assert (err.value.kind, err.value.status) == ("http", 500)
    assert "GET /cluster/options" in str(err.value) and "cannot read datacenter.cfg" in str(err.value)
    assert client.calls_by_endpoint["GET /cluster/options"] == 3 and sleeps == [0.2, 0.4]


def test_dead_node_behind_the_proxy_is_retried_once(stub, pki):
    stub.routes["GET /nodes/pve3/rrddata"] = [(595, "No route to host")]
    client = client_for(stub, pki).connect()
    with pytest.raises(PveApiError) as err:
        client.get("/nodes/pve3/rrddata")
    assert err.value.status == 595 and "No route to host" in str(err.value) and "down" in str(err.value)
    assert client.calls_by_endpoint["GET /nodes/{node}/rrddata"] == 2


def test_request_can_switch_retries_off(stub, pki):
    stub.routes["GET /cluster/ha/groups"] = [(500, "cannot index groups: ha groups have been migrated to rules")]
    client = client_for(stub, pki).connect()
    with pytest.raises(PveApiError) as err:
        client.request("GET", "/cluster/ha/groups", retries=0)
    assert "migrated to rules" in str(err.value)
    assert client.calls_by_endpoint["GET /cluster/ha/groups"] == 1


def test_writes_are_never_retried_after_an_answer(stub, pki):
    stub.routes["POST /nodes/pve1/qemu/100/migrate"] = [(500, "VM is locked (backup)")]
    client = client_for(stub, pki).connect()
    with pytest.raises(PveApiError) as err:
        client.post("/nodes/pve1/qemu/100/migrate", target="pve2")
    assert "VM is locked (backup)" in str(err.value) and "POST /nodes/pve1/qemu/100/migrate" in str(err.value)
    assert client.calls_by_endpoint["POST /nodes/{node}/qemu/{vmid}/migrate"] == 1


def test_writes_are_not_repeated_after_a_timeout(stub, pki):
    stub.routes["POST /nodes/pve1/qemu/100/migrate"] = [("sleep", 1.5, (200, "UPID"))]
    client = client_for(stub, pki, timeout=0.5).connect()
    with pytest.raises(PveApiError) as err:
        client.post("/nodes/pve1/qemu/100/migrate", target="pve2")
    assert err.value.kind == "timeout" and "may have reached PVE" in str(err.value)
    assert client.calls_by_endpoint["POST /nodes/{node}/qemu/{vmid}/migrate"] == 1


def test_read_timeouts_are_retried_then_reported(stub, pki):
    stub.routes["GET /cluster/resources"] = [("sleep", 1.0, (200, []))]
    sleeps = Sleeps()
    client = client_for(stub, pki, sleeps=sleeps, timeout=0.3, retries=1).connect()
    with pytest.raises(PveApiError) as err:
        client.get("/cluster/resources")
    assert err.value.kind == "timeout"
    assert "timed out after 0.3 s" in str(err.value) and "api_timeout" in str(err.value)
    assert client.calls_by_endpoint["GET /cluster/resources"] == 2 and sleeps == [0.2]


def test_parameter_errors_carry_pve_details(stub, pki):
    stub.routes["POST /nodes/pve1/qemu/100/migrate"] = [
        (400, {"message": "Parameter verification failed.", "errors": {"target": "property is missing and it is not optional"}})]
    client = client_for(stub, pki).connect()
    with pytest.raises(PveApiError) as err:
        client.post("/nodes/pve1/qemu/100/migrate")
    assert err.value.status == 400
    assert "Parameter verification failed. (target: property is missing and it is not optional)" in str(err.value)


def test_unknown_endpoint_is_reported_with_method_and_path(stub, pki):
    client = client_for(stub, pki).connect()
    with pytest.raises(PveApiError) as err:
        client.get("/nodes/pve1/foo")
    assert "501" in str(err.value) and "GET /nodes/pve1/foo" in str(err.value)
    assert client.calls_by_endpoint["GET /nodes/{node}/foo"] == 1


def test_missing_proxmoxer_is_its_own_error(monkeypatch):
    from ansible_collections.proxlb.balancer.plugins.module_utils.errors import MissingLibraryError
    monkeypatch.setattr(pve_api, "HAS_PROXMOXER", False)
    with pytest.raises(MissingLibraryError) as err:
        PveClient(settings()).connect()
    assert err.value.library == "proxmoxer"


# -- the client and the collector against the PVE API simulator (tools/pvesim) --------------

SIM_TOOLS = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "tools"))
SIM_TOKEN = dict(token_id="proxlb", token_secret="00000000-0000-4000-8000-000000000001")
SIM_AUDIT_TOKEN = dict(user="audit@pve", token_id="ro", token_secret="00000000-0000-4000-8000-000000000002")


@pytest.fixture(scope="module")
def simulator():
    if os.path.isdir(SIM_TOOLS) and SIM_TOOLS not in sys.path:
        sys.path.insert(0, SIM_TOOLS)
    pvesim = pytest.importorskip("pvesim")
    with pvesim.Simulator(scenario="demo", port=0, speed=50) as sim:
        yield sim


@pytest.fixture
def sim(simulator):
    simulator.reset("demo")
    simulator.reset_calls()
    return simulator


def sim_client(sim, **kwargs):
    kwargs.setdefault("hosts", ["127.0.0.1:%d" % sim.port])
    kwargs.setdefault("ca_path", sim.ca_path)
    if "password" not in kwargs and "token_id" not in kwargs:
        kwargs.update(SIM_TOKEN)
    return pve_api.open_client(ConnectionSettings(**kwargs), sleep=Sleeps())


def test_sim_token_and_password_login(sim):
    assert sim_client(sim).version_info["version"] == sim.cluster.version
    assert sim_client(sim, password="pvesim").version_info["version"] == sim.cluster.version
    assert sim_client(sim, token_id="root@pam!proxlb", token_secret=SIM_TOKEN["token_secret"]).host == "127.0.0.1:%d" % sim.port


def test_sim_failover_past_a_dead_host(sim):
    client = sim_client(sim, hosts=["127.0.0.1:%d" % dead_port(), "localhost:%d" % sim.port])
    assert client.host == "localhost:%d" % sim.port


def test_sim_wrong_token_and_wrong_password(sim):
    with pytest.raises(PveApiError) as err:
        sim_client(sim, token_id="proxlb", token_secret="00000000-0000-4000-8000-00000000dead")
    assert err.value.kind == "auth" and "00000000-0000-4000-8000-00000000dead" not in str(err.value)
    with pytest.raises(PveApiError) as err:
        sim_client(sim, password="nope-nope")
    assert err.value.kind == "auth" and "nope-nope" not in str(err.value)


def test_sim_audit_token_may_read_but_not_migrate(sim):
    from ansible_collections.proxlb.balancer.plugins.module_utils.collector import collect
    client = sim_client(sim, **SIM_AUDIT_TOKEN)
    snapshot = collect(client)
    guest = next(g for g in snapshot.guests.values() if g.running and g.type == "qemu")
    target = next(n for n in snapshot.nodes if n != guest.node)
    with pytest.raises(PveApiError) as err:
        client.post("/nodes/%s/qemu/%d/migrate" % (guest.node, guest.vmid), target=target, online=True)
    assert err.value.kind == "permission" and "VM.Migrate" in str(err.value)


@pytest.mark.parametrize("scenario", ["pve8", "pve9", "demo"])
def test_sim_collection_is_eight_requests(sim, scenario):
    from ansible_collections.proxlb.balancer.plugins.module_utils.collector import collect
    sim.reset(scenario)
    sim.reset_calls()
    client = sim_client(sim)
    snapshot = collect(client)
    assert snapshot.api_calls == client.calls == sim.calls()["total"] == 8
    assert snapshot.guests and snapshot.nodes
    if snapshot.version >= (9, 0, 0):
        assert "GET /cluster/ha/rules" in client.calls_by_endpoint
    else:
        assert "GET /cluster/ha/groups" in client.calls_by_endpoint and snapshot.ha_rules == []


def test_sim_call_count_is_the_same_for_3_and_64_nodes(sim):
    from ansible_collections.proxlb.balancer.plugins.module_utils.collector import collect
    counts = []
    for scenario in ("gen:3:15:1", "gen:64:2000:1"):
        sim.reset(scenario)
        sim.reset_calls()
        snapshot = collect(sim_client(sim))
        counts.append((snapshot.api_calls, sim.calls()["total"]))
    assert counts[0] == counts[1] == (8, 8)


def test_sim_backups_and_migrations_in_progress_reach_the_guard(sim):
    import datetime
    from ansible_collections.proxlb.balancer.plugins.module_utils import backup_guard
    from ansible_collections.proxlb.balancer.plugins.module_utils.collector import collect
    with open(os.path.join(SIM_TOOLS, "pvesim", "scenarios", "demo.json")) as handle:
        scenario = json.load(handle)
    scenario["backup_jobs"] = [{"id": "backup-web", "schedule": "mon..fri 21:00", "vmid": [100, 101, 102]},
                               {"id": "backup-pve3", "schedule": "sat 03:00", "all": 1, "node": "pve3"}]
    scenario["options"] = {"min_migration_s": 600}         # still migrating when the cluster is read
    sim.reset(scenario)
    sim.start_backup(112)                                   # db03 on pve3
    client = sim_client(sim)
    upid = client.post("/nodes/pve1/qemu/141/migrate", target="pve4", online=1)
    snapshot = collect(client)
    assert snapshot.api_calls == 8
    assert [t.type for t in snapshot.running_tasks] == ["qmigrate", "vzdump"]
    # Wednesday 20:45 in the simulator's (local) time zone: backup-web is due in 15 minutes
    now = datetime.datetime(2026, 3, 4, 20, 45).astimezone()
    report = backup_guard.evaluate(snapshot, now, backup_guard=30)
    held = {vmid: hold.reason for vmid, hold in report.held_guests.items()}
    assert held == {100: "backup:window", 101: "backup:window", 102: "backup:window",
                    112: "backup:running", 141: "migrating", 161: "backup:running"}   # 161 carries a backup lock in demo
    assert report.held_guests[141].upid == upid
    assert {node: hold.reason for node, hold in report.busy_nodes.items()} == {
        "pve1": "migrating", "pve2": "backup:running", "pve3": "backup:running"}
