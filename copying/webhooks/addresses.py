"""Which callback URLs may be called: the outbound half of a webhook's safety.

A webhook makes our worker send requests to a URL a customer chose. Left unchecked,
that URL could point the worker at itself, at the private network it runs in, or at a
cloud metadata service (``169.254.169.254``). So a callback URL must be an absolute
``http(s)`` URL (``https`` in live mode) without credentials, and, unless private
addresses are allowed (tests and the embedded default, setting
``webhooks_allow_private``), every address its host resolves to must be public.

The check runs when a webhook is saved and again before each delivery, because DNS
answers can change. :func:`check_callback_url` returns the addresses it checked so the
caller can connect to one of them and not ask DNS a second time.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048
DEFAULT_PORTS = {"http": 80, "https": 443}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

Resolver = Callable[[str, int], Iterable[str]]
"""``(host, port) -> IP addresses as text``; raises ``OSError`` when the host does not resolve."""

_CARRIER_GRADE_NAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_METADATA = {ipaddress.IPv4Address("169.254.169.254"), ipaddress.IPv6Address("fd00:ec2::254")}


class _Url(NamedTuple):
    scheme: str
    host: str
    port: int
    request_target: str


class CallbackUrlError(ValueError):
    """A callback URL that may not be called; the message says why, for a person."""


@dataclass(frozen=True)
class CallbackTarget:
    """A callback URL that passed the check, and the addresses its host had then."""

    scheme: str
    host: str
    """As written in the URL, lower case, without the brackets of an IPv6 literal."""
    port: int
    request_target: str
    """Path and query, as sent on the request line."""
    addresses: tuple[str, ...]
    """What the host resolved to, in the resolver's order (all public unless private
    addresses were allowed); connect only to these."""


def resolve_host(host: str, port: int) -> list[str]:
    """The IPv4 and IPv6 addresses of ``host`` (``socket.getaddrinfo``), without repeats."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def problem_with_callback_url(
    url: str, *, live: bool, allow_private: bool, resolve: Resolver = resolve_host
) -> str | None:
    """Why ``url`` may not be called, or None when it may.

    Resolves the host (through ``resolve``) only when private addresses are not
    allowed: with ``allow_private`` a URL whose host does not resolve yet is accepted.
    """
    try:
        parsed = _parse(url, live=live)
        if not allow_private:
            _check_public(parsed.host, _resolve(parsed.host, parsed.port, resolve))
    except CallbackUrlError as error:
        return str(error)
    return None


def check_callback_url(
    url: str, *, live: bool, allow_private: bool, resolve: Resolver = resolve_host
) -> CallbackTarget:
    """The same rules as :func:`problem_with_callback_url`, for a caller about to connect.

    Always resolves the host (a connection needs an address); raises
    :class:`CallbackUrlError` when the URL may not be called.
    """
    parsed = _parse(url, live=live)
    addresses = _resolve(parsed.host, parsed.port, resolve)
    if not allow_private:
        _check_public(parsed.host, addresses)
    return CallbackTarget(*parsed, addresses=tuple(str(a) for a in addresses))


def _parse(url: str, *, live: bool) -> _Url:
    if len(url) > MAX_URL_LENGTH:
        raise CallbackUrlError(f"callback URL is longer than {MAX_URL_LENGTH} characters")
    if not url.isascii() or any(c <= " " or c == "\x7f" for c in url):
        raise CallbackUrlError(
            "callback URL must be ASCII without spaces or control characters"
            " (write international domain names in punycode)"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise CallbackUrlError(f"callback URL is not a valid URL ({error})") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise CallbackUrlError("callback URL must be an absolute http:// or https:// URL")
    if live and scheme != "https":
        raise CallbackUrlError("callback URL must use https in live mode")
    if "@" in parts.netloc:
        raise CallbackUrlError("callback URL must not contain a user name or password")
    host = parts.hostname
    if not host:
        raise CallbackUrlError("callback URL has no host")
    if port == 0:
        raise CallbackUrlError("callback URL has port 0")
    request_target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _Url(scheme, host, port or DEFAULT_PORTS[scheme], request_target)


def _resolve(host: str, port: int, resolve: Resolver) -> list[IPAddress]:
    literal = _as_address(host)
    if literal is not None:
        return [literal]
    try:
        answers = list(resolve(host, port))
    except (OSError, UnicodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise CallbackUrlError(f"callback URL host {host} does not resolve ({reason})") from None
    addresses = [a for a in (_as_address(answer) for answer in answers) if a is not None]
    if not addresses or len(addresses) != len(answers):
        raise CallbackUrlError(f"callback URL host {host} does not resolve to IP addresses")
    return addresses


def _as_address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _check_public(host: str, addresses: Iterable[IPAddress]) -> None:
    for address in addresses:
        kind = _not_public(address)
        if kind is None:
            continue
        if _as_address(host) is not None:
            raise CallbackUrlError(
                f"callback URL address {host} is {kind}; only public addresses may be called"
            )
        raise CallbackUrlError(
            f"callback URL host {host} resolves to {address} ({kind});"
            " only public addresses may be called"
        )


def _not_public(address: IPAddress) -> str | None:
    """What makes ``address`` unfit to call (``"loopback"``, ...), or None when it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        # An IPv6 address that carries an IPv4 one reaches that IPv4 address: judge it.
        for label, embedded in (
            ("IPv4-mapped", address.ipv4_mapped),
            ("6to4", address.sixtofour),
            ("NAT64", _nat64_embedded(address)),
        ):
            if embedded is not None:
                kind = _not_public(embedded)
                return None if kind is None else f"{label} {kind}"
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address in _METADATA:
        return "link-local (cloud metadata)"
    if address.is_link_local:
        return "link-local"
    if isinstance(address, ipaddress.IPv4Address) and address in _CARRIER_GRADE_NAT:
        return "carrier-grade NAT"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "site-local"
    if address.is_reserved:
        return "reserved"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "not globally routable"
    return None


def _nat64_embedded(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None
