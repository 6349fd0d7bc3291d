"""Offline check of the data a study pinned beyond DVC (Git LFS objects, lakeFS commits).

Each pin's digest must follow from the objects it lists, the provenance `data` hash
of its path or URI must be that digest, every LFS file must have matched its
object, and every proven sealed run must carry the same data as dataset inputs.
So an edited pin, object list or data hash in results.json is named here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from audit.provenance._hashing import sha256_json

Problem = tuple[str, str]  # (JSON pointer into results.json, message)


def _lfs(index: int, pin: Mapping[str, Any], data: Mapping[str, Any]) -> Iterator[Problem]:
    pointer = f"/provenance/data_pins/git_lfs/{index}"
    objects = pin.get("objects") or []
    rows = [
        [o.get("path"), str(o.get("oid", "")).removeprefix("sha256:"), o.get("size")]
        for o in objects
    ]
    digest = f"sha256:{sha256_json(rows)}"
    if pin.get("digest") != digest:
        yield f"{pointer}/digest", "does not follow from the objects listed"
    if data.get(str(pin.get("path"))) != digest:
        yield "/provenance/data", f"the hash of {pin.get('path')!r} is not its LFS objects' digest"
    for number, obj in enumerate(objects):
        if obj.get("matches") is not True:
            yield f"{pointer}/objects/{number}/matches", "the file did not match its LFS object"


def _lakefs(index: int, pin: Mapping[str, Any], data: Mapping[str, Any]) -> Iterator[Problem]:
    pointer = f"/provenance/data_pins/lakefs/{index}"
    rows = [[o.get("path"), o.get("checksum"), o.get("size")] for o in pin.get("objects") or []]
    digest = sha256_json(rows)
    if pin.get("manifest_sha256") != digest:
        yield f"{pointer}/manifest_sha256", "does not follow from the objects listed"
    if data.get(str(pin.get("uri"))) != f"sha256:{digest}":
        yield "/provenance/data", f"the hash of {pin.get('uri')!r} is not its manifest digest"


def _dataset_names(record: Mapping[str, Any]) -> dict[str, str]:
    return {str(d.get("name")): str(d.get("digest")) for d in record.get("datasets") or []}


def data_pin_problems(
    results: Mapping[str, Any], records: Mapping[str, Mapping[str, Any]]
) -> list[Problem]:
    """Every way the pins in results.json fail to hold together or to match the sealed runs."""
    from audit.tracking.datasets import data_inputs

    provenance = results.get("provenance") or {}
    data = provenance.get("data") or {}
    pins = provenance.get("data_pins") or {}
    problems: list[Problem] = []
    for index, pin in enumerate(pins.get("git_lfs") or []):
        problems += _lfs(index, pin, data)
    for index, pin in enumerate(pins.get("lakefs") or []):
        problems += _lakefs(index, pin, data)
    expected = {d.name: d.digest for d in data_inputs(provenance)}
    for run_id, record in sorted(records.items()):
        logged = _dataset_names(record)
        if logged and logged != expected:
            problems.append(
                ("/provenance/data", f"sealed run {run_id} read other data than results.json says")
            )
    return problems
