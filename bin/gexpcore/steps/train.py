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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import GexpError
from ..evaluation.cv import donor_folds, make_folds
from ..evaluation.metrics import fold_metrics, fold_spread, paired_comparison, summarise
from ..files import atomic_write, remove_stale_temporaries, write_npz
from ..lock import folder_lock
from ..models import BASELINES, NAMES, create
from ..models.base import Context, Model, accessibility_digest, accessibility_features
from ..models.ensemble import MEMBERS as ENSEMBLE_MEMBERS
from ..models.ensemble import EnsembleModel, combine, feasible_members, named
from ..models.store import model_files, save_model
from .dataset import load_dataset
from .options import positive_int

log = logging.getLogger("gexp")

# seed_mlp, the proof of concept's network, is opt-in (`--models ...,seed_mlp`): it scores below
# ridge on real data, and its 1,000 epochs on the CPU were most of the demo's training time.
DEFAULT_MODELS = tuple(name for name in NAMES if name != "seed_mlp")
TORCH_MODELS = ("seed_mlp",)  # torch is imported only when one of these trains


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
    explicit = models is not None
    models = list(models or DEFAULT_MODELS)
    for name in models:
        if name not in NAMES:
            raise GexpError(f"unknown model '{name}'; choose from {', '.join(NAMES)}")
    dataset, out = Path(dataset), Path(outdir)
    x, expression, genes, samples, bins = load_dataset(dataset)
    models = _with_members(_feasible(models, x.shape, explicit), x.shape)
    digests = {s: accessibility_digest(x[i]) for i, s in enumerate(samples["sample"])}
    x = accessibility_features(x)
    if list(expression.columns) != samples["sample"].tolist():
        raise GexpError(f"dataset {dataset}: samples.tsv and expression.tsv disagree")
    device = _torch_setup(models, device)
    y = np.log1p(expression.to_numpy(dtype=np.float64).T)  # samples × genes
    groups = samples["group"].fillna("").tolist()
    if groups_per_fold is None:
        groups_per_fold = auto_groups_per_fold(samples)
    fold_of, how = make_folds(groups, cv, seed, min_groups_per_fold=groups_per_fold)
    n_folds = int(fold_of.max()) + 1
    log.info(
        "train: %d samples, %d genes, %d bins; %s; device %s", *y.shape, x.shape[1], how, device
    )
    key = _key(dataset, fold_of, seed, window, epochs, early_stopping)
    grouped = not how.startswith("shuffled")  # whole groups held out (the ensemble's inner CV too)
    progress = sys.stderr.isatty()
    shared: dict = {}  # gene/bin summaries built once for every fold and model (Context.shared)
    groups_of = np.array(groups, dtype=object)

    def context(k: int, tr: np.ndarray, checkpoint: Path) -> Context:
        """What a model fitted on the samples `tr` of fold k sees (seed + k)."""
        return Context(
            genes=genes,
            bins=bins,
            seed=seed + k,
            device=device,
            window=window,
            epochs=epochs or {},
            early_stopping=early_stopping,
            progress=progress,
            checkpoint=checkpoint,
            shared=shared,
            groups=tuple(groups_of[tr]),
            groups_per_fold=groups_per_fold,
            grouped=grouped,
        )

    # Leave-one-donor-out, reported beside the grouped CV: its own work folder, key and
    # out-of-fold predictions (the ensemble combines its members' under the same folds).
    donor_of, donor_how, donor_oof = None, "", {}
    if "donor" in samples.columns:
        donors = samples["donor"].tolist()
        donor_of, donor_how = donor_folds(donors)
        if donor_of is None:
            log.info("leave-one-donor-out skipped: %s", donor_how)
        else:
            donor_key = _key(dataset, donor_of, seed, window, epochs, early_stopping)
            donor_names = sorted({d for d in donors if d})
            log.info("train: also %s", donor_how)
    metrics, histories, rows, per_gene, seconds, oof, finals = {}, {}, [], {}, {}, {}, {}
    final_weights: dict = {}
    for name in models:
        started = time.perf_counter()
        pred, means, folds, histories[name] = _cross_validate(
            name, x, y, fold_of, context, out / "work", key, oof
        )
        summary, per_gene[name] = summarise(folds, pred, y, means, fold_of)
        oof[name] = pred
        metrics[name] = {
            **summary,
            **fold_spread(folds),
            "n_samples": int(y.shape[0]),
            "n_genes": int(y.shape[1]),
            "n_folds": n_folds,
            "cv": how,
            "folds": folds,
        }
        log.info(
            "%s: held-out pearson_across_samples %.3f, pearson_deviation %.3f",
            name,
            summary["pearson_across_samples"],
            summary["pearson_deviation"],
        )
        if donor_of is not None:
            d_pred, d_means, d_folds, _ = _cross_validate(
                name, x, y, donor_of, context, out / "work" / "donor", donor_key, donor_oof
            )
            donor_oof[name] = d_pred
            for fold, donor in zip(d_folds, donor_names, strict=True):
                fold["donor"] = donor
            d_summary, _ = summarise(d_folds, d_pred, y, d_means, donor_of)
            metrics[name]["leave_one_donor_out"] = {
                **d_summary,
                **fold_spread(d_folds),
                "n_folds": len(donor_names),
                "cv": donor_how,
                "folds": d_folds,
            }
            log.info(
                "%s: %s, pearson_across_samples %.3f",
                name,
                donor_how,
                d_summary["pearson_across_samples"],
            )
        rows.append(_long(name, fold_of, samples["sample"], genes["gene_id"], y, pred))
        # The final fit: every sample trains, with the run's own seed (fold 0's).
        everyone = np.ones(len(groups), dtype=bool)
        final_ctx = context(0, everyone, out / "work" / name / "final.ckpt")
        model = _final(name, x, y, final_ctx, out, finals, metrics[name]["folds"])
        histories[name]["final"] = list(final_ctx.history)
        if final_ctx.validation:
            histories[name]["final validation"] = list(final_ctx.validation)
        if name in ENSEMBLE_MEMBERS:
            finals[name] = model
        if name == "ensemble":
            metrics[name]["weights"] = named(model.members, model.weights)
            metrics[name]["inner_cv"] = model.inner
            final_weights[name] = _final_weights(model, metrics[name])
        # Cross-validation and the final fit: what training this model costs (kept out of
        # metrics.json, which must be identical from run to run).
        seconds[name] = round(time.perf_counter() - started, 2)
    info = {
        "models": models,
        "peak_mode": peak_mode,
        "window": window,
        "groups_per_fold": groups_per_fold,
        "cv": how,
        **({"ensemble": final_weights["ensemble"]} if final_weights else {}),
    }
    info["training_samples"] = digests  # sample → accessibility_digest, for predict's warning
    info["default_model"], info["default_chosen_by"] = _compare_default(
        metrics, oof, y, fold_of, seed
    )
    _write(out, metrics, histories, rows, per_gene, genes, bins, dataset, info)
    with atomic_write(out / "fit_seconds.json") as fh:  # timings: the one file that varies
        json.dump(seconds, fh, indent=2)
    shutil.rmtree(out / "work", ignore_errors=True)
    return metrics


def _cross_validate(name, x, y, fold_of, context, work: Path, key: str, oof: dict):
    """One model's out-of-fold predictions under one fold assignment: predictions, each
    sample's training mean, per-fold metrics and training histories. `oof` holds the
    ensemble members' predictions under the same folds; fold files go to work/<model>/."""
    pred, means, folds, histories = np.zeros_like(y), np.zeros_like(y), [], {}
    if name == "ensemble":
        weights = _ensemble_weights(x, y, fold_of, context, work, key, oof)
    for k in range(int(fold_of.max()) + 1):
        tr, te = fold_of != k, fold_of == k
        ctx = context(k, tr, work / name / f"fold{k}.ckpt")
        if name == "ensemble":
            p, history, extra = _ensemble_fold(weights[k], te, oof)
        else:
            p, history, validation = _fold(name, k, x, y, tr, te, ctx, work / name, key)
            extra = {}
            if validation:  # seed_mlp with --early-stopping: its validation split's loss
                histories[f"fold{k} validation"] = validation
        pred[te], means[te] = p, y[tr].mean(axis=0)
        folds.append({"fold": k, **fold_metrics(p, y[te], y[tr].mean(axis=0)), **extra})
        histories[f"fold{k}"] = history
    return pred, means, folds, histories


def _compare_default(metrics: dict, oof: dict, y, fold_of, seed: int) -> tuple[str, str]:
    """The default model and how it was chosen, with its paired comparison against the best
    baseline kept in its metrics as `vs_best_baseline`.

    The ensemble, when trained, is the default whatever it scores: it was fixed before any
    fold was seen, so its held-out score is honest. Without it the best held-out score picks
    the default, and that score is optimistic (the same folds choose and score it).
    """

    def score(m: str) -> float:
        return np.nan_to_num(metrics[m]["pearson_across_samples"], nan=-9)

    if "ensemble" in metrics:
        default, chosen_by = "ensemble", "fixed before training"
    else:
        default, chosen_by = max(metrics, key=score), "best held-out score"
    compared = [m for m in metrics if m in BASELINES and m != "mean" and m != default]
    if compared:
        baseline = max(compared, key=score)
        metrics[default]["vs_best_baseline"] = {
            "baseline": baseline,
            **paired_comparison(oof[default], oof[baseline], y, fold_of, seed=seed),
        }
    return default, chosen_by


def _with_members(models: list[str], shape: tuple[int, int]) -> list[str]:
    """The ensemble trains after its members: those that fit are added when not asked for."""
    if "ensemble" not in models:
        return models
    members = [m for m in ENSEMBLE_MEMBERS if m in feasible_members(shape)]
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


def _fold(name, k, x, y, tr, te, ctx, work: Path, key: str):
    """Predictions for one held-out fold, reusing a finished fold of an interrupted run."""
    done = work / f"fold{k}.npz"
    if done.is_file():
        saved = np.load(done, allow_pickle=False)
        if str(saved["key"]) == key and saved["pred"].shape == (int(te.sum()), y.shape[1]):
            log.info("%s fold %d: finished in an earlier run, reused", name, k)
            validation = saved["validation"].tolist() if "validation" in saved.files else []
            return saved["pred"], saved["history"].tolist(), validation
    model = create(name)
    model.fit(x[tr], y[tr], ctx)
    pred = model.predict(x[te], ctx)
    write_npz(
        done,
        {
            "pred": pred,
            "key": key,
            "history": np.asarray(ctx.history, dtype=float),
            "validation": np.asarray(ctx.validation, dtype=float),
        },
    )
    if ctx.checkpoint is not None:
        ctx.checkpoint.unlink(missing_ok=True)
    return pred, list(ctx.history), list(ctx.validation)


def _final(name: str, x, y, ctx: Context, out: Path, finals: dict, folds: list) -> Model:
    """The model fitted on every sample and saved; the ensemble reuses its members' final fits
    and chooses its weights by the rule its cross-validation scored (_ensemble_weights)."""
    if name == "ensemble":
        model = EnsembleModel(_members(finals))
        if nested_in_every_fold([fold["inner_cv"] for fold in folds]):
            model.choose_weights(x, y, ctx)
        else:
            model.set_equal(
                "equal weights, as in every cross-validation fold: nested CV could not run "
                "inside every fold's training samples"
            )
        model.attach(finals)
    else:
        model = create(name)
        model.fit(x, y, ctx)
    save_model(model, out / name)
    return model


def _members(models) -> tuple[str, ...]:
    """The ensemble's members among the models trained (those that fit in memory)."""
    return tuple(m for m in ENSEMBLE_MEMBERS if m in models)


def _ensemble_weights(x, y, fold_of, context, work: Path, key: str, oof: dict) -> list:
    """Each fold's (weights, inner evidence), chosen by nested CV inside the fold's training
    samples and never from the fold itself. The rule the cross-validation scores, and the
    final model follows (nested_in_every_fold): nested-CV weights only where nested CV ran
    inside every fold; otherwise equal weights in every fold."""
    members = _members(oof)
    chosen = []
    for k in range(int(fold_of.max()) + 1):
        tr = fold_of != k
        done = work / "ensemble" / f"fold{k}.npz"
        weights = None
        if done.is_file():
            saved = np.load(done, allow_pickle=False)
            if str(saved["key"]) == key and len(saved["weights"]) == len(members):
                log.info("ensemble fold %d: finished in an earlier run, reused", k)
                weights, inner = saved["weights"], json.loads(str(saved["inner"]))
        if weights is None:
            model = EnsembleModel(members)
            weights, inner = model.choose_weights(x[tr], y[tr], context(k, tr, None)), model.inner
            write_npz(done, {"weights": weights, "inner": json.dumps(inner), "key": key})
        chosen.append((weights, inner))
    if nested_in_every_fold([inner for _, inner in chosen]):
        return chosen
    equal = EnsembleModel(members)
    return [(equal.set_equal(_equal_note(inner)), inner) for _, inner in chosen]


def nested_in_every_fold(inner: list[dict]) -> bool:
    """Whether nested CV chose the weights inside every outer fold (else all stay equal)."""
    return bool(inner) and all(fold.get("folds", 0) > 0 for fold in inner)


def _equal_note(inner: dict) -> str:
    return inner.get("note") or "equal weights: nested CV could not run inside every fold"


def _ensemble_fold(chosen: tuple, te: np.ndarray, oof: dict):
    """The ensemble's predictions for one held-out fold: its weights applied to the members'
    own predictions for the fold."""
    weights, inner = chosen
    members = _members(oof)
    pred = combine(weights, [oof[m][te] for m in members])
    return pred, [], {"weights": named(members, weights), "inner_cv": inner}


def _final_weights(model: EnsembleModel, metrics: dict) -> dict:
    """What model_info.json and the report say of the saved ensemble: the weights `gexp
    predict` uses, the rule that chose them, and the held-out score of that rule."""
    nested = model.inner.get("folds", 0) > 0
    return {
        "weights": named(model.members, model.weights),
        "rule": "nested CV on all samples, as in every fold" if nested else model.inner["note"],
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


def _write(out, metrics, histories, rows, per_gene, genes, bins, dataset, info):
    from ..versions import python_versions

    with atomic_write(out / "metrics.json") as fh:
        json.dump(metrics, fh, indent=2, allow_nan=True)
    with atomic_write(out / "predictions.tsv") as fh:
        pd.concat(rows).to_csv(fh, sep="\t", index=False, float_format="%.5g")
    with atomic_write(out / "per_gene_r.tsv") as fh:
        table = pd.DataFrame(per_gene, index=genes["gene_id"])
        table.rename_axis("gene_id").to_csv(fh, sep="\t", float_format="%.4g")
    with atomic_write(out / "history.json") as fh:
        json.dump(histories, fh)
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


# -- the command line: `gexp train` ------------------------------------------------------------


def training_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--models",
        help=f"comma-separated, from {', '.join(NAMES)} (default: all but the opt-in "
        "seed_mlp; dense ones that cannot fit in memory are then left out). The default model "
        "is ensemble, which also trains its members",
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
        help="for torch models (seed_mlp); auto: cuda when available, else cpu",
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
