"""Contrastive losses against values computed by hand on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hecvl.models.losses import (
    LogitScale,
    bag_keys,
    bag_positives,
    duplicate_texts,
    info_nce,
    mil_nce,
    pad_bags,
    parent_child_loss,
    same_text,
    text_keys,
)


def multi_positive_info_nce(video, text, logit_scale, positive):
    """Independent reference: symmetric InfoNCE with positive sets, always by the general formula
    (-log sum over P(i) of the softmax, both directions), with no shortcut for distinct texts."""
    logits = logit_scale * (video.float() @ text.float().T)

    def rows(lg, pos):
        own = torch.logsumexp(lg.masked_fill(~pos, float("-inf")), dim=1)
        return (torch.logsumexp(lg, dim=1) - own).mean()

    return (rows(logits, positive) + rows(logits.T, positive.T)) / 2


def _nll(logits: list[float], target: int) -> float:
    return -logits[target] + math.log(sum(math.exp(v) for v in logits))


def test_info_nce_matches_hand_computation():
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    # logits = 10 * v @ t.T = [[10, 6], [0, 8]]
    rows = (_nll([10, 6], 0) + _nll([0, 8], 1)) / 2
    cols = (_nll([10, 0], 0) + _nll([6, 8], 1)) / 2
    assert info_nce(v, t, 10.0).item() == pytest.approx((rows + cols) / 2, rel=1e-6)


def test_info_nce_is_symmetric_and_float32_under_bf16():
    g = torch.Generator().manual_seed(0)
    v = F.normalize(torch.randn(5, 8, generator=g), dim=-1)
    t = F.normalize(torch.randn(5, 8, generator=g), dim=-1)
    assert info_nce(v, t, 10.0).item() == pytest.approx(info_nce(t, v, 10.0).item(), rel=1e-6)
    out = info_nce(v.bfloat16(), t.bfloat16(), 10.0)
    assert out.dtype == torch.float32
    with pytest.raises(ValueError):
        info_nce(v, t[:4], 10.0)


def test_mil_nce_with_one_positive_is_info_nce_and_ignores_masked_texts():
    g = torch.Generator().manual_seed(1)
    v = F.normalize(torch.randn(6, 16, generator=g), dim=-1)
    t = F.normalize(torch.randn(6, 16, generator=g), dim=-1)
    expected = info_nce(v, t, 7.0)
    torch.testing.assert_close(mil_nce(v, t[:, None], torch.ones(6, 1, dtype=torch.bool), 7.0), expected)
    garbage = F.normalize(torch.randn(6, 2, 16, generator=g), dim=-1)
    padded = torch.cat([t[:, None], garbage], dim=1)
    mask = torch.tensor([[True, False, False]] * 6)
    torch.testing.assert_close(mil_nce(v, padded, mask, 7.0), expected)


def test_mil_nce_matches_hand_computation_with_a_set_of_positives():
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    texts = torch.tensor([[[1.0, 0.0], [0.6, 0.8]],    # sample 0: two narrations
                          [[0.0, 1.0], [9.0, 9.0]]])   # sample 1: one narration + padding
    mask = torch.tensor([[True, True], [True, False]])
    s = 2.0
    sim = lambda i, j, k: s * float(v[i] @ texts[j, k])  # noqa: E731
    valid = [(0, 0), (0, 1), (1, 0)]
    pos = [math.log(sum(math.exp(sim(i, i, k)) for (j, k) in valid if j == i)) for i in range(2)]
    v2t = [math.log(sum(math.exp(sim(i, j, k)) for (j, k) in valid)) - pos[i] for i in range(2)]
    t2v = [math.log(sum(math.exp(sim(jj, i, k)) for (j, k) in valid if j == i for jj in range(2))) - pos[i]
           for i in range(2)]
    expected = (sum(v2t) / 2 + sum(t2v) / 2) / 2
    assert mil_nce(v, texts, mask, s).item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="at least one valid text"):
        mil_nce(v, texts, torch.tensor([[True, False], [False, False]]), s)


def test_pad_bags_to_the_largest_or_a_fixed_width():
    flat = torch.arange(1.0, 7.0).view(6, 1).expand(6, 2).clone()  # rows 1..6, two columns each
    padded, mask = pad_bags(flat, [1, 3, 2])
    assert padded.shape == (3, 3, 2) and mask.tolist() == [[1, 0, 0], [1, 1, 1], [1, 1, 0]]
    assert padded[..., 0].tolist() == [[1, 0, 0], [2, 3, 4], [5, 6, 0]]
    wide, wide_mask = pad_bags(flat, [1, 3, 2], k=5)  # DDP: every rank pads to the same K
    assert wide.shape == (3, 5, 2) and torch.equal(wide[:, :3], padded) and not wide_mask[:, 3:].any()
    with pytest.raises(ValueError, match="does not fit"):
        pad_bags(flat, [1, 3, 2], k=2)


def test_parent_child_uses_the_renormalised_mean_of_valid_children():
    parent = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    children = torch.tensor([[[1.0, 0.0], [0.0, 1.0]],
                             [[0.0, 1.0], [5.0, 5.0]]])  # second child of parent 1 is padding
    mask = torch.tensor([[True, True], [True, False]])
    c0 = [math.sqrt(0.5), math.sqrt(0.5)]
    # logits = 10 * parent @ child.T = [[10*c0x, 0], [10*c0y, 10]]
    a = 10 * c0[0]
    rows = (_nll([a, 0], 0) + _nll([a, 10], 1)) / 2
    cols = (_nll([a, a], 0) + _nll([0, 10], 1)) / 2
    expected = (rows + cols) / 2
    assert parent_child_loss(parent, children, mask, 10.0).item() == pytest.approx(expected, rel=1e-6)


def test_logit_scale_fixed_is_a_buffer_and_learned_gets_gradients():
    fixed = LogitScale(0.1)
    assert list(fixed.parameters()) == [] and fixed().item() == pytest.approx(10.0, rel=1e-6)
    assert "log_scale" in fixed.state_dict()
    learned = LogitScale(0.1, learn=True)
    g = torch.Generator().manual_seed(2)
    v = F.normalize(torch.randn(4, 8, generator=g), dim=-1)
    t = F.normalize(v + 0.3 * torch.randn(4, 8, generator=g), dim=-1)
    info_nce(v, t, learned()).backward()
    assert learned.log_scale.grad is not None and learned.log_scale.grad.abs().item() > 0
    clamped = LogitScale(0.1, learn=True, max_scale=100.0)
    with torch.no_grad():
        clamped.log_scale.fill_(math.log(1000.0))
    assert clamped().item() == pytest.approx(100.0)
    info_nce(v, t, clamped()).backward()
    assert clamped.log_scale.grad.item() == 0.0


# --- identical texts in a batch are positives of each other -----------------------------------------


def _old_info_nce(video: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor | float) -> torch.Tensor:
    """`info_nce` as it was before duplicate texts became positives (a verbatim copy)."""
    logits = logit_scale * (video.float() @ text.float().T)
    target = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def _old_mil_nce(video: torch.Tensor, texts: torch.Tensor, mask: torch.Tensor, logit_scale) -> torch.Tensor:
    """`mil_nce` as it was before (a verbatim copy of its computation)."""
    b, k, _ = texts.shape
    mask = mask.bool()
    sim = logit_scale * torch.einsum("ie,jke->ijk", video.float(), texts.float())
    sim = sim.masked_fill(~mask.unsqueeze(0), float("-inf"))
    idx = torch.arange(b, device=sim.device)
    positive = torch.logsumexp(sim[idx, idx], dim=1)
    video_to_text = torch.logsumexp(sim.reshape(b, b * k), dim=1) - positive
    text_to_video = torch.logsumexp(sim.transpose(0, 1).reshape(b, b * k), dim=1) - positive
    return (video_to_text.mean() + text_to_video.mean()) / 2


def _unit(*rows: list[float]) -> torch.Tensor:
    return F.normalize(torch.tensor(rows), dim=-1)


def test_text_keys_are_stable_digests_and_bags_are_multisets():
    keys = text_keys(["So let's go on.", "so let's go on.", "So let's go on.", ""])
    assert keys.dtype == torch.int64 and keys[0] == keys[2] and keys[0] != keys[1] and keys[3] != keys[0]
    # blake2b, not Python's salted hash(): every process (every DDP rank) gets this very number
    assert int(text_keys(["Preparation"])[0]) == int(text_keys(["Preparation"])[0]) == _blake("Preparation")
    bags = bag_keys([["a", "b"], ["b", "a"], ["a", "b", "b"], ["ab"], ["a", "b"]])
    assert bags[0] == bags[1] == bags[4] and len(set(bags[1:4].tolist())) == 3  # order ignored, counts kept
    assert same_text(text_keys(["x", "y", "x"])).tolist() == [[1, 0, 1], [0, 1, 0], [1, 0, 1]]


def _blake(text: str) -> int:
    import hashlib

    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little", signed=True)


def test_info_nce_with_duplicates_matches_hand_computation():
    v = _unit([1.0, 0.0], [0.0, 1.0], [0.6, 0.8])
    t = _unit([0.8, 0.6], [0.8, 0.6], [0.0, 1.0])  # texts 0 and 1 are the same string
    keys = text_keys(["the hook", "the hook", "the clip"])
    s = 10.0
    lg = [[s * float(v[i] @ t[j]) for j in range(3)] for i in range(3)]
    lse = lambda xs: math.log(sum(math.exp(x) for x in xs))  # noqa: E731
    # video -> text: video 0 and video 1 each have texts {0, 1} as positives; video 2 text 2
    rows = [lse(lg[0]) - lse([lg[0][0], lg[0][1]]), lse(lg[1]) - lse([lg[1][0], lg[1][1]]),
            lse(lg[2]) - lg[2][2]]
    col = lambda j: [lg[i][j] for i in range(3)]  # noqa: E731
    # text -> video: text 0 and text 1 each have videos {0, 1} as positives
    cols = [lse(col(0)) - lse([lg[0][0], lg[1][0]]), lse(col(1)) - lse([lg[0][1], lg[1][1]]),
            lse(col(2)) - lg[2][2]]
    expected = (sum(rows) / 3 + sum(cols) / 3) / 2
    got = info_nce(v, t, s, same_text(keys))
    assert got.item() == pytest.approx(expected, rel=1e-6)
    assert _old_info_nce(v, t, s).item() > got.item()  # the old loss counted the twin as a negative
    with pytest.raises(ValueError, match="positive of itself"):
        info_nce(v, t, s, torch.zeros(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\(3, 3\) bool"):
        info_nce(v, t, s, torch.ones(2, 2, dtype=torch.bool))


def test_duplicates_no_longer_push_matching_pairs_apart():
    # two videos of the same text (two lectures' "Preparation" keysteps), both equally similar to it
    text = _unit([1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0])
    video = _unit([0.9, 0.3, 0.1], [0.9, -0.3, 0.1], [0.1, 0.0, 0.9])
    positive = same_text(text_keys(["Preparation", "Preparation", "Closure"]))
    old, new = _old_info_nce(video, text, 10.0), info_nce(video, text, 10.0, positive)
    assert old.item() > new.item() + 0.1
    # symmetric in the duplicates: swapping the two videos, or the two twin texts, changes nothing
    swap = torch.tensor([1, 0, 2])
    torch.testing.assert_close(info_nce(video[swap], text, 10.0, positive), new, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(info_nce(video, text[swap], 10.0, positive), new, rtol=1e-6, atol=1e-7)
    # both videos a perfect match: the old loss cannot go below log 2, the new one goes to 0
    perfect = text[:2].clone()
    assert _old_info_nce(perfect, text[:2], 100.0).item() == pytest.approx(math.log(2), rel=1e-6)
    assert info_nce(perfect, text[:2], 100.0, positive[:2, :2]).item() == pytest.approx(0.0, abs=1e-6)
    # the gradient no longer pulls video 0 away from its twin text: moving it towards the text helps
    v0 = video.clone().requires_grad_(True)
    info_nce(v0, text, 10.0, positive).backward()
    assert float(v0.grad[0] @ (text[1] - video[0])) < 0  # descent direction points at the text
    v1 = video.clone().requires_grad_(True)
    _old_info_nce(v1, text, 10.0).backward()
    assert float(v1.grad[0] @ text[1]) > float(v0.grad[0] @ text[1])


def _loss_and_grads(fn, video, text, scale):
    video, text = video.clone().requires_grad_(True), text.clone().requires_grad_(True)
    log_scale = torch.tensor(math.log(scale), requires_grad=True)
    loss = fn(video, text, log_scale.exp())
    loss.backward()
    return loss.detach(), video.grad, text.grad, log_scale.grad


def test_without_duplicates_losses_and_gradients_are_the_old_ones_bit_for_bit():
    g = torch.Generator().manual_seed(3)
    v = F.normalize(torch.randn(16, 32, generator=g), dim=-1)
    t = F.normalize(torch.randn(16, 32, generator=g), dim=-1)
    distinct = same_text(text_keys([f"narration {i}" for i in range(16)]))
    old = _loss_and_grads(_old_info_nce, v, t, 10.0)
    new = _loss_and_grads(lambda a, b, s: info_nce(a, b, s, distinct), v, t, 10.0)
    for a, b in zip(old, new, strict=True):
        assert torch.equal(a, b)  # the same code path: bit-identical
    # and the multi-positive formula itself reduces to InfoNCE (to float rounding)
    general = _loss_and_grads(lambda a, b, s: multi_positive_info_nce(a, b, s, distinct), v, t, 10.0)
    for a, b in zip(old, general, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)

    # MIL-NCE: keys without duplicates across bags (repeats inside a bag are fine) change nothing
    texts = F.normalize(torch.randn(4, 3, 32, generator=g), dim=-1)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1], [1, 0, 0]], dtype=torch.bool)
    keys = pad_bags(text_keys(["a", "a", "b", "c", "d", "e", "f"]), [2, 1, 3, 1])[0]
    assert float(duplicate_texts(keys, mask)) == 0.0
    old = _loss_and_grads(lambda a, b, s: _old_mil_nce(a, b, mask, s), v[:4], texts, 5.0)
    new = _loss_and_grads(lambda a, b, s: mil_nce(a, b, mask, s, keys), v[:4], texts, 5.0)
    for a, b in zip(old, new, strict=True):
        assert torch.equal(a, b)

    # parent-child: distinct parents and distinct children
    children, cmask = texts, mask
    child_keys = bag_keys([["a", "a"], ["b"], ["c", "d", "e"], ["f"]])
    pairs = same_text(text_keys(list("pqrs"))) | same_text(child_keys)
    old = _loss_and_grads(lambda a, b, s: parent_child_loss(a, b, cmask, s), v[:4], children, 5.0)
    new = _loss_and_grads(lambda a, b, s: parent_child_loss(a, b, cmask, s, pairs), v[:4], children, 5.0)
    for a, b in zip(old, new, strict=True):
        assert torch.equal(a, b)


def test_multi_positive_formula_agrees_with_mil_nce_over_the_duplicates():
    g = torch.Generator().manual_seed(4)
    v = F.normalize(torch.randn(6, 8, generator=g), dim=-1)
    t = F.normalize(torch.randn(6, 8, generator=g), dim=-1)
    names = ["a", "b", "a", "c", "b", "a"]
    t = t[torch.tensor([0, 1, 0, 3, 1, 0])]  # identical texts have identical embeddings
    keys = text_keys(names)
    got = info_nce(v, t, 7.0, same_text(keys))
    torch.testing.assert_close(got, multi_positive_info_nce(v, t, 7.0, same_text(keys)))
    # one text per bag with keys: MIL-NCE's duplicates-across-bags rule is the same loss
    one = torch.ones(6, 1, dtype=torch.bool)
    torch.testing.assert_close(mil_nce(v, t[:, None], one, 7.0, keys[:, None]), got)
    assert float(duplicate_texts(keys)) == 3.0  # six texts, three distinct
    assert not torch.isclose(got, _old_info_nce(v, t, 7.0))


def test_mil_nce_duplicates_across_bags_are_positives_by_hand():
    v = _unit([1.0, 0.0], [0.0, 1.0])
    texts = torch.stack([_unit([1.0, 0.0], [0.6, 0.8]),    # bag 0: "clip it", "as you can see"
                         _unit([0.0, 1.0], [0.6, 0.8])])   # bag 1: "cut it", "as you can see"
    mask = torch.ones(2, 2, dtype=torch.bool)
    keys = pad_bags(text_keys(["clip it", "as you can see", "cut it", "as you can see"]), [2, 2])[0]
    pos = bag_positives(keys, mask)
    assert pos.tolist() == [[[1, 1], [0, 1]], [[0, 1], [1, 1]]]  # [i, j, k]: text k of bag j for video i
    s = 3.0
    sim = lambda i, j, k: s * float(v[i] @ texts[j, k])  # noqa: E731
    lse = lambda xs: math.log(sum(math.exp(x) for x in xs))  # noqa: E731
    cells = [(j, k) for j in range(2) for k in range(2)]
    v2t = [lse([sim(i, j, k) for j, k in cells]) - lse([sim(i, j, k) for j, k in cells if pos[i, j, k]])
           for i in range(2)]
    # text -> video of bag i: its texts against both videos; video j positive of t_ik when pos[j, i, k]
    t2v = [lse([sim(j, i, k) for j in range(2) for k in range(2)])
           - lse([sim(j, i, k) for j in range(2) for k in range(2) if pos[j, i, k]]) for i in range(2)]
    expected = (sum(v2t) / 2 + sum(t2v) / 2) / 2
    assert mil_nce(v, texts, mask, s, keys).item() == pytest.approx(expected, rel=1e-6)
    assert _old_mil_nce(v, texts, mask, s).item() > expected
    assert float(duplicate_texts(keys, mask)) == 1.0  # one narration shared by two bags
    # padding never matches, even when its key (0) equals a valid one
    zero = torch.zeros(2, 2, dtype=torch.int64)
    assert not bag_positives(zero, torch.tensor([[True, False], [True, False]]))[0, 1, 1]


def test_parent_child_pairs_with_identical_parents_or_children_are_positives():
    parent = _unit([1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.6, 0.8])
    children = _unit([1.0, 0.1], [0.9, -0.2], [0.2, 1.0], [0.2, 1.0])[:, None]
    mask = torch.ones(4, 1, dtype=torch.bool)
    # parents 0 and 1 are the same title; children of 2 and 3 are the same narrations
    pairs = (same_text(text_keys(["Preparation", "Preparation", "Closure", "Suture"]))
             | same_text(bag_keys([["x"], ["y"], ["z"], ["z"]])))
    assert pairs.sum().item() == 8  # the diagonal and two twin pairs, both ways
    child = F.normalize(children[:, 0], dim=-1)
    torch.testing.assert_close(parent_child_loss(parent, children, mask, 10.0, pairs),
                               multi_positive_info_nce(parent, child, 10.0, pairs))
    plain = parent_child_loss(parent, children, mask, 10.0)
    assert parent_child_loss(parent, children, mask, 10.0, pairs) < plain


def test_duplicate_texts_counts_repeats_of_other_samples():
    assert float(duplicate_texts(text_keys(["a", "b", "a", "a", "c"]))) == 2.0
    assert float(duplicate_texts(text_keys(["a", "b"]))) == 0.0
    keys = pad_bags(text_keys(["a", "b", "b", "c", "c", "a"]), [2, 1, 3])[0]  # [[a, b], [b], [c, c, a]]
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1]], dtype=torch.bool)
    # distinct per bag 2 + 1 + 2, distinct in the batch 3 (the repeat of c inside bag 2 is not counted)
    assert float(duplicate_texts(keys, mask)) == 2.0
