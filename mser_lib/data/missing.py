"""Missing-modality masks: random per-sample drops at a rate, or a fixed condition.

A missing modality has its features zeroed and its mask set to all ``False`` in the
:class:`~mser_lib.data.batch.Batch` (``Batch.present`` records which modalities a sample kept).

* ``MissingModality(rate=0.3)``: each (sample, modality) is dropped independently with probability
  ``rate`` (0 to 0.4 in the papers' robustness studies); a sample that would lose all three keeps
  one modality chosen at random, so every sample still has some input.
* ``MissingModality(condition="ta")``: every sample keeps exactly the modalities named by the
  letters (``t``, ``a``, ``v``, ``ta``, ``tv``, ``av``, ``tav``), as in FEMF Table 4.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .batch import MODALITIES, MODALITY_LETTERS

CONDITIONS = ("t", "a", "v", "ta", "tv", "av", "tav")


@dataclass(frozen=True)
class MissingModality:
    """Which modalities each sample keeps. Give ``rate`` or ``condition``, not both."""

    rate: float = 0.0
    condition: str | None = None

    def __post_init__(self) -> None:
        if self.condition is not None:
            if self.rate:
                raise ValueError("give either rate or condition, not both")
            if self.condition not in CONDITIONS:
                raise ValueError(f"condition must be one of {CONDITIONS}, got {self.condition!r}")
        elif not 0.0 <= self.rate < 1.0:
            raise ValueError(f"missing rate must be in [0, 1), got {self.rate}")

    def presence(self, n: int, seed: int | None = 0) -> np.ndarray:
        """Boolean (n, 3) presence in the order (text, audio, vision); deterministic in ``seed``."""
        if self.condition is not None:
            keep = [MODALITY_LETTERS[c] for c in self.condition]
            row = np.array([m in keep for m in MODALITIES])
            return np.tile(row, (n, 1))
        if self.rate == 0.0:
            return np.ones((n, 3), dtype=bool)
        rng = np.random.default_rng(None if seed is None else seed + 7919)
        present = rng.random((n, 3)) >= self.rate
        empty = ~present.any(1)
        present[np.flatnonzero(empty), rng.integers(0, 3, size=int(empty.sum()))] = True
        return present

    @property
    def name(self) -> str:
        return f"cond-{self.condition}" if self.condition is not None else f"rate-{self.rate:g}"
