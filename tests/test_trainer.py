"""One trainer: selection on VALID, test scored once, resume equals uninterrupted, records."""

import json

import numpy as np
import pytest
import torch

import mser_lib.train.trainer as trainer_mod
from mser_lib.data import make_synthetic
from mser_lib.experiments import config_hash, run_one
from mser_lib.models import build_model
from mser_lib.train import TrainConfig, append_jsonl, atomic_write_json, fit_model, read_jsonl, set_seed

from helpers import tiny_dataset

CFG = dict(epochs=5, batch_size=16, lr=3e-3, patience=None, progress=False)


@pytest.fixture(scope="module")
def smoke():
    return make_synthetic("smoke", seed=0)


class Interrupt(Exception):
    pass


def _model(info, seed=3):
    set_seed(seed)               # initial weights are a function of the seed, as in run_one
    return build_model("baseline", info, "quick")


def test_killed_run_resumes_to_identical_metrics(smoke, tmp_path):
    cfg = TrainConfig(**CFG)
    full = fit_model(_model(smoke.info), smoke, cfg, seed=3, run_dir=tmp_path / "a")

    def kill(epoch, row):
        if epoch == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        fit_model(_model(smoke.info), smoke, cfg, seed=3, run_dir=tmp_path / "b", callbacks=[kill])
    resumed = fit_model(_model(smoke.info, seed=99), smoke, cfg, seed=3, run_dir=tmp_path / "b")
    assert resumed.resumed_from_epoch == 3
    assert resumed.best_epoch == full.best_epoch
    for k, v in full.test_metrics.items():
        assert resumed.test_metrics[k] == pytest.approx(v, abs=1e-6), k
    assert [r["valid_mae"] for r in resumed.history] == pytest.approx([r["valid_mae"] for r in full.history])


def test_a_resumed_run_counts_the_training_time_of_its_earlier_sittings(smoke, tmp_path):
    """Issue 21: a resumed run's record stated only its last sitting's time, so the grid's estimate (time taken
    against time expected) read low after every resume."""
    import time
    cfg = TrainConfig(**CFG)

    def slow_then_kill(epoch, row):
        if epoch == 0:
            time.sleep(1.0)      # the earlier sitting's epochs take at least this long
        if epoch == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        fit_model(_model(smoke.info), smoke, cfg, seed=3, run_dir=tmp_path / "b", callbacks=[slow_then_kill])
    resumed = fit_model(_model(smoke.info), smoke, cfg, seed=3, run_dir=tmp_path / "b")
    assert resumed.resumed_from_epoch == 3
    assert resumed.earlier_s >= 1.0                 # the first sitting's epochs 0-1 (epoch 2 saved after its callback)
    assert resumed.wall_time_s < resumed.earlier_s   # this sitting, two quick epochs, is kept apart
    fresh = fit_model(_model(smoke.info), smoke, cfg, seed=3, run_dir=tmp_path / "c")
    assert fresh.earlier_s == 0.0


def test_resume_without_best_pt_is_refused_naming_the_file(smoke, tmp_path):
    """Issue 24, item 3: a deleted best.pt used to let the resumed run record its last epoch's scores under
    the chosen epoch's number."""
    cfg = TrainConfig(**CFG)

    def kill(epoch, row):
        if epoch == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        fit_model(_model(smoke.info), smoke, cfg, seed=3, run_dir=tmp_path / "b", callbacks=[kill])
    best = next((tmp_path / "b").rglob("best.pt"))
    best.unlink()
    with pytest.raises(FileNotFoundError, match="best.pt: missing") as err:
        fit_model(_model(smoke.info), smoke, cfg, seed=3, run_dir=tmp_path / "b")
    assert str(best.parent) in str(err.value)


def test_selects_on_valid_and_scores_test_once(smoke, monkeypatch):
    calls = []
    real = trainer_mod.evaluate

    def spy(model, split, info, cfg=None, missing=None, seed=0):
        calls.append("test" if split is smoke.test else "valid" if split is smoke.valid else "train")
        return real(model, split, info, cfg, missing, seed)

    monkeypatch.setattr(trainer_mod, "evaluate", spy)
    res = fit_model(build_model("baseline", smoke.info, "quick"), smoke, TrainConfig(**CFG), seed=0)
    assert calls.count("test") == 1
    assert calls[-1] == "test"
    assert "train" not in calls
    maes = [r["valid_mae"] for r in res.history]
    assert res.best_epoch == int(np.argmin(maes))
    assert res.valid_metrics["mae"] == pytest.approx(min(maes), abs=1e-6)


def test_early_stopping_stops(smoke):
    res = fit_model(build_model("baseline", smoke.info, "quick"), smoke,
                    TrainConfig(**{**CFG, "epochs": 50, "patience": 2, "lr": 0.3}), seed=0)
    assert res.epochs_run < 50
    assert res.epochs_run - 1 - res.best_epoch == 2


@pytest.mark.slow
def test_multimodal_baseline_beats_text_only_on_synthetic():
    ds = make_synthetic("quick", seed=0)
    cfg = TrainConfig(**{**CFG, "epochs": 12, "batch_size": 32})
    corr = {}
    for mods in ("t", "tav"):
        res = fit_model(build_model("baseline", ds.info, "quick", modalities=mods), ds, cfg, seed=0)
        corr[mods] = res.test_metrics["corr"]
    assert corr["t"] < 0.78                 # text alone cannot exceed sqrt(1 - av_share)
    assert corr["tav"] > corr["t"] + 0.03, corr


def test_position_layout_gru_trains(tmp_path):
    ds = tiny_dataset("position")
    res = fit_model(build_model("bigru", ds.info, "quick", hidden=8), ds, TrainConfig(**CFG), seed=0)
    assert np.isfinite(res.test_metrics["mae"])


def test_run_one_records_and_caches(tmp_path, monkeypatch):
    kw = dict(model="baseline", dataset="synthetic", seed=0, profile="smoke", results_dir=tmp_path,
              progress=False)
    rec = run_one(**kw)
    for key in ("config", "config_hash", "seed", "git_revision", "versions", "device", "wall_time_s",
                "best_epoch", "valid", "test"):
        assert key in rec, key
    assert rec["config_hash"] == config_hash(rec["config"])
    lines = read_jsonl(tmp_path / "smoke" / "synthetic" / "runs.jsonl")
    assert len(lines) == 1
    assert lines[0]["test"] == pytest.approx(rec["test"])

    def boom(*a, **k):
        raise AssertionError("a cached run must not train again")

    monkeypatch.setattr("mser_lib.experiments.fit_model", boom)
    assert run_one(**kw)["config_hash"] == rec["config_hash"]
    other = dict(kw, overrides={"hidden": 8})
    with pytest.raises(AssertionError, match="must not train"):
        run_one(**other)


def test_atomic_writes_and_torn_lines(tmp_path):
    atomic_write_json(tmp_path / "x.json", {"a": 1})
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]          # no temp file left
    append_jsonl(tmp_path / "r.jsonl", {"k": 1})
    with open(tmp_path / "r.jsonl", "a") as f:
        f.write('{"k": 2, "trunc')                                         # a crash mid-write
    with pytest.warns(UserWarning, match=r"r\.jsonl.*line 2"):                # skipped, and said so
        assert read_jsonl(tmp_path / "r.jsonl") == [{"k": 1}]


def test_unknown_settings_are_refused(tmp_path):
    with pytest.raises(KeyError, match="unknown trainer setting"):
        run_one("baseline", profile="smoke", train={"epochz": 3}, results_dir=tmp_path)
    with pytest.raises(KeyError, match="has no field"):
        run_one("baseline", profile="smoke", overrides={"hiden": 3}, results_dir=tmp_path)


def test_loss_kind_is_honoured_or_rejected(smoke):
    """TrainConfig.loss_kind sets the task loss of models without their own loss; FEMF (whose loss() has
    its own task term, model field task_loss_kind) refuses it instead of ignoring it."""
    from mser_lib.models.base import task_loss
    from mser_lib.train import trainer

    cfg = dict(CFG, epochs=1)
    femf = build_model("femf", smoke.info, "quick")
    for kind in ("l1", "mse"):
        with pytest.raises(ValueError, match="loss_kind.*task_loss_kind"):
            fit_model(femf, smoke, TrainConfig(**cfg, loss_kind=kind))
    assert fit_model(femf, smoke, TrainConfig(**cfg)).epochs_run == 1 + 1      # unset: trains both stages
    # a model without its own loss: unset is L1 (MMSA's), "mse" is honoured
    net = _model(smoke.info)
    from mser_lib.data import collate
    b = collate(smoke.train, np.arange(16), smoke.info.layout)
    out = net(b)
    for kind, want in ((None, "l1"), ("l1", "l1"), ("mse", "mse")):
        got, _ = trainer.compute_loss(net, out, b, "regression", kind)
        assert float(got.detach()) == pytest.approx(float(task_loss(out.prediction, b, "regression", want).detach()))


def test_selecting_on_the_loss_trains(smoke):
    """``select_metric="loss"`` (the paper profile of Atsuko and EMOE) once clashed with the progress bar's
    own ``loss`` key (TypeError before the first epoch ended)."""
    cfg = TrainConfig(**{**CFG, "epochs": 1, "select_metric": "loss", "device": "cpu"})
    res = fit_model(_model(smoke.info), smoke, cfg)
    assert res.select_metric == "loss"
    assert np.isfinite(res.valid_metrics["loss"])


def test_a_run_that_never_selects_raises(smoke):
    from mser_lib.checks import ConfigError

    for bad in ({"epochs": 0}, {"patience": 0}):
        with pytest.raises(ConfigError, match=f"TrainConfig.{next(iter(bad))}=0: expected an integer >= 1"):
            TrainConfig(**{**CFG, **bad})            # refused where the setting is defined
        cfg = TrainConfig(**CFG)
        setattr(cfg, *next(iter(bad.items())))       # changed after construction: fit checks again
        with pytest.raises(ConfigError):
            fit_model(_model(smoke.info), smoke, cfg)
    # the guard behind the checks: a stage given no epochs (fit's own argument) selects nothing
    with pytest.raises(RuntimeError, match="no epoch was selected"):
        trainer_mod.fit(_model(smoke.info), smoke, TrainConfig(**CFG), epochs=0)


def test_a_run_that_learned_nothing_is_flagged_and_left_out_of_tables(smoke, tmp_path, capsys):
    from mser_lib.report.tables import aggregate
    from mser_lib.train.trainer import learned_nothing, trivial_metrics

    good = fit_model(_model(smoke.info), smoke, TrainConfig(**CFG))
    assert good.degenerate is False
    # lr ~0 and every prediction pushed 3 points up: a network that learned nothing and is off-centre
    import dataclasses

    net = _model(smoke.info)
    net.register_forward_hook(lambda m, i, out: dataclasses.replace(out, prediction=out.prediction + 3.0))
    dead = fit_model(net, smoke, TrainConfig(**{**CFG, "lr": 1e-12, "epochs": 2}))
    assert dead.degenerate is True
    triv = trivial_metrics(smoke, "valid")
    assert learned_nothing({"mae": triv["mae"]}, triv, "regression")          # ties count as nothing
    assert not learned_nothing({"mae": triv["mae"] - 1e-3}, triv, "regression")
    assert learned_nothing({"mae": float("nan")}, triv, "regression")
    recs = [{"model": "baseline", "seed": s, "dataset": "synthetic", "profile": "smoke", "config_hash": str(s),
             "test": {"mae": 1.0 + s}, "degenerate": s == 1} for s in (0, 1)]
    long = aggregate(recs)
    assert long["n"].max() == 1
    assert "degenerate run(s)" in capsys.readouterr().err
    assert aggregate(recs, include_degenerate=True)["n"].max() == 2


@pytest.mark.parametrize("per_stage", [True, False])
def test_a_staged_model_gets_one_optimizer_per_stage_or_one_for_all(monkeypatch, per_stage):
    """The FEMF reference keeps one Adam for both stages (its moments and step counts carried over); mser's
    default starts each stage afresh. Counted on FEMF's experts, which train in both stages when not frozen."""
    ds = tiny_dataset("sequence")
    made = []
    real = trainer_mod._make_optimizer
    monkeypatch.setattr(trainer_mod, "_make_optimizer", lambda *a, **k: made.append(real(*a, **k)) or made[-1])
    set_seed(0)
    model = build_model("femf", ds.info, "quick", hidden=8, heads=2, freeze_experts=False)
    cfg = TrainConfig(**{**CFG, "epochs": 2, "batch_size": 6, "stage_epochs": {"experts": 2, "full": 3},
                         "optimizer_per_stage": per_stage})
    fit_model(model, ds, cfg, seed=0)
    steps_per_epoch = -(-len(ds.train.labels) // 6)
    expert = next(p for n, p in model.named_parameters() if n.startswith("experts."))
    if per_stage:
        assert len(made) == 2
        assert int(made[1].state[expert]["step"]) == 3 * steps_per_epoch
    else:
        assert len(made) == 1
        assert int(made[0].state[expert]["step"]) == 5 * steps_per_epoch
    # a setting no profile sets is not in any run's hash: the records made before it keep theirs
    from mser_lib.experiments import resolve_run
    assert "optimizer_per_stage" not in resolve_run("femf", "synthetic", 0, "quick")["train"]


def test_fused_optimizer_is_opt_in_and_takes_the_same_steps_to_rounding():
    """``fused_optimizer=True`` builds fused Adam on the CPU (the default stays foreach, which the committed records
    were trained with); both take the same steps up to float rounding."""
    from mser_lib.train.trainer import _make_optimizer

    torch.manual_seed(0)
    start = torch.randn(300, 200)
    grads = [torch.randn(300, 200) for _ in range(5)]
    out = {}
    for fused in (False, True):
        p = torch.nn.Parameter(start.clone())
        opt = _make_optimizer([p], TrainConfig(lr=1e-2, weight_decay=1e-4, fused_optimizer=fused))
        assert opt.defaults.get("fused") is (True if fused else None)
        assert opt.defaults.get("foreach") is (None if fused else True)
        for g in grads:
            p.grad = g.clone()
            opt.step()
        out[fused] = p.detach()
    assert not torch.equal(out[False], start)
    torch.testing.assert_close(out[True], out[False], rtol=0, atol=1e-6)
