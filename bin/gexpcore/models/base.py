"""What every model is given and must provide."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

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


class Model:
    name = "model"

    def fit(self, x: sp.csr_matrix, y: np.ndarray, ctx: Context) -> None:
        raise NotImplementedError

    def predict(self, x: sp.csr_matrix, ctx: Context) -> np.ndarray:
        raise NotImplementedError

    def to_cpu(self) -> Model:
        """A copy fit for saving (torch weights on the CPU)."""
        return self


def accessibility_features(x: sp.csr_matrix) -> sp.csr_matrix:
    """What every model sees: log1p of the bin values (zeros stay zero, the matrix sparse).

    Signal values (fold enrichment) span orders of magnitude; on raw values the
    proof of concept's network does not train at all.
    """
    x = x.astype(np.float32, copy=True)
    x.data = np.log1p(x.data)
    return x


def dense_cells(name: str, shape: tuple[int, int]) -> int:
    """Floats a dense model holds for samples × bins input (seed_mlp: also its 500 × bins
    weights with their gradients and Adam state)."""
    cells = int(shape[0]) * int(shape[1])
    if name == "seed_mlp":
        cells += 4 * 500 * int(shape[1])
    return cells


def refuse_dense(name: str, shape: tuple[int, int]) -> None:
    cells = dense_cells(name, shape)
    if cells > DENSE_LIMIT:
        raise GexpError(
            f"model {name} needs a dense {shape[0]} samples × {shape[1]} bins matrix "
            f"({cells * 4 / 1e9:.1f} GB); restrict --region or use gene_window, which "
            "trains genome-wide"
        )
