"""The notebook machinery: parameters cells, committed notebooks, papermill parameters, tables, figures.

nbval itself runs in ``make test`` (``pytest --nbval-lax notebooks/`` at the smoke profile); these tests
check what nbval cannot: that a parameter passed by papermill is honoured, that the committed notebooks
can be re-run by nbval safely, that the papers' numbers are transcribed faithfully, and the helpers.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from mser_lib import grids, notebook, pipeline
from mser_lib.report import paper_rows as pr
from mser_lib.report import readme as rd
from mser_lib.report.figures import save_figure

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
PAPERS = {"femf": SHARED / "papers" / "000_2781f86959980ecf.txt",
          "atsuko": SHARED / "papers" / "001_11b60be92aa45389.txt"}
PARAMS = {"profile", "dataset", "data_dir", "device", "seeds", "results_dir", "force"}


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_the_four_first_notebooks_exist():
    names = [p.name for p in NOTEBOOKS]
    for stem in ("00_data_preparation", "01_spectral_decomposition", "02_expert_pretraining",
                 "03_full_training"):
        assert f"{stem}.ipynb" in names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_cell_comes_first_and_defines_every_parameter(path):
    nb = nbformat.read(path, as_version=4)
    first = _code_cells(nb)[0]
    assert "parameters" in first.metadata.get("tags", []), "first code cell must be tagged 'parameters'"
    tree = ast.parse(first.source)
    assigned = {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
                if isinstance(t, ast.Name)}
    assert PARAMS <= assigned, PARAMS - assigned
    # nbval re-runs the committed notebook at smoke size into a temporary folder through these
    assert 'os.environ.get("MSER_NB_PROFILE"' in first.source
    assert 'os.environ.get("MSER_NB_RESULTS"' in first.source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_is_safe_for_nbval(path):
    """No papermill-injected parameters (they would override the environment defaults and make nbval
    train at quick size into results/), no absolute paths of the machine that executed it, no errors."""
    nb = nbformat.read(path, as_version=4)
    for c in nb.cells:
        assert "injected-parameters" not in c.metadata.get("tags", []), "papermill cell left in the notebook"
    text = json.dumps([c.get("outputs", []) for c in _code_cells(nb)])
    text = re.sub(r"/tmp/ipykernel_\d+/", "", text)          # the kernel's cell files, named in warnings
    assert str(ROOT) not in text, "absolute path in committed outputs"
    assert "/tmp/" not in text, "absolute path in committed outputs"
    assert '"output_type": "error"' not in text


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_hold_no_library_logic(path):
    """The notebooks call mser_lib; functions and classes belong in the library."""
    nb = nbformat.read(path, as_version=4)
    for c in _code_cells(nb):
        tree = ast.parse(c.source)
        defs = [n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
        assert not defs, f"{path.name}: define {defs} in mser_lib instead"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_checked_cells_print_only_profile_independent_facts(path):
    """A cell whose output nbval compares must not print numbers that depend on the profile."""
    nb = nbformat.read(path, as_version=4)
    checked = [c for c in _code_cells(nb) if c.source.startswith("# NBVAL_CHECK_OUTPUT")]
    assert checked, "each notebook checks at least one cell's output"
    for c in checked:
        for out in c.get("outputs", []):
            text = out.get("text", "")
            assert not re.search(r"\d\.\d{3,}", text), f"unrounded number in a checked cell: {text!r}"


# ------------------------------------------------------------------------------------- papermill
@pytest.mark.slow
def test_papermill_parameters_are_honoured(tmp_path):
    """Run notebook 02 at smoke size with seeds=[5] and a custom results folder: its runs.jsonl must hold
    exactly one FEMF run, seed 5, and its tables and figures must land in that folder."""
    import papermill as pm

    nb = ROOT / "notebooks" / "02_expert_pretraining.ipynb"
    out = tmp_path / "out.ipynb"
    pm.execute_notebook(str(nb), str(out), cwd=str(nb.parent), progress_bar=False, kernel_name="python3",
                        parameters={"profile": "smoke", "seeds": [5], "results_dir": str(tmp_path / "res")})
    runs = (tmp_path / "res" / "smoke" / "synthetic" / "runs.jsonl").read_text().splitlines()
    recs = [json.loads(line) for line in runs]
    assert [(r["model"], r["seed"], r["profile"]) for r in recs] == [("femf", 5, "smoke")]
    base = tmp_path / "res" / "smoke" / "synthetic"
    assert (base / "tables" / "expert_valid_metrics.md").exists()
    assert (base / "figures" / "expert_learning_curves.png").exists()
    assert (base / "figures" / "expert_learning_curves.pdf").exists()
    table = pd.read_csv(base / "tables" / "femf_stages.csv")
    assert table["seed"].tolist() == [5]
    # the replayed stage 1 ran as many epochs as the recorded one
    curves = pd.read_csv(base / "tables" / "expert_curves_seed5.csv")
    stage1 = [s for s in recs[0]["stages"] if s["stage"] == "experts"][0]
    assert curves["epoch"].nunique() == stage1["epochs_run"]


def test_update_committed_notebook_drops_injected_cell_and_keeps_outputs(tmp_path):
    import papermill as pm

    src = tmp_path / "nb.ipynb"
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import os\nx = int(os.environ.get('X', '1'))",
                                  metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print(x * 2)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, src)
    executed = tmp_path / "executed.ipynb"
    pm.execute_notebook(str(src), str(executed), parameters={"x": 21}, progress_bar=False,
                        kernel_name="python3")
    pipeline.update_committed_notebook(executed, src)
    back = nbformat.read(src, as_version=4)
    assert [c.source for c in back.cells] == [c.source for c in nb.cells]
    assert back.cells[1].outputs[0]["text"] == "42\n"
    assert "papermill" not in back.metadata
    # a notebook whose sources changed in between is not overwritten
    nb.cells[1].source = "print(x)"
    nbformat.write(nb, src)
    with pytest.raises(RuntimeError):
        pipeline.update_committed_notebook(executed, src)


def test_strip_run_metadata_makes_reruns_byte_identical(tmp_path):
    """Two papermill runs of the same notebook differ in timestamps and in the random id papermill gives
    its injected-parameters cell; stripped, they are the same bytes (committed executed notebooks stay
    clean after a reproduce)."""
    import papermill as pm

    src = tmp_path / "nb.ipynb"
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print(x * 2)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, src)
    outs = []
    for i in range(2):
        out = tmp_path / f"run{i}.ipynb"
        pm.execute_notebook(str(src), str(out), parameters={"x": 21}, progress_bar=False, kernel_name="python3")
        pipeline.strip_run_metadata(out)
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    assert b'"id": "injected-parameters"' in outs[0]


# ---------------------------------------------------------------------------------------- setup
def test_notebook_setup_resolves_parameters(tmp_path, monkeypatch):
    monkeypatch.delenv("MSER_THREADS", raising=False)
    monkeypatch.delenv("MSER_WORKERS", raising=False)
    ctx = notebook.notebook_setup("smoke", "synthetic", "", "cpu", None, tmp_path / "r", False)
    assert ctx.seeds == [0, 1]                                   # the smoke profile's
    assert ctx.tables == tmp_path / "r" / "smoke" / "synthetic" / "tables"
    assert ctx.tables.is_dir()
    assert ctx.figures.is_dir()
    assert ctx.data_dir is None
    assert ctx.threads == 1
    assert notebook.notebook_setup("smoke", seeds="3 4", results_dir=tmp_path).seeds == [3, 4]
    assert notebook.notebook_setup("smoke", seeds=7, results_dir=tmp_path).seeds == [7]
    assert notebook.notebook_setup("smoke", seeds=[2, 1], results_dir=tmp_path).seeds == [2, 1]
    monkeypatch.setenv("MSER_WORKERS", "1")
    assert notebook.notebook_setup("smoke", results_dir=tmp_path).executor == "inline"
    with pytest.raises(KeyError):
        notebook.notebook_setup("no-such-profile", results_dir=tmp_path)
    ctx.save_table(pd.DataFrame({"a": [1]}), "t")
    assert {p.name for p in ctx.written} == {"t.csv", "t.md", "t.tex"}


def test_a_figure_caption_is_shown_under_its_figure_and_the_figure_once(tmp_path, monkeypatch):
    """Issue 25: the caption was displayed when the figure was saved, and the figure itself only when the cell
    ended, so every caption stood above its figure."""
    import IPython.display
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    ctx = notebook.notebook_setup("smoke", results_dir=tmp_path)
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    ctx.save_figure(fig, "line", "A line from two points.")
    assert shown[0] is fig                                         # the figure first,
    assert "A line from two points." in shown[1].data              # then its caption
    assert not plt.fignum_exists(fig.number)                       # closed: the cell's end shows nothing more
    fig2, _ = plt.subplots()
    ctx.save_figure(fig2, "bare")                                  # no caption: left to the cell, as before
    assert len(shown) == 2
    assert plt.fignum_exists(fig2.number)
    plt.close(fig2)


def test_data_dir_defaults_to_shared_mosi_bclstm_and_relative_paths():
    d = notebook.resolve_data_dir("mosi-bclstm", "")
    if (SHARED / "data" / "mosi-bclstm").is_dir():
        assert Path(d).resolve() == (SHARED / "data" / "mosi-bclstm").resolve()
        rel = pipeline._data_dir_param(str(SHARED / "data" / "mosi-bclstm"))
        assert rel == "../../shared/data/mosi-bclstm"
        # naming the default folder and leaving it out inject the same parameter (same executed notebook)
        assert pipeline._data_dir_param(str(SHARED / "data" / "mosi-bclstm"), "mosi-bclstm") == ""
    else:
        assert d is None
    assert notebook.resolve_data_dir("synthetic", "") is None
    assert pipeline._data_dir_param("") == ""
    assert pipeline._data_dir_param("/elsewhere/mosi", "mosi-bclstm") == "/elsewhere/mosi"


def test_strip_run_metadata_joins_split_streams():
    """Jupyter may cut one cell's stdout into several stream outputs; the stripped notebook has one."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    out = [nbformat.v4.new_output("stream", name="stdout", text="21 runs\n"),
           nbformat.v4.new_output("stream", name="stdout", text="21 records\n"),
           nbformat.v4.new_output("stream", name="stderr", text="warn\n"),
           nbformat.v4.new_output("execute_result", data={"text/plain": "1"}, execution_count=1),
           nbformat.v4.new_output("stream", name="stdout", text="after\n")]
    nb.cells = [nbformat.v4.new_code_cell("print()", outputs=out), nbformat.v4.new_markdown_cell("x")]
    pipeline._strip_run_metadata(nb)
    got = [(o.output_type, o.get("name"), o.get("text")) for o in nb.cells[0].outputs]
    assert got == [("stream", "stdout", "21 runs\n21 records\n"), ("stream", "stderr", "warn\n"),
                   ("execute_result", None, None), ("stream", "stdout", "after\n")]
    assert pipeline._rel_to_notebooks((ROOT / "results").resolve()) == "../results"


def test_main_grid_has_every_model_and_the_unimodal_baselines():
    grid = grids.main_grid("smoke", "synthetic", [0, 1])
    models = {(g["model"], (g.get("overrides") or {}).get("modalities")) for g in grid}
    assert {("femf", None), ("atsuko", None), ("emoe", None)} <= models
    assert {("baseline", m) for m in ("tav", "t", "a", "v")} <= models
    assert len(grid) == 2 * len(models)


def test_readme_table_prefers_main_results(tmp_path):
    res = tmp_path / "results" / "quick" / "synthetic"
    (res / "tables").mkdir(parents=True)
    (res / "runs.jsonl").write_text(json.dumps({"model": "x", "seed": 0, "dataset": "synthetic",
                                                "profile": "quick", "test": {"mae": 1.0}}) + "\n")
    (res / "tables" / "main_results.csv").write_text(
        "source,model,dataset,setting,features,seeds,MAE,Acc-7\n"
        "reported: FEMF Table 1,FEMF,CMU-MOSI,utterance-level,DeBERTa,as reported,0.758,\n"
        "measured (mser),x,synthetic,profile quick,built-in,\"0,1\",0.5 ± 0.1,\n")
    (tmp_path / "results" / "quick" / "other").mkdir()
    (tmp_path / "results" / "quick" / "other" / "runs.jsonl").write_text(
        json.dumps({"model": "y", "seed": 0, "dataset": "other", "profile": "quick",
                    "test": {"mae": 1.0}}) + "\n")
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{rd.README_BEGIN}\nold\n{rd.README_END}\nrest\n")
    assert rd.write_readme_block(tmp_path / "results", readme) == 0
    text = readme.read_text()
    assert "| x | 0,1 | 0.5 ± 0.1 |" in text                          # measured row, empty Acc-7 dropped
    assert "Features: built-in." in text                                 # the features in the caption
    assert "reported: FEMF Table 1" not in text                          # reported rows: in the full table only
    assert "**other**" in text
    assert "old" not in text
    assert text.endswith("rest\n")


def test_readme_block_without_notebooks_shows_the_default_runs_and_counts_the_switched_ones(tmp_path):
    """A result set whose notebooks have not run (the claims profile's ledger runs): the table holds the runs with
    no switch set; the flipped runs are counted, not listed with their override strings."""
    res = tmp_path / "results" / "claims" / "synthetic"
    res.mkdir(parents=True)
    base = {"dataset": "synthetic", "profile": "claims", "test": {"mae": 1.0}}
    recs = [{**base, "model": "femf", "seed": s, "overrides": {}} for s in range(2)]
    recs += [{**base, "model": "femf", "seed": s, "overrides": {"freeze_experts": False}} for s in range(2)]
    (res / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    readme = tmp_path / "README.md"
    readme.write_text(f"{rd.README_BEGIN}\n{rd.README_END}\n")
    assert rd.write_readme_block(tmp_path / "results", readme) == 0
    text = readme.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| femf")]
    assert len(rows) == 1
    assert "freeze_experts" not in text
    assert "The other 2 runs of `" in text
    assert "each set a switch." in text
    # a quick-profile set whose runs all set a switch, with a ledger table the README does not show: counted,
    # and no "ledger below"
    quick = tmp_path / "results" / "quick" / "synthetic"
    (quick / "tables").mkdir(parents=True)
    (quick / "runs.jsonl").write_text("".join(json.dumps({**r, "profile": "quick"}) + "\n" for r in recs[2:]))
    (quick / "tables" / "deviations.csv").write_text("deviation,resolved\nx,no\n")
    assert rd.write_readme_block(tmp_path / "results", readme) == 0
    text = readme.read_text()
    assert "The 2 runs of `" in text
    assert "ledger below" not in text.split("profile `quick`")[-1]
    # a ledger table beside its runs and runs of other grids: each counted as what it is
    from mser_lib import grids

    label = grids.DEVIATIONS[0].label
    (res / "tables").mkdir()
    (res / "tables" / "deviations.csv").write_text("deviation,MAE: flipped - default,seeds,resolved,identical to the "
                                                   f"default\n{label},0.01,2,no,False\n")
    more = recs + [{**base, "model": "femf", "seed": 0, "overrides": {"use_fae": False}, "tag": "w/o FAE"}]
    more[2] = {**more[2], "tag": label}
    (res / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in more))
    assert rd.write_readme_block(tmp_path / "results", readme) == 0
    text = readme.read_text()
    assert "The other 3 runs of `" in text
    assert "1 are the deviation ledger's, which the table below reads; 2 belong to the other grids" in text


def test_readme_claims_block_before_notebooks_04_06_shows_table1_claims_and_counts_the_grids(tmp_path):
    """A claims profile whose notebook 03 has run but not 04-06: its main table, Table 1's claims counted with the
    resolved ones named, and the runs of the other grids counted."""
    res = tmp_path / "results" / "claims" / "synthetic"
    (res / "tables").mkdir(parents=True)
    base = {"dataset": "synthetic", "profile": "claims", "test": {"mae": 1.0}}
    recs = [{**base, "model": "femf", "seed": 0, "overrides": {}},
            {**base, "model": "femf", "seed": 0, "overrides": {"use_fae": False}, "tag": "w/o FAE"}]
    (res / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (res / "tables" / "main_results.csv").write_text(
        "source,model,dataset,setting,features,seeds,MAE\nmeasured (mser),femf,synthetic,profile claims,built-in,"
        "0,0.5\n")
    (res / "tables" / "claims_table1.csv").write_text(
        "claim,paper says,we measure,bootstrap 95% CI,seeds,schedule,p adjusted (Holm),resolved,agrees with paper\n"
        "Table 1: A beats B (MAE),0.7 vs 0.8,MAE: A-B = +0.1,\"[0.05, 0.15]\",5,60 epochs,0.01,yes,no\n"
        "Table 1: A beats C (MAE),0.7 vs 0.9,MAE: A-B = +0.0,\"[-0.1, 0.1]\",5,60 epochs,0.9,no,undecided\n")
    text = rd.readme_block(tmp_path / "results")
    for part in ("| femf | 0 | 0.5 |", "each paper's Table 1 as claims** (notebook 03). 2 claims in",
                 "1 resolved (0 as the paper says, 1 against it), 1 not resolved", "| Table 1: A beats B (MAE) |",
                 "The other 1 runs of `"):
        assert part in text, part
    assert "| Table 1: A beats C (MAE) |" not in text                   # not resolved: counted, not listed
    assert "same settings as a `quick` run" not in text                 # no quick runs here
    assert "the ablation claims" not in text
    assert "the tables of notebooks 04, 05, 06 come when they run on this profile" not in text   # no ledger here
    # notebook 04 has run too: its claims get their block, and the grids' sentence says which notebooks are left
    (res / "tables" / "claims_ablations.csv").write_text(
        "claim,paper says,we measure,bootstrap 95% CI,seeds,schedule,p adjusted (Holm),resolved,agrees with paper\n"
        "Table 4: T beats A (FEMF; MAE),0.7 vs 1.1,MAE: -0.3,\"[-0.4, -0.2]\",5,60 epochs,0.001,yes,yes\n")
    from mser_lib import grids

    label = grids.DEVIATIONS[0].label
    (res / "tables" / "deviations.csv").write_text("deviation,MAE: flipped - default,seeds,resolved,identical to the "
                                                   f"default\n{label},0.01,5,no,False\n")
    recs.append({**base, "model": "femf", "seed": 0, "overrides": {"freeze_experts": False}, "tag": label})
    (res / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    text = rd.readme_block(tmp_path / "results")
    assert ("the ablation claims (FEMF Tables 2-4, Atsuko Table 4)** (notebook 04). 1 claims in" in text)
    assert "| Table 4: T beats A (FEMF; MAE) |" in text
    assert ("notebook 04 reads its grid (the claims above), the tables of notebooks 05, 06 come when they run on "
            "this profile.") in text


def test_readme_block_refuses_a_folder_without_results(tmp_path, capsys):
    readme = tmp_path / "README.md"
    before = f"intro\n{rd.README_BEGIN}\nkept\n{rd.README_END}\n"
    readme.write_text(before)
    assert rd.write_readme_block(tmp_path / "reslts", readme) == 2
    assert readme.read_text() == before
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "reslts" in err
    assert "left as it is" in err


# ------------------------------------------------------------------------------------- figures
def test_save_figure_writes_png_and_pdf_atomically_and_reproducibly(tmp_path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    paths = save_figure(fig, tmp_path / "figs", "line")
    assert [p.name for p in paths] == ["line.png", "line.pdf"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths[1].read_bytes()[:5] == b"%PDF-"
    first = paths[1].read_bytes()
    save_figure(fig, tmp_path / "figs", "line")
    assert paths[1].read_bytes() == first                     # no timestamp in the PDF
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["line.pdf", "line.png"]  # no temp files
    with pytest.raises(ValueError):
        save_figure(fig, tmp_path, "../escape")
    plt.close(fig)


# ---------------------------------------------------------------------------------- paper rows
def _paper(name):
    p = PAPERS[name]
    if not p.exists():
        pytest.skip(f"{p} not available")
    return p.read_text()


def test_femf_table1_is_copied_verbatim_from_the_paper():
    lines = set(_paper("femf").splitlines())
    for row in pr.FEMF_TABLE1.strip().splitlines():
        assert row in lines, row


def _numbers(s: str) -> list[str]:
    return re.findall(r"\d+\.\d+", s)


@pytest.mark.parametrize("table,n", [(pr.ATSUKO_TABLE1, 8), (pr.ATSUKO_TABLE2, 10), (pr.ATSUKO_TABLE3, 4)])
def test_atsuko_tables_match_the_paper(table, n):
    text = _paper("atsuko")
    paper_rows_ = [(line.split("|")[1].strip(), _numbers(line)) for line in text.splitlines()
                   if line.startswith("| ") and len(_numbers(line)) == n]
    for row in table.strip().splitlines():
        cells = row.split("\t")
        nums = [c for c in cells if re.fullmatch(r"\d+\.\d+", c)]
        assert len(nums) == n
        stem = cells[0].split("(")[0].strip()
        hits = [name for name, got in paper_rows_ if got == nums and name.startswith(stem)]
        assert hits, f"{row!r} not found in the paper"


def test_reported_rows_are_labelled_and_scaled():
    femf = pr.femf_table1()
    ours = [r for r in femf if r.model == "Ours" and r.dataset == "CMU-MOSI"][0]
    assert ours.label == "FEMF"
    assert ours.implements == "femf"
    assert ours.value("mae") == pytest.approx(0.758)
    assert ours.value("acc2_non0") == pytest.approx(0.8837)
    assert ours.values["f1_non0"] == "88.36"                    # "85.32/ 88.36" as printed, space stripped
    ats = pr.atsuko_table1()
    assert len(ats) == 2 * 2 * 13
    assert {r.setting for r in ats} == {"aligned", "unaligned"}
    impl = pr.reported_rows("mosi", implemented_only=True)
    assert {r.implements for r in impl} == {"femf", "atsuko", "emoe", "tfn", "lmf", "mult", "misa", "selfmm", "mmim",
                                            "momke", "dmd"}
    # FEMF, Self-MM, MMIM and MoMKE* (the starred row: FEMF's authors' rerun) in FEMF's Table 1 on 2 datasets;
    # 9 models x 2 datasets x 2 settings in Atsuko's
    assert len(impl) == 4 * 2 + 9 * 4
    assert [r.implements for r in femf if r.model == "MoMKE*"] == ["momke", "momke"]
    assert all(r.implements == "atsuko" for r in pr.atsuko_table2() if r.label == "Atsuko")


def _fake_records(models=("femf", "baseline"), seeds=(0, 1)):
    rng = np.random.default_rng(0)
    recs = []
    for m in models:
        for s in seeds:
            test = {k: float(rng.uniform(0.5, 0.9)) for k in pr.SPEC2_COLUMNS["mosi"]}
            recs.append({"model": m, "seed": s, "dataset": "synthetic", "profile": "smoke", "tag": None,
                         "overrides": {"modalities": "t"} if m == "baseline" else {}, "test": test})
    return recs


def test_main_table_sets_reported_rows_beside_measured_rows():
    from mser_lib.data import make_synthetic

    info = make_synthetic("smoke").info
    recs = _fake_records()
    t = pr.main_table(recs, info, "smoke").reset_index()
    rep, meas = t[t["source"].str.startswith("reported")], t[t["source"].str.startswith("measured")]
    assert len(rep) == 44
    assert set(rep["seeds"]) == {"as reported"}
    assert meas["model"].tolist() == ["femf", "baseline (modalities=t)"]
    assert set(meas["seeds"]) == {"0,1"}
    assert set(meas["setting"]) == {"profile smoke"}
    for col in ("Acc-2 (neg/non-neg)", "F1 (neg/pos)", "Acc-7", "Acc-5", "Acc-3", "MAE", "Corr"):
        assert col in t.columns
    # mean ± std over the two seeds, in percent for accuracies
    vals = [r["test"]["acc7"] for r in recs if r["model"] == "femf"]
    want = f"{100 * np.mean(vals):.1f} ± {100 * np.std(vals, ddof=1):.1f}"
    assert meas.iloc[0]["Acc-7"] == want
    # reported cells are the printed strings, never recomputed
    femf_mosi = rep[(rep["model"] == "FEMF") & (rep["dataset"] == "CMU-MOSI")].iloc[0]
    assert femf_mosi["MAE"] == "0.758"
    assert femf_mosi["Acc-2 (neg/pos)"] == "88.37"
    assert pr.main_table(recs, info, "smoke", with_reported=False).shape[0] == 2
    # a cached record may carry the tag another grid gave it: rows are labelled by model and overrides
    tagged = [{**r, "tag": "FEMF (full)"} if r["model"] == "femf" and r["seed"] == 0 else r for r in recs]
    assert pr.main_table(tagged, info, "smoke", with_reported=False).reset_index()["model"].tolist() == \
        ["femf", "baseline (modalities=t)"]
    lay = pr.femf_layout(recs, info, "smoke").reset_index()
    assert lay["source"].str.startswith("measured").sum() == 2
    assert (lay["Acc-2"].str.count("/") == 1).all()
    lay = pr.atsuko_layout(recs, info, "smoke").reset_index()
    assert set(lay.loc[lay["source"].str.startswith("measured"), "note"]) == {"Acc-2/F1 = neg/pos"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_in_sync_with_its_jupytext_source(path):
    """Each notebook's cells come from ``notebooks/<name>.py`` (jupytext percent format): edit the .py,
    then ``jupytext --sync notebooks/*.py``. A notebook edited on one side only fails here."""
    import jupytext

    src = path.with_suffix(".py")
    assert src.exists(), f"{src.name} missing: run `jupytext --set-formats ipynb,py:percent {path.name}`"
    py = jupytext.read(src)
    nb = nbformat.read(path, as_version=4)
    assert [(c.cell_type, c.source) for c in py.cells] == [(c.cell_type, c.source) for c in nb.cells], \
        f"{path.name} and {src.name} differ: run `jupytext --sync notebooks/{src.name}`"


def test_strip_plots_do_not_depend_on_the_global_random_state(tmp_path):
    """Seaborn jitters strip plots with numpy's global generator: the same data must give the same bytes
    whatever ran before (make reproduce leaves committed figures unchanged)."""
    import matplotlib.pyplot as plt

    from mser_lib.report import figures

    long = pd.DataFrame({"row": ["a", "a", "b", "b"], "metric": "mae", "value": [1.0, 1.1, 2.0, 2.1]})
    out = []
    for k, seed in enumerate((1, 2)):
        np.random.seed(seed)
        fig = figures.seed_points(long, ["mae"], ["a", "b"])
        out.append(save_figure(fig, tmp_path / str(k), "f"))
        plt.close(fig)
    assert out[0][0].read_bytes() == out[1][0].read_bytes()
    assert np.random.get_state()[1][0] == np.random.RandomState(2).get_state()[1][0]   # global state untouched


def test_per_seed_figure_names_its_axes_in_words_and_draws_accuracy_in_percent():
    import matplotlib.pyplot as plt

    from mser_lib.report import figures

    long = pd.DataFrame({"row": ["a", "a"], "seed": [0, 1], "metric": ["acc2_non0", "mae"], "value": [0.81, 0.9]})
    fig = figures.seed_points(long, ["acc2_non0", "mae"], ["a"])
    acc, mae = fig.axes
    assert acc.get_title() == "Acc-2 (neg/pos)"
    assert acc.get_xlabel().startswith("Acc-2 (neg/pos) (%)")
    assert "higher is better" in acc.get_xlabel()
    assert "lower is better" in mae.get_xlabel()
    assert acc.patches[0].get_width() == pytest.approx(81.0)         # the bar is the mean in percent
    plt.close(fig)


def test_readme_claims_block_counts_verdicts_and_compares_with_quick(tmp_path):
    """A ``claims`` profile shows its verdict counts and resolved claims instead of a main table, and
    says how many of its runs equal a quick run with the same settings."""
    header = ("claim,paper says,we measure,seeds,schedule,p adjusted (Holm),resolved,agrees with paper\n")
    rows = ("A hurts,0.7 vs 0.8,MAE: +0.1,5,60 epochs,0.01,yes,yes\n"
            "B hurts,0.7 vs 0.8,MAE: -0.1,5,60 epochs,0.02,yes,no\n"
            "C hurts,0.7 vs 0.8,MAE: +0.0,5,60 epochs,0.9,no,undecided\n"
            "D hurts,0.7 vs 0.8,MAE: +0.0,2,4 epochs,,not enough seeds,undecided\n")
    base = tmp_path / "results"
    rec = {"model": "x", "seed": 0, "dataset": "d", "test": {"mae": 1.0}}
    for profile, test in (("claims", {"mae": 1.0}), ("quick", {"mae": 1.0})):
        (base / profile / "d" / "tables").mkdir(parents=True)
        r = {**rec, "profile": profile, "test": test, "config": {"profile": profile, "lr": 1}}
        other = {**r, "seed": 1, "config": {"profile": profile, "lr": 2},
                 "test": {"mae": 2.0 if profile == "claims" else 3.0}}
        (base / profile / "d" / "runs.jsonl").write_text(json.dumps(r) + "\n" + json.dumps(other) + "\n")
    (base / "claims" / "d" / "tables" / "claims_all.csv").write_text(header + rows)
    readme = tmp_path / "README.md"
    readme.write_text(f"{rd.README_BEGIN}\nold\n{rd.README_END}\n")
    assert rd.write_readme_block(base, readme) == 0
    text = readme.read_text()
    assert "4 claims in" in text
    assert "2 resolved (1 as the paper says, 1 against it), 1 not resolved, 1 with too few" in text
    assert "| A hurts |" in text
    assert "| B hurts |" in text
    assert "| C hurts |" not in text
    assert "2 have the same settings as a `quick` run, and 1 of those reproduce its test metrics exactly" in text
    assert "Of the 1 that differ, 1 were trained on another CPU than their `quick` twin or on one their records " \
           "do not name, 0 on the same CPU." in text


def test_table_cells_cannot_add_columns_rows_html_or_readme_markers():
    """Issue 24, item 6: '|', newlines and HTML in a record's text passed into tables and the README."""
    from mser_lib.report.tables import to_markdown

    df = pd.DataFrame({"model": ["a|b", "c\nd", f"x {rd.README_END} <b>bold</b>"], "MAE": [1, 2, 3]}).set_index("model")
    md = to_markdown(df)
    lines = md.strip().splitlines()
    assert len(lines) == 2 + 3                                       # header, rule, one line per row
    assert all(line.count(" | ") == 1 for line in lines[2:])         # two columns, escaped pipes inside cells
    assert "<" not in md
    assert rd.README_END not in md
