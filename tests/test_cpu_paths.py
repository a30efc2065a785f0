"""The same bits on every x86-64 CPU: what the pipeline pins, and what it proves on the CPU at hand.

Measured on an AVX-512 Xeon (docs/experiments.md, "The same bits on every CPU"): numpy's
AVX-512 kernels changed the time stretch and pitch shift of augmented copies,
OpenBLAS's CPU-specific sgemm changed Whisper's log-mel, and from there every
feature. `import ser` keeps numpy on its AVX2 paths, and the mel projection
does not go through BLAS.
"""

import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import ser, sys
import numpy as np
from ser.augment import augment_signal, copy_generator
from ser.config import Augment
from ser.features import make_recipe
t = np.arange(24000) / 16000
clip = (0.3 * np.sin(2 * np.pi * (180 + 200 * t) * t) * np.hanning(len(t))).astype(np.float32)
copy, _ = augment_signal(clip, 16000, copy_generator(42, "probe", 1),
                         Augment(copies=4, time_stretch=[0.9, 1.1], pitch_shift_semitones=2.0, noise_peak_fraction=0.005, seed=42))
recipe = make_recipe({"recipe": "whisper_embedding", "model": "Systran/faster-whisper-tiny.en"}, 16000)
layers = make_recipe({"recipe": "whisper_layers", "model": "Systran/faster-whisper-tiny.en"}, 16000)
np.save(sys.argv[1], np.concatenate([copy, recipe.extract(clip), recipe.extract(copy), layers.extract(copy).ravel()]))
"""


def run_python(code: str, *args, **env) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "NPY_DISABLE_CPU_FEATURES"}
    return subprocess.run([sys.executable, "-c", code, *args], env={**environ, **env}, capture_output=True,
                          text=True, check=True)


def test_a_stage_module_finds_numpy_pinned_whatever_it_imports_first():
    shown = subprocess.run([sys.executable, "-c", "import stages.split, numpy as np; "
                            "print(np._core._multiarray_umath.__cpu_features__.get('X86_V4'))"],
                           cwd=ROOT, env={k: v for k, v in os.environ.items() if k != "NPY_DISABLE_CPU_FEATURES"},
                           capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "False"


def test_importing_ser_first_keeps_numpy_off_its_avx512_kernels():
    shown = run_python("import ser, numpy as np; features = np._core._multiarray_umath.__cpu_features__; "
                       "print([features.get(name) for name in ('X86_V4', 'AVX512_ICL', 'AVX512_SPR')])")
    assert shown.stdout.strip() == "[False, False, False]"
    # A user's own setting wins.
    shown = run_python("import ser, os; print(os.environ['NPY_DISABLE_CPU_FEATURES'])",
                       NPY_DISABLE_CPU_FEATURES="AVX512_SPR")
    assert shown.stdout.strip() == "AVX512_SPR"


@pytest.mark.parametrize("script", ["stages/__init__.py", *sorted(p.relative_to(ROOT).as_posix()
                                                                  for p in (ROOT / "benchmarks").glob("*.py"))])
def test_the_stages_package_and_every_benchmark_import_ser_before_anything_else(script):
    """The stages run as `python -m stages.<name>` (tests/test_dvc_deps.py), so their package's first import
    comes before any of theirs; a benchmark runs as a script and imports ser first itself."""
    tree = ast.parse((ROOT / script).read_text())
    imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))
               and not (isinstance(node, ast.ImportFrom) and node.module == "__future__")]
    first = imports[0]
    assert isinstance(first, ast.Import) and [alias.name for alias in first.names] == ["ser"], \
        f"{script}: the first import must be `import ser` (it pins numpy's code paths before numpy loads)"


def test_augmentation_and_whisper_features_do_not_depend_on_the_libraries_kernels(tmp_path):
    if not np._core._multiarray_umath.__cpu_features__.get("AVX2"):
        pytest.skip("CTranslate2 and MKL can be held to AVX2 kernels only on a CPU that has them")
    run_python(PROBE, str(tmp_path / "own.npy"))
    run_python(PROBE, str(tmp_path / "avx2.npy"), CT2_FORCE_CPU_ISA="AVX2", MKL_ENABLE_INSTRUCTIONS="AVX2")
    # On an AVX-512 CPU the first used CTranslate2's and MKL's AVX-512 kernels where the pins let them;
    # on an AVX2 CPU both ran the same.
    np.testing.assert_array_equal(np.load(tmp_path / "own.npy"), np.load(tmp_path / "avx2.npy"))


# The augmented copy of PROBE's clip as every CPU measured so far makes it (AVX2-only AMD EPYC Zen 3, Zen 4 and
# Zen 5 with AVX-512, Intel Xeon Cascade Lake and Sapphire Rapids: docs/experiments.md, "The same bits on every
# CPU"), computed on the AMD EPYC Zen 4 with the pins. numpy's AVX-512 kernels give 4bec35fe... there.
AUGMENTED_COPY_SHA256 = "1b94d3e99ec597b4038edb8a038fcc286c8f9dd3fb33ac9a29077421577955e9"


def test_an_augmented_copy_has_the_same_bits_as_on_the_other_cpus_measured(tmp_path):
    """A comparison with bits made elsewhere: unlike the probe above, it can fail on an AVX2-only CPU (whose
    own kernels are the only ones it has), and on any CPU where a pin stops holding."""
    probe = PROBE.split("recipe = ")[0] + "print(hashlib.sha256(np.ascontiguousarray(copy).tobytes()).hexdigest())"
    shown = run_python(probe.replace("import ser, sys", "import ser, sys, hashlib"))
    assert shown.stdout.strip() == AUGMENTED_COPY_SHA256


def test_a_job_uses_the_cores_it_is_given_not_the_whole_machine():
    from ser import usable_cores
    assert usable_cores(3) == 3  # params' `cores`: one queued experiment's share
    assert usable_cores(0) == len(os.sched_getaffinity(0))
    # A process pinned to one core (taskset, a cgroup cpuset, a batch scheduler) works on that core.
    probe = "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); import ser; print(ser.usable_cores(0))"
    pinned = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert pinned.stdout.strip() == "1"

