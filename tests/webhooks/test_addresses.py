"""Which callback URLs may be called: shape, scheme, and where the host resolves."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

import pytest

from copying.webhooks.addresses import (
    MAX_URL_LENGTH,
    CallbackUrlError,
    check_callback_url,
    problem_with_callback_url,
)

PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"


def resolver(*addresses: str) -> Callable[[str, int], list[str]]:
    """Every host resolves to ``addresses``; the calls are recorded on ``.calls``."""
    calls: list[tuple[str, int]] = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append((host, port))
        return list(addresses)

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


def no_dns(host: str, port: int) -> list[str]:
    raise AssertionError(f"resolved {host}: an address literal needs no DNS")


def unresolvable(host: str, port: int) -> list[str]:
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def problem(url: str, *addresses: str, live: bool = False, allow_private: bool = False):
    return problem_with_callback_url(
        url, live=live, allow_private=allow_private, resolve=resolver(*addresses)
    )


@pytest.mark.parametrize("addresses", [[PUBLIC_V4], [PUBLIC_V6], [PUBLIC_V4, PUBLIC_V6]])
def test_a_host_with_only_public_addresses_may_be_called(addresses: list[str]):
    assert problem("https://hooks.example.com/in", *addresses, live=True) is None


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "(loopback)"),
        ("127.45.6.7", "(loopback)"),
        ("::1", "(loopback)"),
        ("10.1.2.3", "(private)"),
        ("172.16.0.9", "(private)"),
        ("192.168.1.20", "(private)"),
        ("fd12:3456::1", "(private)"),
        ("169.254.10.10", "(link-local)"),
        ("169.254.169.254", "(link-local (cloud metadata))"),
        ("fe80::1", "(link-local)"),
        ("0.0.0.0", "(unspecified)"),
        ("::", "(unspecified)"),
        ("224.0.0.251", "(multicast)"),
        ("ff02::1", "(multicast)"),
        ("240.0.0.1", "(reserved)"),
        ("100.64.0.1", "(carrier-grade NAT)"),
        ("100.127.255.254", "(carrier-grade NAT)"),
        ("::ffff:127.0.0.1", "(IPv4-mapped loopback)"),
        ("::ffff:10.0.0.1", "(IPv4-mapped private)"),
        ("::ffff:169.254.169.254", "(IPv4-mapped link-local (cloud metadata))"),
        ("2002:a00:1::", "(6to4 private)"),
        ("64:ff9b::7f00:1", "(NAT64 loopback)"),
    ],
)
def test_a_host_resolving_to_a_non_public_address_is_refused(address: str, kind: str):
    found = problem("http://hooks.example.com/in", address)
    written = ipaddress.ip_address(address)  # the canonical form, e.g. ::ffff:7f00:1 on 3.11
    assert found == (
        f"callback URL host hooks.example.com resolves to {written} {kind};"
        " only public addresses may be called"
    )


def test_an_ipv4_mapped_public_address_may_be_called():
    assert problem("http://hooks.example.com/", f"::ffff:{PUBLIC_V4}") is None


def test_one_private_address_among_public_ones_is_enough_to_refuse():
    found = problem("https://hooks.example.com/", PUBLIC_V4, PUBLIC_V6, "10.0.0.7")
    assert found is not None
    assert "10.0.0.7 (private)" in found


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://127.0.0.1:8000/hook", "127.0.0.1"),
        ("http://[::1]:8000/hook", "::1"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("http://[::ffff:7f00:1]/", "::ffff:7f00:1"),
    ],
)
def test_an_address_literal_is_judged_without_dns(url: str, address: str):
    found = problem_with_callback_url(url, live=False, allow_private=False, resolve=no_dns)
    assert found is not None
    assert found.startswith(f"callback URL address {address} is ")


def test_a_public_address_literal_may_be_called():
    assert (
        problem_with_callback_url(
            f"https://{PUBLIC_V4}/in", live=True, allow_private=False, resolve=no_dns
        )
        is None
    )


def test_a_host_that_does_not_resolve_is_refused():
    found = problem_with_callback_url(
        "https://nowhere.example.com/", live=True, allow_private=False, resolve=unresolvable
    )
    assert found == (
        "callback URL host nowhere.example.com does not resolve (Name or service not known)"
    )


def test_a_host_that_resolves_to_nothing_is_refused():
    found = problem("https://nowhere.example.com/", live=True)
    assert found == "callback URL host nowhere.example.com does not resolve to IP addresses"


def test_the_resolver_is_asked_for_the_host_and_the_port():
    resolve = resolver(PUBLIC_V4)
    check_callback_url(
        "https://Hooks.Example.com:8443/in", live=True, allow_private=False, resolve=resolve
    )
    assert resolve.calls == [("hooks.example.com", 8443)]  # type: ignore[attr-defined]


def test_live_mode_requires_https():
    assert problem("http://hooks.example.com/", PUBLIC_V4, live=True) == (
        "callback URL must use https in live mode"
    )
    assert problem("http://hooks.example.com/", PUBLIC_V4, live=False) is None


def test_allow_private_lets_loopback_through_without_resolving():
    assert (
        problem_with_callback_url(
            "http://localhost:8000/hook", live=False, allow_private=True, resolve=no_dns
        )
        is None
    )
    assert problem("http://receiver.test:8000/hook", "127.0.0.1", allow_private=True) is None


def test_allow_private_does_not_lift_the_https_rule_of_live_mode():
    assert problem("http://127.0.0.1/", live=True, allow_private=True) == (
        "callback URL must use https in live mode"
    )


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://hooks.example.com/", "must be an absolute http:// or https:// URL"),
        ("/relative/hook", "must be an absolute http:// or https:// URL"),
        ("hooks.example.com/in", "must be an absolute http:// or https:// URL"),
        ("http://", "has no host"),
        ("http:///path", "has no host"),
        ("http://user:pass@hooks.example.com/", "must not contain a user name or password"),
        ("http://user@hooks.example.com/", "must not contain a user name or password"),
        ("http://hooks.example.com:99999/", "is not a valid URL"),
        ("http://hooks.example.com:0/", "has port 0"),
        ("http://[::1/", "is not a valid URL"),
        ("http://hooks.example.com/a b", "without spaces or control characters"),
        ("http://hooks.example.com/\r\nX-Injected: 1", "without spaces or control characters"),
        ("http://bücher.example/", "must be ASCII"),
    ],
)
def test_a_malformed_url_is_refused(url: str, reason: str):
    found = problem(url, PUBLIC_V4, allow_private=True)
    assert found is not None
    assert reason in found


def test_url_length_is_capped():
    base = "https://hooks.example.com/"
    at_limit = base + "a" * (MAX_URL_LENGTH - len(base))
    assert problem(at_limit, PUBLIC_V4, live=True) is None
    assert problem(at_limit + "a", PUBLIC_V4, live=True) == (
        f"callback URL is longer than {MAX_URL_LENGTH} characters"
    )


def test_check_returns_what_a_connection_needs():
    target = check_callback_url(
        "HTTPS://Hooks.Example.com/in/bound?x=1&y=2#fragment",
        live=True,
        allow_private=False,
        resolve=resolver(PUBLIC_V4, PUBLIC_V6),
    )
    assert (target.scheme, target.host, target.port) == ("https", "hooks.example.com", 443)
    assert target.request_target == "/in/bound?x=1&y=2"
    assert target.addresses == (PUBLIC_V4, PUBLIC_V6)


def test_check_defaults_the_port_and_path():
    target = check_callback_url(
        "http://hooks.example.com", live=False, allow_private=False, resolve=resolver(PUBLIC_V4)
    )
    assert (target.port, target.request_target) == (80, "/")


def test_check_raises_with_the_same_reason():
    with pytest.raises(CallbackUrlError, match=r"resolves to 10\.0\.0\.1 \(private\)"):
        check_callback_url(
            "http://hooks.example.com/",
            live=False,
            allow_private=False,
            resolve=resolver("10.0.0.1"),
        )


def test_check_resolves_even_when_private_addresses_are_allowed():
    """A connection needs an address: a host that does not resolve cannot be called."""
    target = check_callback_url(
        "http://receiver.test:8000/", live=False, allow_private=True, resolve=resolver("127.0.0.1")
    )
    assert target.addresses == ("127.0.0.1",)
    with pytest.raises(CallbackUrlError, match="does not resolve"):
        check_callback_url(
            "http://receiver.test:8000/", live=False, allow_private=True, resolve=unresolvable
        )


def test_the_default_resolver_asks_the_system():
    """``localhost`` is loopback in every hosts file; ``.invalid`` never resolves (RFC 6761)."""
    found = problem_with_callback_url("http://localhost:8000/", live=False, allow_private=False)
    assert found is not None
    assert "(loopback)" in found
    found = problem_with_callback_url("http://nowhere.invalid/", live=False, allow_private=False)
    assert found is not None
    assert "does not resolve" in found
