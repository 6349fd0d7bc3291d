"""The document schemas are valid JSON Schema 2020-12, checked by check-jsonschema itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"


def check_jsonschema(*args: str | Path) -> subprocess.CompletedProcess[str]:
    if not CHECK_JSONSCHEMA.exists():
        pytest.fail(f"check-jsonschema is missing from {CHECK_JSONSCHEMA.parent}")
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), *map(str, args)], capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize("name", ["gate", "checkpoint", "sealed", "results", "analysis"])
def test_schema_passes_the_metaschema_check(name):
    schema = SCHEMAS / f"{name}.schema.json"
    proc = check_jsonschema("--check-metaschema", schema)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '"https://json-schema.org/draft/2020-12/schema"' in schema.read_text()


def test_the_metaschema_check_can_fail(tmp_path):
    broken = tmp_path / "broken.schema.json"
    broken.write_text(
        '{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "objekt"}'
    )
    assert check_jsonschema("--check-metaschema", broken).returncode == 1
