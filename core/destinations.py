"""Is a webhook URL a safe place to send requests to? (Server-side request forgery guard.)

A webhook makes this server send requests to an address a client chose. Left unchecked, a
client could aim it at the cloud metadata service (169.254.169.254), at a database on the
private network or at the server itself. So a destination must be http(s), and EVERY
address its host resolves to must be a public one, unless an allow-list says otherwise.

The check runs when a subscription is made and again before each delivery, and a delivery
connects to an address that was checked (not to a fresh lookup): a host whose DNS answer
changes between the check and the connection (DNS rebinding) cannot slip through.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[IPAddress]]

ALLOWED_SCHEMES = ("http", "https")
MAX_URL_LENGTH = 2048
# NAT64 (RFC 6052) embeds an IPv4 address in IPv6: 64:ff9b::a9fe:a9fe is 169.254.169.254.
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")


class UnsafeDestinationError(ValueError):
    """The URL is refused; ``code`` says why in a word, the message in a sentence."""

    def __init__(self, message: str, code: str = "destination_refused") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class AllowList:
    """Hosts and networks that may be reached although they are not public."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = field(default_factory=tuple)

    @classmethod
    def parse(cls, text: str) -> AllowList:
        """From a comma-separated setting: host names, addresses and CIDRs."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in text.split(","):
            entry = raw.strip().lower()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry)
        return cls(frozenset(hosts), tuple(networks))

    def allows_host(self, host: str) -> bool:
        return host.lower() in self.hosts

    def allows_address(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)


@dataclass(frozen=True)
class Destination:
    """A checked URL and the addresses a request to it may connect to."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[IPAddress, ...]


def system_resolver(host: str, port: int) -> list[IPAddress]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    # The scope id of a link-local IPv6 answer ("fe80::1%eth0") is not part of the address.
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def is_public(address: IPAddress) -> bool:
    """Globally routable unicast; not private, loopback, link-local (the metadata service),
    shared (100.64/10), multicast, reserved or unspecified, also when wrapped in IPv6."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_public(address.ipv4_mapped)
        if address in NAT64_PREFIX:
            return is_public(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return address.is_global and not (
        address.is_multicast or address.is_reserved or address.is_unspecified
    )


def parse_url(url: str) -> tuple[str, str, int]:
    """Scheme, host and port of an acceptable URL; UnsafeDestinationError says what is wrong."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeDestinationError(
            f"the URL is longer than {MAX_URL_LENGTH} characters", "invalid_url"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
        httpx.URL(url)  # what will send it must be able to parse it too
    except (ValueError, httpx.InvalidURL) as exc:
        raise UnsafeDestinationError(f"the URL is not valid: {exc}", "invalid_url") from exc
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise UnsafeDestinationError(
            f"only http and https URLs are accepted, not {scheme or 'a URL without a scheme'}",
            "invalid_url",
        )
    if not parts.hostname:
        raise UnsafeDestinationError("the URL has no host", "invalid_url")
    if parts.username is not None or parts.password is not None:
        raise UnsafeDestinationError("the URL must not carry credentials", "invalid_url")
    return scheme, parts.hostname, port or (443 if scheme == "https" else 80)


def check_destination(
    url: str, allow: AllowList, resolver: Resolver = system_resolver
) -> Destination:
    """The URL's destination if it is safe to send to; UnsafeDestinationError otherwise.

    Refused before any connection is made: a literal address is checked as it is, a host name
    by every address it resolves to (one private answer among public ones is enough)."""
    scheme, host, port = parse_url(url)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses: Sequence[IPAddress] = [literal]
    else:
        try:
            addresses = resolver(host, port)
        except (OSError, UnicodeError) as exc:
            raise UnsafeDestinationError(
                f"the host {host} does not resolve ({exc})", "unresolvable_host"
            ) from exc
        if not addresses:
            raise UnsafeDestinationError(f"the host {host} does not resolve", "unresolvable_host")
    if not allow.allows_host(host):
        for address in addresses:
            if not is_public(address) and not allow.allows_address(address):
                raise UnsafeDestinationError(
                    f"{host} resolves to {address}, a private, loopback, link-local or "
                    "reserved address; webhooks are only sent to public addresses "
                    "(see WEBHOOK_ALLOWED_HOSTS)"
                    if literal is None
                    else f"{address} is a private, loopback, link-local or reserved address; "
                    "webhooks are only sent to public addresses (see WEBHOOK_ALLOWED_HOSTS)"
                )
    # Keep the resolver's order but drop repeats (one per socket type and family otherwise).
    unique = tuple(dict.fromkeys(addresses))
    return Destination(url=url, scheme=scheme, host=host, port=port, addresses=unique)
