#!/usr/bin/env bash
# The benchmark environments for examples/benchmark.py: TransIP beside MACE or beside eSEN.
#
#   bash examples/bench_env.sh            # MACE: builds .venv-bench (mace-torch 0.3.16, e3nn 0.4.4)
#   bash examples/bench_env.sh esen       # eSEN: builds .venv-esen (fairchem-core 2.24.0, e3nn 0.6.0)
#   .venv-bench/bin/python examples/benchmark.py models --quick
#
# mace-torch 0.3.16 pins e3nn==0.4.4 and fairchem-core 2.24.0 requires e3nn>=0.5 (and torch~=2.13.0),
# while the project's tests use e3nn 0.6, so each comparison lives in its own virtual environment
# (gitignored as .venv*), with the project installed editable beside it. TransIP itself needs no e3nn,
# so TransIP and the other model run in one process there. On Linux x86-64 fairchem-core also pulls
# CUDA-side wheels (cuda-python, nvidia-cutlass-dsl, nvalchemi-toolkit-ops, warp-lang) and hydra,
# wandb, numba, submitit: about 2.4 GB in all. They install and import on a CPU-only machine (warp
# prints that it found no CUDA driver) and the eSEN model never calls them there.
# VENV=/some/dir overrides the environment's location.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-mace}" in
    mace) VENV=${VENV:-.venv-bench}; PACKAGE=mace-torch==0.3.16 ;;  # brings e3nn 0.4.4
    esen) VENV=${VENV:-.venv-esen}; PACKAGE=fairchem-core==2.24.0 ;;  # brings e3nn 0.6.0
    *) echo "usage: bash examples/bench_env.sh [mace|esen]" >&2; exit 2 ;;
esac

python -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# Pin torch first: on this machine the CPU wheel lies on local disk; an unpinned torch would pull a
# multi-GB CUDA build. On a GPU machine install the matching CUDA wheel of the same version instead.
"$VENV/bin/python" -m pip install --quiet torch==2.13.0
"$VENV/bin/python" -m pip install --quiet "$PACKAGE"
"$VENV/bin/python" -m pip install --quiet numpy scipy ase einops lmdb pyyaml tqdm
"$VENV/bin/python" -m pip install --quiet --no-deps -e .
"$VENV/bin/python" - "${1:-mace}" <<'PY'
import sys

import e3nn, torch, transip

if sys.argv[1:] == ["esen"]:
    from fairchem.core import __version__ as version
    from fairchem.core.models.uma.escn_md import eSCNMDBackbone  # noqa: F401  the eSEN backbone
    name = "fairchem-core"
else:
    from mace import __version__ as version
    name = "mace"
print("torch", torch.__version__, "| e3nn", e3nn.__version__, f"| {name}", version, "| transip ok")
PY
