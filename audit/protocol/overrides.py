"""Hydra override grammar: parse with hydra-core's own parser, apply as Hydra does.

Parsing and applying go through hydra-core (the same route DVC's `-S` takes), so
an override means exactly what it would mean to a Hydra program. Sweeps are
refused: one arm is one configuration.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from audit.errors import Location, ProtocolError


@dataclass(frozen=True)
class HydraOverride:
    """One override as hydra-core parsed it (audit.edd.overrides.Override is the EDD
    validator's lighter key=value reading)."""

    text: str
    key: str
    kind: str  # change | add | force_add | delete


def preload_grammar() -> None:
    """Import Hydra's override parser in a background thread (`ablate run` start-up).

    The import (~0.15 s) then overlaps the approval check's ssh-keygen and git calls;
    the first parse waits for it through the import lock, so nothing changes but time.
    """
    from audit._preload import preload

    preload("hydra.core.override_parser.overrides_parser")


@functools.cache
def _parser() -> Any:
    # Building hydra's ANTLR parser is the expensive part; one per process is enough.
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()


def parse_overrides(
    texts: Sequence[str], *, location: Location | None = None
) -> list[HydraOverride]:
    """Parse Hydra overrides; sweep syntax and config-group packages are errors."""
    from hydra.errors import HydraException

    parser = _parser()
    parsed = []
    for index, text in enumerate(texts):
        where = Location(location.file, f"{location.pointer}/{index}") if location else None
        try:
            (override,) = parser.parse_overrides([text])
        except HydraException as error:
            message = str(error).strip().splitlines()[0]
            raise ProtocolError(
                f"not a Hydra override {text!r}: {message}", location=where
            ) from None
        if override.is_sweep_override():
            raise ProtocolError(
                f"sweep override {text!r} is not allowed: an arm is one configuration",
                location=where,
            )
        if override.package is not None:
            raise ProtocolError(
                f"config-group package in {text!r} is not supported", location=where
            )
        kind = (
            "delete"
            if override.is_delete()
            else "force_add"
            if override.is_force_add()
            else "add"
            if override.is_add()
            else "change"
        )
        parsed.append(HydraOverride(text=text, key=override.key_or_group, kind=kind))
    return parsed


def apply_overrides(
    baseline: Mapping[str, Any], texts: Sequence[str], *, arm: str = ""
) -> dict[str, Any]:
    """The baseline with `texts` applied and every interpolation resolved, as plain data."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    where = f"arm {arm}: " if arm else ""
    try:
        config = OmegaConf.create(copy.deepcopy(dict(baseline)))
        # Struct mode: `key=value` on a key the baseline lacks is a typo, not an addition.
        OmegaConf.set_struct(config, True)
        parsed = _parser().parse_overrides(list(texts))
        ConfigLoaderImpl._apply_overrides_to_config(parsed, config)
        resolved = OmegaConf.to_container(config, resolve=True)
    except HydraException as error:
        cause = f" ({str(error.__cause__).splitlines()[0]})" if error.__cause__ else ""
        message = " ".join(str(error).split())
        raise ProtocolError(f"{where}{message}{cause}") from None
    except OmegaConfBaseException as error:
        message = str(error).strip().splitlines()[0]
        raise ProtocolError(f"{where}cannot resolve the configuration: {message}") from None
    assert isinstance(resolved, dict)
    plain = {str(k): v for k, v in resolved.items()}
    for key, value in flatten(plain).items():
        # Hydra reads `nan`/`inf` as floats; such a config cannot be hashed or recorded.
        if isinstance(value, float) and not math.isfinite(value):
            raise ProtocolError(f"{where}key '{key}' resolves to {value}, not a finite number")
    return plain


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Leaf key (dotted) -> value; lists and empty mappings are leaves."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat
