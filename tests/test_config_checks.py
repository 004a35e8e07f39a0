"""Every setting is range-checked where it is defined (issue 12): a ConfigError naming the field, the value
found and the allowed range; valid settings pass unchanged (presets, profiles, grids)."""

from __future__ import annotations

import dataclasses

import pytest

from mser_lib.checks import ConfigError
from mser_lib.data import make_synthetic
from mser_lib.experiments import config_hash, resolve_run
from mser_lib.models.atsuko import AtsukoConfig
from mser_lib.models.baselines import BiGRUConfig, LateFusionConfig
from mser_lib.models.femf import FEMFConfig
from mser_lib.models.registry import MODELS, build_config, build_model, model_names
from mser_lib.train import TrainConfig


@pytest.fixture(scope="module")
def info():
    return make_synthetic("smoke", seed=0).info


TRAIN_BAD = [
    ({"epochs": 0}, "TrainConfig.epochs=0: expected an integer >= 1"),
    ({"epochs": -3}, "TrainConfig.epochs=-3: expected an integer >= 1"),
    ({"epochs": 2.5}, "TrainConfig.epochs=2.5: expected an integer"),
    ({"epochs": True}, "TrainConfig.epochs=True: expected an integer"),
    ({"patience": 0}, "TrainConfig.patience=0: expected an integer >= 1 or None"),
    ({"patience": -1}, "TrainConfig.patience=-1: expected an integer >= 1 or None"),
    ({"clip_grad": -1}, "TrainConfig.clip_grad=-1: expected a number > 0 or None"),
    ({"clip_grad": float("inf")}, "TrainConfig.clip_grad=inf: expected a number > 0"),
    ({"grad_accum": -1}, "TrainConfig.grad_accum=-1: expected an integer >= 1"),
    ({"grad_accum": 0}, "TrainConfig.grad_accum=0: expected an integer >= 1"),
    ({"lr": 0.0}, "TrainConfig.lr=0.0: expected a number > 0"),
    ({"lr": -1e-3}, "TrainConfig.lr=-0.001: expected a number > 0"),
    ({"lr": float("nan")}, "TrainConfig.lr=nan: expected a number > 0"),
    ({"lr": "1e-4"}, "TrainConfig.lr='1e-4': expected a number"),
    ({"weight_decay": -0.1}, "TrainConfig.weight_decay=-0.1: expected a number >= 0"),
    ({"batch_size": 0}, "TrainConfig.batch_size=0: expected an integer >= 1"),
    ({"eval_batch_size": -8}, "TrainConfig.eval_batch_size=-8: expected an integer >= 1"),
    ({"optimizer": "sgd"}, "TrainConfig.optimizer='sgd': expected one of 'adam', 'adamw'"),
    ({"loss_kind": "huber"}, "TrainConfig.loss_kind='huber': expected one of 'l1', 'mse' or None"),
    ({"select_metric": "accuracy"}, "TrainConfig.select_metric='accuracy': expected one of"),
    ({"stage_epochs": {"experts": -1}}, "TrainConfig.stage_epochs={'experts': -1}: expected stage name -> epochs"),
    ({"stage_epochs": {"full": 0}}, "TrainConfig.stage_epochs={'full': 0}"),
    ({"stage_epochs": 5}, "TrainConfig.stage_epochs=5: expected a mapping"),
    ({"train_missing_rate": 1.0}, "TrainConfig.train_missing_rate=1.0: expected a number in [0, 1)"),
    ({"plateau_factor": 1.5}, "TrainConfig.plateau_factor=1.5: expected a number in (0, 1)"),
    ({"plateau_patience": -1}, "TrainConfig.plateau_patience=-1: expected an integer >= 0"),
    ({"selection": "test"}, "TrainConfig.selection='test': expected one of 'valid', 'crossfit'"),
    ({"crossfit_folds": 1}, "TrainConfig.crossfit_folds=1: expected an integer >= 2"),
    ({"crossfit_seed": -1}, "TrainConfig.crossfit_seed=-1: expected an integer >= 0"),
    ({"amp": "yes"}, "TrainConfig.amp='yes': expected true or false"),
    ({"device": ""}, "TrainConfig.device='': expected auto, cpu"),
]


@pytest.mark.parametrize("bad,message", TRAIN_BAD, ids=[str(b) for b, _ in TRAIN_BAD])
def test_train_config_refuses_out_of_range_settings(bad, message):
    with pytest.raises(ConfigError) as ei:
        TrainConfig(**bad)
    assert message in str(ei.value)
    assert isinstance(ei.value, ValueError)          # callers catching ValueError keep working


def test_train_config_valid_settings_are_kept_exactly():
    cfg = TrainConfig(epochs=1, patience=None, clip_grad=None, lr=1, weight_decay=0, stage_epochs={"experts": 1},
                      select_metric="loss", loss_kind="mse", train_missing_rate=0.0, selection="crossfit")
    assert cfg.lr == 1
    assert type(cfg.lr) is int
    assert dataclasses.asdict(TrainConfig()) == {f.name: (f.default if f.default is not dataclasses.MISSING
                                                          else f.default_factory())
                                                 for f in dataclasses.fields(TrainConfig)}


MODEL_BAD = [
    (FEMFConfig, {"alpha": 7}, "FEMFConfig.alpha=7: expected a number in [0, 1]"),
    (FEMFConfig, {"alpha": -0.1}, "FEMFConfig.alpha=-0.1"),
    (FEMFConfig, {"cutoff_ratio": 1.5}, "FEMFConfig.cutoff_ratio=1.5: expected a number in [0, 1]"),
    (FEMFConfig, {"hidden": 0}, "FEMFConfig.hidden=0: expected an integer >= 1"),
    (FEMFConfig, {"hidden": 33, "heads": 2}, "FEMFConfig.hidden=33: expected a multiple of heads=2"),
    (FEMFConfig, {"heads": 0}, "FEMFConfig.heads=0"),
    (FEMFConfig, {"dropout": 1.0}, "FEMFConfig.dropout=1.0: expected a number in [0, 1)"),
    (FEMFConfig, {"attn_dropout": -0.5}, "FEMFConfig.attn_dropout=-0.5"),
    (FEMFConfig, {"task_loss_kind": "huber"}, "FEMFConfig.task_loss_kind='huber': expected one of 'mse', 'l1'"),
    (FEMFConfig, {"w_rec": -1.0}, "FEMFConfig.w_rec=-1.0: expected a number >= 0"),
    (FEMFConfig, {"modalities": "tx"}, "FEMFConfig.modalities='tx'"),
    (FEMFConfig, {"modalities": ""}, "FEMFConfig.modalities=''"),
    (FEMFConfig, {"dft_method": "wavelet"}, "FEMFConfig.dft_method='wavelet'"),
    (FEMFConfig, {"interaction_order": "t:aa"}, "FEMFConfig.interaction_order='t:aa'"),
    (FEMFConfig, {"interaction_order": "q:av"}, "FEMFConfig.interaction_order='q:av'"),
    (FEMFConfig, {"interaction_layers": -1}, "FEMFConfig.interaction_layers=-1: expected an integer >= 0"),
    (FEMFConfig, {"expert_ffn": 0}, "FEMFConfig.expert_ffn=0"),
    (FEMFConfig, {"use_fae": "no"}, "FEMFConfig.use_fae='no': expected true or false"),
    (FEMFConfig, {"expert_chunk_mb": 0}, "FEMFConfig.expert_chunk_mb=0"),
    (AtsukoConfig, {"d_model": 0}, "AtsukoConfig.d_model=0"),
    (AtsukoConfig, {"d_model": 30, "num_heads": 4}, "AtsukoConfig.d_model=30: expected a multiple of num_heads=4"),
    (AtsukoConfig, {"num_layers": 0}, "AtsukoConfig.num_layers=0: expected an integer >= 1"),
    (AtsukoConfig, {"out_dropout": 1.2}, "AtsukoConfig.out_dropout=1.2: expected a number in [0, 1)"),
    (AtsukoConfig, {"text_dropout": -0.1}, "AtsukoConfig.text_dropout=-0.1"),
    (AtsukoConfig, {"router_temperature": 0.0}, "AtsukoConfig.router_temperature=0.0: expected a number > 0"),
    (AtsukoConfig, {"band_mask_rate": 1.0}, "AtsukoConfig.band_mask_rate=1.0: expected a number in [0, 1)"),
    (AtsukoConfig, {"num_bands": 0}, "AtsukoConfig.num_bands=0"),
    (AtsukoConfig, {"kernel_sizes": (3, 0, 3)}, "AtsukoConfig.kernel_sizes=(3, 0, 3)"),
    (AtsukoConfig, {"kernel_sizes": (3, 3)}, "AtsukoConfig.kernel_sizes=(3, 3)"),
    (AtsukoConfig, {"loss_kind": "huber"}, "AtsukoConfig.loss_kind='huber'"),
    (AtsukoConfig, {"comp_loss_kind": "huber"}, "AtsukoConfig.comp_loss_kind='huber'"),
    (AtsukoConfig, {"entropy_weight": -1.0}, "AtsukoConfig.entropy_weight=-1.0"),
    (AtsukoConfig, {"router_path": "middle"}, "AtsukoConfig.router_path='middle'"),
    (AtsukoConfig, {"distill_kind": "l2"}, "AtsukoConfig.distill_kind='l2'"),
    (AtsukoConfig, {"emoe_target_eps": 0}, "AtsukoConfig.emoe_target_eps=0"),
    (BiGRUConfig, {"hidden": 0}, "BiGRUConfig.hidden=0: expected an integer >= 1"),
    (BiGRUConfig, {"dropout": 1.0}, "BiGRUConfig.dropout=1.0"),
    (BiGRUConfig, {"modalities": "tt"}, "BiGRUConfig.modalities='tt'"),
    (LateFusionConfig, {"hidden": -4}, "LateFusionConfig.hidden=-4"),
    (LateFusionConfig, {"dropout": 2}, "LateFusionConfig.dropout=2"),
]


@pytest.mark.parametrize("cls,bad,message", MODEL_BAD, ids=[f"{c.__name__}-{b}" for c, b, _ in MODEL_BAD])
def test_model_configs_refuse_out_of_range_settings(cls, bad, message):
    with pytest.raises(ConfigError) as ei:
        cls(**bad)
    assert message in str(ei.value)


def test_build_config_and_build_model_get_the_checks(info):
    with pytest.raises(ConfigError, match=r"FEMFConfig.alpha=7"):
        build_config("femf", info, "quick", alpha=7)
    with pytest.raises(ConfigError, match=r"BiGRUConfig.hidden=0"):
        build_model("baseline", info, "quick", hidden=0)
    # the bidirectional GRU halves hidden: odd widths are refused for the position layout only
    pos = dataclasses.replace(info, layout="position")
    with pytest.raises(ConfigError, match=r"BiGRUConfig.hidden=33: expected an even integer"):
        build_model("baseline", pos, "quick", hidden=33)
    build_model("baseline", info, "quick", hidden=33)               # late-fusion MLP: fine


@pytest.mark.parametrize("layout", ["sequence", "position"])
def test_every_preset_passes_its_own_checks(info, layout):
    for name in ("mosei", "synthetic"):
        inf = dataclasses.replace(info, layout=layout, name=name)
        for model in model_names():
            for preset in MODELS[model].presets:
                build_config(model, inf, preset)


def test_resolve_run_checks_trainer_settings_and_seed_without_changing_the_hash(info):
    with pytest.raises(ConfigError, match=r"TrainConfig.clip_grad=-1"):
        resolve_run("baseline", "synthetic", 0, "smoke", train={"clip_grad": -1}, info=info)
    for seed in (-1, 1.5, True):
        with pytest.raises(ConfigError, match=r"run.seed="):
            resolve_run("baseline", "synthetic", seed, "smoke", info=info)



def test_a_valid_run_keeps_its_committed_config_hash():
    """Nothing the checks do enters a run: FEMF seed 0 on the quick synthetic benchmark resolves to the hash
    of its record in results/quick/synthetic/runs.jsonl."""
    import json
    from pathlib import Path

    from mser_lib.experiments import get_dataset

    run = resolve_run("femf", "synthetic", 0, "quick", info=get_dataset("synthetic", None, "quick").info)
    runs = Path(__file__).resolve().parents[1] / "results" / "quick" / "synthetic" / "runs.jsonl"
    committed = [r for r in map(json.loads, runs.read_text().splitlines())
                 if r["model"] == "femf" and r["seed"] == 0 and not r["overrides"]
                 and r["config"]["train"] == run["train"]]
    assert [r["config_hash"] for r in committed] == [config_hash(run)]


# ------------------------------------------------------------------------------ layout defaults
def test_position_layout_settings_follow_the_layout_not_the_dataset_name():
    """Every position-layout dataset gets the position-layout trainer settings (issue 12: the
    utterance format used to get the sequence layout's batch of 32); mosi-bclstm keeps its own
    selection; a sequence-layout dataset keeps the profile's."""
    from mser_lib.data import dataset_layout
    from mser_lib.experiments import load_profile, resolve_run

    assert dataset_layout("synthetic") == "sequence"
    assert dataset_layout("mosi") == "sequence"
    assert {dataset_layout(d) for d in ("mosi-bclstm", "mosi-utt", "mosei-utt")} == {"position"}
    prof = load_profile("quick")
    pos = prof["layouts"]["position"]["train"]
    for ds in ("mosi-utt", "mosei-utt"):
        for model in ("femf", "baseline"):
            t = resolve_run(model, ds, 0, "quick")["train"]
            assert {k: t[k] for k in pos} == pos, (ds, model)
        assert resolve_run("femf", ds, 0, "quick")["train"]["stage_epochs"] == {"experts": 10, "full": 60}
    # mosi-bclstm's own section (the papers' models and their budget) wins over the layout's
    own = prof["datasets"]["mosi-bclstm"]["train"]
    for model in ("femf", "atsuko", "emoe", "baseline"):
        t = resolve_run(model, "mosi-bclstm", 0, "quick")["train"]
        assert {k: t[k] for k in ("batch_size", "epochs", "patience", "clip_grad")} == \
            {k: own[k] for k in ("batch_size", "epochs", "patience", "clip_grad")}, model
    assert resolve_run("femf", "mosi-bclstm", 0, "quick")["train"]["stage_epochs"] == {"experts": 20, "full": 60}
    assert resolve_run("baseline", "mosi-bclstm", 0, "quick")["train"]["selection"] == "crossfit"
    assert resolve_run("baseline", "mosi-utt", 0, "quick")["train"].get("selection", "valid") == "valid"
    assert resolve_run("baseline", "synthetic", 0, "quick")["train"]["batch_size"] == 32


def test_layout_sections_keep_the_committed_mosi_bclstm_hashes():
    """Moving mosi-bclstm's settings into the position-layout section changed no run: FEMF and the
    baseline of the committed quick mosi-bclstm records re-resolve to their recorded hashes."""
    import json
    from pathlib import Path

    from mser_lib.data.batch import DatasetInfo
    from mser_lib.data.bclstm import DIMS
    from mser_lib.experiments import config_hash, resolve_run

    runs = Path(__file__).resolve().parents[1] / "results" / "quick" / "mosi-bclstm" / "runs.jsonl"
    recs = [json.loads(line) for line in runs.read_text().splitlines() if line.strip()]
    info = DatasetInfo(name="mosi-bclstm", layout="position", task="regression", metric_family="mosi",
                       dims=dict(DIMS))
    main = [r for r in recs if r["model"] in ("femf", "baseline", "atsuko") and not r.get("overrides")
            and r["config"]["train"] == resolve_run(r["model"], "mosi-bclstm", r["seed"], "quick")["train"]]
    assert len(main) >= 10
    for r in main:        # the data's fingerprint from the record: this checks the settings, without ../shared
        info.source["fingerprint"] = r["config"]["data_fingerprint"]
        run = resolve_run(r["model"], "mosi-bclstm", r["seed"], "quick", info=info)
        assert config_hash(run) == r["config_hash"], (r["model"], r["seed"])


def test_a_callers_epochs_set_every_stage_of_a_staged_model():
    """--train-set epochs=N used to be ignored by FEMF, whose profile's stage_epochs won."""
    run = resolve_run("femf", "synthetic", 0, "quick", train={"epochs": 3})
    assert run["train"]["stage_epochs"] == {"experts": 3, "full": 3}
    assert run["train"]["epochs"] == 3
    explicit = resolve_run("femf", "synthetic", 0, "quick",
                           train={"epochs": 3, "stage_epochs": {"experts": 1, "full": 2}})
    assert explicit["train"]["stage_epochs"] == {"experts": 1, "full": 2}
    assert resolve_run("femf", "synthetic", 0, "quick")["train"]["stage_epochs"] == {"experts": 10, "full": 25}
    assert "stage_epochs" not in resolve_run("baseline", "synthetic", 0, "quick", train={"epochs": 3})["train"]


def test_the_registry_is_the_one_list_of_models():
    """The main grid, the robustness study, the search and the figures read their models from the registry:
    a model registered with a role joins them all without another edit."""
    from dataclasses import replace

    from mser_lib import grids, search
    from mser_lib.grids import main_grid
    from mser_lib.models import registry

    assert registry.model_names("method") == ["femf", "atsuko", "emoe"]
    assert registry.model_names("baseline") == ["baseline", "tfn", "lmf", "mult", "misa", "selfmm", "mmim",
                                                "momke", "dmd"]
    extra = replace(registry.model_spec("baseline"), name="toy_baseline", label="toy", color="#000000",
                    main_variants=({},))
    registry.register(extra)
    try:
        grid = main_grid("smoke", "synthetic", [0])
        assert {"model": "toy_baseline", "seed": 0} in grid
        assert "toy_baseline" in {s["model"] for s in grids.robustness("smoke", [0])}
        assert "toy_baseline" in search.model_spaces()
        assert registry.model_colors()["toy_baseline"] == "#000000"
    finally:
        del registry.MODELS["toy_baseline"]


def test_every_registered_model_has_a_colour_of_its_own():
    """Figures with every model (the robustness curves: twelve lines) tell models apart by colour alone."""
    from mser_lib.models import registry

    shown = registry.model_names("method") + registry.model_names("baseline")     # the models the figures draw
    colors = {n: c for n, c in registry.model_colors().items() if n in shown}
    assert set(colors) == set(shown)
    assert all(colors.values())
    taken = {}
    for name, color in colors.items():
        assert color.lower() not in taken, f"{name} and {taken.get(color.lower())} share {color}"
        taken[color.lower()] = name


def test_user_errors_cross_a_process_boundary_as_themselves():
    """A ConfigError or DataFormatError raised in a pool worker reaches the parent as the same one-line error
    (their four-argument __init__ used to make them unpicklable: BrokenProcessPool)."""
    import pickle

    from mser_lib.checks import ConfigError
    from mser_lib.data.validate import DataFormatError

    for err in (ConfigError("TrainConfig", "epochs", 0, "an integer >= 1"),
                DataFormatError("/data/x.pkl", "train/text", "(N, L, 768)", "(3, 4)")):
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err)
        assert str(back) == str(err)
        assert back.field == err.field
