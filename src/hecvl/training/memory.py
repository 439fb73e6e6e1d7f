"""Activation memory, measured the same way on any device: the bytes autograd keeps for backward.

    with SavedTensorMeter(model.parameters()) as meter:
        loss = step(batch)["total"]
        loss.backward()
    meter.peak  # the most bytes held by saved tensors at any moment of the step

The saved tensors are what grows with the batch (parameters, optimizer state and the batch itself do
not), so their peak is the figure the chunked step (`train.chunk`) bounds; unlike the CUDA allocator's
statistics it is exact on CPU too. Storages are counted once however many saved tensors view them
(a ReLU and the next convolution save the same output), parameters' storages not at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import TracebackType

import torch
from torch import nn


class _Held:
    """A saved tensor, counted while autograd holds it (released with the graph)."""

    __slots__ = ("key", "meter", "tensor")

    def __init__(self, tensor: torch.Tensor, meter: SavedTensorMeter, key: int) -> None:
        self.tensor, self.meter, self.key = tensor, meter, key

    def __del__(self) -> None:
        self.meter._release(self.key)


class SavedTensorMeter:
    """Live and peak bytes of the tensors autograd saves for backward while the context is open."""

    def __init__(self, exclude: Iterable[torch.Tensor] = ()) -> None:
        self._skip = {t.untyped_storage().data_ptr() for t in exclude}
        self._held: dict[int, list[int]] = {}  # storage pointer -> [bytes, saved tensors holding it]
        self.live = 0
        self.peak = 0
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    def __enter__(self) -> SavedTensorMeter:
        self._hooks.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._hooks.__exit__(kind, exc, tb)

    def _pack(self, tensor: torch.Tensor) -> object:
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key == 0 or key in self._skip:
            return tensor
        entry = self._held.setdefault(key, [storage.nbytes(), 0])
        if entry[1] == 0:
            self.live += entry[0]
            self.peak = max(self.peak, self.live)
        entry[1] += 1
        return _Held(tensor, self, key)

    @staticmethod
    def _unpack(packed: object) -> torch.Tensor:
        return packed.tensor if isinstance(packed, _Held) else packed  # type: ignore[return-value]

    def _release(self, key: int) -> None:
        entry = self._held[key]
        entry[1] -= 1
        if entry[1] == 0:
            self.live -= entry[0]
            del self._held[key]


def activation_bytes_per_frame(
    visual: nn.Module, image_size: int, dtype: torch.dtype | None = None, channels_last: bool = True
) -> float:
    """Bytes saved for backward per frame by `visual` (N, 3, S, S) -> features, in train mode: the
    slope between 2 and 4 frames (train-mode BatchNorm needs two). `dtype`: an autocast dtype (bf16),
    None for fp32."""
    device = next(visual.parameters()).device
    peaks = []
    for n in (2, 4):
        frames = torch.randn(n, 3, image_size, image_size, device=device)
        if channels_last:
            frames = frames.contiguous(memory_format=torch.channels_last)
        cast = torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)
        with SavedTensorMeter(visual.parameters()) as meter, cast:
            out = visual(frames)
            peaks.append(meter.peak)
        del out
    return (peaks[1] - peaks[0]) / 2


def max_rel_grad_diff(got: Mapping[str, torch.Tensor], ref: Mapping[str, torch.Tensor],
                      floor: float = 1e-3) -> float:
    """max over parameter tensors of |got - ref| / |ref| (L2 norms), |ref| floored at `floor` times the
    largest tensor norm: some gradients are zero up to rounding (an attention key bias shifts every
    score of a query alike), and their rounding is no error. A tensor missing on one side counts as 0."""
    names = set(got) | set(ref)
    zero = torch.zeros(())
    norms = {n: float(ref[n].float().norm()) if n in ref else 0.0 for n in names}
    scale = floor * max(norms.values(), default=0.0)
    worst = 0.0
    for n in names:
        a = got[n].float() if n in got else zero
        b = ref[n].float() if n in ref else zero
        diff = float((a - b).norm())
        if diff:
            worst = max(worst, diff / max(norms[n], scale, 1e-30))
    return worst


def parameter_grads(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the gradients a step left on `model`'s parameters, by name (those without one left out)."""
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
