"""Which network addresses a model-chosen URL may reach: public ones, never cloud metadata.

The policy half of the SSRF guard (:mod:`medresearcher.tools.url_guard`): a pure function of
an address, with no DNS and no network, so it can be read and tested on its own. Loopback,
private, link-local, multicast, reserved, unspecified and shared (CGNAT) addresses are not
publicly routable; cloud instance-metadata endpoints hand out the machine's credentials and are
refused even where private addresses are allowed. The guard applies this policy to every
address a host resolves to, at check time and again when the socket connects.
"""

from __future__ import annotations

import ipaddress

__all__ = ["METADATA_ADDRESSES", "METADATA_HOSTS", "blocked_reason", "is_ip"]

#: Cloud instance-metadata endpoints: refused even when private addresses are allowed,
#: because they hand out the machine's credentials.
METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, ...
        ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
        ipaddress.ip_address("fd00:ec2::254"),  # AWS IMDS over IPv6
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    }
)
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})


def blocked_reason(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why ``address`` must not be fetched by default, or None for a public address.

    Examples
    --------
    >>> blocked_reason("127.0.0.1"), blocked_reason("10.0.0.1"), blocked_reason("8.8.8.8")
    ('loopback', 'private', None)
    """
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if ip in METADATA_ADDRESSES:
        return "cloud metadata endpoint"
    for name in ("loopback", "link_local", "multicast", "unspecified", "reserved", "private"):
        if getattr(ip, f"is_{name}"):
            return name.replace("_", "-")
    if not ip.is_global:
        return "not publicly routable"
    return None


def is_ip(host: str) -> bool:
    """Whether ``host`` is an IP address literal (no resolution needed)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
