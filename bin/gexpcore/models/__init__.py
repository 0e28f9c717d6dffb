"""The models gexp trains: baselines, the proof of concept's network, the mixture model, the
network shared by all genes (locus_net) and the ensemble (the default)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import GexpError

if TYPE_CHECKING:  # the names stay importable without numpy, pandas or torch (the CLI needs them)
    from .base import Model

NAMES = (
    "mean",
    "ridge",
    "nearest",
    "gene_score",
    "seed_mlp",
    "mixture_window",
    "locus_net",
    "ensemble",
)
BASELINES = ("mean", "ridge", "nearest", "gene_score")


def create(name: str) -> Model:
    """A new, unfitted model; torch is imported only for the network that needs it."""
    if name == "seed_mlp":
        from .neural import SeedMLP

        return SeedMLP()
    if name == "locus_net":
        from .locus_net import LocusNetModel

        return LocusNetModel()
    if name == "mixture_window":
        from .mixture import MixtureWindowModel

        return MixtureWindowModel()
    if name == "ensemble":
        from .ensemble import EnsembleModel

        return EnsembleModel()
    from .baselines import GeneScoreModel, MeanModel, NearestModel, RidgeModel

    classes = {
        "mean": MeanModel,
        "ridge": RidgeModel,
        "nearest": NearestModel,
        "gene_score": GeneScoreModel,
    }
    if name not in classes:
        raise GexpError(f"unknown model '{name}'; choose from {', '.join(NAMES)}")
    return classes[name]()


__all__ = ["BASELINES", "NAMES", "create"]
