"""The study's model card as a CycloneDX 1.6 ML-BOM (JSON).

The model component is the candidate the EDD proposes; its `modelCard` carries the
analysis' paired differences with their confidence intervals, the DVC-tracked data
as `data` components with their hashes, the hypothesis and the limitations derived
from the evidence. cyclonedx-python-lib (11.x) has no model for `modelCard`, so the
document is built as JSON here; the tests validate it with the library's strict
JSON validator. No mlaudit version and no clock: the same bundle, the same bytes.
"""

from __future__ import annotations

import json
import re
from typing import Any

from audit.bundle.exports.performance import candidate_means, deltas, limitations
from audit.bundle.exports.study import ExportStudy

SPEC_VERSION = "1.6"
_MD5 = re.compile(r"[0-9a-f]{32}")


def _number(value: float) -> str:
    """CycloneDX keeps metric values as strings: JSON's shortest exact form."""
    return json.dumps(value)


def _property(name: str, value: object) -> dict[str, str]:
    return {"name": name, "value": str(value)}


def _data_components(study: ExportStudy) -> list[dict[str, Any]]:
    hashes = ((study.results.get("provenance") or {}).get("data")) or {}
    described = {
        str(d.get("path")): str(d.get("description") or "")
        for d in study.edd.get("data", [])
        if isinstance(d, dict)
    }
    components = []
    for path, digest in sorted(hashes.items()):
        component: dict[str, Any] = {
            "type": "data",
            "bom-ref": f"data:{path}",
            "name": path,
            "data": [{"type": "dataset", "name": path}],
            "properties": [_property("mlaudit:dvc:hash", digest)],
        }
        if described.get(path):
            component["description"] = described[path]
        # DVC's md5 of a single file is a plain MD5; a directory's ends in ".dir".
        if isinstance(digest, str) and _MD5.fullmatch(digest):
            component["hashes"] = [{"alg": "MD5", "content": digest}]
        components.append(component)
    return components


def _performance(study: ExportStudy) -> list[dict[str, Any]]:
    metrics = []
    for d in deltas(study):
        metric: dict[str, Any] = {
            "type": f"{d.metric} delta",
            "value": _number(d.value),
            "slice": (
                f"{d.target}: {d.candidate} - {d.comparator}, paired over {d.n} seeds "
                f"(verdict {d.verdict})"
            ),
        }
        if d.low is not None and d.high is not None:
            metric["confidenceInterval"] = {
                "lowerBound": _number(d.low),
                "upperBound": _number(d.high),
            }
        metrics.append(metric)
    for name, (arm, mean, n) in sorted(candidate_means(study).items()):
        metrics.append(
            {"type": name, "value": _number(mean), "slice": f"arm {arm}, mean over {n} seeds"}
        )
    return metrics


def _model(study: ExportStudy, data: list[dict[str, Any]]) -> dict[str, Any]:
    card: dict[str, Any] = {
        "bom-ref": "model-card",
        "quantitativeAnalysis": {"performanceMetrics": _performance(study)},
        "considerations": {"technicalLimitations": limitations(study)},
        "properties": [
            _property("mlaudit:edd:hypothesis", " ".join(str(study.edd.get("hypothesis")).split())),
            _property("mlaudit:edd:digest", study.edd_digest),
            _property("mlaudit:edd:risk_tier", study.edd.get("risk_tier", "")),
            _property("mlaudit:gate:passed", "true" if study.passed else "false"),
            _property("mlaudit:evidence:digest", study.digest),
        ],
    }
    if data:
        card["modelParameters"] = {"datasets": [{"ref": d["bom-ref"]} for d in data]}
    return {
        "type": "machine-learning-model",
        "bom-ref": "model",
        "name": study.edd_id,
        "version": str(study.edd_version),
        "description": str(study.edd.get("title") or study.edd_id),
        "modelCard": card,
    }


def ml_bom(study: ExportStudy) -> dict[str, Any]:
    data = _data_components(study)
    model = _model(study, data)
    bom: dict[str, Any] = {
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": "urn:uuid:" + study.uuid("cyclonedx"),
        "version": 1,
        "metadata": {
            "timestamp": study.created_at,
            "component": model,
            "properties": [_property("mlaudit:evidence:digest", study.digest)],
        },
    }
    if data:
        bom["components"] = data
        bom["dependencies"] = [{"ref": "model", "dependsOn": [d["bom-ref"] for d in data]}]
    return bom
