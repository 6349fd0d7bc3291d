"""Import slow modules in a background thread while the caller does other work.

`ablate run` waits on git, ssh-keygen and a `dvc status` child before its first trial;
importing Hydra's parser or MLflow's client meanwhile takes them off the critical path.
The first real use waits for the import through Python's import lock, so nothing
changes but time; a failure is left for that real import to report.
"""

from __future__ import annotations

import contextlib
import importlib
import threading


def preload(*modules: str) -> None:
    threading.Thread(target=_import, args=modules, name="mlaudit-preload", daemon=True).start()


def _import(*modules: str) -> None:
    for module in modules:
        with contextlib.suppress(Exception):  # the real import reports any failure
            importlib.import_module(module)
