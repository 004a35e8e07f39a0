"""Hostile ``runs.jsonl`` records (issue 24, item 7: "``table`` trusts every record field").

Each record field the tables read is checked before anything is averaged (:func:`mser_lib.report.tables.check_record`):
a record the table cannot average honestly is refused with one line naming the file, the line, the field, what was
expected and what was found (``python -m mser_lib table`` prints it as ``mser: error: ...`` and exits 2), never
skipped, coerced or averaged. The property-based tests feed random hostile records to the table builder and to the
README block writer: either that one-line error, or a Markdown table with exactly the expected rows and columns.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest

from mser_lib import cli
from mser_lib.data.validate import DataFormatError
from mser_lib.report import readme as rd
from mser_lib.report.tables import (
    MOSI_COLUMNS,
    aggregate,
    data_labels,
    load_records,
    results_table,
    to_markdown,
    wide_table,
)
from mser_lib.train.io import SkippedLinesWarning

ROOT = Path(__file__).resolve().parents[1]
METRICS = {"acc2_has0": 0.8, "f1_has0": 0.8, "acc2_non0": 0.81, "f1_non0": 0.81, "acc7": 0.4, "acc5": 0.45,
           "acc3": 0.6, "mae": 0.7, "corr": 0.8, "loss": 0.7}


def _record(seed: int = 0, model: str = "baseline", **fields) -> dict:
    """A record as :func:`mser_lib.experiments.train_run` writes it (the fields the tables read)."""
    rec = {"config_hash": f"{seed:016x}", "model": model, "dataset": "synthetic", "profile": "quick", "seed": seed,
           "overrides": {}, "test": dict(METRICS), "valid": dict(METRICS), "degenerate": False,
           "best_is_last": False}
    rec.update(fields)
    return rec


def _write(results: Path, lines: list, profile: str = "quick", dataset: str = "synthetic") -> Path:
    """``runs.jsonl`` with one line per record (a ``str`` is written as it is: NaN, raw text)."""
    path = results / profile / dataset / "runs.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def _table_cli(results: Path, capsys) -> tuple[int, str, str]:
    rc = cli.main(["table", "--results-dir", str(results), "--profile", "quick", "--dataset", "synthetic"])
    out, err = capsys.readouterr()
    return rc, out, err


def _cells(line: str) -> list[str]:
    """The cells of one Markdown table row: split at the pipes that are not escaped (``\\|``)."""
    cells, cur, i = [], "", 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and i + 1 < len(line):
            cur += line[i:i + 2]
            i += 2
            continue
        if ch == "|":
            cells.append(cur)
            cur = ""
        else:
            cur += ch
        i += 1
    cells.append(cur)
    assert cells[0] == "", line
    assert cells[-1] == "", line
    return cells[1:-1]


def _shape(md: str) -> tuple[int, int]:
    """``(data rows, columns)`` of a Markdown table, checking every line is a row of the same width."""
    lines = md.strip("\n").split("\n")
    assert all(line.startswith("|") for line in lines), md
    widths = {len(_cells(line)) for line in lines}
    assert len(widths) == 1, md
    assert re.fullmatch(r"\|(---\|)+", lines[1]), md
    return len(lines) - 2, widths.pop()


# ------------------------------------------------------------------------------------------------
# one test per hostile case of the issue: refused with one line naming the file, the line and the field

CASES = {
    "string metric": (lambda r: r["test"].update(mae="0.5"), "test.mae", "'0.5' (str)"),
    "list metric": (lambda r: r["test"].update(acc7=[0.4]), "test.acc7", "[0.4] (list)"),
    "NaN metric": (lambda r: r["test"].update(mae=math.nan), "test.mae", "nan (float)"),
    "null metric": (lambda r: r["test"].update(mae=None), "test.mae", "None (NoneType)"),
    "true as a metric": (lambda r: r["test"].update(acc2_has0=True), "test.acc2_has0", "True (bool)"),
    "accuracy 7": (lambda r: r["test"].update(acc7=7), "test.acc7", "expected a number in [0, 1], found 7"),
    "accuracy -0.5": (lambda r: r["test"].update(f1_has0=-0.5), "test.f1_has0", "found -0.5"),
    "corr 1.5": (lambda r: r["test"].update(corr=1.5), "test.corr", "expected a number in [-1, 1]"),
    "negative MAE": (lambda r: r["test"].update(mae=-0.1), "test.mae", "expected a finite number >= 0"),
    "infinite loss": (lambda r: r["test"].update(loss=math.inf), "test.loss", "expected a finite number"),
    "degenerate as a string": (lambda r: r.update(degenerate="false"), "degenerate", "'false' (str)"),
    "another dataset": (lambda r: r.update(dataset="mosi-bclstm"), "dataset",
                        "expected 'synthetic' (the dataset of the folder"),
    "another profile": (lambda r: r.update(profile="paper"), "profile", "expected 'quick' (the profile of the folder"),
    "no test metrics": (lambda r: r.pop("test"), "test", "found no such field"),
    "empty test metrics": (lambda r: r.update(test={}), "test", "found {} (dict)"),
    "seed as a string": (lambda r: r.update(seed="1"), "seed", "'1' (str)"),
    "best_is_last as a string": (lambda r: r.update(best_is_last="no"), "best_is_last", "'no' (str)"),
    "hash that climbs out": (lambda r: r.update(config_hash="../../.."), "config_hash", "16 lowercase hex"),
    "overrides as a list": (lambda r: r.update(overrides=["modalities=t"]), "overrides", "a mapping or null"),
    "bad valid metric": (lambda r: r["valid"].update(acc5="high"), "valid.acc5", "'high' (str)"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_table_refuses_a_hostile_record_with_one_line(case, tmp_path, capsys):
    change, field, found = CASES[case]
    bad = _record(seed=1)
    change(bad)
    path = _write(tmp_path, [_record(seed=0), bad, _record(seed=2)])
    rc, out, err = _table_cli(tmp_path, capsys)
    assert rc == 2
    assert out == ""
    assert err.count("\n") == 1, err
    assert "Traceback" not in err, err
    assert err.startswith("mser: error: "), err
    assert f"{path}, line 2" in err, err
    assert f"field '{field}'" in err, err
    assert found in err, err
    # the library call raises the same one-line error
    with pytest.raises(DataFormatError) as exc:
        load_records(tmp_path, "quick", "synthetic")
    assert "\n" not in str(exc.value)
    assert str(path) in str(exc.value)
    assert exc.value.field == field


def test_the_message_names_the_config_hash_of_the_run(tmp_path):
    bad = _record(seed=3)
    bad["test"]["acc7"] = 7
    path = _write(tmp_path, [bad])
    with pytest.raises(DataFormatError, match=re.escape(f"{path}, line 1 (run {3:016x}): field 'test.acc7': "
                                                        "expected a number in [0, 1], found 7 (int)")):
        load_records(tmp_path, "quick", "synthetic")


@pytest.mark.slow
def test_the_command_line_prints_one_line_without_traceback(tmp_path):
    bad = _record(seed=0)
    bad["test"]["mae"] = "0.5"
    path = _write(tmp_path, [bad])
    proc = subprocess.run([sys.executable, "-m", "mser_lib", "table", "--results-dir", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == (f"mser: error: {path}, line 1 (run {0:016x}): field 'test.mae': expected a finite "
                           "number >= 0, found '0.5' (str)\n"), proc.stderr


def test_a_pipe_newline_or_marker_in_a_name_stays_in_its_cell(tmp_path, capsys):
    names = ["a|b", "c\nd|e", f"x {rd.README_END} <b>", "\\|"]
    _write(tmp_path, [_record(seed=s, model=m, overrides={"modalities": m}) for s, m in enumerate(names)])
    rc, out, _ = _table_cli(tmp_path, capsys)
    assert rc == 0
    rows, cols = _shape(out)
    assert (rows, cols) == (4, 2 + len(MOSI_COLUMNS) + 2)        # model, variant, metrics, seeds, chosen epoch = last
    assert "<" not in out
    assert rd.README_END not in out


def test_a_nan_corr_is_shown_as_nan_not_dropped_from_the_mean(tmp_path, capsys):
    """Pearson r of a constant prediction is NaN (docs/metrics.md): accepted, and its group's mean is NaN,
    never the mean of the other seeds under a seed count that includes it."""
    a, b = _record(seed=0), _record(seed=1)
    b["test"]["corr"] = math.nan
    _write(tmp_path, [a, b])
    long = aggregate(load_records(tmp_path, "quick", "synthetic"))
    corr = long[long["metric"] == "corr"].iloc[0]
    assert corr["n"] == 2
    assert math.isnan(corr["mean"])
    assert math.isnan(corr["std"])
    rc, out, _ = _table_cli(tmp_path, capsys)
    assert rc == 0
    assert "| nan | 2 |" in out


def test_records_given_in_memory_are_checked_by_aggregate():
    recs = [_record(seed=0), _record(seed=1)]
    recs[1]["test"]["acc7"] = True
    with pytest.raises(DataFormatError, match=r"record 2 of those given \(run 0{15}1\): field 'test.acc7'"):
        aggregate(recs)
    with pytest.raises(DataFormatError, match="field 'valid'"):
        aggregate([{k: v for k, v in _record().items() if k != "valid"}], split="valid")
    # what searches and tests build in memory: no hash, no degenerate flag
    plain = {"model": "m", "seed": 0, "dataset": "d", "profile": "p", "test": {"mae": 1}}
    assert aggregate([plain])["n"].tolist() == [1]


def test_torn_lines_are_still_skipped_with_a_warning_and_lines_counted(tmp_path):
    bad = _record(seed=2)
    bad["test"]["acc7"] = 7
    path = _write(tmp_path, [_record(seed=0), '{"torn', _record(seed=1), bad])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(DataFormatError, match=re.escape(f"{path}, line 4 ")):
            load_records(tmp_path, "quick", "synthetic")
    assert any(issubclass(w.category, SkippedLinesWarning) and "line 2" in str(w.message) for w in caught)


@pytest.mark.slow
def test_every_committed_record_is_accepted():
    """The committed results (notebooks and the README writer read them) pass the checks unchanged."""
    found = sorted((ROOT / "results").glob("*/*/runs.jsonl"))
    if not found:
        pytest.skip("no committed results")
    for runs in found:
        profile, dataset = runs.parent.parent.name, runs.parent.name
        recs = load_records(ROOT / "results", profile, dataset)
        assert len(recs) == sum(1 for line in runs.read_text().splitlines() if line.strip())
        assert not aggregate(recs, "valid", include_degenerate=True).empty      # checks "test" and "valid"


# ------------------------------------------------------------------------------------------------
# property-based: random hostile records -> the one-line error, or a table of exactly the expected shape

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_SETTINGS = settings(max_examples=50, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
_MISSING = object()
_NAMES = st.one_of(
    st.text(alphabet=st.sampled_from(list("ab|\n\r\t <>\\-!`*_#&") + ["\u2028", "\x1c", "é"]), min_size=1,
            max_size=10),
    st.sampled_from([rd.README_BEGIN, rd.README_END, "a|b", "<!--", "|", "\\|", "| x |\n|---|", "femf"]))
_HOSTILE = st.one_of(
    st.just(_MISSING), st.none(), st.booleans(), st.integers(-3, 10), st.integers(2**53, 2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.floats(-1.5, 1.5), st.text(max_size=4),
    st.lists(st.floats(0, 1), max_size=2), st.dictionaries(st.text(max_size=2), st.floats(0, 1), max_size=2))
_FIELDS = [f"test.{m}" for m in METRICS] + ["valid.mae", "valid.acc7", "seed", "degenerate", "best_is_last",
                                             "dataset", "profile", "model", "config_hash", "overrides", "test"]


@st.composite
def _records(draw) -> list[dict]:
    recs = []
    for i in range(draw(st.integers(1, 4))):
        rec = _record(seed=draw(st.integers(0, 2)), model=draw(_NAMES), degenerate=draw(st.booleans()),
                      test={m: draw(st.floats(-1.0 if m == "corr" else 0.0, 1.0)) for m in METRICS})
        rec["config_hash"] = f"{i:016x}"
        rec["overrides"] = draw(st.sampled_from([{}, {"modalities": draw(_NAMES)}]))
        recs.append(rec)
    for _ in range(draw(st.integers(0, 2))):          # a few fields replaced by anything (or removed)
        rec = recs[draw(st.integers(0, len(recs) - 1))]
        field, value = draw(st.sampled_from(_FIELDS)), draw(_HOSTILE)
        if field == "test" and isinstance(value, dict):
            value = {}                                # other metric names would change the columns
        owner, key = (rec[field.split(".")[0]], field.split(".")[1]) if "." in field else (rec, field)
        if value is _MISSING:
            owner.pop(key, None)
        else:
            owner[key] = value
    return recs


def _real(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _metric_ok(name: str, v) -> bool:
    if not _real(v) or abs(v) > 1e300:
        return False
    if name == "corr":
        return math.isnan(v) or -1 <= v <= 1
    if math.isnan(v) or math.isinf(v):
        return False
    if name == "mae":
        return v >= 0
    return name == "loss" or 0 <= v <= 1


def _acceptable(rec: dict) -> bool:
    """What the tables may average, written out independently of the library's check."""
    if any(not isinstance(rec.get(k), str) or not rec[k].strip() for k in ("model", "dataset", "profile")):
        return False
    if rec["dataset"] != "synthetic" or rec["profile"] != "quick":
        return False
    if not _real(rec.get("seed")) or not isinstance(rec["seed"], int) or not 0 <= rec["seed"] < 2**32:
        return False
    if "config_hash" in rec and not (isinstance(rec["config_hash"], str)
                                     and re.fullmatch(r"[0-9a-f]{16}", rec["config_hash"])):
        return False
    if not isinstance(rec.get("test"), dict) or not rec["test"]:
        return False
    if "valid" in rec and rec["valid"] is not None and (not isinstance(rec["valid"], dict) or not rec["valid"]):
        return False
    for split in ("test", "valid"):
        if any(not _metric_ok(k, v) for k, v in (rec.get(split) or {}).items()):
            return False
    if not any(rec.get("degenerate") is v for v in (None, True, False)):
        return False
    if "best_is_last" in rec and not any(rec["best_is_last"] is v for v in (True, False)):
        return False
    return rec.get("overrides") is None or isinstance(rec["overrides"], dict)


def _expected_shape(recs: list[dict]) -> tuple[int, int] | None:
    """``(rows, columns)`` of the table of valid ``recs`` (``None``: every run degenerate, no table)."""
    kept = [r for r in recs if not r.get("degenerate")]
    if not kept:
        return None
    rows = len(set(zip((r["model"] for r in kept), data_labels(kept))))
    return rows, 2 + len(MOSI_COLUMNS) + 1 + any("best_is_last" in r for r in kept)


def _assert_refused(exc: DataFormatError, path: Path) -> None:
    text = str(exc)
    assert "\n" not in text, text
    assert "\r" not in text, text
    assert text.startswith(f"{path}, line "), text
    assert " field " in text, text
    assert ": expected " in text, text
    assert ", found " in text, text


@_SETTINGS
@given(recs=_records())
def test_table_of_hostile_records_is_refused_or_exact(recs, tmp_path):
    path = _write(tmp_path, recs)
    ok = all(_acceptable(r) for r in recs)
    try:
        df = results_table(tmp_path, "quick", "synthetic")
    except DataFormatError as exc:
        assert not ok, f"valid records refused: {exc}"
        _assert_refused(exc, path)
        return
    assert ok, "a hostile record was averaged"
    expected = _expected_shape(recs)
    if expected is None:
        assert df.empty
        return
    md = to_markdown(df)
    assert _shape(md) == expected, md
    assert "<" not in md
    assert rd.README_END not in md
    seeds = df["seeds"].tolist()
    assert all(1 <= n <= 3 for n in seeds)                # at most one value per seed, never more than were given


@_SETTINGS
@given(recs=_records())
def test_readme_block_of_hostile_records_is_refused_or_exact(recs, tmp_path):
    results = tmp_path / "results"
    path = _write(results, recs)
    readme = tmp_path / "README.md"
    before = f"intro\n{rd.README_BEGIN}\nold\n{rd.README_END}\nrest\n"
    readme.write_text(before)
    ok = all(_acceptable(r) for r in recs)
    try:
        rc = rd.write_readme_block(results, readme)
    except DataFormatError as exc:
        assert not ok, f"valid records refused: {exc}"
        _assert_refused(exc, path)
        assert readme.read_text() == before                         # refused: the README is left as it was
        return
    assert ok, "a hostile record was averaged"
    assert rc == 0, "a hostile record was averaged"
    text = readme.read_text()
    assert text.count(rd.README_BEGIN) == 1
    assert text.count(rd.README_END) == 1
    assert text.startswith("intro\n")
    assert text.endswith(f"{rd.README_END}\nrest\n")
    block = text.split(rd.README_BEGIN)[1].split(rd.README_END)[0]
    assert "<" not in block
    expected = _expected_shape(recs)
    table = "\n".join(line for line in block.split("\n") if line.startswith("|"))
    if expected is not None:
        assert _shape(table) == expected, block
    # the same records in memory, through the functions the notebooks call
    wide = wide_table(aggregate(load_records(results, "quick", "synthetic")))
    assert (expected is None) == wide.empty
    assert isinstance(wide, pd.DataFrame)
