"""Only Stripe's addresses may deliver, when the operator says so: the allowlist is a file in
Stripe's own formats, read again when it changes, and X-Forwarded-For counts only from trusted
proxies. Real sockets over loopback, each 127.0.0.N a different client."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Iterator

import pytest

from ichido.config import Settings
from ichido.errors import ConfigError
from ichido.serving import ThreadedServer
from ichido.sources import read_allowlist

from tests.support import SECRET, in_process_app, wait_until
from tests.test_serving import HANG, deliver_from

# Stripe's published list (ips_webhooks.txt, 15 addresses as of May 2026).
STRIPE_WEBHOOK_IPS = """3.18.12.63
3.69.109.8
3.120.168.93
3.130.192.231
13.235.14.237
13.235.122.149
18.211.135.69
35.154.171.200
35.157.207.129
52.15.183.38
54.88.130.119
54.88.130.237
54.187.174.169
54.187.205.235
54.187.216.72
"""


def replace(path: Path, text: str) -> None:
    """As an operator's refresh does: write beside, then rename over."""
    fresh = path.with_suffix(".new")
    fresh.write_text(text)
    os.replace(fresh, path)


@pytest.fixture
def allowlist(tmp_path: Path) -> Path:
    path = tmp_path / "ips_webhooks.txt"
    path.write_text("# Stripe's, and ours\n127.0.0.2\n10.0.0.0/8\n")
    return path


@pytest.fixture
def server(tmp_path: Path, allowlist: Path,
           request: pytest.FixtureRequest) -> Iterator[ThreadedServer]:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'sources.db'}",
                        webhook_secrets=(SECRET,), allowed_sources_file=str(allowlist),
                        **getattr(request, "param", {}))
    app = in_process_app(settings)
    with ThreadedServer(app) as running:
        running.app = app  # type: ignore[attr-defined]
        yield running


def test_only_addresses_in_the_file_may_deliver(server: ThreadedServer) -> None:
    assert deliver_from(server, "127.0.0.2").startswith(b"HTTP/1.1 200 ")
    refused = deliver_from(server, "127.0.0.3")
    assert refused.startswith(b"HTTP/1.1 403 ") and b'"source_not_allowed"' in refused
    # X-Forwarded-For from a client that is not a trusted proxy changes nothing
    assert deliver_from(server, "127.0.0.3", **{"X-Forwarded-For": "127.0.0.2"}).startswith(
        b"HTTP/1.1 403 ")


def test_the_file_is_read_again_when_it_changes(server: ThreadedServer, allowlist: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    replace(allowlist, "127.0.0.3\n")
    wait_until(lambda: deliver_from(server, "127.0.0.3").startswith(b"HTTP/1.1 200 "),
               timeout=HANG, message="the refreshed list to admit 127.0.0.3")
    assert deliver_from(server, "127.0.0.2").startswith(b"HTTP/1.1 403 ")
    # a refresh that fails keeps the last good list rather than refusing everyone
    with caplog.at_level(logging.WARNING, logger="ichido.sources"):
        replace(allowlist, "# nothing yet\n")
        wait_until(lambda: deliver_from(server, "127.0.0.2").startswith(b"HTTP/1.1 403 ")
                   and "not refreshed" in caplog.text, timeout=HANG,
                   message="the failed refresh to be noticed")
    assert deliver_from(server, "127.0.0.3").startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize("server", [{"trusted_proxies": ("127.0.0.5",)}], indirect=True)
def test_x_forwarded_for_names_the_client_only_from_a_trusted_proxy(
        server: ThreadedServer) -> None:
    via_proxy = {"X-Forwarded-For": "10.1.2.3"}
    assert deliver_from(server, "127.0.0.5", **via_proxy).startswith(b"HTTP/1.1 200 ")
    assert deliver_from(server, "127.0.0.6", **via_proxy).startswith(b"HTTP/1.1 403 ")
    assert deliver_from(server, "127.0.0.5", **{"X-Forwarded-For": "192.0.2.1"}).startswith(
        b"HTTP/1.1 403 ")
    # the proxy itself is not a source
    assert deliver_from(server, "127.0.0.5").startswith(b"HTTP/1.1 403 ")


@pytest.mark.parametrize("name, text", [
    ("ips_webhooks.txt", STRIPE_WEBHOOK_IPS),
    ("ips_webhooks.json", json.dumps({"WEBHOOKS": STRIPE_WEBHOOK_IPS.split()})),
])
def test_stripes_own_files_are_read_as_published(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    addresses = read_allowlist(str(path))
    assert len(addresses) == 15
    assert "54.187.216.72" in addresses and "::ffff:3.18.12.63" in addresses
    assert "54.187.216.73" not in addresses and "not an address" not in addresses


@pytest.mark.parametrize("text", ["", "# only a comment\n", "3.18.12.63\nstripe.com\n",
                                  '{"WEBHOOKS": []}', "{not json"])
def test_an_empty_or_unreadable_list_is_refused_at_start(tmp_path: Path, text: str) -> None:
    path = tmp_path / "ips.txt"
    path.write_text(text)
    with pytest.raises(ConfigError):
        read_allowlist(str(path))
    with pytest.raises(ConfigError):
        read_allowlist(str(tmp_path / "missing.txt"))


def test_trusted_proxies_must_be_addresses_or_networks() -> None:
    settings = Settings.from_env({"ICHIDO_TRUSTED_PROXIES": "10.0.0.5, 192.168.0.0/16,::1"})
    assert settings.trusted_proxies == ("10.0.0.5", "192.168.0.0/16", "::1")
    with pytest.raises(ConfigError, match="ICHIDO_TRUSTED_PROXIES"):
        Settings.from_env({"ICHIDO_TRUSTED_PROXIES": "proxy.internal"})
