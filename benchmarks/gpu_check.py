"""The GPU, for real: locus_net trained on one dataset on `cuda` and then on `cpu`.

Prints both runs' held-out metrics, whether they agree within the stated tolerance, the
time per epoch on each and the peak GPU memory, as a table. Prepared for a lent
accelerator (torch, numpy, pandas, scipy there; no kallisto or internet), so it reads a
dataset folder made beforehand on a machine with the tools, e.g. the bundled cohort:

    R=tests/data/reference
    gexp run --input tests/data/samplesheet.csv --transcriptome $R/transcripts.fa.gz \\
        --gtf $R/genes.gtf.gz --chrom-sizes $R/chrom.sizes --outdir /tmp/bundled --models mean
    python benchmarks/gpu_check.py --dataset /tmp/bundled/dataset

Mixed precision on CUDA moves the losses in their low bits, and early stopping may then
stop at another epoch, so the runs are compared on the metric, not on bytes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bin"))

import gexpcore  # noqa: E402,F401  (pins the numeric kernels before numpy loads)

TOLERANCE = 0.02  # |Δ pearson_across_samples| between the cuda and cpu runs


def run(dataset: Path, device: str, epochs: int) -> dict:
    import torch
    from gexpcore.steps.train import train_models

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    out = Path(tempfile.mkdtemp(prefix=f"gpu-check-{device}-"))
    start = time.perf_counter()
    metrics = train_models(
        dataset, out, ["locus_net"], device=device, epochs={"locus_net": epochs}
    )["locus_net"]
    seconds = time.perf_counter() - start
    history = json.loads((out / "history.json").read_text())["locus_net"]
    n_epochs = sum(len(v) for k, v in history.items() if "validation" not in k)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else float("nan")
    return {
        "device": device,
        "pearson_across_samples": metrics["pearson_across_samples"],
        "seconds": seconds,
        "epochs": n_epochs,
        "per_epoch": seconds / max(n_epochs, 1),
        "peak_gpu_mib": peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, required=True, help="dataset/ of a gexp run")
    parser.add_argument("--epochs", type=int, default=10, help="locus_net epochs per fit")
    a = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device here; run it on the accelerator machine")
    rows = [run(a.dataset, "cuda", a.epochs), run(a.dataset, "cpu", a.epochs)]
    print("| device | pearson_across_samples | epochs | s/epoch | peak GPU MiB |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['device']} | {r['pearson_across_samples']:.4f} | {r['epochs']} | "
            f"{r['per_epoch']:.3f} | {r['peak_gpu_mib']:.0f} |"
        )
    gap = abs(rows[0]["pearson_across_samples"] - rows[1]["pearson_across_samples"])
    speed = rows[1]["per_epoch"] / rows[0]["per_epoch"]
    verdict = "agree" if gap <= TOLERANCE else "DISAGREE"
    print(f"\ncuda vs cpu: |Δ r| = {gap:.4f} ({verdict} within {TOLERANCE}); "
          f"an epoch {speed:.1f}x faster on cuda ({torch.cuda.get_device_name(0)})")  # fmt: skip


if __name__ == "__main__":
    main()
