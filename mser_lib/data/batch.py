"""The one data path: in-memory splits, the :class:`Batch` every model sees, and batching.

Every loader in :mod:`mser_lib.data` returns a :class:`MultimodalDataset`: three
:class:`SplitData` (train, valid, test) of padded numpy arrays plus a :class:`DatasetInfo`.
:func:`iterate_batches` turns a split into :class:`Batch` objects of torch tensors.

Two sample layouts (docs/data-formats.md, "Two sample layouts"):

* ``"sequence"`` (MMSA): a sample is one utterance, a sequence of frames or tokens, one label.
  ``labels`` has shape ``(N,)``; each modality has its own length.
* ``"position"`` (utterance features, mosi-bclstm): a sample is one video, a sequence of
  utterances, one label per utterance. ``labels`` has shape ``(N, L)``, all modalities share the
  utterance axis, and ``label_mask`` marks the real (unpadded) positions.

Masks are boolean with ``True`` for a real position of a present modality. A modality that is
missing for a sample (see :mod:`mser_lib.data.missing`) has its features zeroed and its mask all
``False``; ``Batch.present`` says which modalities a sample has. Models must cope with a row whose
mask is all ``False`` (use :func:`masked_mean`, which returns zeros there).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import torch

MODALITIES: tuple[str, str, str] = ("text", "audio", "vision")
MODALITY_LETTERS = {"t": "text", "a": "audio", "v": "vision"}


@dataclass
class DatasetInfo:
    """What a model and the metrics need to know about a dataset.

    Attributes:
        name: registry name, e.g. ``"synthetic"``, ``"mosi-bclstm"``, ``"mosi"``.
        layout: ``"sequence"`` or ``"position"``.
        task: ``"regression"`` or ``"classification"``.
        metric_family: ``"mosi"`` (MOSI/MOSEI, labels in [-3, 3]), ``"sims"`` (labels in [-1, 1])
            or ``"classification"``; selects the definitions in :mod:`mser_lib.metrics`.
        dims: feature width per modality, ``{"text": d_t, "audio": d_a, "vision": d_v}``.
        num_classes: number of classes for classification, else ``None``.
        label_range: inclusive (low, high) for regression labels.
        source: free-form provenance (paths, split rule, generator knobs).
    """

    name: str
    layout: str
    task: str
    metric_family: str
    dims: dict[str, int]
    num_classes: int | None = None
    label_range: tuple[float, float] | None = (-3.0, 3.0)
    source: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.layout not in ("sequence", "position"):
            raise ValueError(f"layout must be 'sequence' or 'position', got {self.layout!r}")
        if self.task not in ("regression", "classification"):
            raise ValueError(f"task must be 'regression' or 'classification', got {self.task!r}")


@dataclass
class SplitData:
    """One split held in memory as padded arrays (padding at the end).

    Shapes (N samples; L_m the padded length of modality m; d_m its width):
        text (N, L_t, d_t), audio (N, L_a, d_a), vision (N, L_v, d_v): float32
        text_mask, audio_mask, vision_mask (N, L_m): bool, True on real positions
        labels: (N,) for the sequence layout, (N, L) for the position layout; float32 for
            regression, int64 for classification
        label_mask: same shape as labels, bool
        ids: (N,) str
    """

    text: np.ndarray
    audio: np.ndarray
    vision: np.ndarray
    text_mask: np.ndarray
    audio_mask: np.ndarray
    vision_mask: np.ndarray
    labels: np.ndarray
    label_mask: np.ndarray
    ids: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def features(self, modality: str) -> np.ndarray:
        return getattr(self, modality)

    def mask(self, modality: str) -> np.ndarray:
        return getattr(self, f"{modality}_mask")

    def lengths(self, modality: str = "text") -> np.ndarray:
        """Real length of each sample for ``modality``, shape (N,)."""
        return self.mask(modality).sum(axis=1).astype(np.int64)

    def subset(self, index: np.ndarray) -> SplitData:
        """The samples at ``index`` (a new SplitData; arrays are copies)."""
        return SplitData(**{k: getattr(self, k)[index] for k in _ARRAY_FIELDS})


_ARRAY_FIELDS = (
    "text", "audio", "vision", "text_mask", "audio_mask", "vision_mask", "labels", "label_mask", "ids",
)


@dataclass
class MultimodalDataset:
    """A dataset: its :class:`DatasetInfo` and three splits."""

    info: DatasetInfo
    train: SplitData
    valid: SplitData
    test: SplitData

    def __post_init__(self) -> None:
        # each modality's padded length over the splits (models whose layers depend on it, e.g. EMOE's
        # raw-input router, read it from info)
        if isinstance(self.info.source, dict) and "max_lengths" not in self.info.source:
            self.info.source["max_lengths"] = {m: max(int(self.split(s).mask(m).shape[1])
                                                      for s in ("train", "valid", "test")) for m in MODALITIES}

    def split(self, name: str) -> SplitData:
        if name not in ("train", "valid", "test"):
            raise KeyError(f"split must be 'train', 'valid' or 'test', got {name!r}")
        return getattr(self, name)

    def summary(self) -> dict:
        """Sizes, shapes and label statistics, for printing."""
        out = {"name": self.info.name, "layout": self.info.layout, "task": self.info.task,
               "dims": dict(self.info.dims)}
        for s in ("train", "valid", "test"):
            sp = self.split(s)
            lab = sp.labels[sp.label_mask]
            out[s] = {
                "samples": len(sp),
                "labelled_positions": int(sp.label_mask.sum()),
                "max_len": {m: int(sp.mask(m).shape[1]) for m in MODALITIES},
            }
            if self.info.task == "classification":
                # the class counts (a mean class id means nothing), and the majority class's share: the
                # accuracy a model that learned nothing reaches
                counts = np.bincount(lab.astype(np.int64), minlength=self.info.num_classes or 0)
                out[s]["class_counts"] = counts.tolist()
                out[s]["majority_share"] = round(float(counts.max() / counts.sum()), 4) if lab.size else None
            else:
                out[s]["label_mean"] = round(float(lab.mean()), 4) if lab.size else None
        return out


@dataclass
class Batch:
    """What every model's ``forward`` receives.

    Shapes (B samples; L_m the batch's padded length of modality m):
        text (B, L_t, d_t), audio (B, L_a, d_a), vision (B, L_v, d_v): float32
        text_mask, audio_mask, vision_mask (B, L_m): bool, True = real position of a present modality
        present (B, 3): bool, modality presence in the order (text, audio, vision)
        labels: (B,) sequence layout or (B, L) position layout
        label_mask: same shape as labels, bool
        ids: list of B sample ids
        layout: ``"sequence"`` or ``"position"``
    """

    text: torch.Tensor
    audio: torch.Tensor
    vision: torch.Tensor
    text_mask: torch.Tensor
    audio_mask: torch.Tensor
    vision_mask: torch.Tensor
    present: torch.Tensor
    labels: torch.Tensor
    label_mask: torch.Tensor
    ids: list[str]
    layout: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def features(self, modality: str) -> torch.Tensor:
        return getattr(self, modality)

    def mask(self, modality: str) -> torch.Tensor:
        return getattr(self, f"{modality}_mask")

    def to(self, device: torch.device | str) -> Batch:
        kw = {}
        for name in ("text", "audio", "vision", "text_mask", "audio_mask", "vision_mask",
                     "present", "labels", "label_mask"):
            kw[name] = getattr(self, name).to(device, non_blocking=True)
        return replace(self, **kw)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` (B, L, D) over real positions ``mask`` (B, L); zeros where a row has none."""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


def collate(split: SplitData, index: np.ndarray, layout: str,
            present: np.ndarray | None = None) -> Batch:
    """Gather samples ``index`` of ``split`` into a :class:`Batch`, trimmed to the longest real length.

    Args:
        split: the source split.
        index: (B,) sample indices.
        layout: ``"sequence"`` or ``"position"``.
        present: optional (B, 3) bool modality presence; absent modalities are zeroed and masked.
    """
    index = np.asarray(index)
    out = {}
    for m in MODALITIES:
        mask = split.mask(m)[index]
        real = np.flatnonzero(mask.any(0))
        length = int(real[-1]) + 1 if real.size else 1
        feats = split.features(m)[index, :length]
        mask = mask[:, :length]
        out[m] = feats
        out[f"{m}_mask"] = mask
    labels = split.labels[index]
    label_mask = split.label_mask[index]
    if layout == "position":
        length = out["text"].shape[1]
        labels = labels[:, :length]
        label_mask = label_mask[:, :length]
    if present is None:
        present = np.ones((len(index), 3), dtype=bool)
    tensors = {}
    for j, m in enumerate(MODALITIES):
        f = torch.from_numpy(np.ascontiguousarray(out[m], dtype=np.float32))
        mk = torch.from_numpy(np.ascontiguousarray(out[f"{m}_mask"]))
        keep = torch.from_numpy(present[:, j].copy())
        if not bool(keep.all()):
            f = f * keep.view(-1, 1, 1).to(f.dtype)
            mk = mk & keep.view(-1, 1)
        tensors[m] = f
        tensors[f"{m}_mask"] = mk
    return Batch(
        **tensors,
        present=torch.from_numpy(np.ascontiguousarray(present, dtype=bool)),
        labels=torch.from_numpy(np.ascontiguousarray(labels)),
        label_mask=torch.from_numpy(np.ascontiguousarray(label_mask, dtype=bool)),
        ids=[str(i) for i in split.ids[index]],
        layout=layout,
    )


def batch_order(lengths: np.ndarray, batch_size: int, shuffle: bool, seed: int | None,
                bucket: bool = True) -> list[np.ndarray]:
    """Split sample indices into batches.

    With ``bucket``, samples of similar length share a batch (chunks of 50 batches are sorted by
    length), so little compute is spent on padding; the batch order is then shuffled. The result is
    a pure function of (lengths, batch_size, shuffle, seed), which is what makes resumed training
    replay the same batches.
    """
    n = len(lengths)
    rng = np.random.default_rng(seed)
    idx = rng.permutation(n) if shuffle else np.arange(n)
    if bucket:
        chunk = batch_size * 50
        parts = []
        for s in range(0, n, chunk):
            c = idx[s:s + chunk]
            parts.append(c[np.argsort(-lengths[c], kind="stable")])
        idx = np.concatenate(parts) if parts else idx
    batches = [idx[s:s + batch_size] for s in range(0, n, batch_size)]
    if shuffle and bucket:
        order = rng.permutation(len(batches))
        batches = [batches[i] for i in order]
    return batches


def iterate_batches(split: SplitData, layout: str, batch_size: int, *, shuffle: bool = False,
                    seed: int | None = None, bucket: bool = True, missing=None,
                    device: torch.device | str | None = None) -> Iterator[Batch]:
    """Yield :class:`Batch` objects over ``split``.

    Args:
        split: the split to iterate.
        layout: ``"sequence"`` or ``"position"``.
        batch_size: samples per batch.
        shuffle: shuffle (deterministically from ``seed``).
        seed: seed for the order and for random missing-modality draws.
        bucket: group samples of similar length (see :func:`batch_order`).
        missing: ``None`` or a :class:`mser_lib.data.missing.MissingModality`.
        device: move each batch there.
    """
    lengths = split.lengths("text") + split.lengths("audio") + split.lengths("vision")
    batches = batch_order(lengths, batch_size, shuffle, seed, bucket)
    presence = None
    if missing is not None:
        presence = missing.presence(len(split), seed=seed)
    for index in batches:
        b = collate(split, index, layout, None if presence is None else presence[index])
        yield b.to(device) if device is not None else b
