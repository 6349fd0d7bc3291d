"""Statistics of an ablation study: paired differences, CIs, exact tests, Holm, the decision.

Imports numpy and scipy, so only the `analyze` command (and other heavy paths) may import it.
"""

from __future__ import annotations

from audit.stats.analysis import DEFAULT_RESAMPLES, DEFAULT_SEED, analyze_results, check_results

__all__ = ["DEFAULT_RESAMPLES", "DEFAULT_SEED", "analyze_results", "check_results"]
