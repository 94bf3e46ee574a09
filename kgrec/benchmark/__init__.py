"""`kgrec benchmark`: kgrec's baselines, teacher and student beside PyHealth's drug-recommendation models
(GAMENet, SafeDrug, RETAIN, MoleRec) on the same visits, split and DDI matrix; PyHealth runs in its own
virtual environment and exchanges visits and probabilities through files."""

from kgrec.benchmark.core import (
    BASELINES,
    DEFAULT_MODELS,
    KGREC_MODELS,
    PYHEALTH_MODELS,
    BenchmarkResult,
    resolve_models,
    run_benchmark,
)
from kgrec.benchmark.pyhealth_env import (
    PyHealthEnv,
    default_venv,
    resolve_pyhealth,
    setup_pyhealth,
)

__all__ = [
    "BASELINES", "DEFAULT_MODELS", "KGREC_MODELS", "PYHEALTH_MODELS", "BenchmarkResult", "PyHealthEnv",
    "default_venv", "resolve_models", "resolve_pyhealth", "run_benchmark", "setup_pyhealth",
]
