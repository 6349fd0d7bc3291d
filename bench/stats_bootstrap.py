"""Benchmark: BCa intervals for 20 arms x 30 seeds x 10k resamples, mlaudit vs scipy per arm.

    .venv/bin/python bench/stats_bootstrap.py [--arms 20] [--seeds 30] [--resamples 10000]

mlaudit draws one batch of resample indices for all arms and turns it into a counts
matrix, so the bootstrap means of every arm come from one small matrix product; scipy
is called once per arm, as a user of scipy.stats.bootstrap would. Both compute the same
BCa interval (see tests/unit/stats/test_stats_scipy_agreement.py). Target: <= 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
from scipy import stats as sps

from audit.stats.ci import bca_interval


def best_of(repeats: int, run: Callable[[], object]) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    rng = np.random.default_rng(2021)
    diffs = rng.normal(0.01, 0.02, (args.arms, args.seeds))

    def ours() -> object:
        return bca_interval(diffs, 0.95, args.resamples, np.random.default_rng(1))

    def scipy_per_arm() -> object:
        generator = np.random.default_rng(1)
        return [
            sps.bootstrap(
                (row,),
                np.mean,
                n_resamples=args.resamples,
                method="BCa",
                confidence_level=0.95,
                rng=generator,
            ).confidence_interval
            for row in diffs
        ]

    ours()  # warm up imports and caches for both sides
    scipy_per_arm()
    ours_best, ours_median = best_of(args.repeats, ours)
    scipy_best, scipy_median = best_of(max(1, args.repeats // 2), scipy_per_arm)

    label = f"{args.arms} arms x {args.seeds} seeds x {args.resamples} BCa resamples"
    print(label)
    row = "  {:<34} best {:8.4f} s   median {:8.4f} s"
    print(row.format("mlaudit bca_interval (vectorised)", ours_best, ours_median))
    print(row.format("scipy.stats.bootstrap per arm", scipy_best, scipy_median))
    print(f"  ratio scipy / mlaudit              {scipy_best / ours_best:8.1f}x")
    budget = 1.0
    verdict = "within" if ours_best <= budget else "OVER"
    print(f"  target <= {budget:.1f} s: {verdict}")
    return 0 if ours_best <= budget else 1


if __name__ == "__main__":
    sys.exit(main())
