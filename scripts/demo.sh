#!/usr/bin/env bash
# The main job, end to end, on the embedded defaults (SQLite, local blob store, CPU):
#
#   make demo        (or: bash scripts/demo.sh)
#
# 1. bootstrap the virtualenv (scripts/bootstrap.sh);
# 2. start the registry on a free loopback port with a fresh data directory (DEMO_DIR, default
#    a new temporary directory; kept afterwards so you can look at it);
# 3. import the shipped dataset datasets/reasoning-train-v1.jsonl (2,000 traces);
# 4. build a dataset with a seeded 90/10 split and show its stats;
# 5. export a few rendered SFT examples;
# 6. stop the registry.
# Later issues extend it to train, register and evaluate a model.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh
VENV="${VENV:-$ROOT/.venv}"
CLI="$VENV/bin/tunix-rt"
PY="$VENV/bin/python"

DEMO_DIR="${DEMO_DIR:-$(mktemp -d -t tunix-rt-demo.XXXXXX)}"
mkdir -p "$DEMO_DIR"
PORT="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export TUNIX_RT_REGISTRY="127.0.0.1:$PORT"
export TUNIX_RT_LOG_FORMAT=text

echo "==> starting the registry on $TUNIX_RT_REGISTRY (data: $DEMO_DIR)"
"$CLI" serve registry --host 127.0.0.1 --port "$PORT" --data-dir "$DEMO_DIR/registry" \
    >"$DEMO_DIR/registry.log" 2>&1 &
SERVER_PID=$!
cleanup() {
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
}
trap cleanup EXIT

# Wait for grpc.health.v1 to answer SERVING (the server migrates its database first).
"$PY" - "$TUNIX_RT_REGISTRY" <<'PYEOF'
import sys, time
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

channel = grpc.insecure_channel(sys.argv[1])
stub = health_pb2_grpc.HealthStub(channel)
deadline = time.monotonic() + 60
while True:
    try:
        status = stub.Check(health_pb2.HealthCheckRequest(service="tunix_rt.v1.RegistryService"), timeout=2)
        if status.status == health_pb2.HealthCheckResponse.SERVING:
            print("registry is SERVING")
            break
    except grpc.RpcError:
        pass
    if time.monotonic() > deadline:
        sys.exit("registry did not become healthy; see its log")
    time.sleep(0.2)
PYEOF

echo "==> importing datasets/reasoning-train-v1.jsonl"
"$CLI" traces import datasets/reasoning-train-v1.jsonl --source reasoning-train-v1

echo "==> creating dataset 'reasoning-v1' (seeded 90/10 split)"
"$CLI" datasets create reasoning-v1 --source reasoning-train-v1 --eval-fraction 0.1 --seed 42 \
    --description "shipped reasoning traces, train v1"

echo "==> dataset stats"
"$CLI" datasets show reasoning-v1

echo "==> three SFT examples from the eval split (chat template: chatml)"
"$CLI" datasets export reasoning-v1 --split eval --format sft --chat-template chatml \
    -o "$DEMO_DIR/reasoning-v1-eval.sft.jsonl"
head -n 3 "$DEMO_DIR/reasoning-v1-eval.sft.jsonl"

echo "==> done: the registry's data is in $DEMO_DIR"
