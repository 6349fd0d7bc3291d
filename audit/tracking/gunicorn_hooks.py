"""gunicorn server hooks for `mlaudit server` (loaded with `--config python:<this module>`).

A kept-alive connection stays with the worker process that accepted it. A study's
loggers send request after request on theirs, so which worker serves a logger is decided
once, when it connects: when the loggers held by one worker finish first, the others stay
on the other worker, which is bound to one core by its GIL while the first idles (with 50
shards on 2 workers: a fifth of both cores idle for the second half of the run). A
connection that has carried KEEPALIVE_REQUESTS requests is closed after its answer
(`Connection: close`, as nginx's `keepalive_requests` does), so the client reconnects and
whichever worker is free accepts it. A reconnect every two trials is small against the
server's own CPU for them (about 30 ms a trial in bench/tracking_scale.py); with it, a
2,000-trial run left 2.6 core-seconds idle instead of 14.7.
"""

from __future__ import annotations

from typing import Any

# About two trials of a logger (each is four requests: create, log, manifest, end and seal).
KEEPALIVE_REQUESTS = 8


def pre_request(worker: Any, req: Any) -> None:
    """gunicorn's pre_request hook: close the connection after its KEEPALIVE_REQUESTS-th."""
    if getattr(req, "req_number", 1) >= KEEPALIVE_REQUESTS:
        req.must_close = True
