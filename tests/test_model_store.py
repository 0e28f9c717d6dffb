"""Model folders hold arrays and JSON, never pickles: loading one must not run code from it."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_user_error, run_gexp
from gexpcore.errors import GexpError
from gexpcore.models import NAMES
from gexpcore.models.base import Context, accessibility_features
from gexpcore.models.store import FORMAT_VERSION, load_model
from gexpcore.steps.dataset import load_dataset


class _Payload:
    """Unpickling this creates a file: proof that code from the folder ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture()
def model_copy(run_result, tmp_path) -> Path:
    copy = tmp_path / "model"
    shutil.copytree(run_result / "model", copy)
    return copy


def _predict(model_dir: Path, sim: Path, out: Path, name: str):
    return run_gexp(
        "predict", "--model", model_dir, "--atac", sim / "peaks" / "S001.narrowPeak.gz",
        "--outdir", out, "--model-name", name,
    )  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_every_model_round_trips_through_its_folder(run_result, name):
    x, expression, genes, samples, bins = load_dataset(run_result / "dataset")
    folder = run_result / "model" / name
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "model.npz"]
    assert json.loads((folder / "model.json").read_text())["format"] == FORMAT_VERSION
    with np.load(folder / "model.npz", allow_pickle=False) as arrays:
        assert all(arrays[key].dtype != object for key in arrays.files)
    model = load_model(folder)
    info = json.loads((run_result / "model" / "model_info.json").read_text())
    ctx = Context(genes=genes, bins=bins, window=info["window"])
    again = load_model(folder).predict(accessibility_features(x), ctx)
    np.testing.assert_array_equal(model.predict(accessibility_features(x), ctx), again)


def _rehash(folder) -> None:
    """Rewrite model_info.json's file hashes to match the folder's files as they are now."""
    from gexpcore.models.store import model_files

    info = json.loads((folder / "model_info.json").read_text())
    info["files"] = model_files(folder)
    (folder / "model_info.json").write_text(json.dumps(info))


def test_a_file_changed_after_training_is_refused_by_its_hash(model_copy, sim, tmp_path):
    """A model.npz that still loads (another model's arrays of the same class) but is not
    the file training wrote is refused before use, naming it."""
    import shutil

    shutil.copyfile(model_copy / "ridge" / "model.json", model_copy / "nearest" / "model.json")
    proc = _predict(model_copy, sim, tmp_path / "out", "nearest")
    assert_user_error(proc, "nearest/model.json", "not the file `gexp train` wrote")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["model.pkl", "model.npz", "object array in model.npz"])
def test_a_malicious_pickle_in_a_model_folder_is_never_loaded(model_copy, sim, tmp_path, where):
    marker = tmp_path / "code-ran"
    folder = model_copy / "mixture_window"
    payload = pickle.dumps(_Payload(marker))
    if where == "model.pkl":
        (folder / "model.json").unlink()  # an old-style folder: only the pickle
        (folder / "model.pkl").write_bytes(payload)
        expected = "retrain with `gexp train`"
    elif where == "model.npz":
        (folder / "model.npz").write_bytes(payload)
        expected = "not a readable model array file"
    else:
        with open(folder / "model.npz", "wb") as fh:
            np.savez(fh, coef=np.array([_Payload(marker)], dtype=object))
        expected = "not a readable model array file"
    _rehash(model_copy)  # a crafted folder: its model_info.json lists the payload's hash
    proc = _predict(model_copy, sim, tmp_path / "out", "mixture_window")
    assert_user_error(proc, expected)
    assert not marker.exists(), "code from the model folder ran"
    assert not (tmp_path / "out").exists()


def test_an_unknown_format_version_is_refused(model_copy, sim, tmp_path):
    record_path = model_copy / "ridge" / "model.json"
    record = json.loads(record_path.read_text())
    record_path.write_text(json.dumps({**record, "format": FORMAT_VERSION + 1}))
    _rehash(model_copy)
    proc = _predict(model_copy, sim, tmp_path / "out", "ridge")
    assert_user_error(proc, "model format version 2", "this gexp reads version 1")


def test_a_folder_naming_an_unknown_model_class_is_refused(model_copy):
    record_path = model_copy / "ridge" / "model.json"
    record = json.loads(record_path.read_text())
    record_path.write_text(json.dumps({**record, "model": "os.system"}))
    with pytest.raises(GexpError, match="unknown model 'os.system'"):
        load_model(model_copy / "ridge")


def test_npz_files_read_back_and_carry_no_python_specific_zip64_marks(tmp_path):
    """write_npz: what np.load and sp.load_npz read, with members marked as zip 2.0 (no
    forced zip64), so the bytes do not depend on the Python that wrote them (issue 15)."""
    import zipfile

    import numpy as np
    import scipy.sparse as sp
    from gexpcore.files import write_npz, write_sparse_npz

    arrays = {"a": np.arange(12.0).reshape(3, 4), "b": np.array([1, 2], dtype=np.int32)}
    write_npz(tmp_path / "x.npz", arrays)
    with np.load(tmp_path / "x.npz", allow_pickle=False) as saved:
        assert all(
            np.array_equal(saved[k], v) and saved[k].dtype == v.dtype for k, v in arrays.items()
        )
    matrix = sp.random(5, 40, density=0.2, format="csr", random_state=0, dtype=np.float32)
    write_sparse_npz(tmp_path / "m.npz", matrix)
    assert (sp.load_npz(tmp_path / "m.npz") != matrix).nnz == 0
    for name in ("x.npz", "m.npz"):
        versions = {i.create_version for i in zipfile.ZipFile(tmp_path / name).infolist()}
        assert versions == {20}, name
