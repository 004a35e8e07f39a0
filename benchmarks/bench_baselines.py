"""Speed and memory of every registered baseline (TFN, LMF, MulT, MISA, Self-MM, MMIM, MoMKE, DMD, ...), measured as
``bench_atsuko.py`` measures Atsuko and EMOE: each (model, preset) in its own subprocess, random inputs of the
preset's shapes (``quick``: the built-in benchmark; ``paper``: CMU-MOSI aligned_50, text 768 / audio 5 /
vision 20, L = 50, sequence layout), a training step (forward, backward, Adam) and inference, their FLOPs
(``FlopCounterMode``: GEMMs, convolutions and attention; an LSTM's recurrent matmuls are not counted, so a
recurrent model's share of the peak is a lower bound) against the fp32 matmul peak measured in the same
process, and the peak resident memory.

Usage::

    python benchmarks/bench_baselines.py                 # CPU, one thread (a few minutes)
    python benchmarks/bench_baselines.py --device cuda

Writes ``benchmarks/results/baselines_bench.{json,md}``. The models come from the registry (role
``baseline``, without mser's own MLP / BiGRU reference point), so a new baseline is measured without an edit here.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_atsuko  # noqa: E402

from mser_lib.models.registry import model_names  # noqa: E402

if __name__ == "__main__":
    bench_atsuko.main(models=tuple(m for m in model_names("baseline") if m != "baseline"),
                      name="baselines_bench", title="Baselines benchmark", eigenbasis=False,
                      note=" The FLOP counter does not count an LSTM's recurrent matmuls: for the recurrent models "
                           "(TFN and LMF's text LSTM, MISA's, Self-MM's and MMIM's audio and vision LSTMs) the GFLOP "
                           "and % of peak columns are lower bounds. A training step is one batch of the model's "
                           "final training: MMIM's main pass (each epoch also makes its estimators' pass), MoMKE's "
                           "second stage (every expert on every modality). Every model at its preset's size, the "
                           "baselines' paper presets being thuiar/MMSA's MOSI configurations, MoMKE's the authors' "
                           "CMU-MOSI run, DMD's its authors' MOSI configuration (docs/baselines.md).")
