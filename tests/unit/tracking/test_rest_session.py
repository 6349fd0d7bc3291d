"""The REST client reads requests' environment settings once, for its one server.

Proxies (with NO_PROXY), the CA bundle and ~/.netrc must apply exactly as requests
applies them per request; only the per-request lookups are gone.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from audit.tracking.rest import RestClient

SERVER = "http://127.0.0.1:1"  # nothing listens: the requests below go no further
PROXY = "http://127.0.0.1:9"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE",
                 "CURL_CA_BUNDLE", "NETRC"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def test_an_environment_proxy_carries_the_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", PROXY)
    client = RestClient(SERVER)
    assert client._session.proxies.get("http") == PROXY
    with pytest.raises(requests.exceptions.ProxyError):
        client.call("/api/2.0/mlflow/experiments/search")


def test_no_proxy_sends_them_straight(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", PROXY)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    client = RestClient(SERVER)
    assert "http" not in client._session.proxies
    with pytest.raises(requests.exceptions.ConnectionError) as raised:
        client.call("/api/2.0/mlflow/experiments/search")
    assert not isinstance(raised.value, requests.exceptions.ProxyError)


def test_the_ca_bundle_and_netrc_apply(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login ada password s3cret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    monkeypatch.setenv("NETRC", str(netrc))
    session = RestClient(SERVER)._session
    assert session.verify == str(bundle)
    assert session.auth == ("ada", "s3cret")
    assert session.trust_env is False  # nothing is looked up again per request


def test_without_settings_the_session_is_requests_default() -> None:
    session = RestClient(SERVER)._session
    assert session.verify is True
    assert session.auth is None
    assert not session.proxies
