"""What every model is given and must provide."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import GexpError

log = logging.getLogger("gexp")

# A dense samples × bins float32 matrix above this many cells (~2 GB) is refused.
DENSE_LIMIT = 500_000_000


@dataclass
class Context:
    """Everything about a training run that is not the data of one fold."""

    genes: pd.DataFrame
    bins: pd.DataFrame
    seed: int = 0
    device: str = "cpu"
    window: int = 100_000
    epochs: dict[str, int] = field(default_factory=dict)
    early_stopping: bool = False
    checkpoint: Path | None = None  # where a torch model saves its progress
    checkpoint_every: float = 30.0  # seconds between checkpoints (and always at the end)
    progress: bool = False
    history: list[float] = field(default_factory=list)  # loss per epoch, filled by fit
    # validation loss per epoch, filled by fit when it holds out a validation split
    validation: list[float] = field(default_factory=list)
    # Summaries of the genes and bins alone (never of a sample): one training passes the same
    # dict to every fold and final fit, so each is built once per run, not once per fit.
    shared: dict[str, Any] = field(default_factory=dict)
    # The samplesheet groups of the samples being fitted, for a model's own nested CV (the
    # ensemble holds out whole groups inside the training samples, as train.py does outside).
    groups: tuple[str, ...] = ()
    # How the outer CV formed its folds, for the same rule in a model's nested CV: at least
    # this many whole groups per fold, and whether groups were held out at all.
    groups_per_fold: int = 1
    grouped: bool = False

    def summary(self, key: str, build: Callable[[], Any]) -> Any:
        """The summary `key` of this run's genes and bins, built by `build` on first use."""
        if key not in self.shared:
            self.shared[key] = build()
        return self.shared[key]


class Model:
    """A model that fits on training samples and predicts log1p TPM for others.

    What a fitted model is made of is declared, so that store.py can save it as
    arrays and JSON, never as a pickle: `arrays` names attributes that hold numpy
    arrays or scipy sparse matrices, `settings` attributes that hold plain numbers.
    Anything else (weights derived from the genes and bins) is rebuilt from the
    Context on first use.
    """

    name = "model"
    arrays: tuple[str, ...] = ()
    settings: tuple[str, ...] = ()
    members: tuple[str, ...] = ()  # models this one combines, saved beside it (the ensemble)

    def fit(self, x: sp.csr_matrix, y: np.ndarray, ctx: Context) -> None:
        raise NotImplementedError

    def predict(self, x: sp.csr_matrix, ctx: Context) -> np.ndarray:
        raise NotImplementedError

    def state(self) -> tuple[dict[str, np.ndarray | sp.spmatrix], dict[str, float | int | str]]:
        """The fitted model as named arrays and JSON-ready settings."""
        return (
            {key: getattr(self, key) for key in self.arrays},
            {key: getattr(self, key) for key in self.settings},
        )

    def load_state(self, arrays: dict, settings: dict) -> None:
        """The inverse of `state`: a model that predicts as the saved one did."""
        for key in self.arrays:
            setattr(self, key, arrays[key])
        for key in self.settings:
            setattr(self, key, settings[key])


def accessibility_digest(row: sp.spmatrix) -> str:
    """A fingerprint of one sample's binned accessibility (raw values, before scaling): train
    records one per training sample so that predict knows a training sample when it sees one
    again, whatever its file is called."""
    row = sp.csr_matrix(row, dtype=np.float32)
    row.sum_duplicates()
    row.eliminate_zeros()
    row.sort_indices()
    digest = hashlib.sha256(row.indices.astype(np.int64).tobytes())
    digest.update(row.data.astype(np.float32).tobytes())
    return digest.hexdigest()[:16]


def accessibility_features(x: sp.csr_matrix) -> sp.csr_matrix:
    """What every model sees: each sample's bin values per million of its total signal, log1p.

    Samples differ several-fold in how many peaks they call and how strong their
    signal is (on the Corces et al. blood cohort HSC has 2.5 times Ery's peaks and
    4 times its signal); scaling each to the same total puts them on one scale. It
    uses the sample alone, so there is nothing to fit and nothing leaks between
    folds. Chosen on real data (benchmarks/real.md): the best model gains 0.016 over
    no scaling, the baselines move by less than 0.01. log1p because signal values
    span orders of magnitude; zeros stay zero and the matrix sparse.
    """
    x = x.astype(np.float32, copy=True).tocsr()
    totals = np.asarray(x.sum(axis=1), dtype=np.float64).ravel()
    scale = np.divide(1e6, totals, out=np.zeros(len(totals)), where=totals > 0)
    x.data *= np.repeat(scale, np.diff(x.indptr)).astype(np.float32)
    x.data = np.log1p(x.data)
    return x


DENSE_MODELS = ("ridge", "seed_mlp")  # hold a dense samples × bins matrix


def fits_in_memory(name: str, shape: tuple[int, int]) -> bool:
    """Whether model `name` can train on samples × bins input (only dense models are limited)."""
    return name not in DENSE_MODELS or dense_cells(name, shape) <= DENSE_LIMIT


def dense_cells(name: str, shape: tuple[int, int]) -> int:
    """Floats a dense model holds for samples × bins input (seed_mlp: also its 500 × bins
    weights with their gradients and Adam state)."""
    cells = int(shape[0]) * int(shape[1])
    if name == "seed_mlp":
        cells += 4 * 500 * int(shape[1])
    return cells


def dense_need(name: str, shape: tuple[int, int]) -> str:
    """What a dense model would hold, in words: the part that dominates, and the total size."""
    n_samples, n_bins = int(shape[0]), int(shape[1])
    size = f"{dense_cells(name, shape) * 4 / 1e9:.1f} GB"
    if name == "seed_mlp":
        return (
            f"its {n_bins:,} × 500 first-layer weights, with their gradients and Adam state, "
            f"and the {n_samples} × {n_bins:,} input ({size} of float32)"
        )
    return f"a dense {n_samples} samples × {n_bins:,} bins matrix ({size} of float32)"


def refuse_dense(name: str, shape: tuple[int, int]) -> None:
    if dense_cells(name, shape) > DENSE_LIMIT:
        raise GexpError(
            f"model {name} needs {dense_need(name, shape)}; restrict --region or use "
            "mixture_window, which trains genome-wide"
        )
