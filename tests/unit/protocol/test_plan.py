"""Plan expansion for every design, paired seeds, references, overrides and confounds."""

from __future__ import annotations

import copy
import re
from collections import Counter

import pytest

from audit.edd import load_edd, planned_trial_count
from audit.errors import ConfoundError, ProtocolError
from audit.protocol.plan import build_plan
from audit.protocol.shards import parse_shard, shard_matrix, shard_trials

MINIMAL = "tests/corpus/edd/valid/minimal.yaml"


@pytest.fixture
def document() -> dict:
    return copy.deepcopy(load_edd(MINIMAL).document)


def _arms(plan) -> dict[str, tuple[str, tuple[str, ...]]]:
    return {a.name: (a.kind, a.overrides) for a in plan.arms}


def test_leave_one_out(document):
    plan = build_plan(document)
    assert _arms(plan) == {
        "baseline": ("baseline", ()),
        "no-a": ("component", ("features.a=false",)),
        "no-b": ("component", ("features.b=false",)),
        "production": ("reference", ("features.b=false",)),
    }
    assert plan.arm("no-a").config["features"] == {"a": False, "b": True}
    assert plan.reproducibility == ("baseline", 0)


def test_add_one_switches_one_component_on_over_the_all_off_base(document):
    document["protocol"]["design"] = "add-one"
    plan = build_plan(document)
    assert plan.arm("base").config["features"] == {"a": False, "b": False}
    assert plan.arm("with-a").config["features"] == {"a": True, "b": False}
    assert plan.arm("with-a").component == "a"
    assert plan.arm("with-b").config["features"] == {"a": False, "b": True}
    assert plan.arm("baseline").config["features"] == {"a": True, "b": True}


def test_replace_one_uses_declared_alternatives(document):
    document["protocol"]["design"] = "replace-one"
    document["protocol"]["components"][0]["replace"] = ["model.depth=5"]
    with pytest.raises(ProtocolError, match="needs `replace` overrides for component 'b'") as info:
        build_plan(document)
    assert info.value.location.pointer == "/protocol/components/1"
    document["protocol"]["components"][1]["replace"] = ["features.b=false"]
    plan = build_plan(document)
    assert plan.arm("replace-a").config["model"] == {"depth": 5}
    assert plan.arm("replace-b").overrides == ("features.b=false",)


def test_full_factorial_has_every_cell(document):
    document["protocol"]["design"] = "full-factorial"
    document["protocol"]["references"] = []
    plan = build_plan(document)
    cells = {a.name: dict(a.factors) for a in plan.arms}
    assert cells == {
        "baseline": {"a": True, "b": True},
        "no-b": {"a": True, "b": False},
        "no-a": {"a": False, "b": True},
        "no-a+b": {"a": False, "b": False},
    }
    assert plan.arm("no-a+b").config["features"] == {"a": False, "b": False}


@pytest.mark.parametrize("design", ["leave-one-out", "add-one", "replace-one", "full-factorial"])
def test_trial_count_matches_the_edd_budget_formula(document, design):
    document["protocol"]["design"] = design
    for component in document["protocol"]["components"]:
        component["replace"] = [f"features.{component['name']}=false"]
    plan = build_plan(document)
    assert plan.trial_count + 1 == planned_trial_count(document)


def test_every_arm_runs_the_same_seeds_in_seed_major_order(document):
    plan = build_plan(document)
    seeds_per_arm = {a.name: [t.seed for t in plan.trials if t.arm == a.name] for a in plan.arms}
    assert all(seeds == list(range(8)) for seeds in seeds_per_arm.values())
    assert [t.arm for t in plan.trials[:4]] == ["baseline", "no-a", "no-b", "production"]
    assert len({t.trial_id for t in plan.trials}) == plan.trial_count == 32


def test_sweep_override_is_refused_with_its_location(document):
    document["protocol"]["components"][1]["ablate"] = ["features.b=false,true"]
    with pytest.raises(ProtocolError, match="sweep override") as info:
        build_plan(document, source="edd.yaml")
    assert str(info.value.location) == "edd.yaml:/protocol/components/1/ablate/0"


def test_unparsable_override_is_refused(document):
    document["protocol"]["components"][0]["ablate"] = ["features.a false"]
    with pytest.raises(ProtocolError, match="not a Hydra override"):
        build_plan(document)


def test_override_of_unknown_key_is_refused(document):
    document["protocol"]["components"][0]["ablate"] = ["features.c=false"]
    with pytest.raises(ProtocolError, match=re.escape("arm no-a: Could not override 'features.c'")):
        build_plan(document)


def test_interpolation_confound_names_arm_and_key(document):
    document["protocol"]["baseline"]["model"]["width"] = "${features.a}"
    with pytest.raises(ConfoundError) as info:
        build_plan(document, source="edd.yaml")
    assert info.value.message.startswith("arm no-a: key 'model.width' differs from the baseline")
    assert "component 'a' does not declare it" in info.value.message
    assert info.value.location.pointer == "/protocol/components/0/ablate"


def test_override_that_changes_nothing_is_a_confound(document):
    document["protocol"]["references"][0]["overrides"] = ["features.b=true"]
    with pytest.raises(ConfoundError, match="arm production: arm 'production' declares key"):
        build_plan(document)


def test_overlapping_components_are_refused_when_combined(document):
    document["protocol"]["design"] = "add-one"
    document["protocol"]["components"][1]["ablate"] = ["features.b=false", "features.a=false"]
    expected = "components 'a' and 'b' both set key 'features.a'"
    with pytest.raises(ConfoundError, match=re.escape(expected)):
        build_plan(document)


def test_non_finite_override_value_is_refused(document):
    document["protocol"]["components"][0]["ablate"] = ["model.depth=nan"]
    with pytest.raises(ProtocolError, match=re.escape("'model.depth' resolves to nan")):
        build_plan(document)


def test_reference_name_clash_is_refused(document):
    document["protocol"]["references"][0]["name"] = "no-a"
    with pytest.raises(ProtocolError, match="clashes"):
        build_plan(document)


def test_config_hash_changes_with_config(document):
    plan = build_plan(document)
    assert plan.arm("no-b").config_sha256 == plan.arm("production").config_sha256
    assert plan.arm("no-a").config_sha256 != plan.arm("baseline").config_sha256


@pytest.mark.parametrize("total", [1, 2, 3, 5, 7])
def test_shards_partition_the_plan_evenly(document, total):
    plan = build_plan(document)
    shards = [shard_trials(plan.trials, i, total) for i in range(1, total + 1)]
    ids = [t.trial_id for shard in shards for t in shard]
    assert Counter(ids) == Counter(t.trial_id for t in plan.trials)
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 1


def test_shard_matrix_is_a_list_of_string_variables(document):
    plan = build_plan(document)
    matrix = shard_matrix(plan, 3)
    assert matrix[0] == {"MLAUDIT_SHARD": "1/3", "MLAUDIT_SHARD_TRIALS": "11"}
    assert all(isinstance(v, str) for row in matrix for v in row.values())


@pytest.mark.parametrize("text", ["0/2", "3/2", "x", "1/0", "1-2"])
def test_bad_shard_is_a_usage_error(text):
    from audit.errors import UsageError

    with pytest.raises(UsageError):
        parse_shard(text)


def test_argv_mode_needs_the_overrides_placeholder(document):
    document["protocol"]["command"] = ["python", "train.py"]
    with pytest.raises(ProtocolError, match="must contain the item") as info:
        build_plan(document)
    assert info.value.location.pointer == "/protocol/command"
    document["protocol"]["overrides_via"] = "params_file"
    assert build_plan(document).trial_count == 32
