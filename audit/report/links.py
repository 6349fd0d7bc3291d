"""Links a report may contain: only ones built here from a validated base URL.

An untrusted string never becomes a link target. A base must be http(s),
carry no credentials, query or fragment, and only URL-safe characters; the
path parts appended to it (experiment and run ids) must match MLflow's id
formats.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]")
_PATH = re.compile(r"[A-Za-z0-9._~/-]{0,200}")
_RUN_ID = re.compile(r"[0-9a-f]{32}")
_EXPERIMENT_ID = re.compile(r"[0-9]{1,20}")


def safe_http_base(uri: object) -> str | None:
    """`uri` as a clean http(s) base URL without credentials, or None."""
    if not isinstance(uri, str) or len(uri) > 500:
        return None
    try:
        parts = urlsplit(uri.strip())
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not _HOST.fullmatch(host):
        return None
    if not _PATH.fullmatch(parts.path) or ".." in parts.path:
        return None
    if host.startswith("[") or ":" in host:
        host = f"[{host.strip('[]')}]"
    netloc = host if port is None else f"{host}:{port}"
    # Credentials, query and fragment are dropped on purpose: never printed.
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def mlflow_run_url(base: str, experiment_id: object, run_id: object) -> str | None:
    """The MLflow UI page of a run, or None when an id is not of MLflow's form."""
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        return None
    if not isinstance(experiment_id, str) or not _EXPERIMENT_ID.fullmatch(experiment_id):
        return None
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"
