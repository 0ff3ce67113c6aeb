#!/bin/bash
# Data-parallel TransIP training on a SLURM cluster: one torchrun per node, one process per GPU.
#
#   sbatch examples/slurm_train.sh my.yaml --train.steps=200000   # a new run, overrides after it
#   sbatch --nodes=4 examples/slurm_train.sh my.yaml                # 4 nodes x 4 GPUs
#   RUN_DIR=runs/slurm-123 sbatch examples/slurm_train.sh my.yaml   # continue that run
#
# The run directory (default: named after the job) must be on a filesystem every node sees:
# rank 0 writes the checkpoints there and, on resume, every rank reads last.pt from it. If it
# holds last.pt (a requeued job after preemption or node failure keeps its job id, hence its
# directory; or RUN_DIR given explicitly), the run continues exactly from there, with its own
# config.yaml, and needs the same number of processes. SLURM sends SIGTERM 5 minutes before the
# time limit (--signal): every rank finishes its step, rank 0 writes last.pt, the job ends.
#
# Untested here: written for the documentation (docs/transip/cluster.md); adapt the partition,
# account, module/venv lines and the GPU count to your cluster.

#SBATCH --job-name=transip
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1          # one torchrun per node; it starts the per-GPU processes
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=32           # shared by the node's processes (data loading, threads)
#SBATCH --time=24:00:00
#SBATCH --signal=TERM@300            # time to write last.pt before the limit
#SBATCH --requeue
#SBATCH --output=%x-%j.out

set -euo pipefail

CONFIG=${1:?usage: sbatch examples/slurm_train.sh CONFIG.yaml [--section.key=value ...]}
shift
GPUS_PER_NODE=${SLURM_GPUS_ON_NODE:-4}
RUN_DIR=${RUN_DIR:-$PWD/runs/slurm-$SLURM_JOB_ID}

# source /path/to/venv/bin/activate   # the environment with transip installed

# the first node of the allocation hosts the rendezvous
HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed -n 1p)
PORT=${PORT:-29500}

if [ -f "$RUN_DIR/last.pt" ]; then
    ARGS=(--resume "$RUN_DIR")          # config.yaml of the run directory, as first written
else
    ARGS=("$CONFIG" --train.device=cuda --logging.run_dir="$RUN_DIR" "$@")
fi

# each process uses train.threads CPU threads (default 1); data.num_workers loader processes each
srun --kill-on-bad-exit=1 torchrun \
    --nnodes="$SLURM_NNODES" \
    --nproc_per_node="$GPUS_PER_NODE" \
    --rdzv_backend=c10d \
    --rdzv_endpoint="$HEAD:$PORT" \
    --rdzv_id="$SLURM_JOB_ID" \
    --no-python \
    transip train "${ARGS[@]}"
