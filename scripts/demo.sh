#!/usr/bin/env bash
# The main job, end to end, on the embedded defaults (SQLite, local blob store, CPU):
#
#   make demo        (or: bash scripts/demo.sh)
#
# 1. bootstrap the virtualenv (scripts/bootstrap.sh);
# 2. start the registry, the inference service and the training service on free loopback ports
#    with a fresh data directory (DEMO_DIR, default a new temporary directory; kept afterwards);
# 3. generate DEMO_ROWS reasoning traces straight into the registry as dataset `reasoning-gen`
#    (`tunix-rt datasets generate`: trace format v2, none of the held-out prompts) and show its
#    stats; import the held-out eval set datasets/reasoning-evalset-v1.jsonl (200 items);
# 4. export a few rendered SFT examples;
# 5. train a small model from scratch on CPU (DEMO_PRESET, default llama3-1.3m; DEMO_STEPS
#    optimizer steps; the backend the service measured faster on CPU) with live metrics and
#    register it as `reasoning-small@candidate`;
# 6. evaluate it greedily on the 200 held-out items through the inference service (`tunix-rt
#    eval`, recorded in the registry) and print the accuracy by category and difficulty;
# 7. generate with it; export it as a Hugging Face directory and load that with plain
#    transformers; plot the run's curves;
# 8. stop the services.
#
# DEMO_PROFILE picks the recipe (docs/recipes.md): `default` (16,000 traces, llama3-1.3m, 2,800
# steps: under 10 minutes on 2 CPU cores) or `long` (100,000 traces, llama3-small, 10,000 steps:
# 43 min 55 s measured on 2 cores, 88 % held-out).
# While it runs, the web dashboard (`tunix-rt dashboard`, on DEMO_DASHBOARD_PORT, default a free
# port; 0 for none) shows the same job in a browser: its URL is printed once the services are up.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh
VENV="${VENV:-$ROOT/.venv}"
CLI="$VENV/bin/tunix-rt"
PY="$VENV/bin/python"

DEMO_DIR="${DEMO_DIR:-$(mktemp -d -t tunix-rt-demo.XXXXXX)}"
mkdir -p "$DEMO_DIR"
free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
PORT="$(free_port)"
TRAINING_PORT="$(free_port)"
INFERENCE_PORT="$(free_port)"
export TUNIX_RT_REGISTRY="127.0.0.1:$PORT"
export TUNIX_RT_TRAINING="127.0.0.1:$TRAINING_PORT"
export TUNIX_RT_INFERENCE="127.0.0.1:$INFERENCE_PORT"
export TUNIX_RT_LOG_FORMAT=text
DEMO_PROFILE="${DEMO_PROFILE:-default}"
case "$DEMO_PROFILE" in
    default) PROFILE_ROWS=16000 PROFILE_STEPS=2800 PROFILE_PRESET=llama3-1.3m ;;
    long) PROFILE_ROWS=100000 PROFILE_STEPS=10000 PROFILE_PRESET=llama3-small ;;
    *) echo "DEMO_PROFILE must be default or long, not $DEMO_PROFILE" >&2; exit 2 ;;
esac
DEMO_PRESET="${DEMO_PRESET:-$PROFILE_PRESET}"
# bfloat16 compute (float32 weights and optimizer) where the CPU has bfloat16 instructions: 1.4x
# the tokens per second of float32 on 2 Zen 4 cores, which the step budget below assumes.
# Elsewhere torch would emulate bfloat16, slower than float32: the service's float32 default.
if grep -qwE 'avx512_bf16|amx_bf16' /proc/cpuinfo 2>/dev/null; then
    DEMO_PRECISION="${DEMO_PRECISION:-mixed_bfloat16}"
else
    DEMO_PRECISION="${DEMO_PRECISION:-auto}"
fi
DEMO_ROWS="${DEMO_ROWS:-$PROFILE_ROWS}"
DEMO_STEPS="${DEMO_STEPS:-$PROFILE_STEPS}"
DEMO_EVAL_INTERVAL=$(((DEMO_STEPS + 1) / 2))
DEMO_STARTED=$SECONDS

echo "==> starting the registry on $TUNIX_RT_REGISTRY (data: $DEMO_DIR)"
"$CLI" serve registry --host 127.0.0.1 --port "$PORT" --data-dir "$DEMO_DIR/registry" \
    >"$DEMO_DIR/registry.log" 2>&1 &
SERVER_PID=$!
TRAINING_PID=""
INFERENCE_PID=""
DASHBOARD_PID=""
cleanup() {
    for pid in $DASHBOARD_PID $TRAINING_PID $INFERENCE_PID $SERVER_PID; do
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

# wait_healthy ADDRESS SERVICE: until grpc.health.v1 answers SERVING for SERVICE.
wait_healthy() {
    "$PY" - "$1" "$2" <<'PYEOF'
import sys, time
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

channel = grpc.insecure_channel(sys.argv[1])
stub = health_pb2_grpc.HealthStub(channel)
deadline = time.monotonic() + 60
while True:
    try:
        status = stub.Check(health_pb2.HealthCheckRequest(service=sys.argv[2]), timeout=2)
        if status.status == health_pb2.HealthCheckResponse.SERVING:
            print(f"{sys.argv[2]} is SERVING on {sys.argv[1]}")
            break
    except grpc.RpcError:
        pass
    if time.monotonic() > deadline:
        sys.exit(f"{sys.argv[2]} did not become healthy; see its log")
    time.sleep(0.2)
PYEOF
}
wait_healthy "$TUNIX_RT_REGISTRY" tunix_rt.v1.RegistryService

echo "==> starting the inference service on $TUNIX_RT_INFERENCE"
"$CLI" serve inference --host 127.0.0.1 --port "$INFERENCE_PORT" --registry "$TUNIX_RT_REGISTRY" \
    --data-dir "$DEMO_DIR/inference" >"$DEMO_DIR/inference.log" 2>&1 &
INFERENCE_PID=$!
wait_healthy "$TUNIX_RT_INFERENCE" tunix_rt.v1.InferenceService

echo "==> starting the training service on $TUNIX_RT_TRAINING (1 CPU slot)"
"$CLI" serve training --host 127.0.0.1 --port "$TRAINING_PORT" --registry "$TUNIX_RT_REGISTRY" \
    --inference "$TUNIX_RT_INFERENCE" --data-dir "$DEMO_DIR/training" --cpu-slots 1 \
    >"$DEMO_DIR/training.log" 2>&1 &
TRAINING_PID=$!
wait_healthy "$TUNIX_RT_TRAINING" tunix_rt.v1.TrainingService

DASHBOARD_PORT="${DEMO_DASHBOARD_PORT:-$(free_port)}"
if [[ "$DASHBOARD_PORT" != 0 ]]; then
    "$CLI" dashboard --port "$DASHBOARD_PORT" >"$DEMO_DIR/dashboard.log" 2>&1 &
    DASHBOARD_PID=$!
    echo "==> the web dashboard: http://127.0.0.1:$DASHBOARD_PORT (jobs, live curves, models, leaderboard)"
fi

echo "==> generating $DEMO_ROWS reasoning traces into dataset 'reasoning-gen' (profile $DEMO_PROFILE)"
"$CLI" datasets generate --rows "$DEMO_ROWS" --seed 7 --name reasoning-gen --eval-fraction 0.01 \
    --split-seed 42

echo "==> dataset stats"
"$CLI" datasets show reasoning-gen

echo "==> importing the held-out eval set (200 items, none of their prompts in reasoning-gen)"
"$CLI" evalsets import datasets/reasoning-evalset-v1.jsonl --name reasoning-eval-v1 \
    --description "held-out reasoning items (datasets/reasoning-eval-v1.jsonl)"

echo "==> three SFT examples from the eval split (chat template: chatml)"
"$CLI" datasets export reasoning-gen --split eval --format sft --chat-template chatml \
    -o "$DEMO_DIR/reasoning-gen-eval.sft.jsonl"
head -n 3 "$DEMO_DIR/reasoning-gen-eval.sft.jsonl"

echo "==> training $DEMO_PRESET for $DEMO_STEPS steps on cpu:1, precision $DEMO_PRECISION (live below)"
"$CLI" train --dataset reasoning-gen --model "$DEMO_PRESET" --steps "$DEMO_STEPS" --devices cpu:1 \
    --lr 2e-3 --batch-size 8 --seq-len 256 --precision "$DEMO_PRECISION" \
    --eval-interval "$DEMO_EVAL_INTERVAL" --checkpoint-interval "$DEMO_EVAL_INTERVAL" \
    --register-as reasoning-small --alias candidate --job-id demo-train --follow

echo "==> the job (backend chosen, registered version, its evaluation)"
"$CLI" jobs show demo-train

echo "==> the registered model"
"$CLI" models show reasoning-small@candidate

echo "==> generating with it (greedy)"
# The first call to the model loads and compiles it (~30-40 s on 2 cores): a longer deadline.
"$CLI" --timeout 300 generate reasoning-small@candidate "What is 15 + 27?" --max-new-tokens 160

echo "==> evaluating it greedily on the 200 held-out items through the inference service"
EVALUATION="$("$CLI" eval reasoning-small@candidate --eval-set reasoning-eval-v1 \
    --max-new-tokens 192 --no-progress --json | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["evaluation"]["name"])')"
echo "==> the held-out evaluation: answer accuracy overall and by category/difficulty, first items"
"$CLI" evaluations show "$EVALUATION" --items 5

echo "==> exporting it as a Hugging Face directory and loading that with plain transformers"
"$CLI" models export reasoning-small@candidate "$DEMO_DIR/hf-export"
"$PY" - "$DEMO_DIR/hf-export" <<'PYEOF'
import sys
from transformers import AutoModelForCausalLM, AutoTokenizer

model = AutoModelForCausalLM.from_pretrained(sys.argv[1])
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
print(f"transformers loaded {type(model).__name__} with {model.num_parameters():,} parameters "
      f"and a {len(tokenizer):,}-token tokenizer from {sys.argv[1]}")
PYEOF

echo "==> plotting the run's curves to $DEMO_DIR/demo-train.png"
"$CLI" runs plot demo-train -o "$DEMO_DIR/demo-train.png"

echo "==> done in $((SECONDS - DEMO_STARTED)) s after the bootstrap: the services' data is in $DEMO_DIR"
