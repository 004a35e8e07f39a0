#!/usr/bin/env bash
# The GPU checks of issue 13 item 3 in one go: the CUDA-marked tests, a profile of FEMF's training step,
# the CUDA benchmark, fp32 against bf16 over seeds, then the rest of the fast suite while time is left.
#
#   benchmarks/run_cuda_checks.sh [OUT_DIR]     (default benchmarks/results; logs go there too)
#
# Time limits (seconds) through the environment: T_CUDA_TESTS (120), T_PROFILE (90), T_BENCH (250),
# T_BF16 (200; SEEDS, default 3), T_FAST (60): at most 12 minutes in all (the whole script has not been
# timed in one call; its parts ran in two calls on an H100, benchmarks/results/cuda_checks_h100_cuda.md).
set -u
OUT_DIR=${1:-benchmarks/results}
PY=${PYTHON:-python3}
mkdir -p "$OUT_DIR"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
{
  echo "== $(date -u +%FT%TZ) $(uname -m) $(nproc) CPUs"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
  $PY -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', \
torch.version.cuda, 'available', torch.cuda.is_available())"
} 2>&1 | tee "$OUT_DIR/cuda_checks_env.txt"

echo "== CUDA-marked tests"
timeout "${T_CUDA_TESTS:-120}" $PY -m pytest tests/test_cuda.py -m cuda -q -rs -p no:cacheprovider 2>&1 \
  | tee "$OUT_DIR/pytest_cuda.txt"

echo "== profile (FEMF, where a step goes)"
timeout "${T_PROFILE:-90}" $PY benchmarks/profile_step.py --device cuda --steps 5 --only femf/synthetic-paper \
  --out "$OUT_DIR" 2>&1 | tee "$OUT_DIR/profile_step_log.txt" | grep -A4 '^###'

echo "== benchmark (epoch times, inference, memory; fp32 and bf16)"
timeout "${T_BENCH:-250}" $PY benchmarks/bench_cuda.py --out "$OUT_DIR" 2>&1 \
  | tee "$OUT_DIR/bench_cuda_log.txt"

echo "== bf16 against fp32 over seeds (accuracy only)"
timeout "${T_BF16:-200}" $PY benchmarks/bf16_seeds.py --device cuda --seeds "${SEEDS:-3}" --workers 12 \
  --femf-epochs 4 --atsuko-epochs 5 --out "$OUT_DIR" 2>&1 | tee "$OUT_DIR/bf16_seeds_log.txt" | tail -25

echo "== fast suite (not slow, without the notebooks)"
XDIST=""
$PY -c "import xdist" 2>/dev/null && XDIST="-n 8"
timeout "${T_FAST:-60}" $PY -m pytest -m "not slow" -q -p no:cacheprovider $XDIST \
  --ignore=tests/test_notebooks.py --ignore=tests/test_cuda.py 2>&1 | tee "$OUT_DIR/pytest_fast.txt"
echo "== done $(date -u +%FT%TZ)"
