"""MultiQC on a `gexp run` folder finds every sample's kallisto log, gexp's own tables and
the software versions (the Nextflow run's folder: test_nextflow_run.py)."""

from __future__ import annotations

import csv

from multiqc_run import assert_multiqc_shows_every_sample


def test_multiqc_shows_every_sample_of_a_gexp_run(gexp_test_run, tmp_path):
    with open(gexp_test_run / "pipeline_info" / "samplesheet.valid.csv") as fh:
        samples = [row["sample"] for row in csv.DictReader(fh)]
    assert len(samples) == 6
    assert_multiqc_shows_every_sample(gexp_test_run, tmp_path / "multiqc", samples)
