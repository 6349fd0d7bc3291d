"""Operating characteristics of the claim rule: simulated studies with known ground truth.

Shared by bench/stats_operating_characteristics.py (the full grid, `make bench`) and
tests/unit/stats/test_operating_characteristics.py (a quick grid, `make test`).

A simulated study is the leave-one-out study of tests/fixtures/study/results.json: arms
`baseline`, four `no-<component>` arms and a `production` reference, n paired seeds,
five claims (two `improves`, three `non-inferior`, one of them on a minimised metric).
Each seed draws a shared "seed effect" S (correlation rho between any two arms) and
each trial its own noise E: value = level + sd * (sqrt(rho) S + sqrt(1 - rho) E), with
the claim's true effect subtracted from the comparator (in the good direction). The
skewed scenarios draw the paired difference itself: effect -/+ sd * (Exp(1) - 1).

Two paths compute the verdicts:
- the REAL path writes a results.json document, runs audit.stats.analyze_results and
  the gate's audit.gate.decide on it, exactly as `mlaudit ablate analyze` and
  `mlaudit gate` do;
- the FAST path runs the same arithmetic vectorised over replicates (numpy). It is used
  for the full grid only because `mismatches()` shows it agrees with the real path.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats as sps

from audit.stats import diagnostics, ttest
from audit.stats.ci import bca_interval, t_interval, wilson_interval

Floats = NDArray[np.float64]
Bools = NDArray[np.bool_]

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "tests" / "fixtures" / "study" / "results.json"

ALPHA = 0.05
CONFIDENCE = 0.95
LEVEL = 0.6  # metric level (PR-AUC-like)
ARM_SD = 0.02  # SD of one arm's metric over seeds
MIN_EFFECT = 0.02  # improves: boundary
MARGIN = 0.02  # non-inferior: boundary is -MARGIN
PLANNING = 0.03  # improves: the declared planning effect (1.5 x min_effect)
NI_PLANNING = 0.0  # non-inferior: planning for no true difference
SKEW_SD = 0.02  # SD of the paired difference in the skewed scenarios
LOGNORMAL_SIGMA = 1.0

NOISES = ("gaussian", "t3", "lognormal")
RHOS = (0.0, 0.5, 0.9)
SKEWED = ("left-skew", "right-skew")
NS = (8, 10, 20, 30)


@dataclass(frozen=True)
class ClaimSpec:
    target: str
    comparator: str
    metric: str
    goal: str
    claim: str

    @property
    def boundary(self) -> float:
        return MIN_EFFECT if self.claim == "improves" else -MARGIN

    def edd_claim(self) -> dict[str, Any]:
        raw: dict[str, Any] = {"target": self.target, "metric": self.metric, "claim": self.claim}
        if self.claim == "improves":
            raw.update(min_effect=MIN_EFFECT, planning_effect=PLANNING)
        else:
            raw.update(margin=MARGIN, planning_effect=NI_PLANNING)
        return raw


CLAIMS = (
    ClaimSpec("graph_features", "no-graph_features", "pr_auc", "maximize", "improves"),
    ClaimSpec("calibration", "no-calibration", "pr_auc", "maximize", "non-inferior"),
    ClaimSpec("velocity_window", "no-velocity_window", "pr_auc", "maximize", "improves"),
    ClaimSpec(
        "merchant_embeddings", "no-merchant_embeddings", "pr_auc", "maximize", "non-inferior"
    ),
    ClaimSpec("production", "production", "expected_cost", "minimize", "non-inferior"),
)
ARMS = ("baseline", *(c.comparator for c in CLAIMS))
METRICS = (("pr_auc", "maximize"), ("expected_cost", "minimize"))

# True effects (good direction) per claim, one tuple per configuration.
CONFIGS: dict[str, tuple[float, ...]] = {
    # every claim exactly at its boundary: per-claim false approval, and the decision's
    "boundary": tuple(c.boundary for c in CLAIMS),
    # improves at 2 x min_effect, non-inferior at no true difference: power
    "double": tuple(2 * MIN_EFFECT if c.claim == "improves" else 0.0 for c in CLAIMS),
    # every claim at its planning effect: power against the oracle t-test
    "planning": tuple(PLANNING if c.claim == "improves" else NI_PLANNING for c in CLAIMS),
    # one claim at its boundary, four far above: the least favourable case for the decision
    "one-null": (MIN_EFFECT, *(c.boundary + 0.2 for c in CLAIMS[1:])),
}


@dataclass(frozen=True)
class Scenario:
    noise: str
    rho: float | None  # None for the skewed-difference scenarios

    @property
    def label(self) -> str:
        return self.noise if self.rho is None else f"{self.noise}, rho {self.rho:g}"

    @property
    def symmetric(self) -> bool:
        return self.noise in NOISES

    def delta_sd(self) -> float:
        """True SD of a paired difference (for the analytic oracle power)."""
        if self.rho is None:
            return SKEW_SD
        return ARM_SD * math.sqrt(2 * (1 - self.rho))


def scenarios() -> list[Scenario]:
    return [Scenario(n, r) for n in NOISES for r in RHOS] + [Scenario(s, None) for s in SKEWED]


# -- data ---------------------------------------------------------------------------


def _unit(noise: str, size: tuple[int, ...], rng: np.random.Generator) -> Floats:
    """Mean-0, variance-1 draws of the named distribution."""
    if noise == "gaussian":
        return rng.standard_normal(size)
    if noise == "t3":
        return rng.standard_t(3, size) / math.sqrt(3.0)
    raise ValueError(noise)


def _arm_noise(
    scenario: Scenario, size: tuple[int, int], rng: np.random.Generator, arms: int
) -> Floats:
    """(arms, R, n) unit-variance noise with correlation rho between arms of a seed."""
    rho = scenario.rho or 0.0
    base = "gaussian" if scenario.noise == "lognormal" else scenario.noise
    shared = _unit(base, (1, *size), rng)
    own = _unit(base, (arms, *size), rng)
    z = math.sqrt(rho) * shared + math.sqrt(1 - rho) * own
    if scenario.noise != "lognormal":
        return z
    # Gaussian copula: lognormal margins, the same pairing structure.
    s2 = LOGNORMAL_SIGMA**2
    mean, sd = math.exp(s2 / 2), math.sqrt((math.exp(s2) - 1) * math.exp(s2))
    out: Floats = (np.exp(LOGNORMAL_SIGMA * z) - mean) / sd
    return out


@dataclass
class Study:
    """Good-direction metric values: values[metric][arm] has shape (R, n)."""

    scenario: Scenario
    effects: tuple[float, ...]
    values: dict[str, dict[str, Floats]] = field(default_factory=dict)

    @property
    def replicates(self) -> int:
        return int(self.values["pr_auc"]["baseline"].shape[0])

    def good_diffs(self, claim: ClaimSpec) -> Floats:
        by_arm = self.values[claim.metric]
        if claim.goal == "maximize":
            return by_arm["baseline"] - by_arm[claim.comparator]
        # Written to results.json as -good; the analysis negates the difference back.
        out: Floats = -((-by_arm["baseline"]) - (-by_arm[claim.comparator]))
        return out

    def metric_value(self, metric: str, arm: str, r: int, i: int) -> float:
        good = float(self.values[metric][arm][r, i])
        return good if dict(METRICS)[metric] == "maximize" else -good


def simulate(
    scenario: Scenario,
    n: int,
    effects: tuple[float, ...],
    replicates: int,
    rng: np.random.Generator,
    claims: tuple[ClaimSpec, ...] | None = None,
) -> Study:
    """`replicates` studies; with `claims`, only the arms and metrics those claims use."""
    study = Study(scenario, effects)
    for metric, _goal in METRICS:
        pairs = zip(CLAIMS, effects, strict=True)
        effect_of = {c.comparator: e for c, e in pairs if c.metric == metric}
        names = ARMS
        if claims is not None:
            names = ("baseline", *(c.comparator for c in claims if c.metric == metric))
            if len(names) == 1:
                continue
        size = (replicates, n)
        arms: dict[str, Floats] = {}
        if scenario.symmetric:
            noise = _arm_noise(scenario, size, rng, len(names))
            for index, arm in enumerate(names):
                arms[arm] = LEVEL - effect_of.get(arm, 0.0) + ARM_SD * noise[index]
        else:
            sign = -1.0 if scenario.noise == "left-skew" else 1.0
            arms["baseline"] = LEVEL + ARM_SD * rng.standard_normal(size)
            for arm in names[1:]:
                skew = sign * (rng.standard_exponential(size) - 1.0)
                arms[arm] = arms["baseline"] - (effect_of.get(arm, 0.0) + SKEW_SD * skew)
        study.values[metric] = arms
    return study


# -- the fast path --------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimOutcome:
    """Per replicate: the claim's verdict and everything measured about it."""

    approved: Bools
    p_value: Floats
    lower: Floats
    ci_low: Floats
    ci_high: Floats
    flagged: Bools


def fast_claim(good: Floats, boundary: float, shape: bool = True) -> ClaimOutcome:
    tests = ttest.boundary_tests(good, boundary, ALPHA)
    degenerate = diagnostics.degenerate(good)
    approved = (tests.p_value < ALPHA) & (tests.lower > boundary) & ~degenerate
    ci = t_interval(good, CONFIDENCE)
    # The shape warning needs medians (the slow part); skipped where it is not measured.
    flagged = (diagnostics.flagged(good) if shape else np.zeros(good.shape[0], bool)) | degenerate
    return ClaimOutcome(approved, tests.p_value, tests.lower, ci.low, ci.high, flagged)


def fast_study(
    study: Study, shape: bool = True, claims: tuple[ClaimSpec, ...] = CLAIMS
) -> tuple[list[ClaimOutcome], Bools]:
    outcomes = [fast_claim(study.good_diffs(c), c.boundary, shape) for c in claims]
    decision = np.logical_and.reduce([o.approved for o in outcomes])
    return outcomes, decision


# -- the real path --------------------------------------------------------------------


def _reseal(results: dict[str, Any]) -> None:
    import rfc8785

    results["edd"]["digest"] = hashlib.sha256(rfc8785.dumps(results["edd"]["document"])).hexdigest()


def template(n: int) -> dict[str, Any]:
    """The fixture study with n seeds, the simulation's five claims, every trial succeeded."""
    results = json.loads(TEMPLATE.read_text())
    document = results["edd"]["document"]
    document["decision"]["claims"] = [c.edd_claim() for c in CLAIMS]
    seeds = list(range(n))
    document["protocol"]["seeds"] = seeds
    results["plan"]["seeds"] = seeds
    by_arm = {t["arm"]: t for t in results["trials"] if t["status"] == "succeeded"}
    trials = []
    for arm in ARMS:
        for seed in seeds:
            trial = copy.deepcopy(by_arm[arm])
            trial.update(seed=seed, trial_id=f"{arm}/{seed}", status="succeeded", reason=None)
            trials.append(trial)
    results["trials"] = trials
    results["budget"]["trials_run"] = len(trials) + 1
    _reseal(results)
    return results


@dataclass(frozen=True)
class RealOutcome:
    approved: list[bool]
    p_value: list[float | None]
    ci_low: list[float | None]
    ci_high: list[float | None]
    flagged: list[bool]
    analysis_passed: bool
    gate_passed: bool
    gate_reasons: list[str]


def real_study(study: Study, r: int, base: dict[str, Any]) -> RealOutcome:
    """Replicate r of `study` through analyze_results and the gate, as the CLI runs them."""
    from audit.edd.model import Edd
    from audit.gate import GateInputs, decide
    from audit.stats import analyze_results

    results = copy.deepcopy(base)
    for trial in results["trials"]:
        for metric, _goal in METRICS:
            trial["metrics"][metric] = study.metric_value(metric, trial["arm"], r, trial["seed"])
    raw = json.dumps(results).encode()
    digest = hashlib.sha256(raw).hexdigest()
    analysis = analyze_results(json.loads(raw), results_sha256=digest)
    document = results["edd"]["document"]
    import rfc8785

    gate = decide(
        GateInputs(
            edd=Edd(Path("edd.yaml"), document, rfc8785.dumps(document)),
            verification_passed=True,
            verification_reasons=(),
            results=results,
            results_sha256=digest,
            analysis=analysis,
            expected_plan=results["plan"],
        )
    )
    by_key = {(c["target"], c["metric"]): c for c in analysis["comparisons"]}
    chosen = [by_key[(c.target, c.metric)] for c in CLAIMS]
    # The claim-level CI in the fast path is in the good direction; flip for minimize.
    lows, highs = [], []
    for spec, c in zip(CLAIMS, chosen, strict=True):
        low, high = c["ci"]["low"], c["ci"]["high"]
        if spec.goal == "minimize" and low is not None:
            low, high = -high, -low
        lows.append(low)
        highs.append(high)
    return RealOutcome(
        approved=[c["verdict"] == spec.claim for spec, c in zip(CLAIMS, chosen, strict=True)],
        p_value=[c["p_value"]["value"] for c in chosen],
        ci_low=lows,
        ci_high=highs,
        flagged=[bool(c["diagnostics"]["flagged"]) for c in chosen],
        analysis_passed=bool(analysis["decision"]["passed"]),
        gate_passed=bool(gate.passed),
        gate_reasons=list(gate.reasons),
    )


def _close(a: float | None, b: float) -> bool:
    if a is None:
        return not math.isfinite(b)
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def mismatches(study: Study, replicates: int) -> list[str]:
    """Every disagreement between the fast and the real path on the first replicates."""
    outcomes, decision = fast_study(study)
    base = template(study.values["pr_auc"]["baseline"].shape[1])
    found: list[str] = []
    for r in range(min(replicates, study.replicates)):
        real = real_study(study, r, base)
        where = f"{study.scenario.label} effects {study.effects} replicate {r}"
        for k, (spec, fast) in enumerate(zip(CLAIMS, outcomes, strict=True)):
            if real.approved[k] != bool(fast.approved[r]):
                found.append(f"{where}: {spec.target} verdict real {real.approved[k]}")
            if real.flagged[k] != bool(fast.flagged[r]):
                found.append(f"{where}: {spec.target} shape warning real {real.flagged[k]}")
            for name, got, want in (
                ("p", real.p_value[k], fast.p_value[r]),
                ("ci low", real.ci_low[k], fast.ci_low[r]),
                ("ci high", real.ci_high[k], fast.ci_high[r]),
            ):
                if not _close(got, float(want)):
                    found.append(f"{where}: {spec.target} {name} real {got} fast {want}")
        if real.analysis_passed != bool(decision[r]) or real.gate_passed != bool(decision[r]):
            found.append(
                f"{where}: decision real analysis {real.analysis_passed} gate "
                f"{real.gate_passed} fast {bool(decision[r])}: {real.gate_reasons[:2]}"
            )
    return found


# -- measurement ------------------------------------------------------------------------


@dataclass(frozen=True)
class Rate:
    hits: int
    total: int

    @property
    def value(self) -> float:
        return self.hits / self.total

    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.hits, self.total, 0.95)

    def text(self) -> str:
        low, high = self.interval()
        return f"{self.value:.3f} [{low:.3f}, {high:.3f}]"


def rate(mask: Bools) -> Rate:
    return Rate(int(np.count_nonzero(mask)), int(mask.size))


def oracle_power(good: Floats, boundary: float) -> Rate:
    """scipy's one-sided one-sample t-test on the same differences: the oracle test."""
    result = sps.ttest_1samp(good, boundary, axis=1, alternative="greater")
    return rate(np.asarray(result.pvalue) < ALPHA)


def analytic_power(scenario: Scenario, n: int, effect: float, boundary: float) -> float:
    from audit.stats.power import t_power

    return t_power(n, effect - boundary, scenario.delta_sd(), ALPHA)


@dataclass
class Cell:
    """Every measured rate of one (scenario, n) cell."""

    scenario: Scenario
    n: int
    fa_improves: Rate
    fa_non_inferior: Rate
    power_double: Rate
    power_planning: Rate
    oracle_planning: Rate
    analytic_planning: float
    power_ni: Rate
    coverage: Rate
    bound_coverage: Rate
    warned: Rate
    decision_all_null: Rate
    decision_one_null: Rate
    extra: dict[str, Rate] = field(default_factory=dict)


def _covers(outcome: ClaimOutcome, truth: float) -> Bools:
    covered: Bools = (outcome.ci_low <= truth) & (truth <= outcome.ci_high)
    return covered


def measure(
    scenario: Scenario,
    n: int,
    replicates: int,
    rng: np.random.Generator,
    fa_replicates: int | None = None,
) -> Cell:
    """One cell; the per-claim false approval may use more replicates (`fa_replicates`)."""
    studies = {name: simulate(scenario, n, e, replicates, rng) for name, e in CONFIGS.items()}
    fast = {name: fast_study(s, shape=name == "boundary") for name, s in studies.items()}
    null_claims, null_decision = fast["boundary"]
    double_claims, _ = fast["double"]
    planning_claims, _ = fast["planning"]
    pair = CLAIMS[:2]  # one improves and one non-inferior claim
    boundary = simulate(scenario, n, CONFIGS["boundary"], fa_replicates or replicates, rng, pair)
    fa, _ = fast_study(boundary, shape=False, claims=pair)
    improves = CLAIMS[0]
    truth = CONFIGS["double"][0]
    return Cell(
        scenario=scenario,
        n=n,
        fa_improves=rate(fa[0].approved),
        fa_non_inferior=rate(fa[1].approved),
        power_double=rate(double_claims[0].approved),
        power_planning=rate(planning_claims[0].approved),
        oracle_planning=oracle_power(studies["planning"].good_diffs(improves), improves.boundary),
        analytic_planning=analytic_power(scenario, n, PLANNING, improves.boundary),
        power_ni=rate(double_claims[1].approved),
        coverage=rate(_covers(double_claims[0], truth)),
        bound_coverage=rate(double_claims[0].lower < truth),
        warned=rate(null_claims[0].flagged),
        decision_all_null=rate(null_decision),
        decision_one_null=rate(fast["one-null"][1]),
        extra={"coverage_ni": rate(_covers(double_claims[1], CONFIGS["double"][1]))},
    )


# -- measured alternatives (full run only) ----------------------------------------------


def bootstrap_t_interval(
    d: Floats, confidence: float, resamples: int, rng: np.random.Generator
) -> tuple[Floats, Floats]:
    """Studentized bootstrap interval of each row's mean (one resample set for all rows)."""
    n = d.shape[1]
    idx = rng.integers(0, n, (resamples, n))
    counts = np.zeros((resamples, n))
    np.add.at(counts, (np.repeat(np.arange(resamples), n), idx.ravel()), 1.0)
    mean = d.mean(axis=1)
    se = d.std(axis=1, ddof=1) / math.sqrt(n)
    boot_mean = counts @ d.T / n  # (B, rows)
    boot_sq = counts @ (d**2).T / n
    boot_var = np.maximum(boot_sq - boot_mean**2, 0.0) * n / (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_star = (boot_mean - mean) / np.sqrt(boot_var / n)
        # A resample of one repeated value has no spread: its t is +-inf (nan at 0).
        t_star = np.where(np.isfinite(t_star), t_star, np.sign(boot_mean - mean) * np.inf)
    tail = (1 - confidence) / 2
    q_low, q_high = np.nanquantile(t_star, [tail, 1 - tail], axis=0)
    return mean - q_high * se, mean - q_low * se


def johnson_p(good: Floats, boundary: float) -> Floats:
    """One-sided p of Johnson's (1978) skewness-corrected t against `boundary`."""
    n = good.shape[1]
    mean, sd = good.mean(axis=1), good.std(axis=1, ddof=1)
    mu3 = n / ((n - 1) * (n - 2)) * np.sum((good - mean[:, None]) ** 3, axis=1)
    shift = mean - boundary
    corrected = shift + mu3 / (6 * sd**2 * n) + mu3 / (3 * sd**4) * shift**2
    p: Floats = np.asarray(sps.t.sf(corrected / (sd / math.sqrt(n)), n - 1), dtype=np.float64)
    return p


ALTERNATIVES = (
    "coverage: Student-t (used)",
    "coverage: BCa",
    "coverage: bootstrap-t",
    "false approval: t-test (used)",
    "false approval: bootstrap-t bound",
    "false approval: Johnson's t",
)


def alternatives(
    scenario: Scenario, n: int, replicates: int, resamples: int, rng: np.random.Generator
) -> dict[str, Rate]:
    """The candidate intervals and tests, measured on the same differences.

    Coverage: two-sided 95% at 2 x min_effect. False approval: the one-sided test at
    the improves boundary (for the bootstrap-t, its one-sided 1 - alpha lower bound).
    """
    claim = CLAIMS[0]
    study = simulate(scenario, n, CONFIGS["double"], replicates, rng, (claim,))
    good = study.good_diffs(claim)
    truth = CONFIGS["double"][0]
    t = t_interval(good, CONFIDENCE)
    bca = bca_interval(good, CONFIDENCE, resamples, rng)
    low, high = bootstrap_t_interval(good, CONFIDENCE, resamples, rng)
    null = simulate(scenario, n, CONFIGS["boundary"], replicates, rng, (claim,))
    at_boundary = null.good_diffs(claim)
    lower, _ = bootstrap_t_interval(at_boundary, 1 - 2 * ALPHA, resamples, rng)
    t_test = ttest.boundary_tests(at_boundary, claim.boundary, ALPHA)
    found = (
        (t.low <= truth) & (truth <= t.high),
        (bca.low <= truth) & (truth <= bca.high),
        (low <= truth) & (truth <= high),
        t_test.p_value < ALPHA,
        lower > claim.boundary,
        johnson_p(at_boundary, claim.boundary) < ALPHA,
    )
    return {name: rate(mask) for name, mask in zip(ALTERNATIVES, found, strict=True)}


# -- targets ----------------------------------------------------------------------------


def target_failures(cells: list[Cell]) -> list[str]:
    """The issue's acceptance targets; an empty list means every one is met."""
    failures: list[str] = []
    for cell in cells:
        where = f"{cell.scenario.label}, n={cell.n}"
        if not cell.scenario.symmetric:
            continue
        for name, measured in (
            ("false approval (improves at min_effect)", cell.fa_improves),
            ("false approval (non-inferior at -margin)", cell.fa_non_inferior),
        ):
            if measured.value > ALPHA + 0.01:
                failures.append(f"{where}: {name} {measured.text()} > alpha + 0.01")
        for name, measured in (
            ("CI coverage (improves)", cell.coverage),
            ("CI coverage (non-inferior)", cell.extra["coverage_ni"]),
        ):
            if not 0.93 <= measured.value <= 0.98:
                failures.append(f"{where}: {name} {measured.text()} outside [0.93, 0.98]")
        if cell.decision_all_null.value > ALPHA:
            failures.append(f"{where}: five null claims approved {cell.decision_all_null.text()}")
        if cell.scenario.noise == "gaussian" and cell.n >= 10:
            gap = abs(cell.power_planning.value - cell.oracle_planning.value)
            if gap > 0.05:
                failures.append(f"{where}: power gap to the oracle t-test {gap:.3f} > 0.05")
    return failures


# -- tables -----------------------------------------------------------------------------

HEADERS = [
    "noise",
    "n",
    "false approval, improves at min_effect",
    "false approval, non-inferior at -margin",
    "power at 2 x min_effect",
    "power at planning effect (oracle t-test; analytic)",
    "power, non-inferior at 0",
    "95% CI coverage",
    "lower-bound coverage",
    "skew warning at the boundary",
    "decision false approval: 5 null claims / 1 null of 5",
]


def table_rows(cells: list[Cell]) -> list[list[str]]:
    rows = []
    for c in cells:
        rows.append(
            [
                c.scenario.label,
                str(c.n),
                c.fa_improves.text(),
                c.fa_non_inferior.text(),
                c.power_double.text(),
                f"{c.power_planning.text()} ({c.oracle_planning.value:.3f}; "
                f"{c.analytic_planning:.3f})",
                c.power_ni.text(),
                c.coverage.text(),
                c.bound_coverage.text(),
                f"{c.warned.value:.3f}",
                f"{c.decision_all_null.text()} / {c.decision_one_null.text()}",
            ]
        )
    return rows


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def worst_cells(cells: list[Cell]) -> list[str]:
    """The worst measured cell for each target (symmetric scenarios) and for skew."""
    symmetric = [c for c in cells if c.scenario.symmetric]
    skewed = [c for c in cells if not c.scenario.symmetric]
    out = []

    def line(label: str, cell: Cell, value: Rate) -> None:
        out.append(f"- {label}: {value.text()} ({cell.scenario.label}, n={cell.n})")

    fa = max(
        ((c, r) for c in symmetric for r in (c.fa_improves, c.fa_non_inferior)),
        key=lambda x: x[1].value,
    )
    line("highest false approval at the boundary", *fa)
    cov = [(c, r) for c in symmetric for r in (c.coverage, c.extra["coverage_ni"])]
    line("lowest CI coverage", *min(cov, key=lambda x: x[1].value))
    line("highest CI coverage", *max(cov, key=lambda x: x[1].value))
    gauss = [c for c in symmetric if c.scenario.noise == "gaussian"]
    gap = max(gauss, key=lambda c: abs(c.power_planning.value - c.analytic_planning))
    out.append(
        f"- largest gap to the analytic oracle power (Gaussian): "
        f"{gap.power_planning.value - gap.analytic_planning:+.3f} "
        f"({gap.scenario.label}, n={gap.n}); gap to scipy's t-test on the same data: "
        f"{max(abs(c.power_planning.value - c.oracle_planning.value) for c in gauss):.3f}"
    )
    line(
        "highest decision false approval, 5 null claims",
        *max(((c, c.decision_all_null) for c in symmetric), key=lambda x: x[1].value),
    )
    line(
        "highest decision false approval, 1 null of 5",
        *max(((c, c.decision_one_null) for c in symmetric), key=lambda x: x[1].value),
    )
    if skewed:
        line(
            "skewed differences, highest false approval",
            *max(
                ((c, r) for c in skewed for r in (c.fa_improves, c.fa_non_inferior)),
                key=lambda x: x[1].value,
            ),
        )
        line(
            "skewed differences, lowest coverage",
            *min(((c, c.coverage) for c in skewed), key=lambda x: x[1].value),
        )
    return out
