"""Experiment Design Documents: loading, validation, canonical digest, approvals, trust."""

from audit.edd.load import load_edd
from audit.edd.model import Edd

__all__ = ["Edd", "load_edd"]
