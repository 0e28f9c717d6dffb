"""The same numeric kernels on every machine, so that the same inputs give the same bytes.

numpy and OpenBLAS pick their code for the CPU they find. numpy's AVX-512 log1p, exp and
log differ from its baseline ones in the last bit (measured: numpy 2.4 on an AVX-512 EPYC
against NPY_DISABLE_CPU_FEATURES), OpenBLAS's kernels differ between CPU families
(OPENBLAS_CORETYPE Haswell, SkylakeX, Zen, Sandybridge all gave other bits for ridge's and
mixture_window's coefficients), and some of its routines split sums across threads. A
last bit is enough to move a 6-digit rounding in metrics.json or an ensemble weight. So
before numpy is first imported, gexp asks for one code path everywhere:

- numpy's dispatched SIMD targets off (its baseline code runs on every CPU of the arch);
- OpenBLAS on one thread, with the Haswell kernels on x86_64 CPUs that have AVX2 and FMA
  (every server CPU since 2013; others keep OpenBLAS's choice, logged by `gexp -v`);
- MKL (PyTorch's CPU BLAS, and numpy's where built with it) in its strict conditional
  numerical reproducibility mode, which gives the same bits for any thread count (seed_mlp
  with --threads 1 and 2 differed without it), and PyTorch's own kernels at AVX2.

The dense linear algebra here is small (samples × samples, 30 × 30), so one BLAS thread
costs little. This must run before numpy is imported: gexpcore/__init__.py calls it, and
every entry point (bin/gexp, the `gexp` script, tests/conftest.py) imports gexpcore first.
"""

from __future__ import annotations

import os
import platform
import sys

# numpy 2.4's dispatch groups and the older per-feature names (unknown names are ignored).
_NUMPY_DISPATCH = (
    "X86_V3 X86_V4 AVX512_ICL AVX512_SPR AVX512F AVX512CD AVX512_KNL AVX512_KNM AVX512_SKX "
    "AVX512_CLX AVX512_CNL AVX AVX2 FMA3 F16C ASIMDHP ASIMDDP ASIMDFHM SVE VSX3 VSX4"
)
PINNED: dict[str, str] = {}  # what pin() set, for the debug log


def _x86_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _wanted() -> dict[str, str]:
    env = {
        "NPY_DISABLE_CPU_FEATURES": _NUMPY_DISPATCH,
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_CBWR": "COMPATIBLE,STRICT",
    }
    if platform.machine() in ("x86_64", "AMD64") and {"avx2", "fma"} <= _x86_flags():
        env |= {"OPENBLAS_CORETYPE": "Haswell", "MKL_CBWR": "AVX2,STRICT"}
        env["ATEN_CPU_CAPABILITY"] = "avx2"
    return env


def pin() -> None:
    """Set the variables above for this process (and the tools it starts), unless numpy is
    already imported: then it is too late, and `pinned()` says so."""
    if "numpy" in sys.modules:
        return
    for key, value in _wanted().items():
        if os.environ.get(key) != value:
            PINNED[key] = value
        os.environ[key] = value


def pinned() -> bool:
    """Whether this process computes with the pinned kernels (numpy imported after pin())."""
    return all(os.environ.get(k) == v for k, v in _wanted().items())
