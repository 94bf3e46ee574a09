"""PyHealth's models (GAMENet, SafeDrug, RETAIN, MoleRec) as recommenders of the transfer protocol.

``kgrec transfer -m GAMENet`` trains PyHealth's model in every mode on exactly the visits kgrec's models
get (the same pooled cohort, the same training and validation patients), so the table shows what an
ID-based model gets next to the graph-grounded ones. PyHealth runs in its own virtual environment
through :mod:`kgrec.benchmark`'s file exchange (``kgrec benchmark --setup-pyhealth`` creates it); one
runner call trains the model and scores every visit it may later be asked for, so a fit is one
external training however many test sets are scored afterwards (zero-shot scores every fold's test
patients, then all target visits).

Training settings are ``kgrec benchmark``'s defaults; ``KGREC_PYHEALTH_EPOCHS``, ``KGREC_PYHEALTH_DEVICE``,
``KGREC_PYHEALTH_TIMEOUT`` (seconds per runner call) and ``KGREC_PYHEALTH_HISTORY`` (the N most recent
earlier visits) override them; ``KGREC_PYHEALTH_VENV`` names the venv.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from kgrec.benchmark.core import PYHEALTH_MODELS, _run_external
from kgrec.benchmark.exchange import load_smiles
from kgrec.benchmark.pyhealth_env import RUNNER, default_venv, resolve_pyhealth
from kgrec.cohort.base import Cohort
from kgrec.cohort.ddi import ddi_matrix
from kgrec.cohort.samples import Samples, build_samples
from kgrec.errors import KgrecError, OptionError
from kgrec.models.base import Recommender

# The command that runs PyHealth's models (``REQUEST OUT`` appended). None: the venv's Python with
# kgrec.benchmark's pyhealth_runner.py. Tests put a stand-in runner here.
RUNNER_CMD: list[str] | None = None
_READY: dict[str, list[str]] = {}  # venv -> runner command, once PyHealth imported there
SMILES_MODELS = ("SafeDrug", "MoleRec")


def pyhealth_name(name: str) -> str | None:
    """PyHealth's spelling of ``name`` (case-insensitive, as ``kgrec benchmark --models``), or None."""
    return {m.lower(): m for m in PYHEALTH_MODELS}.get(str(name).strip().lower())


@dataclass(frozen=True)
class PyHealthSettings:
    """How the runner trains: ``run_benchmark``'s defaults (best epoch by validation PRAUC)."""

    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    patience: int | None = 5
    device: str | None = None
    timeout: float | None = None  # seconds one runner call may take
    max_history: int | None = None  # the N most recent earlier visits (None: all)
    seed: int = 42

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PyHealthSettings:
        env = os.environ if environ is None else environ

        def read(var: str, kind, minimum):
            raw = env.get(var, "").strip()
            if not raw:
                return None
            try:
                value = kind(raw)
            except ValueError:
                raise OptionError(f"{var}={raw!r}: expected a {kind.__name__}") from None
            if value < minimum:
                raise OptionError(f"{var}={raw!r}: must be at least {minimum}")
            return value

        epochs, timeout, history = read("KGREC_PYHEALTH_EPOCHS", int, 1), read("KGREC_PYHEALTH_TIMEOUT", float, 1), read("KGREC_PYHEALTH_HISTORY", int, 0)
        given = {"epochs": epochs, "timeout": timeout, "max_history": history, "device": env.get("KGREC_PYHEALTH_DEVICE", "").strip() or None}
        return cls(**{k: v for k, v in given.items() if v is not None})

    def runner_config(self) -> dict:
        """The request's ``config`` (the keys ``kgrec benchmark`` sends)."""
        return {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr, "patience": self.patience, "seed": self.seed,
                "device": self.device, "max_history": self.max_history}


def runner_command() -> list[str]:
    """The command that runs PyHealth's models; a :class:`KgrecError` saying how to set PyHealth up when
    its venv is missing or PyHealth does not import there (checked once per venv and process)."""
    if RUNNER_CMD is not None:
        return list(RUNNER_CMD)
    venv = default_venv()
    if str(venv) not in _READY:
        env = resolve_pyhealth(venv=venv, auto_setup=False)
        if not env.ok:
            hint = "" if "--setup-pyhealth" in env.reason else "; `kgrec benchmark --setup-pyhealth` creates or repairs it"
            raise KgrecError(f"PyHealth's models run in their own venv ({venv}; $KGREC_PYHEALTH_VENV), which is not usable: {env.reason}{hint}")
        _READY[str(venv)] = [str(env.python), str(RUNNER)]
    return list(_READY[str(venv)])


class PyHealthRecommender(Recommender):
    """One PyHealth model behind the recommender interface.

    :meth:`fit` only remembers the cohort and the training and validation visits. The first
    :meth:`predict_proba` runs the runner once: it trains on ``train`` (choosing its epoch on ``val``)
    and returns probabilities for the validation visits and for every evaluable visit of the patients in
    neither set. Later calls answer any subset of those visits by their row in ``cohort.visits``; a visit
    it did not score is an error, never a guess.
    """

    name = "pyhealth"
    uses_workspace = True

    def __init__(self, drug_vocab: list[str], model: str, workspace: Path | str, settings: PyHealthSettings | None = None):
        super().__init__(drug_vocab)
        canonical = pyhealth_name(model)
        if canonical is None:
            raise OptionError(f"unknown PyHealth model {model!r}; choose from {', '.join(PYHEALTH_MODELS)}")
        self.model, self.workspace = canonical, Path(workspace)
        self.settings = settings or PyHealthSettings.from_env()
        self._data: tuple[Cohort, Samples, Samples] | None = None
        self._rows: dict[int, int] = {}
        self._proba: np.ndarray | None = None

    def fit(self, cohort: Cohort, train: Samples, val: Samples) -> PyHealthRecommender:
        if len(train) == 0:
            raise ValueError(f"{self.model}: no training visits")
        self._data, self._rows, self._proba = (cohort, train, val), {}, None
        return self

    def folder(self) -> Path:
        """Where this fit's request, runner log and probabilities go: one folder per model, vocabulary,
        training and validation patients and settings (a rerun of the same fit overwrites it)."""
        if self._data is None:
            raise ValueError(f"{self.model}: predict before fit")
        _, train, val = self._data
        key = json.dumps([self.drug_vocab, sorted(map(str, set(train.patient_id))), sorted(map(str, set(val.patient_id))), asdict(self.settings)])
        return self.workspace / "reports" / "transfer" / "pyhealth" / f"{self.model}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"

    def _score(self) -> None:
        folder = self.folder()
        cohort, train, val = self._data
        seen = set(map(str, train.patient_id)) | set(map(str, val.patient_id))
        test = build_samples(cohort, [p for p in cohort.visits["patient_id"].astype(str).unique() if p not in seen])
        vocab = self.drug_vocab
        ddi = ddi_matrix(cohort.ddi, vocab) if cohort.ddi is not None else np.zeros((len(vocab), len(vocab)), np.int8)
        smiles = load_smiles(os.environ.get("KGREC_DATA")) if self.model in SMILES_MODELS else None
        shutil.rmtree(folder / "out", ignore_errors=True)  # never read an earlier run's probabilities
        s = self.settings
        results, info = _run_external(runner_command(), [self.model], folder, cohort, {"train": train, "val": val, "test": test}, vocab, ddi,
                                      s.runner_config(), smiles, folder.name, s.timeout, s.max_history)
        r = results[self.model]
        if r.status != "ok":
            detail = (r.info or {}).get("traceback") or info.get("traceback")
            tail = f"\n...{detail[-1500:]}" if detail and len(detail) > 1500 else (f"\n{detail}" if detail else "")
            raise KgrecError(f"PyHealth {self.model} failed: {r.error} (runner log: {info['log']}){tail}")
        self._proba = np.vstack([r.val, r.test])
        self._rows = {int(i): k for k, i in enumerate([*val.visit_idx, *test.visit_idx])}
        keep = ("train_seconds", "train_cpu_seconds", "infer_seconds", "n_params", "device", "notes")
        self.chosen["pyhealth"] = {
            "model": self.model, "runner_seconds": info["seconds"], "versions": info.get("versions"), **{k: r.info[k] for k in keep if k in r.info},
            "settings": s.runner_config() | {"timeout": s.timeout}, "n_train": len(train), "n_val": len(val), "n_scored": len(test), "folder": str(folder),
            **({"smiles": "mappings/atc3_smiles.tsv" if smiles else "PyHealth's own ATC resource"} if self.model in SMILES_MODELS else {}),
        }

    def predict_proba(self, cohort: Cohort, samples: Samples) -> np.ndarray:
        if self._data is not None and cohort is not self._data[0]:
            raise ValueError(f"{self.model}: asked about another cohort than the one it was fitted on")
        if self._proba is None:
            self._score()
        missing = [int(i) for i in samples.visit_idx if int(i) not in self._rows]
        if missing:
            raise ValueError(f"{self.model}: {len(missing)} of the {len(samples)} visits asked were not scored by PyHealth (it scores the validation "
                             f"visits and those of patients outside training and validation); visit rows {missing[:5]}")
        return self._proba[[self._rows[int(i)] for i in samples.visit_idx]] if len(samples) else np.zeros((0, len(self.drug_vocab)))


def check_ready(models: Sequence[str]) -> None:
    """Before any training: PyHealth's venv and the runner settings, when ``models`` name a PyHealth model."""
    if any(pyhealth_name(m) for m in models):
        PyHealthSettings.from_env()
        runner_command()
