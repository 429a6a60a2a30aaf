"""Where a webhook may go: the guard that keeps the hub from being a proxy into its own network.

A subscription URL is written by an API client, and the hub then POSTs to it from inside the
operator's network, so an unguarded URL is a server-side request forgery (SSRF) hole: the
broker's admin port, a cloud metadata service (169.254.169.254), a database on 10.x. The guard:

* allows only ``http`` and ``https``, with no credentials in the URL (the signature authenticates
  the hub; a password in a URL ends up in logs);
* resolves the host and refuses it if *any* address is loopback, private, link-local, multicast,
  reserved, unspecified or otherwise not globally routable, IPv4 and IPv6 alike, an IPv4 address
  inside IPv6 (``::ffff:127.0.0.1``, 6to4, Teredo) judged as the IPv4 address it carries;
* runs twice: when the subscription is created (a precise 422) and again at every delivery, where
  the sender connects to the very address it checked (:meth:`Target.pinned_url`), never to a
  second lookup of the name. That closes DNS rebinding: a name that answered a public address at
  creation and answers 127.0.0.1 now is refused now.

``allowed_networks`` (the ``webhook_allow_networks`` setting, empty by default) opens CIDRs on
purpose: the tests and the demo deliver to a receiver on loopback.

Resolution sits behind :class:`Resolver`; :class:`SystemResolver` asks the OS, and
:class:`StaticResolver` is the simulator (a fixed, changeable table) for the demo and the tests.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from cloud.services.errors import WebhookTargetError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SCHEMES = frozenset({"http", "https"})
DEFAULT_PORTS = {"http": 80, "https": 443}


class Resolver(Protocol):
    """Names to addresses. Blocking: callers on the event loop run it in a thread."""

    def resolve(self, *, host: str, port: int) -> list[IPAddress]:
        """Every address of ``host``; raises :class:`OSError` if it has none."""
        ...


class SystemResolver:
    """The operating system's resolver (``getaddrinfo``), TCP addresses only."""

    def resolve(self, *, host: str, port: int) -> list[IPAddress]:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        out: list[IPAddress] = []
        for _family, _type, _proto, _canon, sockaddr in infos:
            ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            if ip not in out:
                out.append(ip)
        return out


@dataclass
class StaticResolver:
    """A resolver with a fixed table, changeable at run time (``names[host] = [...]``): lets a
    test or the demo play a DNS server, rebinding included."""

    names: dict[str, list[str]] = field(default_factory=dict)

    def resolve(self, *, host: str, port: int) -> list[IPAddress]:
        found = self.names.get(host.lower())
        if not found:
            raise OSError(f"{host} is not in the static resolver's table")
        return [ipaddress.ip_address(a) for a in found]


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, Teredo client), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def address_problem(ip: IPAddress) -> str | None:
    """Why the hub must not connect to ``ip`` (ignoring any allow-list), or None if it is public."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            problem = address_problem(inner)
            return None if problem is None else f"{problem} (inside IPv6 {ip})"
    for test, what in (
        (ip.is_unspecified, "an unspecified address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (ip.is_reserved, "a reserved address"),
        (ip.is_private, "a private address"),
        (not ip.is_global, "not a globally routable address"),
    ):
        if test:
            return f"{ip} is {what}"
    return None


@dataclass(frozen=True, slots=True)
class Target:
    """A checked URL and the one address the sender is to connect to."""

    url: str
    scheme: str
    host: str
    port: int
    address: IPAddress

    def pinned_url(self) -> httpx.URL:
        """``url`` with its host replaced by :attr:`address`, so no second lookup can happen."""
        return httpx.URL(self.url).copy_with(host=str(self.address))

    @property
    def host_header(self) -> str:
        default = DEFAULT_PORTS[self.scheme] == self.port
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if default else f"{host}:{self.port}"


def _split(url: str) -> tuple[str, str, int]:
    """Scheme, host and port of ``url``; raises :class:`WebhookTargetError` for a bad shape."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as err:
        raise WebhookTargetError(url, f"not a valid URL ({err})") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise WebhookTargetError(url, f"scheme {scheme!r} is not allowed: use http or https")
    if parts.username is not None or parts.password is not None:
        raise WebhookTargetError(
            url, "credentials in the URL are not allowed: receivers check the signature instead"
        )
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise WebhookTargetError(url, "the URL names no host")
    return scheme, host, port if port is not None else DEFAULT_PORTS[scheme]


@dataclass(frozen=True, slots=True)
class TargetPolicy:
    """Checks webhook URLs (see the module text). ``allowed_networks`` are let through."""

    resolver: Resolver
    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def build(
        cls, *, resolver: Resolver, allowed_networks: Iterable[IPNetwork | str] = ()
    ) -> TargetPolicy:
        return cls(
            resolver=resolver,
            allowed_networks=tuple(ipaddress.ip_network(n) for n in allowed_networks),
        )

    def _allowed(self, ip: IPAddress) -> bool:
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and (inner := _embedded_ipv4(ip)) is not None:
            candidates.append(inner)
        return any(c in net for c in candidates for net in self.allowed_networks)

    def refusal(self, ip: IPAddress) -> str | None:
        """Why ``ip`` is refused under this policy, or None."""
        if self._allowed(ip):
            return None
        return address_problem(ip)

    def check(self, url: str) -> Target:
        """Resolve ``url``'s host once and check every address. Blocking (it may ask DNS).

        Raises :class:`WebhookTargetError` with the reason; the :class:`Target` holds the
        address to connect to."""
        scheme, host, port = _split(url)
        try:
            addresses: Sequence[IPAddress] = [ipaddress.ip_address(host.strip("[]"))]
        except ValueError:
            try:
                addresses = self.resolver.resolve(host=host, port=port)
            except (OSError, UnicodeError) as err:
                raise WebhookTargetError(url, f"host {host!r} does not resolve ({err})") from None
        if not addresses:
            raise WebhookTargetError(url, f"host {host!r} has no address")
        for ip in addresses:
            problem = self.refusal(ip)
            if problem is not None:
                shown = "" if str(ip) == host.strip("[]") else f"{host!r} resolves to "
                raise WebhookTargetError(
                    url, f"{shown}{problem}; the hub does not call into private networks"
                )
        return Target(url=url, scheme=scheme, host=host, port=port, address=addresses[0])


def policy_for(
    *, allowed_networks: Iterable[IPNetwork | str], resolver: Resolver | None = None
) -> TargetPolicy:
    """The policy of a hub's settings, with the system resolver unless one is given."""
    return TargetPolicy.build(
        resolver=resolver or SystemResolver(), allowed_networks=allowed_networks
    )
