"""What the append-only store allows, and how it words what it refuses.

Owns the allow-list (which store methods may run at all) and the refusal error with
its wording; the per-run checks (sealed or not) are the store's. Every refusal is
HTTP 409 RESOURCE_CONFLICT: a 4xx the MLflow client does not retry, and not 401/403,
which MLflow's trace exporter reports as an authentication failure ("Refresh your
credentials").
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any, Protocol

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_CONFLICT

from audit.tracking import record as run_record

PREFIX = "mlaudit: "

# Reads the REST API and the UI use. Explicit names, not prefixes: a new read MLflow
# adds is refused until it is reviewed (get_or_create_user_queue, for one, writes).
ALLOWED_READS = frozenset(
    {
        "get_experiment",
        "get_experiment_by_name",
        "search_experiments",
        "filter_active_experiment_ids",
        "get_run",
        "search_runs",
        "get_metric_history",
        "get_metric_history_bulk",
        "get_metric_history_bulk_interval",
        "get_metric_history_bulk_interval_from_steps",
        "get_max_step_for_metric",
        "get_logged_model",
        "search_logged_models",
        "get_dataset",
        "search_datasets",
        "get_dataset_experiment_ids",
        "get_trace",
        "get_trace_info",
        "batch_get_traces",
        "batch_get_trace_infos",
        "search_traces",
        "query_trace_metrics",
        "calculate_trace_filter_correlation",
        "get_assessment",
        "get_scorer",
        "list_scorers",
        "list_scorer_versions",
        "list_scorers_across_experiments",
        "get_online_scoring_configs",
        "get_active_online_scorers",
        "find_completed_sessions",
        "get_issue",
        "search_issues",
        "get_label_schema",
        "get_label_schema_by_name",
        "list_label_schemas",
        "get_review_queue",
        "get_review_queue_by_name",
        "list_review_queues",
        "list_review_queue_items",
        "search_entities_by_source",
        "search_entities_by_destination",
        "list_gateway_endpoints",
        "list_gateway_model_definitions",
        "list_gateway_guardrails",
        "list_endpoint_bindings",
        "list_endpoint_guardrail_configs",
        "list_budget_policies",
        "get_gateway_endpoint",
        "get_gateway_model_definition",
        "get_gateway_guardrail",
        "get_budget_policy",
        "search_mcp_servers",
        "get_mcp_server",
        "resolve_trace_archival_config",
        "sanitize_metric_value",  # a pure helper
        "seal_of",  # ours: the artifact guard and tests ask about seals
        "seal_of_model",
        "seals",
        # Client-side async queues: no data, nothing to protect.
        "flush_async_logging",
        "end_async_logging",
        "shut_down_async_logging",
    }
)
# Writes on an unsealed run, or on what it produces (checked in each method below).
RUN_WRITES = frozenset(
    {
        "log_param",
        "log_metric",
        "log_batch",
        "set_tag",
        "delete_tag",
        "log_inputs",
        "log_outputs",
        "record_logged_model",
        "link_traces_to_run",
        "unlink_traces_from_run",
    }
)
MODEL_WRITES = frozenset(
    {
        "set_model_versions_tags",  # the registry's back-reference, outside the record
        "create_logged_model",
        "log_logged_model_params",
        "set_logged_model_tags",
        "delete_logged_model_tag",
        "finalize_logged_model",
    }
)
TRACE_WRITES = frozenset({"start_trace", "log_spans", "set_trace_tag", "delete_trace_tag"})
# Experiment tags (the UI's description) are outside every sealed record: see
# docs/security.md, "What the seal covers".
EXPERIMENT_WRITES = frozenset({"set_experiment_tag", "delete_experiment_tag"})
ALLOWED_WRITES = frozenset(
    {
        "create_experiment",
        "create_run",
        "update_run_info",
        *RUN_WRITES,
        *MODEL_WRITES,
        *TRACE_WRITES,
        *EXPERIMENT_WRITES,
    }
)
ALLOWED = ALLOWED_READS | ALLOWED_WRITES


class SealLike(Protocol):
    @property
    def experiment_id(self) -> str: ...

    @property
    def seq(self) -> int: ...


# What a sealed run refuses, said the way a person thinks of it. Keys are the store
# methods (or the special actions "rename" and "reopen"); values finish the sentence
# "this run is sealed (sequence N): ...".
AFTER_SEAL = {
    "log_param": "parameters cannot be added after a run ends",
    "log_metric": "metrics cannot be added after a run ends",
    "log_batch": "metrics, parameters and tags cannot be added after a run ends",
    "set_tag": "tags cannot be changed after a run ends",
    "delete_tag": "tags cannot be deleted after a run ends",
    "rename": "runs cannot be renamed after they end",
    "reopen": "an ended run cannot be reopened or ended again",
    "log_inputs": "datasets cannot be added after a run ends",
    "log_outputs": "model outputs cannot be added after a run ends",
    "record_logged_model": "models cannot be logged to a run after it ends",
    "create_logged_model": "models cannot be logged to a run after it ends",
    "log_logged_model_params": "the parameters of its models cannot change after the run ends",
    "set_logged_model_tags": "the tags of its models cannot change after the run ends",
    "delete_logged_model_tag": "the tags of its models cannot change after the run ends",
    "finalize_logged_model": "its models cannot change status after the run ends",
    "link_traces_to_run": "traces cannot be linked to a run after it ends",
    "unlink_traces_from_run": "traces cannot be unlinked from a run after it ends",
    "start_trace": "traces cannot be added to a run after it ends",
    "set_trace_tag": "the tags of its traces cannot change after the run ends",
    "delete_trace_tag": "the tags of its traces cannot change after the run ends",
    "delete_run": "runs cannot be deleted",
    "restore_run": "runs cannot be deleted or restored",
    "artifacts": "its artifacts cannot change after the run ends",
}

# Operations this server never offers, with the reason a person needs.
NEVER = {
    "delete_run": "deleting a run is refused: this tracking server keeps every run",
    "restore_run": "restoring a run is refused: this tracking server never deletes runs",
    "delete_experiment": (
        "deleting an experiment is refused: this tracking server keeps every experiment"
    ),
    "restore_experiment": (
        "restoring an experiment is refused: this tracking server never deletes experiments"
    ),
    "rename_experiment": (
        "renaming an experiment is refused: sealed runs name their experiment for good"
    ),
    "delete_logged_model": "deleting a model is refused: this tracking server keeps every model",
    "delete_traces": "deleting traces is refused: this tracking server keeps every trace",
    "archive_traces": "archiving traces is refused: this tracking server keeps every trace",
}


def refusal(message: str) -> MlflowException:
    """A clean 409 over REST, with the message prefixed so a reader knows who refused."""
    return MlflowException(f"{PREFIX}{message}", error_code=RESOURCE_CONFLICT)


def sealed_refusal(seal: SealLike, action: str) -> MlflowException:
    """`this run is sealed (sequence 3): runs cannot be renamed after they end`."""
    reason = AFTER_SEAL.get(action, "its recorded data cannot change after it ends")
    return refusal(
        f"this run is sealed (experiment {seal.experiment_id}, sequence {seal.seq}): {reason}"
    )


def not_offered(name: str) -> MlflowException:
    """An operation off the allow-list: say what it is in words, and why."""
    if name in NEVER:
        return refusal(f"{NEVER[name]} (append-only)")
    words = name.replace("_", " ")
    return refusal(
        f"'{words}' is not offered by this append-only tracking server "
        "(it is refused until someone reviews that it cannot change recorded data)"
    )


def run_ended(status: str, action: str) -> MlflowException:
    reason = AFTER_SEAL.get(action, "its recorded data cannot change after it ends")
    return refusal(f"this run has ended ({status}): {reason}")


def describe(value: Any) -> str:
    """A short, printable form of a user-supplied value for a message."""
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


# Tags only the store writes (when it seals a run); a client may not set or delete them.
STORE_TAGS = (run_record.SEAL_TAG_PREFIX, run_record.SEALED_TAG)


def refuse_store_tags(tags: Any) -> None:
    # Only sealing writes these; a forged one would also block the real seal's insert.
    refuse_store_keys(str(tag.key) for tag in tags or [])


def refuse_store_keys(keys: Any) -> None:
    for key in keys:
        if str(key).startswith(STORE_TAGS):
            raise refusal(
                f"the tag {key} is written only when a run is sealed; it cannot be set "
                "or deleted by hand"
            )


def policed(method: Callable[..., Any], depth: contextvars.ContextVar[int]) -> Callable[..., Any]:
    """`method`, run one level deeper in `depth`: what an allowed call does inside the
    store (MLflow's own helper calls) is not judged again by the allow-list."""

    def call(*args: Any, **kwargs: Any) -> Any:
        token = depth.set(depth.get() + 1)
        try:
            return method(*args, **kwargs)
        finally:
            depth.reset(token)

    return call
