"""Metrics: medication recommendation (Jaccard, F1, PRAUC, DDI rate, #meds) with bootstrap intervals."""

from kgrec.metrics.medrec import METRICS, bootstrap, ddi_counts, evaluate_predictions, per_visit, summarise

__all__ = ["METRICS", "bootstrap", "ddi_counts", "evaluate_predictions", "per_visit", "summarise"]
