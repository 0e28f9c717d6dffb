"""`gexp train`: cross-validated, honest evaluation of every model, then final models.

Each sample gets its prediction from a model that never saw it (evaluation/cv.py); everything
a model learns, including per-gene means and ridge's alpha, comes from its training
fold. Metrics (evaluation/metrics.py) are written to model/metrics.json with the out-of-fold
predictions in model/predictions.tsv. Then each model is refitted on all samples
and saved with what prediction needs (bins, genes, settings, versions) as arrays
and JSON (models/store.py), never as a pickle.

Finished folds are kept under model/work/ and torch models checkpoint during
training, so an interrupted `gexp train` resumes where it stopped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import GexpError
from ..evaluation.crossval import Folds, evaluate, evaluate_by_donor, members, nested_in_every_fold
from ..evaluation.cv import donor_folds, make_folds
from ..evaluation.default import compare_default
from ..evaluation.reliability import write_reliability
from ..files import atomic_write, remove_stale_temporaries
from ..lock import folder_lock
from ..models import NAMES, create
from ..models.base import Context, Model, accessibility_digest, accessibility_features
from ..models.ensemble import ALL_MEMBERS, MEMBERS, EnsembleModel, feasible_members, named
from ..models.store import model_files, save_model
from .dataset import load_dataset
from .options import positive_int

log = logging.getLogger("gexp")

# seed_mlp, the proof of concept's network, is opt-in (`--models ...,seed_mlp`): it scores below
# ridge on real data, and its 1,000 epochs on the CPU were most of the demo's training time.
# locus_net, the network shared by all genes, trains by default as a member of the ensemble at
# a prior weight of zero: only nested CV's evidence gives it a say (models/ensemble.py).
DEFAULT_MODELS = tuple(name for name in NAMES if name != "seed_mlp")
TORCH_MODELS = ("seed_mlp", "locus_net")  # torch is imported only when one of these trains


@dataclass
class TrainSettings:
    """The training options that `gexp train` and `gexp run` share (train_models' keywords)."""

    models: list[str] | None = None  # None: the default set (see _feasible)
    cv: int = 5
    device: str = "auto"
    seed: int = 0
    window: int = 100_000  # mixture_window: bp either side of the TSS
    epochs: dict[str, int] | None = None
    early_stopping: bool = False
    groups_per_fold: int | None = None  # None: 2 for pseudobulk datasets, else 1


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise GexpError("--device cuda: no CUDA device is available (use --device auto or cpu)")
    if device not in ("cpu", "cuda"):
        raise GexpError(f"--device must be auto, cpu or cuda, not '{device}'")
    return device


def _torch_setup(models: list[str], device: str) -> str:
    """The device for torch models, set up deterministic on the CPU; without a torch model
    torch is not imported at all (it costs seconds to import) and everything runs on the CPU."""
    if not any(name in TORCH_MODELS for name in models):
        if device == "cuda":
            resolve_device(device)  # a GPU asked for by name must exist, used or not
            log.warning(
                "--device cuda: none of the models trained (%s) uses torch, so the GPU "
                "stays idle; locus_net and seed_mlp train on it",
                ", ".join(models),
            )
        elif device not in ("auto", "cpu"):
            raise GexpError(f"--device must be auto, cpu or cuda, not '{device}'")
        return "cpu"
    import torch

    device = resolve_device(device)
    if device == "cpu":
        # One thread, whatever --threads says: torch's parallel reductions sum in an order
        # that follows the thread count (seed_mlp's folds moved between 1 and 2 threads even
        # with MKL's strict mode), and the same inputs must give the same bytes anywhere.
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)
    return device


def _dataset_key(dataset: Path) -> str:
    parts = []
    for name in sorted(os.listdir(dataset)):
        st = (dataset / name).stat()
        parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def auto_groups_per_fold(samples: pd.DataFrame) -> int:
    """2 when any sample is pseudobulk (samples.tsv names its library), else 1: with one cell
    type per fold the held-out samples differ only by donor and pseudo-replicate."""
    if "library" in samples.columns and (samples["library"].fillna("") != "").any():
        return 2
    return 1


def _key(dataset: Path, fold_of: np.ndarray, seed, window, epochs, early_stopping) -> str:
    """What a finished fold of an interrupted run must match to be reused."""
    return hashlib.sha256(
        json.dumps(
            [_dataset_key(dataset), fold_of.tolist(), seed, window, epochs or {}, early_stopping]
        ).encode()
    ).hexdigest()[:16]


def train_models(
    dataset: str | Path,
    outdir: str | Path,
    models: list[str] | None = None,
    cv: int = 5,
    device: str = "auto",
    seed: int = 0,
    window: int = 100_000,
    threads: int | None = None,
    epochs: dict[str, int] | None = None,
    early_stopping: bool = False,
    peak_mode: str = "signal",
    groups_per_fold: int | None = None,
) -> dict:
    """Cross-validate every model (evaluation/crossval.py), fit each on every sample, save
    them and write metrics, predictions and model_info.json into outdir."""
    explicit = models is not None
    models = _known(list(models or DEFAULT_MODELS))
    dataset, out = Path(dataset), Path(outdir)
    x, expression, genes, samples, bins = load_dataset(dataset)
    models = _with_members(_feasible(models, x.shape, explicit), x.shape)
    digests = {s: accessibility_digest(x[i]) for i, s in enumerate(samples["sample"])}
    x = accessibility_features(x)
    device = _torch_setup(models, device)
    y = np.log1p(expression.to_numpy(dtype=np.float64).T)  # samples × genes
    if groups_per_fold is None:
        groups_per_fold = auto_groups_per_fold(samples)
    groups = samples["group"].fillna("").tolist()
    fold_of, how = make_folds(groups, cv, seed, min_groups_per_fold=groups_per_fold)
    log.info(
        "train: %d samples, %d genes, %d bins; %s; device %s", *y.shape, x.shape[1], how, device
    )
    context = _contexts(
        genes, bins, groups, groups_per_fold, not how.startswith("shuffled"),
        seed=seed, device=device, window=window, epochs=epochs or {},
        early_stopping=early_stopping,
    )  # fmt: skip

    def key(folds: np.ndarray) -> str:
        return _key(dataset, folds, seed, window, epochs, early_stopping)

    grouped = Folds(x, y, fold_of, how, context, out / "work", key(fold_of))
    by_donor, donors = _donor_folds(samples, grouped, key)
    trained = _train_each(models, grouped, by_donor, donors, samples, genes, out)
    info = {
        "models": models,
        "peak_mode": peak_mode,
        "window": window,
        "groups_per_fold": groups_per_fold,
        "cv": how,
        **({"ensemble": trained.final_weights} if trained.final_weights else {}),
    }
    info["training_samples"] = digests  # sample → accessibility_digest, for predict's warning
    info |= write_reliability(
        out, x, y, fold_of, grouped.oof, genes["gene_id"], samples["sample"].tolist()
    )
    info["default_model"], info["default_chosen_by"] = compare_default(
        trained.metrics, grouped.oof, y, fold_of, seed
    )
    _write(out, trained, genes, bins, dataset, info)
    shutil.rmtree(out / "work", ignore_errors=True)
    return trained.metrics


def _known(models: list[str]) -> list[str]:
    for name in models:
        if name not in NAMES:
            raise GexpError(f"unknown model '{name}'; choose from {', '.join(NAMES)}")
    return models


def _contexts(
    genes, bins, groups: list[str], groups_per_fold: int, grouped: bool, seed: int, **fixed
):
    """What a model fitted on the samples `tr` of fold k sees (the run's seed + k); one
    `shared` dict holds the gene and bin summaries that every fold and model reuses."""
    shared: dict = {}
    groups_of = np.array(groups, dtype=object)
    progress = sys.stderr.isatty()

    def context(k: int, tr: np.ndarray, checkpoint: Path | None) -> Context:
        return Context(
            genes=genes, bins=bins, seed=seed + k, progress=progress, checkpoint=checkpoint,
            shared=shared, groups=tuple(groups_of[tr]), groups_per_fold=groups_per_fold,
            grouped=grouped, **fixed,
        )  # fmt: skip

    return context


def _donor_folds(samples: pd.DataFrame, grouped: Folds, key) -> tuple[Folds | None, list[str]]:
    """Leave-one-donor-out, reported beside the grouped CV, with its own work folder, key and
    out-of-fold predictions (the ensemble combines its members' under the same folds)."""
    if "donor" not in samples.columns:
        return None, []
    donors = samples["donor"].tolist()
    donor_of, donor_how = donor_folds(donors)
    if donor_of is None:
        log.info("leave-one-donor-out skipped: %s", donor_how)
        return None, []
    log.info("train: also %s", donor_how)
    work = grouped.work / "donor"
    folds = Folds(grouped.x, grouped.y, donor_of, donor_how, grouped.context, work, key(donor_of))
    return folds, sorted({d for d in donors if d})


@dataclass
class Trained:
    """What training every model produced, for the files _write writes."""

    metrics: dict = field(default_factory=dict)
    histories: dict = field(default_factory=dict)
    rows: list = field(default_factory=list)  # predictions.tsv, one frame per model
    per_gene: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)  # fit_seconds.json
    final_weights: dict = field(default_factory=dict)  # the saved ensemble's, for model_info


def _train_each(models, grouped: Folds, by_donor, donors, samples, genes, out: Path) -> Trained:
    """Each model in turn: cross-validation (and leave-one-donor-out), then the final fit."""
    trained, finals = Trained(), {}
    for name in models:
        started = time.perf_counter()
        entry, trained.per_gene[name], trained.histories[name] = evaluate(name, grouped)
        log.info(
            "%s: held-out pearson_across_samples %.3f, pearson_deviation %.3f",
            name, entry["pearson_across_samples"], entry["pearson_deviation"],
        )  # fmt: skip
        if by_donor is not None:
            entry["leave_one_donor_out"] = evaluate_by_donor(name, by_donor, donors)
            log.info(
                "%s: %s, pearson_across_samples %.3f",
                name, by_donor.how, entry["leave_one_donor_out"]["pearson_across_samples"],
            )  # fmt: skip
        trained.metrics[name] = entry
        trained.rows.append(
            _long(name, grouped.fold_of, samples["sample"], genes["gene_id"], grouped.y,
                  grouped.oof[name])
        )  # fmt: skip
        _fit_final(name, grouped, out, finals, trained)
        # Cross-validation and the final fit: what training this model costs (kept out of
        # metrics.json, which must be identical from run to run).
        trained.seconds[name] = round(time.perf_counter() - started, 2)
    return trained


def _fit_final(name: str, grouped: Folds, out: Path, finals: dict, trained: Trained) -> None:
    """The final fit: every sample trains, with the run's own seed (fold 0's)."""
    everyone = np.ones(len(grouped.y), dtype=bool)
    ctx = grouped.context(0, everyone, out / "work" / name / "final.ckpt")
    model = _final(name, grouped, ctx, out, finals, trained.metrics[name]["folds"])
    trained.histories[name]["final"] = list(ctx.history)
    if ctx.validation:
        trained.histories[name]["final validation"] = list(ctx.validation)
    if name in ALL_MEMBERS:
        finals[name] = model
    if name == "ensemble":
        trained.metrics[name]["weights"] = named(model.members, model.weights)
        trained.metrics[name]["inner_cv"] = model.inner
        trained.final_weights = _final_weights(model, trained.metrics[name])


def _with_members(models: list[str], shape: tuple[int, int]) -> list[str]:
    """The ensemble trains after its members: the three of its prior that fit are added when
    not asked for (gene_score and locus_net are members only when trained anyway)."""
    if "ensemble" not in models:
        return models
    members = [m for m in MEMBERS if m in feasible_members(shape)]
    added = [m for m in members if m not in models]
    if added:
        log.info("ensemble: also training its member(s) %s", ", ".join(added))
    return [*[m for m in models if m != "ensemble"], *added, "ensemble"]


def _feasible(models: list[str], shape: tuple[int, int], explicit: bool) -> list[str]:
    """Dense models that cannot fit: an error if asked for, left out (with a warning) by default."""
    from ..models.base import dense_need, fits_in_memory, refuse_dense

    keep = []
    for name in models:
        if not fits_in_memory(name, shape):
            if explicit:
                refuse_dense(name, shape)
            log.warning(
                "%s left out: %s would not fit in memory; mixture_window trains genome-wide",
                name,
                dense_need(name, shape),
            )
            continue
        keep.append(name)
    return keep


def _final(name: str, grouped: Folds, ctx: Context, out: Path, finals: dict, folds: list) -> Model:
    """The model fitted on every sample and saved. The ensemble reuses its members' final fits
    and chooses its weights by the rule its cross-validation scored (ensemble_weights): by
    cross-validation inside its training samples, which for the final model are all samples,
    so from the members' outer out-of-fold predictions."""
    if name == "ensemble":
        model = EnsembleModel(members(finals))
        if nested_in_every_fold([fold["inner_cv"] for fold in folds]):
            oof = [grouped.oof[m] for m in model.members]
            model.weights_from(oof, grouped.fold_of, grouped.y)
        else:
            model.set_prior(
                "prior weights, as in every cross-validation fold: nested CV could not run "
                "inside every fold's training samples"
            )
        model.attach(finals)
    else:
        model = create(name)
        model.fit(grouped.x, grouped.y, ctx)
    save_model(model, out / name)
    return model


def _final_weights(model: EnsembleModel, metrics: dict) -> dict:
    """What model_info.json and the report say of the saved ensemble: the weights `gexp
    predict` uses, the rule that chose them, and the held-out score of that rule."""
    nested = model.inner.get("folds", 0) > 0
    return {
        "weights": named(model.members, model.weights),
        "rule": (
            "cross-validation on all samples (the outer folds' out-of-fold predictions), as "
            "nested CV inside every fold's training samples"
            if nested
            else model.inner["note"]
        ),
        "held_out_pearson_across_samples": metrics["pearson_across_samples"],
        "held_out_by": "the same rule in every cross-validation fold",
    }


def _long(name, fold_of, samples, gene_ids, y, pred) -> pd.DataFrame:
    n_samples, n_genes = y.shape
    return pd.DataFrame(
        {
            "model": name,
            "fold": np.repeat(fold_of, n_genes),
            "sample": np.repeat(samples.to_numpy(), n_genes),
            "gene_id": np.tile(gene_ids.to_numpy(), n_samples),
            "observed_log1p": y.ravel(),
            "predicted_log1p": pred.ravel(),
        }
    )


def _write(out: Path, trained: Trained, genes, bins, dataset: Path, info: dict) -> None:
    from ..versions import python_versions

    with atomic_write(out / "metrics.json") as fh:
        json.dump(trained.metrics, fh, indent=2, allow_nan=True)
    with atomic_write(out / "predictions.tsv") as fh:
        pd.concat(trained.rows).to_csv(fh, sep="\t", index=False, float_format="%.5g")
    with atomic_write(out / "per_gene_r.tsv") as fh:
        table = pd.DataFrame(trained.per_gene, index=genes["gene_id"])
        table.rename_axis("gene_id").to_csv(fh, sep="\t", float_format="%.4g")
    with atomic_write(out / "history.json") as fh:
        json.dump(trained.histories, fh)
    for name in ("bins.bed", "genes.tsv"):
        shutil.copyfile(dataset / name, out / name)
    info = {
        **info,
        "files": model_files(out),  # checked by predict: a damaged file is refused
        "n_bins": len(bins),
        "chromosomes": sorted(bins["chrom"].unique().tolist()),
        "versions": python_versions(),
    }
    if "torch" in sys.modules:  # only when a torch model trained
        info["versions"]["torch"] = sys.modules["torch"].__version__
    with atomic_write(out / "model_info.json") as fh:
        json.dump(info, fh, indent=2)
    with atomic_write(out / "fit_seconds.json") as fh:  # timings: the one file that varies
        json.dump(trained.seconds, fh, indent=2)


# -- the command line: `gexp train` ------------------------------------------------------------


def training_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--models",
        help=f"comma-separated, from {', '.join(NAMES)} (default: all but the opt-in "
        "seed_mlp; dense ones that cannot fit in memory are then left out). "
        "The default model is ensemble, which also trains its members",
    )
    p.add_argument("--cv", type=positive_int, default=5, help="folds (grouped when possible)")
    p.add_argument(
        "--groups-per-fold",
        type=positive_int,
        help="whole groups held out together, at least this many per fold (default: 2 when "
        "the dataset has pseudobulk samples, else 1; folds are capped at groups / this)",
    )
    p.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu", "cuda"),
        help="for torch models (seed_mlp, locus_net); auto: cuda when available, else cpu",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed for folds and training")
    p.add_argument(
        "--window",
        type=positive_int,
        default=100_000,
        help="mixture_window: bp on each side of the TSS (default: %(default)s)",
    )
    p.add_argument("--mlp-epochs", type=positive_int, help="seed_mlp epochs (default: 1000)")
    p.add_argument(
        "--early-stopping",
        action="store_true",
        help="seed_mlp: stop on a validation split of the training samples",
    )
    if not any(a.dest == "threads" for a in p._actions):
        p.add_argument(
            "--threads",
            type=positive_int,
            help="accepted for gexp run's sake; torch on the CPU trains on one thread, so "
            "that the thread count cannot move its results",
        )
    if not any(a.dest == "peak_mode" for a in p._actions):
        p.add_argument(
            "--peak-mode",
            default="signal",
            help="how the dataset's peaks were binned (recorded for predict)",
        )


def _models(text: str | None) -> list[str] | None:
    """None: the default set (dense models that cannot fit are then left out, not refused)."""
    return [m.strip() for m in text.split(",") if m.strip()] if text else None


def _epochs(a: argparse.Namespace) -> dict[str, int]:
    epochs = {}
    if a.mlp_epochs:
        epochs["seed_mlp"] = a.mlp_epochs
    return epochs


def train_settings(a: argparse.Namespace):
    """The TrainSettings that training_options describe."""
    return TrainSettings(
        models=_models(a.models),
        cv=a.cv,
        device=a.device,
        seed=a.seed,
        window=a.window,
        epochs=_epochs(a),
        early_stopping=a.early_stopping,
        groups_per_fold=a.groups_per_fold,
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, type=Path, help="dataset/ from `gexp dataset`")
    p.add_argument("--outdir", required=True, type=Path, help="model folder to write")
    training_options(p)


def run(a: argparse.Namespace) -> None:
    with folder_lock(a.outdir, "gexp train"):
        remove_stale_temporaries(a.outdir)  # left by a killed run; nothing else writes here
        train_models(
            a.dataset,
            a.outdir,
            **asdict(train_settings(a)),
            threads=a.threads,
            peak_mode=a.peak_mode,
        )
