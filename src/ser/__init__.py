"""Speech emotion recognition on RAVDESS: the library behind the DVC stages.

Importing `ser` before numpy and PyTorch load keeps them on code paths that
every x86-64 CPU with AVX2 runs alike (README, "The same bits on every CPU"):

- numpy's AVX-512 kernels (exp, log, sin, cos...) round differently in the
  last bit; they changed every augmented copy, and from there every Whisper
  feature, between an AVX-512 Intel Xeon and an AVX2-only AMD EPYC;
- CTranslate2 runs its int8 matrix products on MKL on Intel CPUs and on
  oneDNN elsewhere: the Whisper features of the two agree to a cosine of
  0.995 only. oneDNN everywhere, held to AVX2, gives one result;
- PyTorch's own kernels are dispatched by instruction set (ATen), and MKL's
  matrix products by CPU model: MKL's AVX2 branch gives the same results on
  every Intel CPU with AVX2. On other vendors MKL takes its automatic branch
  (Intel documents no branch that is both fast and cross-vendor: "COMPATIBLE"
  is SSE2 and made the Whisper encoder 4x slower), so there the drift
  tolerance decides (README, "The same bits on every CPU").

Stage scripts therefore `import ser` first. A variable already set wins.
"""

import os
import sys
import warnings

__version__ = "0.1.0"

CPU_CODE_PATHS = {
    # numpy >= 2.4's AVX-512 groups: Skylake-X and later, Ice Lake, Sapphire Rapids (each is dispatched apart).
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2",
    "CT2_USE_MKL": "0",
    "ONEDNN_MAX_CPU_ISA": "AVX2",          # CTranslate2's int8 products, the spectrogram archs' convolutions
}

for _name, _value in CPU_CODE_PATHS.items():
    os.environ.setdefault(_name, _value)


def usable_cores(cores: int | None = 0) -> int:
    """The CPU cores one job works on: `cores` where it is positive (params' `cores`: one job's share of
    the machine, e.g. under `dvc queue start -j 2`), else every core this process may run on. That is
    its CPU affinity, which `taskset`, cgroup cpusets and batch schedulers narrow; os.cpu_count() is
    the whole machine."""
    if cores:
        return int(cores)
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # no affinity on macOS and Windows
        return os.cpu_count() or 1

_numpy_core = getattr(sys.modules.get("numpy"), "_core", None)
if getattr(getattr(_numpy_core, "_multiarray_umath", None), "__cpu_features__", {}).get("X86_V4"):
    warnings.warn("numpy was imported before ser, so its AVX-512 kernels stay on in this process: augmented "
                  "copies and features may differ in the last bits from other CPUs' (import ser first)",
                  RuntimeWarning, stacklevel=2)
