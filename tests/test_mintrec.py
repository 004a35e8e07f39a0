"""The MIntRec loader on small folders in the release's format (thuiar/MIntRec: tsv splits, feature pickles)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from mser_lib.cli import main as cli_main
from mser_lib.data import DataFormatError, load_dataset
from mser_lib.data.mintrec import INTENTS, MAX_LENGTHS, hashed_words, load_mintrec


def make_release(root, n_per_split=(12, 4, 4), video_as_list=True, seed=0, text_feats=False):
    """A MIntRec-format folder: three tsv files with the release's header, a video pickle of keyframe lists
    of (1, 256) arrays (or (T, 256) arrays) and an audio pickle of (T, 768) arrays. Returns the rows."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    video, audio, text = {}, {}, {}
    rows = {}
    clip = 0
    for name, n in zip(("train", "dev", "test"), n_per_split):
        lines = ["season\tepisode\tclip\ttext\tlabel"]
        rows[name] = []
        for i in range(n):
            clip += 1
            key = f"S0{4 + i % 3}_E{i % 7 + 1:02d}_{clip}"
            label = INTENTS[(i * 7 + clip) % len(INTENTS)]
            words = f"utterance {clip} says {label.lower()} here"
            lines.append("\t".join([*key.split("_"), words, label]))
            rows[name].append((key, words, label))
            t_v, t_a = int(rng.integers(1, 9)), int(rng.integers(2, 12))
            frames = [rng.standard_normal((1, 256)).astype(np.float32) for _ in range(t_v)]
            video[key] = frames if video_as_list else np.concatenate(frames)
            audio[key] = rng.standard_normal((t_a, 768)).astype(np.float32)
            text[key] = rng.standard_normal((len(words.split()), 16)).astype(np.float32)
        (root / f"{name}.tsv").write_text("\n".join(lines) + "\n")
    (root / "video_data").mkdir(exist_ok=True)
    (root / "audio_data").mkdir(exist_ok=True)
    with open(root / "video_data" / "video_feats.pkl", "wb") as fh:
        pickle.dump(video, fh)
    with open(root / "audio_data" / "audio_feats.pkl", "wb") as fh:
        pickle.dump(audio, fh)
    if text_feats:
        (root / "text_data").mkdir(exist_ok=True)
        with open(root / "text_data" / "text_feats.pkl", "wb") as fh:
            pickle.dump(text, fh)
    return rows, video, audio


def test_loads_the_release_format_as_a_20_class_sequence_dataset(tmp_path):
    rows, video, audio = make_release(tmp_path / "MIntRec")
    ds = load_dataset("mintrec", data_dir=tmp_path / "MIntRec")
    info = ds.info
    assert (info.task, info.layout, info.metric_family, info.num_classes) == (
        "classification", "sequence", "classification", 20)
    assert info.dims == {"text": 256, "audio": 768, "vision": 256}
    assert [len(ds.train), len(ds.valid), len(ds.test)] == [12, 4, 4]
    # labels are the release code's class ids; ids are season_episode_clip
    key, words, label = rows["dev"][2]
    i = list(ds.valid.ids).index(key)
    assert ds.valid.labels[i] == INTENTS.index(label)
    assert ds.valid.labels.dtype == np.int64
    # the keyframe list is stacked in order, padded at the end; the mask marks the real frames
    frames = np.concatenate(video[key])
    n = int(ds.valid.vision_mask[i].sum())
    assert n == frames.shape[0]
    np.testing.assert_array_equal(ds.valid.vision[i, :n], frames)
    assert not ds.valid.vision[i, n:].any()
    np.testing.assert_array_equal(ds.valid.audio[i, : audio[key].shape[0]], audio[key])
    # the text is the hashed words of the raw text, one row per word
    np.testing.assert_array_equal(ds.valid.text[i, : len(words.split())], hashed_words(words, 256))
    assert int(ds.valid.text_mask[i].sum()) == len(words.split())
    assert "not BERT" in info.source["text_features"]


def test_video_arrays_and_given_text_features_load_the_same_way(tmp_path):
    make_release(tmp_path / "a", video_as_list=True, text_feats=True)
    make_release(tmp_path / "b", video_as_list=False, text_feats=True)
    a, b = load_mintrec(tmp_path / "a"), load_mintrec(tmp_path / "b")
    np.testing.assert_array_equal(a.train.vision, b.train.vision)
    c = load_mintrec(tmp_path / "a", text_features="file")
    assert c.info.dims["text"] == 16
    assert c.info.source["fingerprint"] != a.info.source["fingerprint"]


def test_hashed_words_are_fixed_signed_one_hots():
    x = hashed_words("Thank you, THANK you!", 64)
    assert x.shape == (4, 64)
    assert (np.abs(x).sum(1) == 1).all()
    np.testing.assert_array_equal(x[0], x[2])          # case folded: the same word, the same row
    np.testing.assert_array_equal(x[1], x[3])
    assert hashed_words("", 64).shape == (0, 64)


def test_sequences_are_cut_at_mintrec_maxima(tmp_path):
    make_release(tmp_path / "m")
    ds = load_mintrec(tmp_path / "m", max_lengths={"audio": 3, "vision": 2})
    assert ds.train.audio.shape[1] <= 3
    assert ds.train.vision.shape[1] <= 2
    assert MAX_LENGTHS == {"text": 30, "vision": 230, "audio": 480}


def test_cli_shows_class_counts_and_the_majority_share(tmp_path, capsys):
    make_release(tmp_path / "m")
    assert cli_main(["datasets", "--show", "mintrec", "--data-dir", str(tmp_path / "m")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["task"] == "classification"
    counts = out["train"]["class_counts"]
    assert len(counts) == 20
    assert sum(counts) == 12
    assert out["train"]["majority_share"] == pytest.approx(max(counts) / 12, abs=1e-4)


@pytest.mark.parametrize("edit, field", [
    (lambda r: (r / "dev.tsv").write_text("season\tepisode\tclip\ttext\n"), "header (line 1)"),
    (lambda r: (r / "test.tsv").write_text("season\tepisode\tclip\ttext\tlabel\nS04\tE01\t9\thi\tGrumble\n"),
     "line 2: label"),
    (lambda r: (r / "test.tsv").write_text("season\tepisode\tclip\ttext\tlabel\nS04\tE01\t9\thi\n"), "line 2"),
    (lambda r: (r / "train.tsv").unlink(), "file"),
])
def test_bad_split_files_are_refused_naming_file_and_field(tmp_path, edit, field):
    make_release(tmp_path / "m")
    edit(tmp_path / "m")
    with pytest.raises(DataFormatError) as err:
        load_mintrec(tmp_path / "m")
    assert err.value.field == field
    assert err.value.file.endswith(".tsv")


def test_a_key_in_two_splits_or_missing_from_a_pickle_is_refused(tmp_path):
    rows, _, _ = make_release(tmp_path / "m")
    key, words, label = rows["train"][0]
    with open(tmp_path / "m" / "test.tsv", "a") as fh:
        fh.write("\t".join([*key.split("_"), words, label]) + "\n")
    with pytest.raises(DataFormatError, match="disjoint splits"):
        load_mintrec(tmp_path / "m")
    make_release(tmp_path / "n")
    with open(tmp_path / "n" / "audio_data" / "audio_feats.pkl", "rb") as fh:
        audio = pickle.load(fh)
    audio.pop(rows["dev"][1][0])
    with open(tmp_path / "n" / "audio_data" / "audio_feats.pkl", "wb") as fh:
        pickle.dump(audio, fh)
    with pytest.raises(DataFormatError) as err:
        load_mintrec(tmp_path / "n")
    assert err.value.file.endswith("audio_feats.pkl")
    assert rows["dev"][1][0] in err.value.field


def test_non_finite_features_and_mixed_widths_are_refused(tmp_path):
    rows, video, _ = make_release(tmp_path / "m")
    key = rows["train"][3][0]
    video[key] = [np.full((1, 256), np.nan, np.float32)]
    with open(tmp_path / "m" / "video_data" / "video_feats.pkl", "wb") as fh:
        pickle.dump(video, fh)
    with pytest.raises(DataFormatError, match="non-finite"):
        load_mintrec(tmp_path / "m")
    video[key] = [np.zeros((1, 128), np.float32)]
    with open(tmp_path / "m" / "video_data" / "video_feats.pkl", "wb") as fh:
        pickle.dump(video, fh)
    with pytest.raises(DataFormatError, match="feature width 256"):
        load_mintrec(tmp_path / "m")


def test_torch_tensors_in_a_pickle_are_refused_with_the_conversion_to_do(tmp_path):
    torch = pytest.importorskip("torch")
    rows, _, audio = make_release(tmp_path / "m")
    with open(tmp_path / "m" / "audio_data" / "audio_feats.pkl", "wb") as fh:
        pickle.dump({k: torch.from_numpy(v) for k, v in audio.items()}, fh)
    with pytest.raises(DataFormatError) as err:
        load_mintrec(tmp_path / "m")
    assert "torch tensors" in err.value.found
    assert "docs/data-formats.md" in err.value.found


def test_the_models_train_on_it(tmp_path):
    """The classification path end to end on a release-format folder: a model trains and predicts 20 logits."""
    from mser_lib.models.registry import build_model
    from mser_lib.train import TrainConfig, fit_model

    make_release(tmp_path / "m")
    ds = load_mintrec(tmp_path / "m", text_dim=32)
    model = build_model("baseline", ds.info, "quick")
    res = fit_model(model, ds, TrainConfig(epochs=2, batch_size=4, device="cpu", progress=False), seed=0)
    assert set(res.test_metrics) >= {"acc", "f1_macro", "f1_weighted", "precision_macro", "recall_macro"}
