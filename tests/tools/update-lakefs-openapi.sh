#!/usr/bin/env bash
# Regenerates tests/fixtures/openapi/lakefs-subset.json: the operations of lakeFS's
# published OpenAPI description (api/swagger.yml in treeverse/lakeFS) that mlaudit's
# lakeFS data pins call through the `lakefs` SDK. The lakeFS tests validate every
# request the SDK sends and every response the fake server returns against it.
# Usage: tests/tools/update-lakefs-openapi.sh [TAG]   (default v1.84.0)
#        LAKEFS_SWAGGER=path/to/swagger.yml tests/tools/update-lakefs-openapi.sh TAG
set -euo pipefail

tag="${1:-v1.84.0}"
here="$(cd "$(dirname "$0")" && pwd)"
out_dir="$here/../fixtures/openapi"
python="${PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if [ -n "${LAKEFS_SWAGGER:-}" ]; then
  cp "$LAKEFS_SWAGGER" "$work/swagger.yml"
else
  curl -fsSL "https://raw.githubusercontent.com/treeverse/lakeFS/$tag/api/swagger.yml" \
    -o "$work/swagger.yml"
fi

"$python" - "$work/swagger.yml" "$out_dir" "$tag" <<'PY'
"""Cut the operations mlaudit uses, plus every component they reference."""
import hashlib
import json
import sys
from pathlib import Path

import yaml

source, out_dir, tag = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
raw = source.read_bytes()


def string_keys(node):
    # YAML reads response codes (200:) as integers; JSON and OpenAPI name them as strings.
    if isinstance(node, dict):
        return {str(k): string_keys(v) for k, v in node.items()}
    if isinstance(node, list):
        return [string_keys(v) for v in node]
    return node


spec = string_keys(yaml.safe_load(raw))

OPERATIONS = [
    ("/repositories/{repository}/branches/{branch}", "get"),
    ("/repositories/{repository}/tags/{tag}", "get"),
    ("/repositories/{repository}/commits/{commitId}", "get"),
    ("/repositories/{repository}/refs/{ref}/objects/ls", "get"),
]

paths = {}
for path, method in OPERATIONS:
    item = spec["paths"][path]
    kept = paths.setdefault(path, {k: v for k, v in item.items() if k == "parameters"})
    kept[method] = item[method]

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
            target = spec["components"][section][name]
            components.setdefault(section, {})[name] = target
            pending.append(target)
        pending.extend(node.values())
    elif isinstance(node, list):
        pending.extend(node)

subset = {
    "openapi": spec["openapi"],
    "info": {**spec["info"], "x-mlaudit-source": f"treeverse/lakeFS {tag} api/swagger.yml"},
    "servers": spec.get("servers", []),
    "paths": paths,
    "components": {s: dict(sorted(i.items())) for s, i in sorted(components.items())},
}
out_dir.mkdir(parents=True, exist_ok=True)
(out_dir / "lakefs-subset.json").write_text(json.dumps(subset, indent=1, sort_keys=True) + "\n")
(out_dir / "lakefs-VERSION").write_text(
    f"treeverse/lakeFS {tag}\n"
    f"file api/swagger.yml sha256 {hashlib.sha256(raw).hexdigest()} "
    f"(openapi {spec['openapi']}, api version {spec['info']['version']})\n"
    f"operations: {len(OPERATIONS)}; regenerate with tests/tools/update-lakefs-openapi.sh\n"
)
print(f"lakefs-subset.json from lakeFS {tag}: {len(OPERATIONS)} operations, "
      f"{sum(len(v) for v in components.values())} components")
PY
