"""The models gexp trains: baselines, the proof of concept's network, and the gene-centric model."""

from __future__ import annotations

from ..errors import GexpError
from .base import Context, Model
from .baselines import MeanModel, NearestModel, RidgeModel

NAMES = ("mean", "ridge", "nearest", "seed_mlp", "gene_window")


def create(name: str) -> Model:
    if name in ("seed_mlp", "gene_window"):
        from .neural import GeneWindowModel, SeedMLP

        return SeedMLP() if name == "seed_mlp" else GeneWindowModel()
    classes = {"mean": MeanModel, "ridge": RidgeModel, "nearest": NearestModel}
    if name not in classes:
        raise GexpError(f"unknown model '{name}'; choose from {', '.join(NAMES)}")
    return classes[name]()


__all__ = ["NAMES", "Context", "Model", "create"]
