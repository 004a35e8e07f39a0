"""The built-in benchmark: deterministic, MOSI-like labels, and the frequency structure it promises."""

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from mser_lib.data import make_synthetic, synthetic_config


def test_deterministic_in_seed():
    a = make_synthetic("smoke", seed=3)
    b = make_synthetic("smoke", seed=3)
    c = make_synthetic("smoke", seed=4)
    np.testing.assert_array_equal(a.train.audio, b.train.audio)
    np.testing.assert_array_equal(a.test.labels, b.test.labels)
    assert not np.array_equal(a.train.audio, c.train.audio)


def test_labels_are_mosi_like_and_padding_is_clean():
    ds = make_synthetic("quick", seed=0)
    y = np.concatenate([ds.train.labels, ds.valid.labels, ds.test.labels])
    assert y.min() >= -3
    assert y.max() <= 3
    assert -0.3 < y.mean() < 0.4
    assert 1.2 < y.std() < 1.8
    assert 0.01 < (y == 0).mean() < 0.1
    np.testing.assert_allclose(np.round(y / 0.2) * 0.2, y, atol=1e-5)
    sp = ds.train
    for m in ("text", "audio", "vision"):
        assert not sp.features(m)[~sp.mask(m)].any()          # padding is exactly zero
        np.testing.assert_array_equal(sp.lengths(m), sp.lengths("text"))
    cfg = synthetic_config("quick")
    assert sp.lengths().min() >= cfg.min_len
    assert sp.lengths().max() <= cfg.max_len
    assert ds.info.layout == "sequence"
    assert ds.info.metric_family == "mosi"


def _energy_features(split, modality, band):
    """Per-channel RMS (and mean) of each sample, optionally band-passed with the DFT."""
    x, lengths = split.features(modality), split.lengths(modality)
    out = []
    for i in range(len(split)):
        xi = x[i, : lengths[i]].astype(np.float64)
        if band is not None:
            spec = np.fft.rfft(xi, axis=0)
            f = np.fft.rfftfreq(lengths[i])
            spec[(f < band[0]) | (f > band[1])] = 0
            xi = np.fft.irfft(spec, n=lengths[i], axis=0)
        out.append(np.concatenate([np.sqrt((xi**2).mean(0)), xi.mean(0)]))
    return np.array(out)


def _r2(p, t):
    return 1 - ((p - t) ** 2).sum() / ((t - t.mean()) ** 2).sum()


def test_band_probe_recovers_audio_vision_share_and_blind_probe_does_not():
    ds, lat = make_synthetic("quick", seed=0, return_latents=True)
    cfg = synthetic_config("quick")
    scores = {}
    for name, bands in (("band", (cfg.audio_band, cfg.vision_band)), ("blind", (None, None))):
        xtr = np.hstack([_energy_features(ds.train, "audio", bands[0]),
                         _energy_features(ds.train, "vision", bands[1])])
        xte = np.hstack([_energy_features(ds.test, "audio", bands[0]),
                         _energy_features(ds.test, "vision", bands[1])])
        probe = Ridge(alpha=1.0).fit(xtr, lat["train"]["av_component"])
        scores[name] = _r2(probe.predict(xte), lat["test"]["av_component"])
    assert scores["band"] > 0.5, scores
    assert scores["blind"] < 0.5 * scores["band"], scores


def test_text_carries_only_its_share():
    ds, lat = make_synthetic("quick", seed=0, return_latents=True)
    pooled = {s: ds.split(s).text.sum(1) / ds.split(s).lengths()[:, None] for s in ("train", "test")}
    probe = Ridge(alpha=1.0).fit(pooled["train"], ds.train.labels)
    r = np.corrcoef(probe.predict(pooled["test"]), ds.test.labels)[0, 1]
    # text explains at most (1 - av_share) of the label variance: r <= sqrt(0.6) ~ 0.77
    assert 0.6 < r < 0.8


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_av_share_knob_extremes(share):
    ds, lat = make_synthetic("smoke", seed=1, av_share=share, return_latents=True)
    comp = lat["train"]["av_component"]
    assert (np.abs(comp).max() == 0) == (share == 0.0)


def test_bad_knobs_are_refused():
    with pytest.raises(ValueError, match="av_share"):
        make_synthetic("smoke", av_share=1.5)
    with pytest.raises(KeyError, match="unknown synthetic profile"):
        make_synthetic("huge")
