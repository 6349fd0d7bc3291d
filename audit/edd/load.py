"""Load an EDD file into an `Edd`: parse, validate against the schema, canonicalise.

FIRST CUT (to be replaced by the hardened safe loader of issue 2): uses
yaml.safe_load. The public signature `load_edd(path) -> Edd` stays.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import rfc8785
import yaml
from jsonschema import Draft202012Validator

from audit._resources import load_schema
from audit.edd.model import Edd
from audit.errors import InputError, Location, ValidationFailed


def _pointer(path: Any) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def load_edd(path: str | Path) -> Edd:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise InputError(f"cannot read: {error.strerror}", location=Location(str(file))) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise InputError(f"not valid YAML: {error}", location=Location(str(file))) from None
    validator = Draft202012Validator(load_schema("edd"))
    problems = [
        (_pointer(e.absolute_path), e.message)
        for e in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    ]
    if problems:
        raise ValidationFailed(str(file), problems)
    return Edd(path=file, document=document, canonical=rfc8785.dumps(document))
