#!/usr/bin/env bash
# The GPU checks of issue 13 item 3 in one go: the CUDA-marked tests, the CUDA benchmark (with its
# fp32-vs-bf16 training runs), then the rest of the fast suite while time is left.
#
#   benchmarks/run_cuda_checks.sh [OUT_DIR]     (default benchmarks/results; logs go there too)
#
# Time limits (seconds) through the environment: T_CUDA_TESTS (120), T_BENCH (250),
# TRAIN_BUDGET (100, the benchmark's --train-budget-s), T_FAST (60).
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

echo "== benchmark"
timeout "${T_BENCH:-250}" $PY benchmarks/bench_cuda.py --out "$OUT_DIR" --train-budget-s "${TRAIN_BUDGET:-100}" \
  --time-limit-s "$(( ${T_BENCH:-250} - 10 ))" 2>&1 \
  | tee "$OUT_DIR/bench_cuda_log.txt"

echo "== fast suite (not slow, without the notebooks)"
XDIST=""
$PY -c "import xdist" 2>/dev/null && XDIST="-n 8"
timeout "${T_FAST:-60}" $PY -m pytest -m "not slow" -q -p no:cacheprovider $XDIST \
  --ignore=tests/test_notebooks.py --ignore=tests/test_cuda.py 2>&1 | tee "$OUT_DIR/pytest_fast.txt"
echo "== done $(date -u +%FT%TZ)"
