#!/usr/bin/env bash
# The eSEN benchmark environment for examples/benchmark.py (models esen-sm-cons, esen-sm-direct).
#
# fairchem-core 2.24.0 requires e3nn>=0.5 and torch~=2.13.0; MACE's environment (bench_env.sh) pins
# e3nn 0.4.4, so eSEN lives in a third virtual environment (gitignored as .venv*), with the project
# installed editable beside it. TransIP needs no e3nn, so TransIP and eSEN run in one process there.
# On Linux x86-64 fairchem-core also pulls CUDA-side wheels (cuda-python, nvidia-cutlass-dsl,
# nvalchemi-toolkit-ops, warp-lang) and hydra, wandb, numba, submitit: about 2.4 GB in all. They
# install and import on a CPU-only machine (warp prints that it found no CUDA driver) and the eSEN
# model never calls them there.
#
#   bash examples/esen_env.sh             # builds .venv-esen in the repository root
#   OMP_NUM_THREADS=1 .venv-esen/bin/python examples/benchmark.py models \
#       --models transip-S-ref esen-sm-cons esen-sm-direct --sizes 9 60 --batches --modes infer train
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv-esen}

python -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# Pin torch first: on this machine the CPU wheel lies on local disk; an unpinned torch would pull a
# multi-GB CUDA build. On a GPU machine install the matching CUDA wheel of the same version instead.
"$VENV/bin/python" -m pip install --quiet torch==2.13.0
"$VENV/bin/python" -m pip install --quiet fairchem-core==2.24.0  # brings e3nn 0.6.0
"$VENV/bin/python" -m pip install --quiet numpy scipy ase einops lmdb pyyaml tqdm
"$VENV/bin/python" -m pip install --quiet --no-deps -e .
"$VENV/bin/python" - <<'PY'
import e3nn, torch, transip
from fairchem.core import __version__ as fairchem_version
from fairchem.core.models.uma.escn_md import eSCNMDBackbone  # the eSEN backbone

print("torch", torch.__version__, "| e3nn", e3nn.__version__, "| fairchem-core", fairchem_version, "| transip ok")
PY
