#!/usr/bin/env bash
# GPU checks of the multi-GPU (FSDP2) miner and validator, in one go. NOT run in CI and not yet
# run at all: the session that wrote it had no GPU. Run it on a CUDA machine from the checkout:
#
#     bash scripts/gpu_check.sh            # every visible GPU
#     GPUS=1 bash scripts/gpu_check.sh     # one GPU
#
# Writes gpu_check/<step>.{txt,json} and prints a summary; exit status 1 if any check failed.
# Steps: (1) the CUDA tests CI skips, (2) tokens/s, MFU and peak memory per rank for the 150m
# and 1b presets (bench_fsdp.py), (3) one sharded miner window and one sharded validator
# measurement on 150m with the compression + encoding + signing share of the window (< 2%),
# (4) the validator neuron under torchrun (all GPUs) in a short local subnet.
# Record the figures in docs/multi_gpu.md with the GPU model and count (nvidia-smi.txt).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-gpu_check}
GPUS=${GPUS:-$($PY -c 'import torch; print(torch.cuda.device_count())')}
mkdir -p "$OUT"
fail=0
if [ "${GPUS:-0}" -lt 1 ]; then echo "no CUDA device visible to torch"; exit 1; fi
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true
echo "== 1. CUDA tests that CI skips"
$PY -m pytest -q -rs -p no:cacheprovider tests/training/test_compression.py \
    tests/training/test_index_coding.py tests/parallel 2>&1 | tee "$OUT/tests.txt" | tail -3 \
    || fail=1
grep -q "needs CUDA" "$OUT/tests.txt" && { echo "CUDA tests were skipped"; fail=1; }
echo "== 2. throughput, MFU, peak memory (150m, 1b on $GPUS GPU)"
$PY scripts/bench_fsdp.py --json --skip-equivalence --presets 150m,1b --gpus "$GPUS" \
    > "$OUT/bench_fsdp.json" 2> "$OUT/bench_fsdp.err" || fail=1
cat "$OUT/bench_fsdp.json"
echo "== 3. one miner window + one validator evaluation, 150m"
$PY scripts/gpu_window.py --preset 150m --device cuda --ranks "$GPUS" \
    > "$OUT/window_150m.json" 2> "$OUT/window_150m.err" || fail=1
cat "$OUT/window_150m.json"
$PY - "$OUT/window_150m.json" <<'PYEOF' || fail=1
import json, sys
doc = json.load(open(sys.argv[1]))
share = doc["compress_encode_sign_share"]
print(f"compression + encoding + signing: {100 * share:.2f}% of the window (target < 2%)")
sys.exit(0 if share < 0.02 else 1)
PYEOF
echo "== 4. a validator under torchrun ($GPUS ranks, NCCL) in a local subnet, tiny preset"
if [ "$GPUS" -lt 2 ]; then echo "skipped: a sharded validator needs 2 GPUs (one rank each)"; else
# The first validator runs as $GPUS ranks (template/parallel/validator.py), next to one miner
# on the first GPU: it must run its windows, evaluate uploads on the sharded model, report a
# finite held-out loss and stop with exit status 0.
$PY scripts/localnet.py --miners 1 --validators 1 --validator.ranks "$GPUS" --device cuda \
    --hparams tiny --run.max-windows 6 --run.timeout 900 --run.dir "$OUT/localnet" --json \
    > "$OUT/localnet_validator_ranks.json" 2> "$OUT/localnet_validator_ranks.err" || fail=1
$PY - "$OUT/localnet_validator_ranks.json" "$GPUS" <<'PYEOF' || fail=1
import json, math, sys
s = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
v = next(n for n in s["nodes"] if n["role"] == "validator")
log = open(v["log"], errors="replace").read()
losses = [w["heldout_loss"] for w in s["windows"] if w.get("heldout_loss") is not None]
checks = {
    "windows_completed": s["windows_completed"] >= 6,
    "not_crashed": not s["crashed"] and v["exit_code"] == 0,
    "all_ranks_joined": all(f"rank {r} of {sys.argv[2]}" in log for r in range(int(sys.argv[2]))),
    "stopped_cleanly": "sharded validator stopped" in log and "Traceback" not in log,
    "uploads_seen": sum(w["uploads_seen"] for w in s["windows"]) >= 2,
    "heldout_loss_finite": bool(losses) and all(math.isfinite(x) for x in losses),
}
print(json.dumps({"validator_ranks": int(sys.argv[2]), **checks, "loss": losses[-1:]}))
sys.exit(0 if all(checks.values()) else 1)
PYEOF
fi
echo "== done (failures: $fail); figures under $OUT/"
exit $fail
