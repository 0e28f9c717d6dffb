"""Real data decides: models compared on held-out populations of a real paired cohort.

tests/data/corces2016 is chromosomes 17 and 19 of Corces et al. 2016 (14 sorted blood
populations, real ATAC-seq peaks and RNA-seq; provenance in tests/data/README.md).
`gexp run` with its defaults must choose a learned model, and that model must beat
every baseline that the field would reach for, on the honest metrics.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_gexp
from gexpcore.models import BASELINES

REAL = Path(__file__).parent / "data" / "corces2016"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corces2016") / "results"
    proc = run_gexp(
        "run",
        "--input",
        REAL / "samplesheet.csv",
        "--gtf",
        REAL / "genes.gtf.gz",
        "--chrom-sizes",
        REAL / "hg19.chrom.sizes",
        "--outdir",
        out,
    )  # gexp run's defaults: the default set and the default model, as users get them
    assert proc.returncode == 0, proc.stderr
    return out


def test_the_default_best_model_is_learned_and_beats_every_baseline(real_run):
    metrics = json.loads((real_run / "model" / "metrics.json").read_text())
    best = json.loads((real_run / "model" / "model_info.json").read_text())["default_model"]
    assert best not in BASELINES, metrics
    assert metrics[best]["cv"] == "group 4-fold over 14 groups"
    for baseline in ("ridge", "nearest", "gene_score"):
        for metric in ("pearson_across_samples", "pearson_deviation", "median_gene_r_pooled"):
            assert metrics[best][metric] > metrics[baseline][metric], (best, baseline, metric)
    assert metrics[best]["skill_over_mean"] > 0
    assert metrics["mean"]["pearson_across_samples"] == 0


def test_the_real_subset_is_the_cohort_its_readme_describes(real_run):
    qc = json.loads((real_run / "dataset" / "qc.json").read_text())
    assert qc["n_samples"] == 14 and qc["n_genes_in_region"] == 2478
    sheet = pd.read_csv(REAL / "samplesheet.csv")
    assert (sheet["sample"] == sheet["group"]).all()
    assert {"HSC", "Ery", "Mono", "CD4", "CD8"} <= set(sheet["sample"])
