"""Retrieval-quality evaluation on BEIR-layout datasets (``splare-connect eval``)."""

from __future__ import annotations

from splare_connect.evaluation.dataset import BeirDataset, QuerySet, load_beir
from splare_connect.evaluation.run import EvaluationResult, evaluate

__all__ = ["BeirDataset", "EvaluationResult", "QuerySet", "evaluate", "load_beir"]
