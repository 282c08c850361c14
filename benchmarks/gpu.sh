#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py): forward images/s and share of the GPU's bf16 peak
# (paper, mobile), SAM decoding batched vs one by one, real peak memory of a training step and
# of inference beside estimate_memory.py's estimate, one labelling round with the real
# MobileSAM. Writes results/gpu_check.json. About 5 minutes on one H100/H200; stopped at 8.
#
#   benchmarks/gpu.sh                   # on a CUDA machine
#   benchmarks/gpu.sh --dry-run         # anywhere: tiny sizes on the CPU
#   benchmarks/gpu.sh --out other.json  # any gpu_check.py option
#
# Python: $PYTHON if set, else `uv run python` where uv is installed, else python3.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -n "${PYTHON:-}" ]]; then
    run=("$PYTHON")
elif command -v uv >/dev/null 2>&1; then
    run=(uv run python)
else
    run=(python3)
fi
exec timeout 480 "${run[@]}" benchmarks/gpu_check.py "$@"
