"""What the append-only store refuses, in the words of the person who tried it.

Owns the refusal error and its wording; never decides what is allowed (the store
does). Every refusal is HTTP 409 RESOURCE_CONFLICT: a 4xx the MLflow client does not
retry, and not 401/403, which MLflow's trace exporter reports as an authentication
failure ("Refresh your credentials") and which the UI treats as a login problem.
"""

from __future__ import annotations

from typing import Any, Protocol

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_CONFLICT

PREFIX = "mlaudit: "


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


def is_refusal(error: BaseException) -> bool:
    return isinstance(error, MlflowException) and str(error.message).startswith(PREFIX)


def describe(value: Any) -> str:
    """A short, printable form of a user-supplied value for a message."""
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."
