"""The SSRF guard of document_read: schemes, private and metadata addresses, DNS, redirects,
size and time caps. The fake server runs on 127.0.0.1, so tests that must reach it name it in
``allowed_hosts`` (exactly its host:port); everything it redirects to is checked anew."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from medresearcher.tools.url_guard import FetchError, UrlGuard, UrlRefused, blocked_reason
from tests.conftest import run
from tests.fakes.api_server import ApiResponse, FakeApiServer


@pytest.fixture
def site() -> Iterator[FakeApiServer]:
    with FakeApiServer() as server:
        yield server


def guard_for(site: FakeApiServer, **kwargs) -> UrlGuard:
    return UrlGuard(allowed_hosts={f"127.0.0.1:{site.port}"}, **kwargs)


async def fetch(guard: UrlGuard, url: str):
    async with guard:
        return await guard.fetch(url)


def html(text: str, **kwargs) -> ApiResponse:
    return ApiResponse.raw(text, content_type="text/html; charset=utf-8", **kwargs)


def redirect(location: str, status: int = 302) -> ApiResponse:
    return ApiResponse(status=status, headers={"Location": location})


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.0.0.2", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("192.168.1.10", "private"),
        ("172.16.0.1", "private"),
        ("169.254.169.254", "cloud metadata endpoint"),
        ("fd00:ec2::254", "cloud metadata endpoint"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::ffff:127.0.0.1", "loopback"),
        ("100.64.0.1", "not publicly routable"),
        ("240.0.0.1", "reserved"),
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_blocked_reason_classifies_addresses(address: str, reason: str | None) -> None:
    assert blocked_reason(address) == reason


@pytest.mark.parametrize(
    ("url", "because"),
    [
        ("http://127.0.0.1/", "loopback"),
        ("http://10.0.0.1/", "private"),
        ("http://169.254.169.254/latest/meta-data", "cloud metadata"),
        ("http://[::1]:8080/", "loopback"),
        ("http://0.0.0.0/", "unspecified"),
        ("file:///etc/passwd", "only http and https"),
        ("ftp://example.org/file.txt", "only http and https"),
        ("gopher://127.0.0.1:70/", "only http and https"),
        ("http:///no-host", "names no host"),
        ("http://metadata.google.internal/computeMetadata/v1/", "cloud metadata"),
    ],
)
def test_dangerous_urls_are_refused_before_any_connection(url: str, because: str) -> None:
    async def never_resolve(host: str, port: int) -> list[str]:
        raise AssertionError(f"{host} should not need resolving")

    with pytest.raises(UrlRefused, match=because):
        run(fetch(UrlGuard(resolver=never_resolve), url))


def test_a_name_that_resolves_to_loopback_is_refused(site: FakeApiServer) -> None:
    site.route("/", html("<p>secret</p>"))
    with pytest.raises(UrlRefused, match=r"localhost resolves to .*loopback"):
        run(fetch(UrlGuard(), f"http://localhost:{site.port}/"))
    assert site.requests == []  # nothing reached the server


def test_a_name_resolving_to_a_private_address_is_refused() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return {"intranet.example": ["10.1.2.3"], "mixed.example": ["93.184.216.34", "10.9.9.9"]}[
            host
        ]

    guard = UrlGuard(resolver=resolver)
    with pytest.raises(UrlRefused, match=r"intranet\.example resolves to 10\.1\.2\.3, a private"):
        run(fetch(guard, "https://intranet.example/wiki"))
    # one private address among public ones is enough to refuse
    with pytest.raises(UrlRefused, match=r"10\.9\.9\.9"):
        run(fetch(UrlGuard(resolver=resolver), "http://mixed.example/"))


def test_the_address_is_checked_again_when_the_socket_connects() -> None:
    """DNS rebinding: public at the first lookup, private when the connection is made."""
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])

    async def rebinding(host: str, port: int) -> list[str]:
        return next(answers)

    with pytest.raises(UrlRefused, match=r"rebind\.example resolves to 127\.0\.0\.1"):
        run(fetch(UrlGuard(resolver=rebinding), "http://rebind.example/"))


def test_an_allowed_host_is_fetched_with_its_content_type(site: FakeApiServer) -> None:
    site.route("/page", html("<html><title>T</title><p>Fabry disease</p></html>"))
    page = run(fetch(guard_for(site), f"{site.url}/page#section"))
    assert page.status == 200
    assert page.content_type == "text/html"
    assert "Fabry disease" in page.text
    assert page.url == f"{site.url}/page"  # fragment dropped
    assert not page.truncated and page.redirects == ()
    assert site.requests[0].headers["user-agent"].startswith("medresearcher/")


def test_allow_private_reads_the_local_network_but_never_metadata(site: FakeApiServer) -> None:
    site.route("/", html("<p>intranet page</p>"))
    page = run(fetch(UrlGuard(allow_private=True), f"{site.url}/"))
    assert b"intranet page" in page.content
    with pytest.raises(UrlRefused, match="cloud metadata"):
        run(fetch(UrlGuard(allow_private=True), "http://169.254.169.254/latest/meta-data"))


def test_allowed_hosts_are_exact_about_the_port(site: FakeApiServer) -> None:
    other_port = UrlGuard(allowed_hosts={"127.0.0.1:1"})
    with pytest.raises(UrlRefused, match="loopback"):
        run(fetch(other_port, f"{site.url}/"))


@pytest.mark.parametrize(
    ("target", "because"),
    [
        ("http://10.0.0.1/admin", "private"),
        ("http://127.0.0.2:{port}/", "loopback"),
        ("http://169.254.169.254/latest/meta-data/iam/", "cloud metadata"),
        ("http://localhost:{port}/", "loopback"),
        ("file:///etc/passwd", "only http and https"),
    ],
)
def test_a_redirect_to_a_forbidden_place_is_refused(
    site: FakeApiServer, target: str, because: str
) -> None:
    site.route("/start", redirect(target.format(port=site.port)))
    with pytest.raises(UrlRefused, match=because):
        run(fetch(guard_for(site), f"{site.url}/start"))
    assert [r.path for r in site.requests] == ["/start"]


def test_redirects_within_the_allowed_host_are_followed(site: FakeApiServer) -> None:
    site.route("/a", redirect("/b", 301))
    site.route("/b", redirect(f"{site.url}/c", 307))
    site.route("/c", html("<p>arrived</p>"))
    page = run(fetch(guard_for(site), f"{site.url}/a"))
    assert b"arrived" in page.content
    assert page.url == f"{site.url}/c"
    assert page.requested_url == f"{site.url}/a"
    assert page.redirects == (f"{site.url}/a", f"{site.url}/b")


def test_more_than_five_redirects_are_refused(site: FakeApiServer) -> None:
    site.route("/loop", fallback=redirect("/loop"))
    with pytest.raises(UrlRefused, match="more than 5 redirects"):
        run(fetch(guard_for(site), f"{site.url}/loop"))
    assert len(site.requests) == 6


def test_the_body_is_cut_at_the_size_cap(site: FakeApiServer) -> None:
    site.route("/big", ApiResponse.raw(b"x" * 50_000))
    site.route("/exact", ApiResponse.raw(b"y" * 1000))
    page = run(fetch(guard_for(site, max_bytes=1000), f"{site.url}/big"))
    assert page.truncated and page.content == b"x" * 1000
    exact = run(fetch(guard_for(site, max_bytes=1000), f"{site.url}/exact"))
    assert not exact.truncated and len(exact.content) == 1000


def test_a_slow_server_hits_the_deadline(site: FakeApiServer) -> None:
    site.route("/slow", html("<p>late</p>", delay_s=10))
    with pytest.raises(FetchError, match=r"timed out after 0\.2 s"):
        run(fetch(guard_for(site, timeout_s=0.2), f"{site.url}/slow"))


def test_an_http_error_status_is_a_fetch_error(site: FakeApiServer) -> None:
    site.route("/gone", ApiResponse.error(404))
    with pytest.raises(FetchError, match="HTTP 404"):
        run(fetch(guard_for(site), f"{site.url}/gone"))


def test_an_unresolvable_name_is_a_fetch_error() -> None:
    with pytest.raises(FetchError, match="cannot resolve host"):
        run(fetch(UrlGuard(), "http://no-such-host.invalid/"))


def test_credentials_in_a_refused_url_are_not_repeated() -> None:
    with pytest.raises(UrlRefused) as caught:
        run(fetch(UrlGuard(), "http://user:hunter2secret@10.0.0.1/"))
    assert "hunter2secret" not in str(caught.value)
