"""The bundle as NIST OSCAL 1.1.3 assessment-results (JSON).

One result: the merge gate. Each gate rule is an observation whose relevant evidence
points at the bundle members (by back-matter resource, with their sha256); each failed
rule is a finding. Every member of the bundle's evidence is a back-matter resource.
UUIDs are version 5, derived from the evidence digest: the same bundle, the same bytes.
The gate rules are the assessment objectives; no control catalog is mapped (that is the
provider's choice, and `reviewed-controls` says so instead of inventing one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from audit.bundle.exports.sources import rule_evidence
from audit.bundle.exports.study import ExportStudy

OSCAL_VERSION = "1.1.3"
NS = "https://mlaudit.dev/ns/oscal"
RELATIVE_ROOT = "../"  # the export sits in exports/: members are one level up


def _text(value: object) -> str:
    """OSCAL's StringDatatype: one line, no leading or trailing whitespace, never empty."""
    return " ".join(str(value).split()) or "(none)"


def _prop(name: str, value: object) -> dict[str, str]:
    return {"name": name, "ns": NS, "value": _text(value)}


# Fixed here, not guessed: mimetypes reads the host's mime.types, and the same bundle
# must give the same bytes on every machine.
_MEDIA_TYPES = {
    ".json": "application/json",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".lock": "application/yaml",
    ".md": "text/markdown",
    ".html": "text/html",
    ".txt": "text/plain",
    ".sig": "text/plain",
}


def _media_type(path: str) -> str:
    suffix = "." + path.rsplit(".", 1)[-1] if "." in path.rsplit("/", 1)[-1] else ""
    return _MEDIA_TYPES.get(suffix, "application/octet-stream")


def _resource(study: ExportStudy, path: str) -> dict[str, Any]:
    return {
        "uuid": study.uuid("resource", path),
        "title": path,
        "description": "Member of the audit bundle, by its path in the archive.",
        "rlinks": [
            {
                "href": RELATIVE_ROOT + path,
                "media-type": _media_type(path),
                "hashes": [{"algorithm": "SHA-256", "value": study.files[path]}],
            }
        ],
    }


def _observation(study: ExportStudy, index: int, rule: Mapping[str, Any]) -> dict[str, Any]:
    rule_id = str(rule.get("rule"))
    kind = str(rule.get("kind") or "")
    evidence = [
        {
            "href": "#" + study.uuid("resource", path),
            "description": f"{path} (sha256 {study.files[path]})",
            "props": [_prop("sha256", study.files[path])],
        }
        for path in rule_evidence(study, kind)
    ]
    observation: dict[str, Any] = {
        "uuid": study.uuid("observation", rule_id),
        "title": _text(rule.get("title") or rule_id),
        "description": _text(rule.get("evidence")),
        "props": [
            _prop("gate-rule", rule_id),
            _prop("gate-rule-kind", kind or "unknown"),
            _prop("result", "pass" if rule.get("passed") else "fail"),
            _prop("gate-json-pointer", f"/rules/{index}"),
        ],
        "methods": ["TEST"],
        "collected": study.created_at,
    }
    if evidence:
        observation["relevant-evidence"] = evidence
    return observation


def _finding(study: ExportStudy, rule: Mapping[str, Any]) -> dict[str, Any]:
    rule_id = str(rule.get("rule"))
    return {
        "uuid": study.uuid("finding", rule_id),
        "title": f"Gate rule {_text(rule_id)} failed",
        "description": _text(rule.get("evidence")),
        "target": {
            "type": "objective-id",
            "target-id": _token(rule_id),
            "status": {"state": "not-satisfied", "reason": "fail"},
        },
        "related-observations": [{"observation-uuid": study.uuid("observation", rule_id)}],
    }


def _token(value: str) -> str:
    """An OSCAL token (XML NCName): gate rule ids already are; anything else is made one."""
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in value)
    return cleaned if cleaned[:1].isalpha() or cleaned[:1] == "_" else "_" + cleaned


def _result(study: ExportStudy) -> dict[str, Any]:
    rules = [r for r in study.gate.get("rules", []) if isinstance(r, Mapping)]
    verdict = "PASSED" if study.passed else "FAILED"
    result: dict[str, Any] = {
        "uuid": study.uuid("result", "gate"),
        "title": f"Merge gate {verdict} for {_text(study.edd_id)} v{study.edd_version}",
        "description": (
            "mlaudit's merge gate judged the ablation study against its signed Experiment "
            "Design Document. Each observation is one gate rule; each finding a failed rule."
        ),
        "start": study.created_at,
        "props": [
            _prop("gate-passed", "true" if study.passed else "false"),
            _prop("edd-id", study.edd_id),
            _prop("edd-digest", study.edd_digest),
        ],
        "reviewed-controls": {
            "control-selections": [
                {
                    "description": (
                        "No control catalog is mapped: the objectives are mlaudit's gate "
                        "rules, named by each observation's gate-rule property."
                    ),
                    "include-all": {},
                }
            ]
        },
    }
    if rules:
        result["observations"] = [_observation(study, i, r) for i, r in enumerate(rules)]
    failed = [_finding(study, r) for r in rules if not r.get("passed")]
    if failed:
        result["findings"] = failed
    return result


def assessment_results(study: ExportStudy) -> dict[str, Any]:
    """The OSCAL document (a JSON object with the one root key `assessment-results`)."""
    plan = study.uuid("resource", study.edd_path)
    return {
        "assessment-results": {
            "uuid": study.uuid("assessment-results"),
            "metadata": {
                "title": f"mlaudit assessment results: {_text(study.edd_id)} v{study.edd_version}",
                "last-modified": study.created_at,
                "version": f"evidence-{study.digest[:16]}",
                "oscal-version": OSCAL_VERSION,
                "props": [
                    _prop("evidence-digest", study.digest),
                    _prop("edd-digest", study.edd_digest),
                ],
            },
            "import-ap": {
                "href": "#" + plan,
                "remarks": (
                    "The assessment plan is the signed Experiment Design Document (back-matter "
                    "resource); it is not itself an OSCAL assessment-plan document."
                ),
            },
            "results": [_result(study)],
            "back-matter": {"resources": [_resource(study, path) for path in study.files]},
        }
    }
