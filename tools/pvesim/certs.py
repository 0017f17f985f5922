"""Self-signed CA and loopback server certificate for the simulator.

Clients verify the server against ``ca.pem`` (``verify_ssl=<ca_path>`` in proxmoxer,
``ca_path`` in the collection), so TLS verification stays switched on in tests exactly as
it would be against a real cluster.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"
CERT_FILE = "server.pem"
KEY_FILE = "server-key.pem"
LOCK_FILE = ".lock"

SERVER_DNS_NAMES = ("localhost",)
SERVER_IPS = ("127.0.0.1", "::1")

# Regenerate well before expiry so a long test session never hits an expired certificate.
MIN_REMAINING = datetime.timedelta(days=7)
VALIDITY = datetime.timedelta(days=825)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _not_after(cert: x509.Certificate) -> datetime.datetime:
    # not_valid_after_utc only exists in newer cryptography releases.
    value = getattr(cert, "not_valid_after_utc", None)
    if value is None:
        value = cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)
    return value


def _write(path: str, data: bytes, private: bool = False) -> None:
    tmp = path + ".tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(tmp, flags, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pvesim"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _generate(cert_dir: str) -> None:
    now = _now()
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("pvesim CA")
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    alt_names = [x509.DNSName(name) for name in SERVER_DNS_NAMES]
    alt_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in SERVER_IPS]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                     data_encipherment=False, key_agreement=True, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    pem = serialization.Encoding.PEM
    pkcs8 = serialization.PrivateFormat.PKCS8
    plain = serialization.NoEncryption()
    _write(os.path.join(cert_dir, CA_KEY_FILE), ca_key.private_bytes(pem, pkcs8, plain), private=True)
    _write(os.path.join(cert_dir, KEY_FILE), key.private_bytes(pem, pkcs8, plain), private=True)
    _write(os.path.join(cert_dir, CERT_FILE), cert.public_bytes(pem))
    # The CA goes last: its presence is what marks a complete set.
    _write(os.path.join(cert_dir, CA_FILE), ca_cert.public_bytes(pem))


def _existing_set_is_usable(cert_dir: str) -> bool:
    paths = [os.path.join(cert_dir, name) for name in (CA_FILE, CA_KEY_FILE, CERT_FILE, KEY_FILE)]
    if not all(os.path.isfile(path) for path in paths):
        return False
    try:
        with open(paths[0], "rb") as handle:
            ca_cert = x509.load_pem_x509_certificate(handle.read())
        with open(paths[2], "rb") as handle:
            cert = x509.load_pem_x509_certificate(handle.read())
        with open(paths[3], "rb") as handle:
            key = serialization.load_pem_private_key(handle.read(), password=None)
        if cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != \
                key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo):
            return False
        cert.verify_directly_issued_by(ca_cert)
        deadline = _now() + MIN_REMAINING
        if _not_after(cert) < deadline or _not_after(ca_cert) < deadline:
            return False
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        ips = {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
        dns = set(sans.get_values_for_type(x509.DNSName))
        return set(SERVER_IPS) <= ips and set(SERVER_DNS_NAMES) <= dns
    except (ValueError, TypeError, x509.ExtensionNotFound, OSError):
        return False
    except Exception:  # pylint: disable=broad-except
        # verify_directly_issued_by raises InvalidSignature; any unreadable set is simply regenerated.
        return False


@contextlib.contextmanager
def _dir_lock(cert_dir: str):
    """Serialise check-and-generate between simulators started at once on a shared directory."""
    if fcntl is None:
        yield
        return
    with open(os.path.join(cert_dir, LOCK_FILE), "a", encoding="utf-8") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def ensure_certificates(cert_dir: str) -> dict:
    """Create (or reuse) the CA and server certificate in ``cert_dir``.

    Returns the absolute paths as ``{"ca": ..., "cert": ..., "key": ...}``.
    """
    cert_dir = os.path.abspath(cert_dir)
    os.makedirs(cert_dir, exist_ok=True)
    with _dir_lock(cert_dir):
        if not _existing_set_is_usable(cert_dir):
            _generate(cert_dir)
    return {
        "ca": os.path.join(cert_dir, CA_FILE),
        "cert": os.path.join(cert_dir, CERT_FILE),
        "key": os.path.join(cert_dir, KEY_FILE),
    }
