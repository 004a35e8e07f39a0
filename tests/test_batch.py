"""The one data path: collate, bucketing, masks and missing modalities."""

import numpy as np
import pytest
import torch

from mser_lib.data import MissingModality, collate, iterate_batches, masked_mean

from helpers import tiny_split


def test_collate_trims_to_longest_real_length_and_keeps_masks():
    sp = tiny_split(lengths=[2, 5, 3, 1])
    b = collate(sp, np.array([0, 2, 3]), "sequence")
    assert b.text.shape == (3, 3, 4)
    assert b.audio.shape == (3, 3, 3)
    assert b.vision.shape == (3, 3, 2)
    assert b.text_mask.sum(1).tolist() == [2, 3, 1]
    assert b.labels.shape == (3,)
    assert b.label_mask.all()
    assert b.present.all()
    assert b.ids == ["s0", "s2", "s3"]


def test_position_layout_trims_labels_too():
    sp = tiny_split(lengths=[2, 6, 3], layout="position")
    b = collate(sp, np.array([0, 2]), "position")
    assert b.labels.shape == (2, 3)
    assert b.label_mask.sum().item() == 5


@pytest.mark.parametrize("bucket", [True, False])
def test_iterate_covers_every_sample_once_and_is_deterministic(bucket):
    sp = tiny_split(n=23)
    ids = [i for b in iterate_batches(sp, "sequence", 5, shuffle=True, seed=1, bucket=bucket) for i in b.ids]
    assert sorted(ids) == sorted(sp.ids.tolist())
    again = [i for b in iterate_batches(sp, "sequence", 5, shuffle=True, seed=1, bucket=bucket) for i in b.ids]
    other = [i for b in iterate_batches(sp, "sequence", 5, shuffle=True, seed=2, bucket=bucket) for i in b.ids]
    assert ids == again
    assert ids != other


def test_missing_rate_is_deterministic_and_never_drops_everything():
    mm = MissingModality(rate=0.4)
    p = mm.presence(2000, seed=0)
    assert p.any(1).all()
    assert np.array_equal(p, mm.presence(2000, seed=0))
    assert 0.5 < p.mean() < 0.7     # ~0.6 kept, slightly more because empty rows get one back
    assert MissingModality(rate=0.0).presence(5).all()


@pytest.mark.parametrize("cond,expected", [("t", [1, 0, 0]), ("av", [0, 1, 1]), ("tav", [1, 1, 1])])
def test_fixed_conditions(cond, expected):
    assert MissingModality(condition=cond).presence(3).tolist() == [[bool(e) for e in expected]] * 3


def test_missing_modality_is_zeroed_and_masked():
    sp = tiny_split(n=4, lengths=[3, 3, 2, 1])
    b = collate(sp, np.arange(4), "sequence", MissingModality(condition="ta").presence(4))
    assert not b.vision.any()
    assert not b.vision_mask.any()
    assert b.text_mask.any()
    assert b.present[:, 2].eq(False).all()
    pooled = masked_mean(b.vision, b.vision_mask)
    assert torch.equal(pooled, torch.zeros_like(pooled))   # no NaN on an all-False row


def test_bad_missing_specs_are_refused():
    with pytest.raises(ValueError):
        MissingModality(rate=1.0)
    with pytest.raises(ValueError):
        MissingModality(condition="xyz")
    with pytest.raises(ValueError):
        MissingModality(rate=0.1, condition="t")
