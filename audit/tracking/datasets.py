"""The data a study read, as MLflow dataset inputs: DVC outs, Git LFS objects, lakeFS commits.

Pure: built from the provenance in results data, so a replayed run logs the same
inputs. They are logged before the run ends, so the seal covers them. MLflow keeps
a digest of at most 36 characters; the full digest goes into an input tag.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from audit.tracking.record import DatasetRef

DIGEST_LIMIT = 36  # mlflow.utils.validation.MAX_DATASET_DIGEST_SIZE
SOURCE_LIMIT = 65535  # MAX_DATASET_SOURCE_SIZE
FULL_DIGEST_TAG = "mlaudit.data.digest"
CONTEXT_TAG = "mlflow.data.context"


def _source(value: Mapping[str, Any]) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    if len(text) > SOURCE_LIMIT and "objects" in value:
        # A huge LFS directory: its digest already covers every object.
        text = json.dumps(
            {k: v for k, v in value.items() if k != "objects"},
            sort_keys=True,
            separators=(",", ":"),
        )
    return text


def _ref(name: str, digest: str, source_type: str, source: Mapping[str, Any]) -> DatasetRef:
    bare = digest.removeprefix("sha256:")
    return DatasetRef(
        name=name,
        digest=bare[:DIGEST_LIMIT],
        source_type=source_type,
        source=_source(source),
        tags={FULL_DIGEST_TAG: digest, CONTEXT_TAG: "ablation"},
    )


def data_inputs(provenance: Mapping[str, Any]) -> tuple[DatasetRef, ...]:
    """One dataset input per declared data entry, sorted by name."""
    pins = provenance.get("data_pins") or {}
    commit = (provenance.get("git") or {}).get("commit")
    lfs = {pin["path"]: pin for pin in pins.get("git_lfs") or []}
    lakefs = {pin["uri"]: pin for pin in pins.get("lakefs") or []}
    refs = []
    for name, digest in sorted((provenance.get("data") or {}).items()):
        if name in lfs:
            pin = lfs[name]
            objects = [[o["path"], o["oid"], o["size"]] for o in pin.get("objects") or []]
            source = {"path": name, "commit": pin.get("commit"), "objects": objects}
            refs.append(_ref(name, str(digest), "git-lfs", source))
        elif name in lakefs:
            pin = lakefs[name]
            source = {
                "uri": pin.get("immutable_uri"),
                "declared": name,
                "ref_kind": pin.get("ref_kind"),
                "commit_id": pin.get("commit_id"),
            }
            refs.append(_ref(name, str(digest), "lakefs", source))
        else:
            refs.append(_ref(name, str(digest), "dvc", {"path": name, "commit": commit}))
    return tuple(refs)
