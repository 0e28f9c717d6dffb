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
from ..files import atomic_write, write_npz
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


def load_model(folder: str | Path) -> Model:
    """The model saved in folder, or a one-line GexpError saying why it cannot be loaded."""
    folder = Path(folder)
    record = _record(folder)
    try:
        saved = np.load(folder / ARRAYS, allow_pickle=False)
        flat = {key: saved[key] for key in saved.files}
    except (OSError, ValueError) as exc:
        raise GexpError(f"{folder / ARRAYS}: not a readable model array file ({exc})") from None
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
        model.attach({name: _member(folder, name) for name in model.members})
    return model


def _member(folder: Path, name: str) -> Model:
    try:
        return load_model(folder.parent / name)
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
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise GexpError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    version = record.get("format") if isinstance(record, dict) else None
    if version != FORMAT_VERSION:
        raise GexpError(
            f"{path}: model format version {version!r}; this gexp reads version "
            f"{FORMAT_VERSION} (retrain with this gexp, or use the gexp that wrote it)"
        )
    if record.get("model") not in NAMES:
        raise GexpError(f"{path}: unknown model {record.get('model')!r}")
    return record
