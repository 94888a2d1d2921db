"""Outgoing webhooks (Standard Webhooks) to the URL a generation was submitted with.

A webhook URL must lead to the public internet: its host is resolved and every address
checked when the generation is submitted and again at every delivery, which connects to
an address that passed the check (so a name that changes in between cannot redirect it).
`WEBHOOK_ALLOW_PRIVATE_IPS` lifts the check for development and tests.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings


class UnsafeWebhookUrl(ValueError):
    """The URL may not receive webhooks; the message says why, for the customer."""


@dataclass(frozen=True)
class Target:
    """Where a delivery connects: the URL's parts and the checked addresses."""

    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...]


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def is_public(address: IPAddress) -> bool:
    """Publicly routable: not loopback, private, link-local (cloud metadata), shared
    (100.64/10), unspecified, reserved or multicast, also when wrapped in IPv6."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour
        if address.teredo:
            inner = address.teredo[1]
        if inner is not None:
            return is_public(inner)
    return address.is_global and not address.is_multicast


def resolve(host: str, port: int) -> list[str]:
    """Every address the host name resolves to (A and AAAA)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def check_url(url: str) -> Target:
    """Where `url` leads, if webhooks may go there; raises UnsafeWebhookUrl otherwise."""
    allow_private = settings.WEBHOOK_ALLOW_PRIVATE_IPS
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeWebhookUrl("This is not a valid URL.") from None
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes:
        raise UnsafeWebhookUrl("Webhook URLs must start with https://.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeWebhookUrl("Webhook URLs may not contain a user name or password.")
    host = parts.hostname
    if not host:
        raise UnsafeWebhookUrl("The URL has no host name.")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError):
        raise UnsafeWebhookUrl(f"The host name {host} does not resolve.") from None
    if not addresses:
        raise UnsafeWebhookUrl(f"The host name {host} does not resolve.")
    if not allow_private:
        for text in addresses:
            if not is_public(ipaddress.ip_address(text.split("%", 1)[0])):
                raise UnsafeWebhookUrl(
                    "Webhook URLs must lead to a public address; this one leads to a "
                    "private, loopback or otherwise internal network."
                )
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(parts.scheme, host, port, path, tuple(addresses))
