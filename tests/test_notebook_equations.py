"""Equations printed in the notebooks, checked against the library they describe.

Each test parses the notebooks' jupytext sources (``notebooks/NN_name.py``, the one source of each
notebook) and compares what the text says with a numeric evaluation of ``mser_lib``:

* eq. 15, ``R_m = alpha X^low + (1 - alpha) X^high``: the band that the bare ``alpha`` multiplies must
  be the band that alone determines ``R_m`` in :class:`mser_lib.models.femf.FEMF` at ``alpha = 1``;
* the DFT cut-off rule ``c_T = ...``: the printed formula, translated from LaTeX and evaluated, must
  equal :func:`mser_lib.spectral.dft.cutoff_bins` for every length and ratio tried.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from mser_lib.data import DatasetInfo, collate
from mser_lib.models import femf as femf_mod
from mser_lib.models.femf import FEMF, FEMFConfig
from mser_lib.spectral.dft import cutoff_bins

from helpers import tiny_split

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
SOURCES = {p.name: p.read_text() for p in sorted(NB_DIR.glob("[0-9][0-9]_*.py"))}


def _math(text: str) -> list[str]:
    """Every LaTeX fragment (``$$...$$`` or ``$...$``) of a jupytext source, comment marks removed."""
    body = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in text.splitlines())
    return [a or b for a, b in re.findall(r"\$\$(.+?)\$\$|\$([^$]+?)\$", body, flags=re.S)]


# ------------------------------------------------------------------------------------------------
# eq. 15: which band does alpha weigh?
# ------------------------------------------------------------------------------------------------

_BAND = r"[XR]_?\w*\s*\^\s*\{?\s*(?:\\mathrm\{|\\text\{)?(low|high)"
_EQ15 = re.compile(r"R_m\s*=\s*(.+?)(?:\\quad|\\qquad|,\s|\.\s*$|$)", flags=re.S)


def eq15_alpha_band(fragment: str) -> str | None:
    """The band (``"low"``/``"high"``) that the bare ``\\alpha`` multiplies in ``R_m = ...``, if any.

    ``(1-\\alpha)`` is not a bare alpha: the coefficient is found as an ``\\alpha`` not preceded by a
    minus sign, followed (after spacing) by the band's symbol."""
    m = _EQ15.search(fragment)
    if not m or "alpha" not in m.group(1):
        return None
    rhs = m.group(1)
    for hit in re.finditer(r"\\alpha", rhs):
        before = rhs[:hit.start()].rstrip()
        if before.endswith("-") or before.endswith("\\minus"):
            continue
        after = rhs[hit.end():]
        band = re.match(r"(?:\s|\\,|\\;|\\cdot)*" + _BAND, after)
        if band:
            return band.group(1)
    raise AssertionError(f"cannot read eq. 15's coefficient order from: {fragment!r}")


def _eq15_fragments() -> list[tuple[str, str]]:
    return [(name, f) for name, text in SOURCES.items() for f in _math(text) if _EQ15.search(f) and "alpha" in f]


DIMS = (6, 5, 4)
SMALL = dict(hidden=16, heads=2, expert_depth=1, interaction_layers=1, fusion_hidden=8, dropout=0.0,
             cutoff_ratio=0.6)


def _femf_R(alpha: float, high_shift: float, monkeypatch) -> dict:
    """``R_m`` of stage 2 (the output of eq. 11-15) of a tiny FEMF with the given ``alpha``; the high
    band of the DFT split gets ``high_shift`` times fixed noise added on real positions."""
    info = DatasetInfo("tiny", "sequence", "regression", "mosi", dict(zip(("text", "audio", "vision"), DIMS)))
    torch.manual_seed(0)
    model = FEMF(info, FEMFConfig(**SMALL, alpha=alpha)).eval()
    model.set_stage("full")
    split = tiny_split(4, lengths=[3, 9, 5, 12], dims=DIMS, layout="sequence", seed=0)
    batch = collate(split, np.arange(4), "sequence", None)
    real_split = femf_mod.dft_split

    def shifted_split(x, mask, ratio, method):
        low, high = real_split(x, mask, ratio, method)
        g = torch.Generator().manual_seed(1)
        noise = torch.randn(high.shape, generator=g, dtype=high.dtype)
        if mask is not None:
            noise = noise * mask.unsqueeze(-1).to(high.dtype)
        return low, high + high_shift * noise

    monkeypatch.setattr(femf_mod, "dft_split", shifted_split)
    got = {}
    real_moe = model._moe

    def moe(*args, **kw):
        got.update(real_moe(*args, **kw))
        return got

    model._moe = moe
    with torch.no_grad():
        model(batch)
    monkeypatch.setattr(femf_mod, "dft_split", real_split)
    return {m: v.clone() for m, v in got.items()}


def library_alpha_band(monkeypatch) -> str:
    """The band that ``alpha`` weighs in ``femf.py``, found numerically: at ``alpha = 1`` the output
    ``R_m`` ignores a change of the other band, and ``R(a) = a R(1) + (1 - a) R(0)``."""
    base, moved = _femf_R(1.0, 0.0, monkeypatch), _femf_R(1.0, 1.0, monkeypatch)
    high_ignored = all(torch.allclose(base[m], moved[m], atol=1e-6) for m in base)
    base0, moved0 = _femf_R(0.0, 0.0, monkeypatch), _femf_R(0.0, 1.0, monkeypatch)
    high_used_at_0 = any(not torch.allclose(base0[m], moved0[m], atol=1e-4) for m in base0)
    mid = _femf_R(0.3, 0.0, monkeypatch)
    for m in mid:                                                    # linear in alpha, as eq. 15
        torch.testing.assert_close(mid[m], 0.3 * base[m] + 0.7 * base0[m], atol=1e-5, rtol=1e-5)
    if high_ignored and high_used_at_0:
        return "low"
    if not high_ignored and not high_used_at_0:
        return "high"
    raise AssertionError("alpha weighs neither band alone")


def test_eq15_parser_reads_both_orders():
    assert eq15_alpha_band(r"R_m = \alpha X_m^{\mathrm{low}} + (1-\alpha) X_m^{\mathrm{high}}") == "low"
    assert eq15_alpha_band(r"R_m = \alpha\,R^{high}_m + (1-\alpha)\,R^{low}_m") == "high"
    assert eq15_alpha_band(r"R_m = (1 - \alpha) X_m^{\mathrm{high}} + \alpha X_m^{\mathrm{low}}") == "low"


def test_every_printed_eq15_matches_femf(monkeypatch):
    fragments = _eq15_fragments()
    assert {name for name, _ in fragments} >= {"01_spectral_decomposition.py", "02_expert_pretraining.py",
                                                "05_robustness.py"}
    lib = library_alpha_band(monkeypatch)
    assert lib == "low"                                              # the paper's eq. 15
    wrong = [(name, f) for name, f in fragments if eq15_alpha_band(f) != lib]
    assert not wrong, f"eq. 15 printed with alpha on the wrong band (femf.py weighs {lib}): {wrong}"


# ------------------------------------------------------------------------------------------------
# the cut-off rule c_T
# ------------------------------------------------------------------------------------------------

def latex_to_python(expr: str) -> str:
    """Translate the small LaTeX subset the cut-off formula uses into a Python expression of T, c."""
    out = expr
    for a, b in ((r"\mathrm{clamp}", "clamp"), (r"\operatorname{clamp}", "clamp"), (r"\min", "min"),
                 (r"\max", "max"), (r"\lfloor", "floor("), (r"\rfloor", ")"), (r"\lceil", "ceil("),
                 (r"\rceil", ")"), (r"\tfrac12", "(1/2)"), (r"\frac12", "(1/2)"), (r"\cdot", "*"),
                 (r"\big", ""), (r"\Big", ""), (r"\left", ""), (r"\right", ""), (r"\!", ""), (r"\ ", " "),
                 (r"\,", " "), ("{", "("), ("}", ")")):
        out = out.replace(a, b)
    if "\\" in out:
        raise ValueError(f"untranslated LaTeX in {expr!r}: {out!r}")
    out = re.sub(r"(?<=[\w)])\s+(?=[\w(])", " * ", out.strip())     # implicit products: "c (T" -> "c * (T"
    out = re.sub(r"(?<=[\dTcL)])\s*\(", " * (", out)
    out = out.replace("clamp * (", "clamp(").replace("floor * (", "floor(").replace("ceil * (", "ceil(")
    out = out.replace("min * (", "min(").replace("max * (", "max(")
    return out


def evaluate_cutoff(expr: str, T: int, c: float, padded: int | None = None) -> int:
    py = latex_to_python(expr)
    env = {"floor": math.floor, "ceil": math.ceil, "min": min, "max": max,
           "clamp": lambda x, lo, hi: min(max(x, lo), hi), "T": T, "c": c, "L": padded if padded else T}
    return int(eval(py, {"__builtins__": {}}, env))                 # noqa: S307 (our own notebook text)


def _cutoff_fragments() -> list[tuple[str, str]]:
    found = []
    for name, text in SOURCES.items():
        for f in _math(text):
            m = re.match(r"\s*c_T\s*=\s*(.+?)\s*$", f, flags=re.S)
            if m:
                found.append((name, m.group(1)))
    return found


def test_cutoff_translator_tells_the_rules_apart():
    right = (r"\mathrm{clamp}\big(\lfloor c \cdot (\lfloor T/2 \rfloor + 1) + \tfrac12 \rfloor,\ 1,\ "
             r"\lfloor T/2 \rfloor + 1\big)")
    assert all(evaluate_cutoff(right, T, c) == cutoff_bins(T, c) for T in range(1, 40) for c in (0.1, 0.4, 0.6, 0.9))
    old = r"\lceil c\,(L/2+1) \rceil"                                # notebook 05's former text, padded L
    assert any(evaluate_cutoff(old, T, c, padded=50) != cutoff_bins(T, c) for T in range(1, 40) for c in (0.4, 0.6))
    assert any(evaluate_cutoff(old, T, c) != cutoff_bins(T, c) for T in range(1, 40) for c in (0.4, 0.6))


def test_every_printed_cutoff_rule_matches_cutoff_bins():
    fragments = _cutoff_fragments()
    assert {name for name, _ in fragments} >= {"01_spectral_decomposition.py", "05_robustness.py"}
    for name, expr in fragments:
        assert "L" not in latex_to_python(expr), f"{name}: the cut-off must use the sample's own length T"
        for T in range(1, 130):
            for c in (0.0, 0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 1.0):
                assert evaluate_cutoff(expr, T, c) == cutoff_bins(T, c), (name, expr, T, c)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_no_cutoff_over_the_padded_length(name):
    """No notebook may state the cut-off with a ceiling over a padded length ``L`` again."""
    assert not [f for f in _math(SOURCES[name]) if re.search(r"\\lceil\s*c", f)], name
