"""Contrastive losses against values computed by hand on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hecvl.models.losses import LogitScale, info_nce, mil_nce, pad_bags, parent_child_loss


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
