"""10x Genomics feature-barcode matrices (Cell Ranger ARC's filtered_feature_bc_matrix.h5).

The format (10x "HDF5 Feature-Barcode Matrix Format", v3): one group `matrix` with
`barcodes`, and a features × barcodes count matrix in compressed sparse column form
(`data`, `indices`, `indptr`, `shape`), and `features/` with `id`, `name`,
`feature_type` ("Gene Expression" or "Peaks"), `genome` and `interval`. h5py reads
and writes it; nothing here parses HDF5 by hand. The writer exists for the simulator,
so that tests exercise the same reader on the same layout as a real experiment.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ..errors import GexpError
from ..files import atomic_path, require_file

GENE_EXPRESSION = "Gene Expression"
PEAKS = "Peaks"


@dataclass
class FeatureMatrix:
    """Counts (features × barcodes, CSC) with their features and barcodes."""

    counts: sp.csc_matrix
    barcodes: list[str]
    ids: list[str]
    names: list[str]
    types: list[str]
    genomes: list[str]

    def of_type(self, feature_type: str) -> FeatureMatrix:
        keep = np.array([t == feature_type for t in self.types], dtype=bool)
        rows = np.flatnonzero(keep)
        return FeatureMatrix(
            self.counts[rows, :].tocsc(),
            self.barcodes,
            [self.ids[i] for i in rows],
            [self.names[i] for i in rows],
            [self.types[i] for i in rows],
            [self.genomes[i] for i in rows],
        )


def _strings(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def read_10x_h5(path: str | Path) -> FeatureMatrix:
    """The matrix of a Cell Ranger (ARC) h5, or a one-line GexpError naming the file."""
    with _matrix(path) as m:
        shape = tuple(int(v) for v in m["shape"][:])
        counts = sp.csc_matrix((m["data"][:], m["indices"][:], m["indptr"][:]), shape=shape)
        f = m["features"]
        n = shape[0]
        genomes = _strings(f["genome"][:]) if "genome" in f else [""] * n
        return FeatureMatrix(
            counts,
            _strings(m["barcodes"][:]),
            _strings(f["id"][:]),
            _strings(f["name"][:]),
            _strings(f["feature_type"][:]),
            genomes,
        )


def read_10x_barcodes(path: str | Path) -> tuple[list[str], list[str]]:
    """The cells' barcodes and the features' genomes, without reading the counts: enough to
    check a cell table and --genome before any work starts."""
    with _matrix(path) as m:
        f = m["features"]
        genomes = sorted(set(_strings(f["genome"][:]))) if "genome" in f else []
        return _strings(m["barcodes"][:]), genomes


@contextmanager
def _matrix(path: str | Path):
    """The h5's `matrix` group; a missing file, a non-HDF5 file or a missing dataset is one
    line naming the file."""
    import h5py

    path = require_file(path, "multiome h5")
    try:
        with h5py.File(path, "r") as h5:
            if "matrix" not in h5:
                raise GexpError(f"multiome h5 {path}: no 'matrix' group (not a Cell Ranger h5)")
            yield h5["matrix"]
    except OSError as exc:
        raise GexpError(f"multiome h5 {path}: not a readable HDF5 file ({exc})") from None
    except KeyError as exc:
        raise GexpError(f"multiome h5 {path}: missing {exc} (not a Cell Ranger h5)") from None


def write_10x_h5(path: str | Path, matrix: FeatureMatrix, intervals: list[str]) -> None:
    """Write `matrix` in the 10x v3 layout (as Cell Ranger ARC does), atomically."""
    import h5py

    counts = sp.csc_matrix(matrix.counts)
    counts.sort_indices()
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            m = h5.create_group("matrix")
            m.create_dataset("barcodes", data=np.array(matrix.barcodes, dtype="S"))
            m.create_dataset("data", data=counts.data.astype(np.int32), compression="gzip")
            m.create_dataset("indices", data=counts.indices.astype(np.int64), compression="gzip")
            m.create_dataset("indptr", data=counts.indptr.astype(np.int64))
            m.create_dataset("shape", data=np.array(counts.shape, dtype=np.int32))
            f = m.create_group("features")
            f.create_dataset("id", data=np.array(matrix.ids, dtype="S"))
            f.create_dataset("name", data=np.array(matrix.names, dtype="S"))
            f.create_dataset("feature_type", data=np.array(matrix.types, dtype="S"))
            f.create_dataset("genome", data=np.array(matrix.genomes, dtype="S"))
            f.create_dataset("interval", data=np.array(intervals, dtype="S"))
            f.create_dataset("_all_tag_keys", data=np.array([b"genome", b"interval"]))
