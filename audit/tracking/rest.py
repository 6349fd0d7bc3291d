"""Reading the ledger through the tracking server's REST JSON API with `requests` alone.

Fetching the sealed runs (checkpoint, gate, bundle, finish) needs four read endpoints,
whose JSON audit.tracking.ledger already parses itself; importing MLflow's client for
them costs more than the fetch (mlflow, pandas, pyarrow, fastapi: about a second per
command). `RestClient` sends those requests and nothing else; anything more (a run
that logged models or traces, the artifact check) asks it for a real MlflowClient.
Servers that need MLflow's own credentials or TLS settings (MLFLOW_TRACKING_USERNAME,
..._TOKEN, ..._INSECURE_TLS, ..._SERVER_CERT_PATH, ..._CLIENT_CERT_PATH) get the
MlflowClient from the start, so every setting MLflow honours is honoured.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests
    from mlflow.tracking import MlflowClient

# MLflow settings this client does not implement: with any of them set, MLflow's own.
MLFLOW_CONNECTION_SETTINGS = (
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_AUTH",
    "MLFLOW_TRACKING_INSECURE_TLS",
    "MLFLOW_TRACKING_SERVER_CERT_PATH",
    "MLFLOW_TRACKING_CLIENT_CERT_PATH",
)


class RestClient:
    """GET/POST JSON to an http(s) tracking server; errors as `requests` raises them."""

    def __init__(self, uri: str) -> None:
        self.uri = uri.rstrip("/")
        self._session: requests.Session = _one_server_session(self.uri)
        self._timeout = float(os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT", "30"))
        self._mlflow: MlflowClient | None = None

    def call(
        self,
        endpoint: str,
        method: str = "GET",
        *,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        response = self._session.request(
            method, self.uri + endpoint, params=params, json=json, timeout=self._timeout
        )
        response.raise_for_status()  # 4xx final, 5xx retried: audit.tracking.retry decides
        answer = response.json()
        return answer if isinstance(answer, dict) else {}

    def mlflow(self) -> MlflowClient:
        """MLflow's client, for what the REST reads here do not cover."""
        if self._mlflow is None:
            from audit.tracking.client import connect

            self._mlflow = connect(self.uri)
        return self._mlflow


def _one_server_session(uri: str) -> requests.Session:
    """A session to one server, its environment settings read once instead of per request.

    `requests` looks up the proxy, CA-bundle and ~/.netrc settings for every request,
    scanning every environment variable twice for proxies: about 2 ms of a logger's
    16 ms of CPU per trial. Every request here goes to `uri`, so requests' own lookups
    run once, for it, and the session keeps their answers.
    """
    import requests

    session = requests.Session()
    found = session.merge_environment_settings(uri, {}, None, None, None)
    netrc_auth = requests.utils.get_netrc_auth(uri)
    session.trust_env = False
    session.proxies.update(found["proxies"])
    session.verify = found["verify"]
    session.cert = found["cert"]
    if netrc_auth:
        session.auth = netrc_auth
    return session


def plain_rest(uri: str) -> bool:
    """An http(s) server that needs none of MLflow's connection settings."""
    plain_http = uri.startswith(("http://", "https://"))
    return plain_http and not any(os.environ.get(name) for name in MLFLOW_CONNECTION_SETTINGS)


def connect_reader(uri: str) -> RestClient | MlflowClient:
    """A client to fetch the ledger with: plain REST when MLflow's settings are not needed."""
    if plain_rest(uri):
        return RestClient(uri)
    from audit.tracking.client import connect

    return connect(uri)


def mlflow_client(client: RestClient | MlflowClient) -> MlflowClient:
    return client.mlflow() if isinstance(client, RestClient) else client
