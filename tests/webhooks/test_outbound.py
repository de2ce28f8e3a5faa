"""One webhook POST against a real receiver on loopback (tests/webhooks/receiver.py)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from copying.webhooks.signing import SIGNATURE_HEADER, new_secret, signature
from tests.webhooks.receiver import (
    Answer,
    Drip,
    Hang,
    HugeBody,
    Redirect,
    running_receiver,
    unused_port,
)
from worker.outbound import Delivery, post

BODY = b'{"data":{"id":"XAyRWNUzyN","type":"order_copies","attributes":{"status":"completed"}}}'
# Generous: a CI machine under load is slow, but not seconds slow.
BOUND = 3.0


def signed_headers(secret: str, body: bytes = BODY) -> dict[str, str]:
    return {
        "Content-Type": "application/vnd.api+json",
        "X-CommerceLayer-Topic": "order_copies.complete",
        SIGNATURE_HEADER: signature(secret, body),
    }


def send(
    url: str,
    secret: str,
    *,
    timeout: float = 5.0,
    allow_private: bool = True,
    live: bool = False,
    **options: Any,
) -> Delivery:
    """The signed BODY to ``url``; private addresses allowed unless said otherwise."""
    return post(
        url,
        BODY,
        signed_headers(secret),
        timeout=timeout,
        allow_private=allow_private,
        live=live,
        **options,
    )


def pinned_to(address: str, host: str) -> Callable[[str, int], list[str]]:
    """A resolver that knows only ``host``, at ``address``; calls recorded on ``.calls``."""
    calls: list[str] = []

    def resolve(name: str, port: int) -> list[str]:
        calls.append(name)
        if name != host:
            raise OSError(f"{name} is unknown here")
        # A second question would get another loopback address, where nothing listens.
        return [address] if len(calls) == 1 else ["127.0.0.2"]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


def test_a_2xx_answer_is_a_delivery_with_the_signed_body_as_sent():
    secret = new_secret()
    with running_receiver(secret, behaviour=Answer(202, b"thanks")) as receiver:
        delivery = send(f"{receiver.url}/hooks/in?source=ordercopy", secret)

    assert delivery.status == 202
    assert delivery.delivered
    assert delivery.message == "202 Accepted: thanks"
    assert 0 <= delivery.elapsed < BOUND
    [request] = receiver.requests
    assert (request.method, request.path) == ("POST", "/hooks/in?source=ordercopy")
    assert request.body == BODY
    assert request.signature_matched
    assert request.headers["content-type"] == "application/vnd.api+json"
    assert request.headers["x-commercelayer-topic"] == "order_copies.complete"
    assert request.headers["host"] == receiver.url.removeprefix("http://")


def test_the_receiver_notices_a_signature_made_with_another_secret():
    with running_receiver(new_secret()) as receiver:
        delivery = send(receiver.url, new_secret())

    assert delivery.delivered  # the receiver answers 204 regardless
    [request] = receiver.requests
    assert not request.signature_matched


def test_a_500_is_recorded_with_its_body_and_is_not_a_delivery():
    secret = new_secret()
    with running_receiver(secret, behaviour=Answer(500, b"boom\n  at line 3")) as receiver:
        delivery = send(receiver.url, secret)

    assert delivery.status == 500
    assert not delivery.delivered
    assert delivery.message == "500 Internal Server Error: boom at line 3"
    assert len(receiver.requests) == 1


@pytest.mark.timeout(30)  # a regression would wait for the receiver, not fail
def test_a_receiver_that_hangs_past_the_timeout_is_timed_out():
    secret = new_secret()
    with running_receiver(secret, behaviour=Hang(seconds=30)) as receiver:
        started = time.monotonic()
        delivery = send(receiver.url, secret, timeout=0.5)
        took = time.monotonic() - started

    assert delivery.status is None
    assert not delivery.delivered
    assert delivery.message.startswith("timed out after 0.5 s (127.0.0.1 port ")
    assert took < BOUND
    assert len(receiver.requests) == 1  # it was sent, and the answer never came


@pytest.mark.timeout(30)  # a regression would wait for the receiver, not fail
def test_the_timeout_bounds_the_whole_exchange_not_each_read():
    """A receiver that sends a byte every 50 ms never trips a per-read timeout."""
    secret = new_secret()
    with running_receiver(secret, behaviour=Drip(interval=0.05)) as receiver:
        started = time.monotonic()
        delivery = send(receiver.url, secret, timeout=0.5)
        took = time.monotonic() - started

    assert delivery.status is None
    assert delivery.message.startswith("timed out after 0.5 s (127.0.0.1 port ")
    assert took < BOUND


def test_a_redirect_is_not_followed():
    secret = new_secret()
    with (
        running_receiver(secret) as elsewhere,
        running_receiver(secret, behaviour=Redirect(f"{elsewhere.url}/moved")) as receiver,
    ):
        delivery = send(receiver.url, secret)

        assert delivery.status == 307
        assert not delivery.delivered
        assert delivery.message == (
            f"307 Temporary Redirect: redirect to {elsewhere.url}/moved not followed"
        )
        assert len(receiver.requests) == 1
        assert elsewhere.requests == []
        assert elsewhere.connections == 0


def test_a_huge_answer_is_read_only_up_to_the_cap():
    secret = new_secret()
    size = 64 * 1024 * 1024  # far more than the kernel's socket buffers hold
    with running_receiver(secret, behaviour=HugeBody(size)) as receiver:
        delivery = send(receiver.url, secret, max_response_bytes=1000)
        receiver.wait_until_answered(1)

    assert delivery.status == 200
    assert delivery.message == "200 OK: " + "x" * 1000
    [sent] = receiver.huge_body_bytes_sent
    assert sent < size  # the client left without reading the rest


def test_loopback_is_refused_without_connecting_when_private_addresses_are_not_allowed():
    secret = new_secret()
    with running_receiver(secret) as receiver:
        refused = send(receiver.url, secret, allow_private=False)
        # A later, allowed request proves the receiver was listening: had the refused
        # one connected, it would have been accepted first.
        allowed = send(receiver.url, secret, allow_private=True)
        receiver.wait_until_answered(1)

    assert refused.status is None
    assert refused.message == (
        "not sent: callback URL address 127.0.0.1 is loopback; only public addresses may be called"
    )
    assert allowed.delivered
    assert receiver.connections == 1
    assert len(receiver.requests) == 1


def test_a_host_resolving_to_a_private_address_is_refused_at_call_time():
    resolve = pinned_to("10.20.30.40", "hooks.example.com")
    delivery = post(
        "http://hooks.example.com/in",
        BODY,
        {},
        timeout=1.0,
        allow_private=False,
        live=False,
        resolve=resolve,
    )

    assert delivery.status is None
    assert delivery.message.startswith(
        "not sent: callback URL host hooks.example.com resolves to 10.20.30.40 (private)"
    )
    assert resolve.calls == ["hooks.example.com"]  # type: ignore[attr-defined]


def test_live_mode_refuses_plain_http_without_connecting():
    secret = new_secret()
    with running_receiver(secret) as receiver:
        delivery = send(receiver.url, secret, live=True)
        send(receiver.url, secret)
        receiver.wait_until_answered(1)

    assert delivery.message == "not sent: callback URL must use https in live mode"
    assert receiver.connections == 1


def test_the_connection_goes_to_the_address_the_check_approved():
    """DNS is asked once; the Host header still names the host of the URL."""
    secret = new_secret()
    with running_receiver(secret) as receiver:
        port = receiver.url.rsplit(":", 1)[1]
        resolve = pinned_to("127.0.0.1", "receiver.test")
        delivery = send(f"http://receiver.test:{port}/in", secret, resolve=resolve)

    assert delivery.delivered, delivery.message
    assert resolve.calls == ["receiver.test"]  # type: ignore[attr-defined]
    [request] = receiver.requests
    assert request.headers["host"] == f"receiver.test:{port}"


def test_a_closed_port_is_a_failed_delivery_not_an_exception():
    port = unused_port()
    delivery = send(f"http://127.0.0.1:{port}/in", new_secret())

    assert delivery.status is None
    assert delivery.message == f"connection refused (127.0.0.1 port {port})"


def test_https_to_a_plain_http_receiver_is_a_tls_error():
    secret = new_secret()
    with running_receiver(secret) as receiver:
        delivery = send(receiver.url.replace("http://", "https://"), secret)

    assert delivery.status is None
    assert delivery.message.startswith("TLS error: ")
    assert receiver.requests == []


@pytest.mark.parametrize("name", ["Host", "content-length", "Connection", "Transfer-Encoding"])
def test_headers_that_post_sets_cannot_be_given(name: str):
    with pytest.raises(ValueError, match="sets these headers itself"):
        post(
            "http://127.0.0.1/",
            b"",
            {name: "x"},
            timeout=1.0,
            allow_private=True,
            live=False,
        )


# TLS: a certificate for receiver.test, made with the openssl command for this run.


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "1", "-subj", "/CN=receiver.test",
            "-addext", "subjectAltName=DNS:receiver.test",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


def trusting(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


def test_https_connects_to_the_checked_address_with_the_host_name_for_sni_and_certificate(
    certificate: tuple[Path, Path],
):
    cert, _ = certificate
    secret = new_secret()
    with running_receiver(secret, certificate=certificate) as receiver:
        port = receiver.url.rsplit(":", 1)[1]
        resolve = pinned_to("127.0.0.1", "receiver.test")
        delivery = send(
            f"https://receiver.test:{port}/in",
            secret,
            live=True,
            resolve=resolve,
            tls_context=trusting(cert),
        )

    assert delivery.delivered, delivery.message
    assert resolve.calls == ["receiver.test"]  # type: ignore[attr-defined]
    assert receiver.sni == ["receiver.test"]
    [request] = receiver.requests
    assert request.signature_matched
    assert request.headers["host"] == f"receiver.test:{port}"


def test_https_checks_the_certificate_against_the_url_host_not_the_address(
    certificate: tuple[Path, Path],
):
    cert, _ = certificate
    secret = new_secret()
    with running_receiver(secret, certificate=certificate) as receiver:
        port = receiver.url.rsplit(":", 1)[1]
        delivery = send(
            f"https://impostor.test:{port}/in",
            secret,
            resolve=pinned_to("127.0.0.1", "impostor.test"),
            tls_context=trusting(cert),
        )

    assert delivery.status is None
    assert delivery.message.startswith("TLS certificate rejected: ")
    assert "impostor.test" in delivery.message
    assert receiver.requests == []


def test_https_refuses_a_certificate_nobody_vouches_for(certificate: tuple[Path, Path]):
    secret = new_secret()
    with running_receiver(secret, certificate=certificate) as receiver:
        port = receiver.url.rsplit(":", 1)[1]
        delivery = send(
            f"https://receiver.test:{port}/in",
            secret,
            resolve=pinned_to("127.0.0.1", "receiver.test"),
        )

    assert delivery.status is None
    assert delivery.message.startswith("TLS certificate rejected: ")
    assert receiver.requests == []
