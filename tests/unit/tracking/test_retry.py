"""Bounded exponential backoff: what is retried, what is final, how long it may take."""

from __future__ import annotations

import pytest
import requests
from mlflow.exceptions import MlflowException
from mlflow.protos import databricks_pb2 as codes

from audit.errors import TrackingError
from audit.tracking.retry import RetryPolicy, ServerUnavailable, call_with_retry, is_transient


class Flaky:
    """Fails with the given errors, in order, then answers."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_transient_errors_are_retried_with_growing_delays():
    sleeps: list[float] = []
    operation = Flaky(
        requests.ConnectionError("refused"),
        MlflowException("boom", error_code=codes.INTERNAL_ERROR),
        MlflowException("busy", error_code=codes.TEMPORARILY_UNAVAILABLE),
    )
    policy = RetryPolicy(attempts=5, initial_delay=0.1, factor=2, max_delay=1, deadline=60)
    assert call_with_retry(operation, policy, sleep=sleeps.append) == "ok"
    assert operation.calls == 4
    assert sleeps == [0.1, 0.2, 0.4]


def test_client_errors_are_final_and_become_tracking_errors():
    operation = Flaky(MlflowException("run is sealed", error_code=codes.PERMISSION_DENIED))
    with pytest.raises(TrackingError, match="end run: run is sealed"):
        call_with_retry(operation, RetryPolicy(), describe="end run", sleep=lambda _: None)
    assert operation.calls == 1


def test_the_budget_ends_in_server_unavailable():
    sleeps: list[float] = []
    operation = Flaky(*[requests.ConnectionError("down")] * 10)
    policy = RetryPolicy(attempts=4, initial_delay=1, factor=3, max_delay=5, deadline=100)
    with pytest.raises(ServerUnavailable) as raised:
        call_with_retry(operation, policy, sleep=sleeps.append)
    assert raised.value.attempts == 4
    assert sleeps == [1, 3, 5]  # capped at max_delay


def test_the_deadline_bounds_total_time():
    now = [0.0]
    operation = Flaky(*[requests.ConnectionError("down")] * 10)
    policy = RetryPolicy(attempts=10, initial_delay=2, factor=2, max_delay=100, deadline=5)

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(ServerUnavailable):
        call_with_retry(operation, policy, sleep=sleep, clock=lambda: now[0])
    assert now[0] <= 5
    assert operation.calls == 2  # 2 s slept; the next 4 s would pass the deadline


def test_classification():
    assert is_transient(MlflowException("x", error_code=codes.INTERNAL_ERROR))
    assert is_transient(MlflowException("x", error_code=codes.REQUEST_LIMIT_EXCEEDED))
    assert not is_transient(MlflowException("x", error_code=codes.INVALID_PARAMETER_VALUE))
    assert not is_transient(MlflowException("x", error_code=codes.RESOURCE_DOES_NOT_EXIST))
    assert is_transient(requests.Timeout())
    assert not is_transient(ValueError("bug"))
