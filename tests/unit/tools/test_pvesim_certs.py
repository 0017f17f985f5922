"""Certificate generation and reuse."""

from __future__ import annotations

import ssl
import threading

from cryptography import x509

from pvesim.certs import ensure_certificates


def test_certificates_are_reused_and_consistent(tmp_path):
    first = ensure_certificates(str(tmp_path))
    with open(first["ca"], "rb") as handle:
        ca = handle.read()
    assert ensure_certificates(str(tmp_path)) == first
    with open(first["ca"], "rb") as handle:
        assert handle.read() == ca
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(first["cert"], first["key"])


def test_broken_set_is_regenerated(tmp_path):
    paths = ensure_certificates(str(tmp_path))
    with open(paths["cert"], "w", encoding="utf-8") as handle:
        handle.write("garbage")
    again = ensure_certificates(str(tmp_path))
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(again["cert"], again["key"])


def test_concurrent_generation_yields_one_matching_set(tmp_path):
    results = []

    def worker():
        results.append(ensure_certificates(str(tmp_path)))

    threads = [threading.Thread(target=worker) for _index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 6
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(results[0]["cert"], results[0]["key"])
    assert all(result == results[0] for result in results)
    with open(results[0]["ca"], "rb") as handle:
        ca_cert = x509.load_pem_x509_certificate(handle.read())
    with open(results[0]["cert"], "rb") as handle:
        server_cert = x509.load_pem_x509_certificate(handle.read())
    server_cert.verify_directly_issued_by(ca_cert)
