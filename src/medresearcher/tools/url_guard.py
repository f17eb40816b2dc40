"""Fetching a URL that a model chose, without letting it reach the host's own network (SSRF).

The agent's ``document_read`` tool (paper §2.2) fetches whatever URL the model writes, and a
model can be steered by the pages it reads. So every fetch goes through :class:`UrlGuard`:

- only ``http`` and ``https``;
- the host is resolved and every address it resolves to must be publicly routable: loopback,
  private, link-local, multicast, reserved, unspecified and shared (CGNAT) addresses are
  refused, and so are cloud metadata endpoints (``169.254.169.254``, ``fd00:ec2::254``,
  ``metadata.google.internal``) even when private addresses are allowed;
- the check is made again **when the socket connects**, to the very address it connects to
  (a custom network backend pins the connection to the checked address), so a DNS answer
  that changes between check and connect (DNS rebinding) cannot slip through;
- redirects are followed by hand, at most 5, each hop checked again;
- the body is streamed and cut at ``max_bytes``; the whole fetch has one deadline.

Operators who do want an intranet host read set ``allow_private`` (every private address) or
name hosts in ``allowed_hosts`` (``"docs.internal"`` or ``"10.1.2.3:8080"``): the exact
``host[:port]`` a URL names, nothing it redirects to.

Which addresses are blocked is decided in :mod:`medresearcher.tools.address_policy`
(``blocked_reason`` and the metadata endpoints are re-exported here); this module resolves,
connects and fetches under that policy.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpcore2
import httpx2

from medresearcher import __version__
from medresearcher.errors import MedResearcherError
from medresearcher.secrets import redact_url
from medresearcher.stage_settings import ToolSettings
from medresearcher.tools.address_policy import (
    METADATA_ADDRESSES,
    METADATA_HOSTS,
    blocked_reason,
    is_ip,
)

__all__ = [
    "METADATA_ADDRESSES",
    "METADATA_HOSTS",
    "FetchError",
    "FetchedPage",
    "Resolver",
    "UrlGuard",
    "UrlRefused",
    "blocked_reason",
]

log = logging.getLogger(__name__)

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
USER_AGENT = f"medresearcher/{__version__} (document_read; +https://github.com/medresearcher)"
ACCEPT = "text/html,application/xhtml+xml,application/pdf,text/plain;q=0.9,*/*;q=0.5"

#: ``(host, port) -> addresses``; the default asks the system resolver (async getaddrinfo).
Resolver = Callable[[str, int], Awaitable[list[str]]]


class UrlRefused(MedResearcherError):
    """The guard will not fetch this URL; ``reason`` says why in a few words."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = redact_url(url)
        self.reason = reason
        super().__init__(f"refused to fetch {self.url}: {reason}")


class FetchError(MedResearcherError):
    """The URL was allowed but could not be fetched (DNS, connection, HTTP status, time)."""


@dataclass(frozen=True)
class FetchedPage:
    """A fetched body, possibly cut at the size cap, with where it finally came from."""

    url: str
    requested_url: str
    status: int
    content_type: str
    content: bytes
    headers: dict[str, str] = field(default_factory=dict)
    truncated: bool = False
    redirects: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """The body decoded with the charset the server named (else detected)."""
        return httpx2.Response(200, content=self.content, headers=self.headers).text


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, by the system resolver, without blocking the loop."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise FetchError(f"cannot resolve host {host!r}: {exc.strerror or exc}") from None
    addresses: list[str] = []
    for *_, sockaddr in infos:
        address = str(sockaddr[0]).split("%", 1)[0]  # drop an IPv6 zone id
        if address not in addresses:
            addresses.append(address)
    return addresses


class UrlGuard:
    """Checks and fetches URLs for a tool; use as ``async with UrlGuard(...) as guard``.

    Parameters
    ----------
    allow_private:
        Fetch loopback, private and link-local addresses too (metadata endpoints never).
    allowed_hosts:
        ``host`` or ``host:port`` entries allowed whatever they resolve to (an intranet
        documentation server; the fake servers of the tests). Matched against each hop's
        own host, so a redirect from an allowed host to another address is checked anew.
    resolver:
        ``(host, port) -> addresses``; the system resolver by default.
    max_redirects, max_bytes, timeout_s:
        Redirect hops followed, body bytes kept, and the deadline of one whole fetch.
    """

    def __init__(
        self,
        *,
        allow_private: bool = False,
        allowed_hosts: Collection[str] = (),
        resolver: Resolver | None = None,
        max_redirects: int = 5,
        max_bytes: int = 5_000_000,
        timeout_s: float = 20.0,
        user_agent: str = USER_AGENT,
    ) -> None:
        self.allow_private = allow_private
        self.allowed_hosts = frozenset(h.lower() for h in allowed_hosts)
        self.resolver: Resolver = resolver or system_resolver
        self.max_redirects = max_redirects
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.user_agent = user_agent
        self._client: httpx2.AsyncClient | None = None

    @classmethod
    def from_settings(cls, settings: ToolSettings, **kwargs: Any) -> UrlGuard:
        """A guard with ``[tools]`` limits: allow_private_addresses, size and time caps."""
        options: dict[str, Any] = {
            "allow_private": settings.allow_private_addresses,
            "max_bytes": settings.max_download_bytes,
            "timeout_s": settings.fetch_timeout_s,
        }
        options.update(kwargs)
        return cls(**options)

    async def __aenter__(self) -> UrlGuard:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # ------------------------------------------------------------------------- checks
    def _host_allowed(self, host: str, port: int) -> bool:
        host = host.lower()
        return host in self.allowed_hosts or f"{host}:{port}" in self.allowed_hosts

    async def check_address(self, host: str, port: int, *, url: str | None = None) -> list[str]:
        """The addresses of ``host`` that may be connected to; refuses if any is blocked.

        Every address must pass, not just one: a name that resolves to a public and a
        private address could otherwise be connected to the private one.
        """
        shown = url or f"{host}:{port}"
        bare = host.strip("[]").lower().rstrip(".")
        if bare in METADATA_HOSTS:
            raise UrlRefused(shown, f"{bare} is a cloud metadata endpoint")
        addresses = [bare] if is_ip(bare) else await self.resolver(bare, port)
        if not addresses:
            raise FetchError(f"host {bare!r} resolves to no address")
        allowed = self._host_allowed(bare, port)
        for address in addresses:
            reason = blocked_reason(address)
            if reason is None:
                continue
            if reason == "cloud metadata endpoint":
                raise UrlRefused(shown, f"{bare} resolves to {address}, a {reason}")
            if not (self.allow_private or allowed):
                where = address if address == bare else f"{bare} resolves to {address}"
                raise UrlRefused(
                    shown,
                    f"{where}, a {reason} address (set [tools] allow_private_addresses = true "
                    "to read from your own network)",
                )
        return addresses

    async def check_url(self, url: str) -> tuple[str, int]:
        """Refuse a URL whose scheme, host or addresses are not allowed; ``(host, port)``."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise UrlRefused(url, f"only http and https URLs are read, not {scheme or 'none'}:")
        try:
            host, port = parts.hostname, parts.port
        except ValueError as exc:  # a port that is not a number
            raise UrlRefused(url, f"malformed URL ({exc})") from None
        if not host:
            raise UrlRefused(url, "the URL names no host")
        port = port or (443 if scheme == "https" else 80)
        await self.check_address(host, port, url=url)
        return host, port

    # -------------------------------------------------------------------------- fetch
    async def fetch(self, url: str) -> FetchedPage:
        """GET ``url`` under the guard: redirects checked hop by hop, size and time capped.

        Raises
        ------
        UrlRefused
            The URL, or one it redirects to, is not allowed.
        FetchError
            DNS, connection, HTTP status ≥ 400, too many redirects, or the deadline.
        """
        try:
            return await asyncio.wait_for(self._fetch(url), timeout=self.timeout_s)
        except asyncio.TimeoutError:
            raise FetchError(f"{redact_url(url)}: timed out after {self.timeout_s:g} s") from None

    def _http(self) -> httpx2.AsyncClient:
        if self._client is None:
            self._client = httpx2.AsyncClient(
                transport=_GuardedTransport(self),
                timeout=httpx2.Timeout(self.timeout_s),
                follow_redirects=False,
                trust_env=False,  # an environment proxy would connect on our behalf
                headers={"User-Agent": self.user_agent, "Accept": ACCEPT},
            )
        return self._client

    async def _fetch(self, url: str) -> FetchedPage:
        current = _without_fragment(url)
        redirects: list[str] = []
        while True:
            await self.check_url(current)
            try:
                request = self._http().build_request("GET", current)
                response = await self._http().send(request, stream=True)
            except httpx2.InvalidURL as exc:
                raise UrlRefused(current, f"malformed URL ({exc})") from None
            except httpx2.HTTPError as exc:
                raise FetchError(f"{redact_url(current)}: {_describe(exc)}") from None
            try:
                if response.status_code in REDIRECT_STATUSES:
                    location = response.headers.get("location")
                    if not location:
                        raise FetchError(
                            f"{redact_url(current)}: HTTP {response.status_code} without Location"
                        )
                    if len(redirects) >= self.max_redirects:
                        raise UrlRefused(url, f"more than {self.max_redirects} redirects")
                    redirects.append(current)
                    current = _without_fragment(urljoin(current, location))
                    log.debug("redirect %d → %s", len(redirects), redact_url(current))
                    continue
                if response.status_code >= 400:
                    raise FetchError(f"{redact_url(current)}: HTTP {response.status_code}")
                content, truncated = await self._read_capped(response)
            finally:
                await response.aclose()
            headers = {k.lower(): v for k, v in response.headers.items()}
            media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            return FetchedPage(
                url=current,
                requested_url=url,
                status=response.status_code,
                content_type=media,
                content=content,
                headers={k: v for k, v in headers.items() if k == "content-type"},
                truncated=truncated,
                redirects=tuple(redirects),
            )

    async def _read_capped(self, response: httpx2.Response) -> tuple[bytes, bool]:
        """The body up to ``max_bytes``; True when there was more (the body was cut)."""
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in response.aiter_bytes():
                if not chunk:
                    continue
                if size >= self.max_bytes:
                    return b"".join(chunks), True
                chunks.append(chunk[: self.max_bytes - size])
                size += len(chunks[-1])
                if len(chunk) > len(chunks[-1]):
                    return b"".join(chunks), True
        except httpx2.HTTPError as exc:
            raise FetchError(f"{redact_url(str(response.url))}: {_describe(exc)}") from None
        return b"".join(chunks), False


class _GuardedBackend(httpcore2.AsyncNetworkBackend):
    """Resolves, checks and connects to the checked address itself (no second DNS lookup).

    TLS still verifies the certificate against the URL's host name: httpcore passes the
    origin's host to ``start_tls``, not the address we connected to.
    """

    def __init__(self, guard: UrlGuard) -> None:
        self.guard = guard
        self._backend = httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        addresses = await self.guard.check_address(host, port)
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._backend.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> Any:
        raise UrlRefused("unix socket", "unix sockets are never read")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class _GuardedTransport(httpx2.AsyncHTTPTransport):
    """httpx's transport with the guarded network backend in its connection pool."""

    def __init__(self, guard: UrlGuard) -> None:
        super().__init__(trust_env=False)
        # httpx builds its pool without a network_backend parameter; replace it with one
        # that has ours (same defaults otherwise).
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=httpx2.create_ssl_context(trust_env=False),
            max_connections=10,
            max_keepalive_connections=5,
            keepalive_expiry=5.0,
            network_backend=_GuardedBackend(guard),
        )


def _without_fragment(url: str) -> str:
    parts = urlsplit(url.strip())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx2.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx2.ConnectError):
        return f"cannot connect ({exc})"
    if isinstance(exc, httpx2.RemoteProtocolError):
        return f"connection broken ({exc})"
    return f"{type(exc).__name__}: {exc}"
