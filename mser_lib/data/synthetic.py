"""The built-in benchmark: synthetic multimodal sentiment data whose answer is known.

Nothing is downloaded: the data is generated deterministically from a seed, sized by a profile
(``smoke`` for notebook checks, ``quick`` for CPU minutes, ``paper`` with MOSI's split sizes).
Its generative story is the point: sentiment evidence sits in known frequency bands of each
modality, behind strong low-frequency nuisance, and part of the label is only recoverable from
audio and vision together. A frequency-aware multimodal model has something real to find, and a
frequency-blind or text-only model provably misses part of it.

Generative story (sequence layout, one label per sample; frequencies in cycles per time step,
so 0.5 is the Nyquist frequency)

1. Label. Two independent latents ``u`` (text evidence) and ``w_a``, ``w_v`` (audio and vision
   evidence), all standard normal. With ``w = (w_a + w_v) / sqrt(2)`` and the audio+vision share
   ``s = av_share``::

       z = sqrt(1 - s) * u + sqrt(s) * w          # Var(z) = 1; a fraction s of it is audio+vision
       y = round_to(clip(label_scale * z + label_shift, -3, 3), 0.2)

   With the defaults (scale 1.6, shift 0.07) this matches CMU-MOSI's labels: mean ~0.07, std
   ~1.5, about 4% exact zeros, values on a 0.2 grid in [-3, 3] (MOSI labels average five
   annotators). The share ``s`` of the label variance is invisible to text by construction.
2. Length. Each sample has its own length ``T ~ U{min_len, ..., max_len}``; padding at the end.
3. Text (``d_t`` channels): the evidence is smooth. ``x_t(t) = u * p_t * (1 + 0.5 cos(2 pi f t + phi))``
   with ``f`` drawn in ``text_band`` (low), plus white noise of std ``text_noise``. Mean-pooling
   recovers ``u``.
4. Audio (``d_a``) and vision (``d_v``): the evidence is an oscillation in a band along a fixed
   channel direction ``p_m``, whose amplitude grows with the latent::

       x_m(t) = max(0, A0 + gain * w_m) * cos(2 pi f_m t + phi_m) * p_m + nuisance_m(t) + noise

   with ``f_m`` drawn per sample in ``audio_band`` (high) or ``vision_band`` (mid). The sign and
   size of ``w_m`` are read from the band's energy along ``p_m``; the mean over time is ~0, so
   pooling the raw signal sees nothing. ``nuisance_m`` is strong low-frequency drift (speaker
   drift, head pose): a per-sample random offset plus two slow sinusoids (``nuisance_band``) on
   random channel directions, with amplitude ``nuisance_scale``; it dominates the raw energy of
   every channel, which is what defeats a frequency-blind probe. White noise has std
   ``av_noise``.

Knobs (all in :class:`SyntheticConfig`): sizes, lengths, dimensions, the three bands, the nuisance
band and scale, the noises, ``A0`` and ``gain``, and ``av_share``. ``tests/test_synthetic.py``
shows the structure is there: a ridge probe on band-limited energy recovers the audio/vision share,
a frequency-blind probe on the same channels recovers clearly less.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .. import checks
from .batch import DatasetInfo, MultimodalDataset, SplitData
from .validate import data_fingerprint


@dataclass(frozen=True)
class SyntheticConfig:
    """Every knob of the built-in benchmark (see the module docstring for the story)."""

    n_train: int = 1200
    n_valid: int = 300
    n_test: int = 500
    min_len: int = 12
    max_len: int = 40
    dim_text: int = 32
    dim_audio: int = 16
    dim_vision: int = 24
    av_share: float = 0.4
    label_scale: float = 1.6
    label_shift: float = 0.07
    text_band: tuple[float, float] = (0.0, 0.04)
    audio_band: tuple[float, float] = (0.30, 0.45)
    vision_band: tuple[float, float] = (0.12, 0.22)
    nuisance_band: tuple[float, float] = (0.0, 0.04)
    nuisance_scale: float = 3.0
    text_noise: float = 1.0
    av_noise: float = 0.5
    amplitude: float = 2.0
    gain: float = 0.6

    def __post_init__(self) -> None:
        checks.check_types(self)
        for f in ("n_train", "n_valid", "n_test", "min_len", "max_len", "dim_text", "dim_audio", "dim_vision"):
            checks.integer(self, f, 1)


PROFILES: dict[str, dict] = {
    "smoke": dict(n_train=240, n_valid=80, n_test=120, min_len=8, max_len=24,
                  dim_text=16, dim_audio=12, dim_vision=12),
    "quick": {},
    # MOSI's split sizes (1284/229/686) and longer sequences.
    "paper": dict(n_train=1284, n_valid=229, n_test=686, min_len=20, max_len=50,
                  dim_text=64, dim_audio=32, dim_vision=32),
}


def synthetic_config(profile: str = "quick", **knobs) -> SyntheticConfig:
    """The config of ``profile`` with ``knobs`` overriding single fields."""
    if profile not in PROFILES:
        raise KeyError(f"unknown synthetic profile {profile!r}; known: {sorted(PROFILES)}")
    fields = {f.name for f in dataclasses.fields(SyntheticConfig)}
    unknown = sorted(set(knobs) - fields)
    if unknown:
        raise KeyError(f"the synthetic benchmark has no setting(s) {unknown}; settings: {sorted(fields)}")
    return dataclasses.replace(SyntheticConfig(**PROFILES[profile]), **knobs)


def _unit(rng: np.random.Generator, d: int) -> np.ndarray:
    v = rng.standard_normal(d)
    return v / np.linalg.norm(v)


def _generate_split(cfg: SyntheticConfig, n: int, dirs: dict, rng: np.random.Generator,
                    prefix: str, latents=None) -> tuple[SplitData, dict]:
    """One split. ``latents(rng, n) -> (u, w_a, w_v, labels)`` replaces step 1 of the story (the
    classification variant draws the latents from each sample's class); the signals are the same."""
    L = cfg.max_len
    lengths = rng.integers(cfg.min_len, cfg.max_len + 1, size=n)
    t = np.arange(L, dtype=np.float64)[None, :]                     # (1, L)
    real = t < lengths[:, None]                                      # (n, L)

    s = cfg.av_share
    if latents is None:
        u = rng.standard_normal(n)
        w_a = rng.standard_normal(n)
        w_v = rng.standard_normal(n)
        w = (w_a + w_v) / np.sqrt(2.0)
        z = np.sqrt(1.0 - s) * u + np.sqrt(s) * w
        y = np.clip(cfg.label_scale * z + cfg.label_shift, -3.0, 3.0)
        y = np.clip(np.round(y / 0.2) * 0.2, -3.0, 3.0).astype(np.float32)
    else:
        u, w_a, w_v, y = latents(rng, n)
        w = (w_a + w_v) / np.sqrt(2.0)

    def band_freq(band):
        return rng.uniform(band[0], band[1], size=(n, 1))

    # Text: smooth evidence u along p_t, with a slow envelope.
    f_t, ph_t = band_freq(cfg.text_band), rng.uniform(0, 2 * np.pi, size=(n, 1))
    env = 1.0 + 0.5 * np.cos(2 * np.pi * f_t * t + ph_t)              # (n, L)
    text = (u[:, None] * env)[..., None] * dirs["text"][None, None, :]
    text = text + cfg.text_noise * rng.standard_normal((n, L, cfg.dim_text))

    def av(latent, band, d, p):
        f, ph = band_freq(band), rng.uniform(0, 2 * np.pi, size=(n, 1))
        amp = np.maximum(0.0, cfg.amplitude + cfg.gain * latent)[:, None]
        x = (amp * np.cos(2 * np.pi * f * t + ph))[..., None] * p[None, None, :]
        # Nuisance: per-sample offset + two slow sinusoids on random directions.
        offset = rng.standard_normal((n, 1, d)) * cfg.nuisance_scale / np.sqrt(d)
        x = x + offset
        for _ in range(2):
            fn = band_freq(cfg.nuisance_band)
            phn = rng.uniform(0, 2 * np.pi, size=(n, 1))
            dirn = rng.standard_normal((n, 1, d)) / np.sqrt(d)
            x = x + cfg.nuisance_scale * np.cos(2 * np.pi * fn * t + phn)[..., None] * dirn
        return x + cfg.av_noise * rng.standard_normal((n, L, d)), f[:, 0]

    audio, f_a = av(w_a, cfg.audio_band, cfg.dim_audio, dirs["audio"])
    vision, f_v = av(w_v, cfg.vision_band, cfg.dim_vision, dirs["vision"])

    pad = ~real[..., None]
    arrays = {}
    for name, x in (("text", text), ("audio", audio), ("vision", vision)):
        x = np.where(pad, 0.0, x).astype(np.float32)
        arrays[name] = x
        arrays[f"{name}_mask"] = real.copy()
    split = SplitData(**arrays, labels=y, label_mask=np.ones(n, dtype=bool),
                      ids=np.array([f"{prefix}{i:05d}" for i in range(n)]))
    latents = {"u": u, "w_a": w_a, "w_v": w_v, "av_component": np.sqrt(s) * w,
               "text_component": np.sqrt(1.0 - s) * u, "f_audio": f_a, "f_vision": f_v,
               "lengths": lengths}
    return split, latents


def make_synthetic(profile: str = "quick", seed: int = 0, return_latents: bool = False,
                   **knobs) -> MultimodalDataset | tuple[MultimodalDataset, dict]:
    """Generate the built-in benchmark.

    Args:
        profile: ``"smoke"``, ``"quick"`` or ``"paper"`` (sizes; see ``PROFILES``).
        seed: everything (channel directions, latents, noise) follows from it.
        return_latents: also return ``{split: {"u", "w_a", "w_v", "av_component", ...}}``, the
            hidden variables, for probes and figures.
        **knobs: any :class:`SyntheticConfig` field.

    Returns:
        A sequence-layout regression :class:`MultimodalDataset` with labels in [-3, 3]
        (metric family ``"mosi"``).
    """
    cfg = synthetic_config(profile, **knobs)
    if not 0.0 <= cfg.av_share <= 1.0:
        raise ValueError(f"av_share must be in [0, 1], got {cfg.av_share}")
    if not 1 <= cfg.min_len <= cfg.max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got {cfg.min_len}, {cfg.max_len}")
    rng = np.random.default_rng(seed)
    dirs = {"text": _unit(rng, cfg.dim_text), "audio": _unit(rng, cfg.dim_audio),
            "vision": _unit(rng, cfg.dim_vision)}
    splits, latents = {}, {}
    for name, n in (("train", cfg.n_train), ("valid", cfg.n_valid), ("test", cfg.n_test)):
        splits[name], latents[name] = _generate_split(cfg, n, dirs, rng, f"syn-{name}-")
    info = DatasetInfo(
        name="synthetic", layout="sequence", task="regression", metric_family="mosi",
        dims={"text": cfg.dim_text, "audio": cfg.dim_audio, "vision": cfg.dim_vision},
        label_range=(-3.0, 3.0),
        source={"generator": "mser_lib.data.synthetic", "profile": profile, "seed": seed,
                "config": dataclasses.asdict(cfg),
                "fingerprint": data_fingerprint([], {"generator": "mser_lib.data.synthetic", "seed": seed,
                                                     "config": dataclasses.asdict(cfg)})},
    )
    ds = MultimodalDataset(info=info, **splits)
    return (ds, latents) if return_latents else ds


# ------------------------------------------------------------------ the classification variant
#: Class knobs of the classification variant at each profile (the signal knobs are SyntheticConfig's).
INTENT_PROFILES: dict[str, dict] = {"smoke": {"n_classes": 6}, "quick": {"n_classes": 6},
                                    "paper": {"n_classes": 20}}


def intent_latents(n_classes: int, imbalance: float, text_spread: float, av_shift: float, noise: float):
    """The class story of :func:`make_synthetic_intent`: ``latents(rng, n) -> (u, w_a, w_v, classes)``.

    Classes come in pairs. The pair ``c // 2`` sets the text latent's mean (pairs evenly spaced in
    ``[-text_spread, text_spread]``); the member ``c % 2`` sets the sign of the audio and vision latents' mean
    (``-av_shift`` or ``+av_shift``). Every latent has Gaussian noise of std ``noise``. So text tells the pair
    and only the band energy of audio and vision tells which of the two, and a text-only model cannot pass
    about half the pairwise accuracy. Class priors fall as ``(c + 1) ** -imbalance`` (MIntRec's largest class
    is 5.6 times its smallest; ``imbalance`` 0.8 gives 6 ** 0.8 = 4.2 at six classes).
    """
    pairs = (n_classes + 1) // 2
    centres = np.linspace(-text_spread, text_spread, pairs) if pairs > 1 else np.zeros(1)
    prior = (np.arange(n_classes) + 1.0) ** -imbalance
    prior = prior / prior.sum()

    def draw(rng: np.random.Generator, n: int):
        c = rng.choice(n_classes, size=n, p=prior)
        sign = np.where(c % 2 == 1, 1.0, -1.0)
        u = centres[c // 2] + noise * rng.standard_normal(n)
        w_a = sign * av_shift + noise * rng.standard_normal(n)
        w_v = sign * av_shift + noise * rng.standard_normal(n)
        return u, w_a, w_v, c.astype(np.int64)

    return draw


def make_synthetic_intent(profile: str = "quick", seed: int = 0, n_classes: int | None = None,
                          imbalance: float = 0.8, text_spread: float = 2.0, av_shift: float = 1.5,
                          noise: float = 0.35, return_latents: bool = False,
                          **knobs) -> MultimodalDataset | tuple[MultimodalDataset, dict]:
    """The built-in benchmark's classification variant (``load_dataset("synthetic-intent")``): intent-like
    classes, imbalanced as MIntRec is, whose evidence sits in the same frequency bands as the regression
    benchmark's (text low, vision mid, audio high, behind low-frequency nuisance); see :func:`intent_latents`.

    Args:
        profile: sizes and lengths as :func:`make_synthetic` (``n_classes`` 6 at smoke and quick, 20 at paper).
        seed: everything follows from it.
        n_classes, imbalance, text_spread, av_shift, noise: the class story (:func:`intent_latents`).
        return_latents: also return the hidden variables per split (``"class"`` among them).
        **knobs: any :class:`SyntheticConfig` field.

    Returns:
        A sequence-layout classification :class:`MultimodalDataset`: labels ``(N,)`` int64 class ids,
        metric family ``"classification"``.
    """
    cfg = synthetic_config(profile, **knobs)
    k = INTENT_PROFILES[profile]["n_classes"] if n_classes is None else n_classes
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ValueError(f"n_classes must be an integer >= 2, got {k!r}")
    for name, v in (("imbalance", imbalance), ("text_spread", text_spread), ("av_shift", av_shift)):
        if not np.isfinite(v) or v < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    if not np.isfinite(noise) or noise <= 0:
        raise ValueError(f"noise must be a finite number > 0, got {noise!r}")
    classes = {"n_classes": k, "imbalance": imbalance, "text_spread": text_spread, "av_shift": av_shift,
               "noise": noise}
    draw = intent_latents(**classes)
    rng = np.random.default_rng(seed)
    dirs = {"text": _unit(rng, cfg.dim_text), "audio": _unit(rng, cfg.dim_audio),
            "vision": _unit(rng, cfg.dim_vision)}
    splits, latents = {}, {}
    for name, n in (("train", cfg.n_train), ("valid", cfg.n_valid), ("test", cfg.n_test)):
        splits[name], latents[name] = _generate_split(cfg, n, dirs, rng, f"int-{name}-", latents=draw)
        latents[name]["class"] = splits[name].labels
    settings = {"generator": "mser_lib.data.synthetic.make_synthetic_intent", "seed": seed,
                "config": dataclasses.asdict(cfg), "classes": classes}
    info = DatasetInfo(
        name="synthetic-intent", layout="sequence", task="classification", metric_family="classification",
        dims={"text": cfg.dim_text, "audio": cfg.dim_audio, "vision": cfg.dim_vision}, num_classes=k,
        label_range=None, source={**settings, "profile": profile, "fingerprint": data_fingerprint([], settings)})
    ds = MultimodalDataset(info=info, **splits)
    return (ds, latents) if return_latents else ds
