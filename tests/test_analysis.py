"""mser_lib.report.analysis: recorded runs are rebuilt from the config they saved."""

import pytest
import torch

from mser_lib import runs
from mser_lib.experiments import config_hash, get_dataset, resolve_run
from mser_lib.models import build_model, count_parameters


@pytest.mark.parametrize("model", ["femf", "atsuko"])
def test_model_from_record_uses_the_saved_config_not_todays_preset(tmp_path, model):
    ds = get_dataset("synthetic", None, "smoke")
    run = resolve_run(model, "synthetic", 0, "smoke", info=ds.info)
    today = run["model_config"]
    # a record written when the preset had other values (as if the preset changed since)
    saved = dict(today)
    if model == "femf":
        saved.update(hidden=24, alpha=0.9, cutoff_ratio=0.4, interaction_layers=2)
    else:
        saved.update(d_model=16, num_layers=1, entropy_weight=0.25, kernel_sizes=[1, 3, 3])   # JSON: a list
    run = {**run, "model_config": saved}
    record = {"config": run, "config_hash": config_hash(run), "profile": "smoke", "dataset": "synthetic",
              "seed": 0}
    net = runs.model_from_record(record, ds)
    for k, v in saved.items():
        got = getattr(net.config, k)
        assert (list(got) if isinstance(got, tuple) else got) == v, k
    assert count_parameters(net) != count_parameters(build_model(model, ds.info, "quick"))
    # its checkpoint (trained with the saved config) loads; today's preset could not hold it
    stage = net.stages()[-1] if hasattr(net, "stages") else None
    path = runs.checkpoint_dir(tmp_path, record) / (stage or "main") / "best.pt"
    path.parent.mkdir(parents=True)
    torch.save({"model": net.state_dict()}, path)
    loaded = runs.model_from_record(record, ds, tmp_path, stage)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), net.state_dict().values()))
    with pytest.raises(RuntimeError):
        build_model(model, ds.info, "quick").load_state_dict(torch.load(path, weights_only=False)["model"])
    # a record without a saved model config falls back to the preset and overrides
    old = runs.model_from_record({**record, "config": {**run, "model_config": None}}, ds)
    assert count_parameters(old) == count_parameters(build_model(model, ds.info, "quick"))



def test_split_main_table_gives_narrow_measured_and_reported_views():
    import pandas as pd

    from mser_lib.report.paper_rows import split_main_table

    table = pd.DataFrame({
        "source": ["reported: FEMF Table 1", "measured (mser)", "measured (mser)"],
        "model": ["FEMF", "femf", "baseline"], "dataset": ["CMU-MOSI", "synthetic", "synthetic"],
        "setting": ["utterance-level", "profile quick", "profile quick"],
        "features": ["DeBERTa", "built-in", "built-in"], "seeds": ["as reported", "0,1", "0,1"],
        "MAE": ["0.758", "0.6 ± 0.1", "0.7 ± 0.1"], "Acc-7": ["", "40 ± 1", "41 ± 1"],
        "Acc-2 (protocol not stated)": ["", "", ""]}).set_index(["source", "model"])
    measured, reported, features = split_main_table(table)
    assert list(measured.index) == ["femf", "baseline"] and list(measured.columns) == ["seeds", "MAE", "Acc-7"]
    assert features == "built-in"
    assert list(reported.index) == [("reported: FEMF Table 1", "FEMF")]
    assert "Acc-7" not in reported.columns and "seeds" not in reported.columns and "features" in reported.columns
