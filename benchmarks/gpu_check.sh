#!/usr/bin/env bash
# GPU check of deepclust on one H100-class machine, in under 8 minutes. From the repository
# root:
#
#     bash benchmarks/gpu_check.sh                # writes into ./gpu-check
#     OUT=/some/folder bash benchmarks/gpu_check.sh
#
# Steps, each bounded by `timeout` (the caps add up to 455 s, so the whole stays under 8
# minutes; a step that fails or times out is recorded and the next one still runs; the script
# exits 1 at the end if any failed):
#
#   1. environment: nvidia-smi (10 s); python, torch, CUDA, GPU, Fashion-MNIST (25 s)
#   2. python -m pytest -q -m gpu: the CUDA tests                                  (70 s)
#   3. benchmarks/bench_train.py --device cuda --n 20000 --repeats 1: images/s of
#      one training epoch of every method and of the reference-style loop; one
#      round only, to fit the time (each measurement is saved as it is made)      (140 s)
#   4. benchmarks/bench_sinkhorn.py at N = 1,281,167, K = 3,000 on the GPU, the two
#      fastest solvers, bfloat16 first, then float32 (no NumPy reference: 30 GB and
#      hours); each builds its 15 GB input on the CPU first, about a minute        (150 s)
#   5. SelfLabelClusterer(n_clusters=3000, device='cuda', max_epochs=2) on all 70,000
#      Fashion-MNIST images: seconds, peak GPU memory, cluster sizes              (60 s)
#
# Outputs in $OUT (five files): gpu_check.log (everything printed), steps.tsv (step, exit
# status, seconds), bench_train-*.json and train.rst.inc, sela_k3000.json.
#
# Needs the Fashion-MNIST IDX files for steps 3 and 5: the Debian package
# dataset-fashion-mnist, or DEEPCLUST_FASHION_MNIST naming a folder holding them (copy
# /usr/share/datasets/fashion-mnist into the tree when the machine has no package manager).
#
# Sizes and device can be overridden for a dry run on a CPU machine, e.g.
#     DEVICE=cpu SKIP_PYTEST=1 TRAIN_N=512 SINKHORN_N=20000 SINKHORN_K=300 SELA_N=2000 \
#         SELA_K=30 OUT=/tmp/gpu-check bash benchmarks/gpu_check.sh
set -euo pipefail

OUT="${OUT:-gpu-check}"
DEVICE="${DEVICE:-cuda}"
TRAIN_N="${TRAIN_N:-20000}"
SINKHORN_N="${SINKHORN_N:-1281167}"
SINKHORN_K="${SINKHORN_K:-3000}"
SELA_N="${SELA_N:-70000}"
SELA_K="${SELA_K:-3000}"
PY="${PYTHON:-$(command -v python || command -v python3)}"
export DEVICE SELA_N SELA_K PYTHONUNBUFFERED=1
# `import deepclust` finds this checkout without an install.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if [[ ! -f deepclust/__init__.py ]]; then
    echo "run from the repository root (no deepclust/ here: $PWD)" >&2
    exit 2
fi
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1
SELA_SCRIPT="$(mktemp --suffix=.py)"
trap 'rm -f "$SELA_SCRIPT"' EXIT
STEPS="$OUT/steps.tsv"
printf 'step\texit_status\tseconds\n' >"$STEPS"
FAILED=0
START=$SECONDS

# step NAME CAP_SECONDS COMMAND...: run COMMAND under `timeout CAP`; its status and duration
# go to steps.tsv (124: timed out).
step() {
    local name=$1 cap=$2 status=0 began=$SECONDS
    shift 2
    echo
    echo "=== [$((SECONDS - START)) s] $name (at most ${cap} s): $*"
    timeout --kill-after=10 "$cap" "$@" || status=$?
    printf '%s\t%s\t%s\n' "$name" "$status" "$((SECONDS - began))" >>"$STEPS"
    if [[ $status -ne 0 ]]; then
        echo "=== $name FAILED with status $status (124: timed out)"
        FAILED=1
    fi
}

echo "=== 1. Environment: GPU, versions, data"
if [[ "$DEVICE" == cuda ]]; then
    step nvidia_smi 10 nvidia-smi
fi
step versions_data 25 "$PY" -c '
import platform, sys, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda",
      torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("gpu", torch.cuda.get_device_name(0))
import deepclust
print("deepclust from", deepclust.__file__)
from deepclust.datasets import load_fashion_mnist
X, _ = load_fashion_mnist()
print("Fashion-MNIST", X.shape)
'

echo "=== 2. The CUDA tests (pytest -m gpu)"
if [[ -n "${SKIP_PYTEST:-}" ]]; then
    echo "skipped (SKIP_PYTEST is set)"
else
    step pytest_gpu 70 "$PY" -m pytest -q -m gpu -p no:cacheprovider
fi

echo "=== 3. Training throughput on $DEVICE: one epoch of every method, $TRAIN_N images"
step bench_train 140 "$PY" benchmarks/bench_train.py --device "$DEVICE" --n "$TRAIN_N" \
    --repeats 1 --timeout 60 --results-dir "$OUT" --doc "$OUT/train.rst.inc"
if [[ ! -f "$OUT/train.rst.inc" ]] && compgen -G "$OUT/bench_train-*.json" >/dev/null; then
    echo "=== the table from what bench_train measured before it stopped"
    "$PY" benchmarks/bench_train.py --report --results-dir "$OUT" --doc "$OUT/train.rst.inc" \
        || true
fi

echo "=== 4. Sinkhorn-Knopp at N = $SINKHORN_N, K = $SINKHORN_K on $DEVICE"
# --no-write: the repository's CPU figures stay; the figures are in the log.
step bench_sinkhorn 150 "$PY" benchmarks/bench_sinkhorn.py --n "$SINKHORN_N" \
    --k "$SINKHORN_K" --device "$DEVICE" --no-reference --repeats 1 --no-write \
    --methods deepclust_bfloat16 deepclust_float32

echo "=== 5. SeLa with K = $SELA_K on $SELA_N Fashion-MNIST images, 2 epochs, on $DEVICE"
cat >"$SELA_SCRIPT" <<'PY'
"""SelfLabelClusterer on Fashion-MNIST: seconds, peak GPU memory, cluster sizes."""
import json
import os
import sys
import time

import numpy as np
import torch

from deepclust import SelfLabelClusterer
from deepclust.datasets import load_fashion_mnist

n, k, device = int(os.environ["SELA_N"]), int(os.environ["SELA_K"]), os.environ["DEVICE"]
X, _ = load_fashion_mnist()
X = X[:n]
if device == "cuda":
    torch.cuda.reset_peak_memory_stats()
estimator = SelfLabelClusterer(n_clusters=k, device=device, max_epochs=2, random_state=0)
started = time.perf_counter()
estimator.fit(X)
seconds = time.perf_counter() - started
sizes = np.bincount(estimator.labels_, minlength=k)
result = {
    "n_samples": len(X), "n_clusters": k, "device": device, "seconds": seconds,
    "torch": torch.__version__,
    "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
    "peak_gpu_memory_mib": (
        torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
    ),
    "cluster_size_min": int(sizes.min()), "cluster_size_max": int(sizes.max()),
    "empty_clusters": int((sizes == 0).sum()),
    "cluster_size_ratio": float(sizes.max() / max(int(sizes.min()), 1)),
    "history": estimator.history_,
}
with open(sys.argv[1], "w") as handle:
    json.dump(result, handle, indent=1, default=float)
print(json.dumps({key: v for key, v in result.items() if key != "history"}, default=float))
PY
step sela_k3000 60 "$PY" "$SELA_SCRIPT" "$OUT/sela_k3000.json"

echo
echo "=== done in $((SECONDS - START)) s; steps (exit status 124: timed out):"
cat "$STEPS"
exit "$FAILED"
