#!/usr/bin/env bash
# The separate benchmark environment for examples/benchmark.py.
#
# mace-torch 0.3.16 pins e3nn==0.4.4, while the project's tests use e3nn 0.6, so MACE lives in its
# own virtual environment (gitignored as .venv*), with the project installed editable beside it.
# TransIP itself needs no e3nn, so both models run in one process there.
#
#   bash examples/bench_env.sh            # builds .venv-bench in the repository root
#   .venv-bench/bin/python examples/benchmark.py models --quick
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv-bench}

python -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# Pin torch first: on this machine the CPU wheel lies on local disk; an unpinned torch would pull a
# multi-GB CUDA build. On a GPU machine install the matching CUDA wheel of the same version instead.
"$VENV/bin/python" -m pip install --quiet torch==2.13.0
"$VENV/bin/python" -m pip install --quiet mace-torch==0.3.16  # brings e3nn 0.4.4
"$VENV/bin/python" -m pip install --quiet numpy scipy ase einops lmdb pyyaml tqdm
"$VENV/bin/python" -m pip install --quiet --no-deps -e .
"$VENV/bin/python" - <<'PY'
import e3nn, mace, torch, transip
print("torch", torch.__version__, "| e3nn", e3nn.__version__, "| mace", mace.__version__, "| transip ok")
PY
