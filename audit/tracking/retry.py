"""Bounded retries with exponential backoff for calls to the tracking server.

Only transient failures are retried: connection errors, timeouts, 429 and 5xx. A 4xx
answer (bad input, a refused change to a sealed run) is final and surfaces at once.
The total time is bounded so a logger that cannot reach the server falls back to the
spool quickly instead of hanging a CI job.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from audit.errors import MlauditError, TrackingError

T = TypeVar("T")


class ServerUnavailable(TrackingError):
    """The server stayed unreachable (or kept failing with 5xx) for the whole retry budget."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message, hint="is the tracking server running and reachable?")
        self.attempts = attempts


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    initial_delay: float = 0.25
    factor: float = 2.0
    max_delay: float = 4.0
    # Wall-clock cap over all attempts of one call, sleeps included.
    deadline: float = 20.0

    def delays(self) -> list[float]:
        delay, out = self.initial_delay, []
        for _ in range(self.attempts - 1):
            out.append(min(delay, self.max_delay))
            delay *= self.factor
        return out


NO_RETRY = RetryPolicy(attempts=1, deadline=0.0)


def is_transient(error: BaseException) -> bool:
    """Connection trouble or a server-side failure: worth another attempt."""
    import sys

    # Only an imported MLflow can have raised its exception; the REST reader never imports it.
    exceptions = sys.modules.get("mlflow.exceptions")
    if exceptions is not None and isinstance(error, exceptions.MlflowException):
        status = int(error.get_http_status_code())
        return status == 429 or status >= 500
    import requests

    if isinstance(error, requests.exceptions.HTTPError) and error.response is not None:
        code = error.response.status_code
        return code == 429 or code >= 500
    return isinstance(error, (requests.exceptions.ConnectionError, requests.Timeout, OSError))


def call_with_retry(
    operation: Callable[[], T],
    policy: RetryPolicy,
    *,
    describe: str = "tracking server call",
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Run `operation`; retry transient failures; raise ServerUnavailable when the budget ends.

    A final (4xx) refusal becomes a TrackingError naming what was attempted, so the
    user sees the server's reason (a sealed run, a write-once artifact) in one line.
    """
    started = clock()
    delays = policy.delays()
    attempt = 0
    while True:
        attempt += 1
        try:
            return operation()
        except MlauditError:
            raise
        except Exception as error:
            if not is_transient(error):
                raise TrackingError(f"{describe}: {_reason(error)}") from error
            last = error
        if attempt > len(delays):
            break
        delay = delays[attempt - 1]
        if clock() - started + delay > policy.deadline:
            break
        sleep(delay)
    raise ServerUnavailable(f"{describe} failed after {attempt} attempt(s): {last}", attempt)


def _reason(error: BaseException) -> str:
    """The server's own message when it sent one (MLflow JSON error), else the exception."""
    response = getattr(error, "response", None)
    if response is not None:
        try:
            return str(response.json().get("message") or error)
        except ValueError:
            pass
    message = getattr(error, "message", None)
    return str(message or error)
