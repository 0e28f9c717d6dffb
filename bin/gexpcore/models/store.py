"""Model folders: arrays in `.npz` and settings in JSON with a format version, never pickles.

A model folder is something people share, and unpickling runs whatever code the
file names; so a folder holds only `model.npz` (numeric arrays, read with
allow_pickle=False) and `model.json` (the model's name, its settings and
FORMAT_VERSION). The model's class comes from the name through models.create,
never from the folder. `model.json` is written last: a folder without it is
unfinished and is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ..errors import GexpError
from ..files import (
    FORMAT_ERRORS,
    atomic_write,
    format_reason,
    reading,
    require_file,
    sha256_file,
    write_npz,
)
from . import NAMES, create
from .base import Model

FORMAT_VERSION = 1
ARRAYS, SETTINGS = "model.npz", "model.json"
_SPARSE_PARTS = ("data", "indices", "indptr", "shape")


def save_model(model: Model, folder: str | Path) -> Path:
    """Write `model.npz` and then `model.json` into folder; returns the folder."""
    folder = Path(folder)
    arrays, settings = model.state()
    flat, sparse = {}, []
    for key, value in arrays.items():
        if sp.issparse(value):
            csr = sp.csr_matrix(value)
            sparse.append(key)
            for part in _SPARSE_PARTS:
                flat[f"{key}.{part}"] = np.asarray(getattr(csr, part))
        else:
            flat[key] = np.asarray(value)
    write_npz(folder / ARRAYS, flat)
    record = {"format": FORMAT_VERSION, "model": model.name, "sparse": sparse, "settings": settings}
    with atomic_write(folder / SETTINGS) as fh:
        json.dump(record, fh, indent=2)
    return folder


def load_model(folder: str | Path, digests: dict[str, str] | None = None) -> Model:
    """The model saved in folder, or a one-line GexpError saying why it cannot be loaded.

    `digests` (model_info.json's `files`, keyed by path in the model folder) are checked
    for this model's files and its members' before anything is read from them."""
    folder = Path(folder)
    digests = digests or {}
    check_model_files(
        folder.parent, digests, [f"{folder.name}/{SETTINGS}", f"{folder.name}/{ARRAYS}"]
    )
    record = _record(folder)
    path = require_file(folder / ARRAYS, "model arrays")
    try:
        with np.load(path, allow_pickle=False) as saved:
            flat = {key: saved[key] for key in saved.files}
    except FORMAT_ERRORS as exc:  # never unpickled: a pickle or object array is refused here
        raise GexpError(f"{path}: not a readable model array file ({format_reason(exc)})") from None
    sparse = record.get("sparse", [])
    parts = {f"{key}.{part}" for key in sparse for part in _SPARSE_PARTS}
    arrays = {key: value for key, value in flat.items() if key not in parts}
    for key in sparse:
        data, indices, indptr, shape = (flat[f"{key}.{part}"] for part in _SPARSE_PARTS)
        arrays[key] = sp.csr_matrix((data, indices, indptr), shape=tuple(shape))
    model = create(record["model"])
    try:
        model.load_state(arrays, record.get("settings", {}))
    except (KeyError, ValueError, RuntimeError) as exc:
        raise GexpError(
            f"{folder}: the saved {record['model']} model is incomplete ({exc})"
        ) from None
    if model.members:  # an ensemble: its members are the models saved beside it
        model.attach({name: _member(folder, name, digests) for name in model.members})
    return model


RELIABILITY = ("intervals.tsv", "similarity.npz", "per_gene_r.tsv")  # read by predict


def model_files(folder: Path) -> dict[str, str]:
    """Every file of a finished model folder (bins, genes, each model's arrays and settings)
    with its SHA-256, for model_info.json: predict refuses a folder whose files changed."""
    names = ["bins.bed", "genes.tsv"]
    names += sorted(
        str(p.relative_to(folder)) for p in folder.glob(f"*/{SETTINGS}") if p.parent.name in NAMES
    )
    names += [str(Path(n).parent / ARRAYS) for n in names[2:]]
    names += [n for n in RELIABILITY if (folder / n).is_file()]
    return {name: sha256_file(folder / name) for name in sorted(names)}


def check_model_files(folder: Path, recorded: dict[str, str], names: list[str]) -> None:
    """One line naming the first of `names` that is not the file `gexp train` wrote (damaged,
    cut short by a copy, or replaced); files absent or unrecorded (an older model folder) are
    left to the loaders' own messages. Only the files a prediction reads are hashed."""
    for name in names:
        path, digest = folder / name, recorded.get(name)
        if digest is not None and path.is_file() and sha256_file(path) != digest:
            raise GexpError(
                f"model file {path}: not the file `gexp train` wrote (its SHA-256 differs from "
                "model_info.json's): damaged, truncated or replaced; copy the model folder again "
                "or retrain"
            )


def _member(folder: Path, name: str, digests: dict[str, str]) -> Model:
    try:
        return load_model(folder.parent / name, digests)
    except GexpError as exc:
        raise GexpError(f"{folder}: its member {name} cannot be loaded: {exc}") from None


def _record(folder: Path) -> dict:
    path = folder / SETTINGS
    if not path.is_file():
        if (folder / "model.pkl").exists():
            raise GexpError(
                f"{folder}: saved by an older gexp as a pickle, which gexp no longer loads "
                "(loading a pickle can run code); retrain with `gexp train`"
            )
        raise GexpError(f"{folder}: no {SETTINGS}; not a finished model folder")
    with reading(path, "model settings"):
        record = json.loads(path.read_text())
    version = record.get("format") if isinstance(record, dict) else None
    if version != FORMAT_VERSION:
        raise GexpError(
            f"{path}: model format version {version!r}; this gexp reads version "
            f"{FORMAT_VERSION} (retrain with this gexp, or use the gexp that wrote it)"
        )
    if record.get("model") not in NAMES:
        raise GexpError(f"{path}: unknown model {record.get('model')!r}")
    return record
