"""The CUDA path: every model trains on a GPU, bf16 autocast runs, the spectral splits agree with the CPU,
and a checkpoint written on the GPU loads on the CPU.

Marked ``cuda``; every test skips when ``torch.cuda.is_available()`` is False (CI has no GPU)::

    python -m pytest tests/test_cuda.py -q -m cuda

``MSER_CUDA_TEST_DEVICE=cpu`` runs the same code on the CPU instead, to check the tests themselves on a
machine without a GPU (the CPU-vs-CPU comparisons are then trivially equal and AMP is a no-op).
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

from mser_lib.experiments import get_dataset
from mser_lib.models import build_model
from mser_lib.spectral import dft, graph
from mser_lib.train import TrainConfig, fit_model
from mser_lib.train.trainer import predict

DEVICE = torch.device(os.environ.get("MSER_CUDA_TEST_DEVICE", "cuda"))

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(DEVICE.type == "cuda" and not torch.cuda.is_available(),
                       reason="no CUDA device (torch.cuda.is_available() is False)"),
]

MODELS = ["femf", "atsuko", "emoe", "baseline"]


@pytest.fixture(scope="module")
def smoke():
    return get_dataset("synthetic", profile="smoke")


def _cfg(**kw) -> TrainConfig:
    base = dict(epochs=1, batch_size=32, eval_batch_size=128, lr=2e-3, patience=None, device=str(DEVICE),
                stage_epochs={"experts": 1, "full": 1}, progress=False)
    return TrainConfig(**{**base, **kw})


def _finite_metrics(metrics: dict) -> bool:
    return all(math.isfinite(v) for k, v in metrics.items() if isinstance(v, float) and k != "corr")


def _train(name: str, ds, **kw):
    torch.manual_seed(0)
    model = build_model(name, ds.info, "quick")
    res = fit_model(model, ds, _cfg(**kw), seed=0)
    return model, res


@pytest.mark.parametrize("name", MODELS)
def test_model_trains_on_cuda(smoke, name):
    model, res = _train(name, smoke)
    assert all(p.device.type == DEVICE.type for p in model.parameters())
    stages = [s["stage"] for s in res.stages]
    if name == "femf":
        assert stages == ["experts", "full"]                        # both stages ran
    for s in res.stages:
        losses = [row["train_total"] for row in s["history"]]
        assert losses, (s["stage"], losses)
        assert all(math.isfinite(v) for v in losses), (s["stage"], losses)
    assert res.test_metrics is not None, res.test_metrics
    assert _finite_metrics(res.test_metrics), res.test_metrics


@pytest.mark.parametrize("name", MODELS)
def test_bf16_autocast_trains(smoke, name):
    model, res = _train(name, smoke, amp=True)
    for s in res.stages:
        assert all(math.isfinite(row["train_total"]) for row in s["history"]), s["stage"]
    assert _finite_metrics(res.test_metrics), res.test_metrics
    if DEVICE.type == "cuda":       # autocast really ran in bf16: a linear layer's output is bf16 under it
        lin = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
        with torch.autocast("cuda", dtype=torch.bfloat16):
            y = lin(torch.randn(2, lin.in_features, device=DEVICE))
        assert y.dtype == torch.bfloat16


def _random_masked(B=12, L=37, D=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, L, D, generator=g, dtype=torch.float64)
    lengths = torch.tensor([0, 1, 2, 3, L, L - 1] + torch.randint(1, L + 1, (B - 6,), generator=g).tolist())
    mask = torch.arange(L)[None, :] < lengths[:, None]
    return x, mask


@pytest.mark.parametrize("method", ["matrix", "fft"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dft_split_cuda_matches_cpu(method, dtype):
    x, mask = _random_masked()
    x = x.to(dtype)
    lo_c, hi_c = dft.dft_split(x, mask, 0.6, method=method)
    lo_g, hi_g = dft.dft_split(x.to(DEVICE), mask.to(DEVICE), 0.6, method=method)
    assert lo_g.device.type == DEVICE.type
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(lo_g.cpu(), lo_c, atol=tol, rtol=tol)
    torch.testing.assert_close(hi_g.cpu(), hi_c, atol=tol, rtol=tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_graph_band_split_cuda_matches_cpu(dtype):
    x, mask = _random_masked(L=50, D=7, seed=1)
    x = x.to(dtype)
    cuts = [0.2, 0.55]
    comps_c, coef_c = graph.band_decompose(x, mask, cuts)
    comps_g, coef_g = graph.band_decompose(x.to(DEVICE), mask.to(DEVICE), cuts)
    assert comps_g.device.type == DEVICE.type
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(comps_g.cpu(), comps_c, atol=tol, rtol=tol)
    torch.testing.assert_close(coef_g.cpu(), coef_c, atol=tol, rtol=tol)
    # the bands still sum back to the signal on the device
    xm = (x * mask[..., None]).to(DEVICE)
    torch.testing.assert_close(comps_g.sum(1), xm, atol=tol, rtol=tol)


@pytest.mark.parametrize("name", ["femf", "atsuko"])
def test_checkpoint_saved_on_cuda_loads_on_cpu(smoke, name, tmp_path):
    run_dir = tmp_path / "run"
    torch.manual_seed(0)
    model = build_model(name, smoke.info, "quick")
    fit_model(model, smoke, _cfg(), seed=0, run_dir=run_dir)
    # every checkpoint of every stage loads onto the CPU
    cks = sorted(run_dir.rglob("*.pt"))
    assert cks
    for path in cks:
        ck = torch.load(path, map_location="cpu", weights_only=False)
        assert all(t.device.type == "cpu" for t in ck["model"].values() if torch.is_tensor(t))
    # the trained weights give the same predictions on the CPU as on the device (cuDNN's TF32
    # convolutions off, so that only fp32 rounding separates the two)
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        y_dev = predict(model, smoke.test, smoke.info, device=DEVICE)[1]
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
    last_stage = "full" if name == "femf" else "main"
    state = torch.load(run_dir / last_stage / "best.pt", map_location="cpu", weights_only=False)["model"]
    cpu_model = build_model(name, smoke.info, "quick")
    if name == "femf":
        cpu_model.set_stage("full")
    cpu_model.load_state_dict(state)
    y_cpu = predict(cpu_model, smoke.test, smoke.info, device="cpu")[1]
    np.testing.assert_allclose(y_cpu, y_dev, atol=1e-3, rtol=1e-3)
    # and the trainer resumes a run on the CPU from the checkpoint written on the device
    res = fit_model(cpu_model, smoke, _cfg(device="cpu", epochs=2, stage_epochs={"experts": 1, "full": 2}),
                    seed=0, run_dir=run_dir)
    assert res.resumed_from_epoch == 1
    assert _finite_metrics(res.test_metrics)


def test_run_resumes_on_cuda_from_its_checkpoint(smoke, tmp_path):
    """The trainer loads ``last.pt`` with ``map_location=device``; the RNG states in it must still restore."""
    torch.manual_seed(0)
    model = build_model("baseline", smoke.info, "quick")
    fit_model(model, smoke, _cfg(epochs=1), seed=0, run_dir=tmp_path)
    res = fit_model(build_model("baseline", smoke.info, "quick"), smoke, _cfg(epochs=2), seed=0, run_dir=tmp_path)
    assert res.resumed_from_epoch == 1
    assert res.epochs_run == 2
    assert _finite_metrics(res.test_metrics)


def test_femf_on_cuda_matches_cpu_in_one_chunk(smoke):
    """The packed FEMF gives the CPU's outputs on the GPU, its padded buckets' index maps (built on the host)
    are the same, and on CUDA the experts of a modality run in one chunk despite the CPU-sized budget."""
    from mser_lib.data.batch import iterate_batches
    from mser_lib.models.packing import Segment

    torch.manual_seed(0)
    cpu = build_model("femf", smoke.info, "quick", expert_chunk_mb=0.01).eval()
    gpu = build_model("femf", smoke.info, "quick", expert_chunk_mb=0.01).eval()
    gpu.load_state_dict(cpu.state_dict())
    gpu.to(DEVICE)
    b_cpu = next(iter(iterate_batches(smoke.train, smoke.info.layout, 48)))
    b_gpu = next(iter(iterate_batches(smoke.train, smoke.info.layout, 48, device=DEVICE)))
    for m in ("text", "audio", "vision"):
        s_cpu, s_gpu = Segment(0, getattr(b_cpu, m + "_mask"), 0), Segment(0, getattr(b_gpu, m + "_mask"), 0)
        assert len(s_cpu.buckets) == len(s_gpu.buckets) > 1
        for x, y in zip(s_cpu.buckets, s_gpu.buckets):
            assert (x.a, x.e, x.k, x.L) == (y.a, y.e, y.k, y.L)
            for name in ("gather", "mask", "real", "samples"):
                u, v = getattr(x, name), getattr(y, name)
                assert (u is None) == (v is None)
                assert (u is None or torch.equal(u, v.cpu()))
        n_gpu = len(gpu.experts.chunks(s_gpu, list(range(6)), gpu.config.expert_chunk_mb))
        n_cpu = len(cpu.experts.chunks(s_cpu, list(range(6)), cpu.config.expert_chunk_mb))
        assert n_cpu > 1
        assert n_gpu == (1 if DEVICE.type == "cuda" else n_cpu)       # a smoke batch is far below CUDA_CHUNK_MB
    with torch.no_grad():
        for stage in ("experts", "full"):
            cpu.set_stage(stage)
            gpu.set_stage(stage)
            want, got = cpu(b_cpu).prediction, gpu(b_gpu).prediction.cpu()
            assert torch.allclose(want, got, atol=1e-4, rtol=1e-4), (stage, (want - got).abs().max())


def test_optimizer_is_fused_on_cuda():
    from mser_lib.train.trainer import _make_optimizer

    p = torch.nn.Parameter(torch.zeros(3, device=DEVICE))
    for name in ("adam", "adamw"):
        opt = _make_optimizer([p], TrainConfig(optimizer=name, device=str(DEVICE)))
        assert bool(opt.defaults.get("fused")) is (DEVICE.type == "cuda")
        assert bool(opt.defaults.get("foreach")) is (DEVICE.type != "cuda")
