"""A record with the sealed tag left open gives the very bytes of the full record."""

from __future__ import annotations

import dataclasses

import pytest

from audit.tracking.record import (
    SEAL_SHA256_TAG,
    SEALED_TAG,
    DatasetRef,
    ModelRef,
    PendingRecord,
    RunRecordInput,
    record_bytes,
)


def run(**changes: object) -> RunRecordInput:
    base = RunRecordInput(
        run_id="a" * 32,
        experiment_id="1",
        status="FINISHED",
        start_time=1_790_000_000_000,
        end_time=2**60,
        params={"lr": "0.1", "é": "ü"},
        tags={"mlaudit.arm": "baseline", "mlaudit.seal.seq": "4", "zz": 'q"\\'},
        metric_history={"m": [(0, 1, 0.5), (1, 2, float("nan")), (1, 2, float("inf"))]},
        run_name="trial",
        artifact_uri="mlflow-artifacts:/1/x/artifacts",
        datasets=[DatasetRef("d", "abc", "local", "/data", {"k": "v"})],
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


VALUES = [
    "sealed (sequence 0) at 2026-12-03 04:00:00 UTC: this run and its models can no longer change",
    "",
    'quote " backslash \\ tab \t newline \n',
    "ünïcødé ✓ \U0001f512",
]


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize(
    "data",
    [
        run(),
        run(tags={}),  # the only tag
        run(tags={SEALED_TAG: "an earlier value", "a": "b"}),  # replaced, not added
        run(
            models=[ModelRef("m-1", "model", "", "READY", {"p": "1"}, {}, [("k", 0, 1, 2.0)])],
            trace_ids=["tr-1"],
        ),  # the version 2 record
    ],
)
def test_filled_in_record_is_the_full_record(data: RunRecordInput, value: str) -> None:
    pending = PendingRecord.of(data, SEALED_TAG)
    assert pending is not None
    full = record_bytes(dataclasses.replace(data, tags={**data.tags, SEALED_TAG: value}))
    assert pending.record(value) == full


def test_a_different_value_gives_a_different_record() -> None:
    pending = PendingRecord.of(run(), SEALED_TAG)
    assert pending is not None
    assert pending.record("sealed (sequence 1)") != pending.record("sealed (sequence 2)")


def test_a_tag_left_out_of_the_record_cannot_be_left_open() -> None:
    assert PendingRecord.of(run(), SEAL_SHA256_TAG) is None
