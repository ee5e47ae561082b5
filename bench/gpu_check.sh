#!/usr/bin/env bash
# The GPU device check (bench/gpu_check.py): one table of training tokens/s and MFU of both
# backends on a ~1B preset, DDP over every visible GPU, generation at 1/16/64 streams against
# transformers `generate`, and the GPU-marked tests. On a host without a GPU it runs the same
# code path on a small preset and says so in the table's header.
#
#   bash bench/gpu_check.sh [--quick]
#
# Bootstraps the venv like the other scripts (scripts/bootstrap.sh: nothing is installed when it
# is up to date), then never touches the network: Hugging Face libraries run offline, the
# tokenizer is trained on the shipped dataset and the weights are random. The whole check is
# bounded by GPU_CHECK_TIMEOUT seconds (default 300).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh
VENV="${VENV:-$ROOT/.venv}"
LIMIT="${GPU_CHECK_TIMEOUT:-300}"
export PYTHONPATH="$ROOT/clients:$ROOT/services${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
# The rows share the budget, less a margin for the interpreter and the table.
exec timeout "$LIMIT" "$VENV/bin/python" bench/gpu_check.py --budget "$((LIMIT - 20))" "$@"
