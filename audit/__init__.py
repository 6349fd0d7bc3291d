"""mlaudit: auditable ablation studies as a pull-request check.

The import package stays light: nothing heavy (mlflow, dvc, numpy, scipy) is
imported here, so `mlaudit --help` and `mlaudit edd verify` start fast.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
