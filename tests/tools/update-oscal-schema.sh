#!/usr/bin/env bash
# Re-fetches tests/fixtures/oscal/oscal_assessment-results_schema.json: NIST's official
# OSCAL assessment-results JSON Schema, the independent checker of the bundle's OSCAL
# export (tests/integration/study/export_validators.py). The file is stored unmodified;
# VERSION records the release and the sha256. Usage: update-oscal-schema.sh [VERSION]
set -euo pipefail

version="${1:-1.1.3}"
here="$(cd "$(dirname "$0")" && pwd)"
out_dir="$here/../fixtures/oscal"
name="oscal_assessment-results_schema.json"
url="https://github.com/usnistgov/OSCAL/releases/download/v${version}/${name}"

curl -fsSL -o "$out_dir/$name" "$url"
digest="$(sha256sum "$out_dir/$name" | cut -d' ' -f1)"
size="$(wc -c <"$out_dir/$name")"
cat >"$out_dir/VERSION" <<TXT
NIST OSCAL v${version}, release asset ${name} (JSON Schema draft-07)
\$id http://csrc.nist.gov/ns/oscal/${version}/oscal-ar-schema.json
sha256 ${digest}, ${size} bytes, unmodified
release URL ${url}
regenerate with tests/tools/update-oscal-schema.sh
TXT
echo "$name v$version: sha256 $digest"
