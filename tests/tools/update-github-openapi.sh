#!/usr/bin/env bash
# Regenerates tests/fixtures/openapi/github-subset.json: the part of GitHub's
# official OpenAPI description (npm package @octokit/openapi) that mlaudit's
# GitHub client uses. The publish tests validate every request the client sends
# and every response the fake returns against it, so the fake cannot drift from
# the real API unnoticed. Usage: tests/tools/update-github-openapi.sh [VERSION]
set -euo pipefail

version="${1:-latest}"
here="$(cd "$(dirname "$0")" && pwd)"
out_dir="$here/../fixtures/openapi"
python="${PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "@octokit/openapi@$version" >/dev/null)
tar -xzf "$work"/octokit-openapi-*.tgz -C "$work" package/generated/api.github.com.json package/package.json

"$python" - "$work/package" "$out_dir" <<'PY'
"""Cut the operations mlaudit uses, plus every component they reference."""
import json
import sys
from pathlib import Path

package, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
spec = json.loads((package / "generated" / "api.github.com.json").read_text())
npm_version = json.loads((package / "package.json").read_text())["version"]

OPERATIONS = [
    ("/user", "get"),
    ("/repos/{owner}/{repo}", "get"),
    ("/repos/{owner}/{repo}/pulls/{pull_number}", "get"),
    ("/repos/{owner}/{repo}/commits/{commit_sha}/pulls", "get"),
    ("/repos/{owner}/{repo}/issues/{issue_number}/comments", "get"),
    ("/repos/{owner}/{repo}/issues/{issue_number}/comments", "post"),
    ("/repos/{owner}/{repo}/issues/comments/{comment_id}", "patch"),
    ("/repos/{owner}/{repo}/statuses/{sha}", "post"),
    ("/repos/{owner}/{repo}/check-runs", "post"),
]


def strip_examples(node, in_properties=False):
    # Examples are documentation only and triple the size of the subset; a
    # property that happens to be called "example" is kept.
    if isinstance(node, dict):
        return {
            k: strip_examples(v, k == "properties")
            for k, v in node.items()
            if in_properties or k not in ("examples", "example")
        }
    if isinstance(node, list):
        return [strip_examples(v) for v in node]
    return node


paths = {}
for path, method in OPERATIONS:
    item = spec["paths"][path]
    kept = paths.setdefault(path, {k: v for k, v in item.items() if k == "parameters"})
    kept[method] = strip_examples(item[method])

components = {}
pending = [paths]
seen = set()
while pending:
    node = pending.pop()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/") and ref not in seen:
            seen.add(ref)
            _, _, section, name = ref.split("/", 3)
            target = strip_examples(spec["components"][section][name])
            components.setdefault(section, {})[name] = target
            pending.append(target)
        pending.extend(node.values())
    elif isinstance(node, list):
        pending.extend(node)

subset = {
    "openapi": spec["openapi"],
    "info": {**spec["info"], "x-mlaudit-source": f"@octokit/openapi@{npm_version}"},
    "paths": paths,
    "components": {section: dict(sorted(items.items())) for section, items in sorted(components.items())},
}
out_dir.mkdir(parents=True, exist_ok=True)
(out_dir / "github-subset.json").write_text(json.dumps(subset, indent=1, sort_keys=True) + "\n")
(out_dir / "VERSION").write_text(
    f"@octokit/openapi {npm_version}\n"
    f"file generated/api.github.com.json (openapi {spec['openapi']}, api version {spec['info']['version']})\n"
    f"operations: {len(OPERATIONS)}; regenerate with tests/tools/update-github-openapi.sh\n"
)
print(f"github-subset.json from @octokit/openapi {npm_version}: {len(OPERATIONS)} operations, "
      f"{sum(len(v) for v in components.values())} components")
PY
