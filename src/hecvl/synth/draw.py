"""Anti-aliased drawing primitives on planar float32 images, vectorised and limited to each shape's extent.

Images are planar (3, H, W), colours RGB in 0-1: numpy broadcasts a per-pixel alpha over the leading
channel axis an order of magnitude faster than over a trailing axis of length 3, which is what keeps a
frame under a millisecond. Coordinates are continuous pixel positions (x right, y down; pixel i covers
[i, i+1)). Every primitive blends into `img` in place; shapes partly or wholly outside it are clipped.
"""

from __future__ import annotations

import itertools

import numpy as np

Array = np.ndarray


def _box(img: Array, x0: float, x1: float, y0: float, y1: float) -> tuple[int, int, int, int] | None:
    h, w = img.shape[1:]
    xa, xb = max(int(np.floor(x0)), 0), min(int(np.ceil(x1)) + 1, w)
    ya, yb = max(int(np.floor(y0)), 0), min(int(np.ceil(y1)) + 1, h)
    if xa >= xb or ya >= yb:
        return None
    return xa, xb, ya, yb


def _col(color: Array) -> Array:
    color = np.asarray(color, dtype=np.float32)
    return color.reshape(len(color), 1, 1)


def capsule(
    img: Array,
    p0: tuple[float, float],
    p1: tuple[float, float],
    radius: float,
    color: Array,
    alpha: float = 1.0,
    shade: float = 0.45,
) -> None:
    """A rounded bar from p0 to p1 (instrument shafts, tubes), shaded like a lit cylinder.

    Long bars are rasterised row by row along a narrow band (their bounding box is mostly empty).
    """
    (x0, y0), (x1, y1) = p0, p1
    r = max(float(radius), 0.35)
    dx, dy = x1 - x0, y1 - y0
    if float(np.hypot(dx, dy)) > 4 * r + 6:
        if abs(dx) > abs(dy):  # walk along x instead: the same code on the transposed image
            _band(img.transpose(0, 2, 1), (y0, x0), (y1, x1), r, color, alpha, shade)
        else:
            _band(img, p0, p1, r, color, alpha, shade)
        return
    box = _box(img, min(x0, x1) - r - 1, max(x0, x1) + r + 1, min(y0, y1) - r - 1, max(y0, y1) + r + 1)
    if box is None:
        return
    xa, xb, ya, yb = box
    xs = np.arange(xa, xb, dtype=np.float32)[None, :] + 0.5
    ys = np.arange(ya, yb, dtype=np.float32)[:, None] + 0.5
    d = _distance(xs, ys, x0, y0, dx, dy)
    a = _coverage(d, r, alpha)
    region = img[:, ya:yb, xa:xb]
    region += a * (_shaded(_col(color), d, r, shade) - region)


def _distance(xs: Array, ys: Array, x0: float, y0: float, dx: float, dy: float) -> Array:
    length2 = dx * dx + dy * dy
    t = ((xs - x0) * dx + (ys - y0) * dy) * (1.0 / max(length2, 1e-9))
    t = np.minimum(np.maximum(t, 0.0), 1.0)
    px = x0 + t * dx - xs
    py = y0 + t * dy - ys
    return np.sqrt(px * px + py * py)


def _coverage(d: Array, r: float, alpha: float) -> Array:
    a = np.minimum(np.maximum(r + 0.5 - d, 0.0), 1.0)
    return a * alpha if alpha != 1.0 else a


def _shaded(color: Array, d: Array, r: float, shade: float) -> Array:
    """`color` (3, 1, 1) or (3, 1) lit like a cylinder: bright along the axis, darker at the rims."""
    if not shade:
        return color
    k = 1.0 + shade * (0.25 - (d * (1.0 / r)) ** 2)
    return np.minimum(color * k, 1.0)


def _band(
    img: Array,
    p0: tuple[float, float],
    p1: tuple[float, float],
    r: float,
    color: Array,
    alpha: float,
    shade: float,
) -> None:
    """A capsule whose direction is mostly along y: per row, only the pixels near the centre line."""
    (x0, y0), (x1, y1) = p0, p1
    h, w = img.shape[1:]
    dx, dy = x1 - x0, y1 - y0
    ya = max(int(np.floor(min(y0, y1) - r - 1)), 0)
    yb = min(int(np.ceil(max(y0, y1) + r + 1)) + 1, h)
    if ya >= yb:
        return
    slope = dx / dy
    half = (r + 1.0) * float(np.hypot(1.0, slope)) + r * abs(slope) + 1.0
    rows = np.arange(ya, yb)
    left = np.floor(x0 + (rows + 0.5 - y0) * slope - half).astype(np.intp)
    cols = left[:, None] + np.arange(int(np.ceil(2 * half)) + 2)[None, :]
    d = _distance(cols.astype(np.float32) + 0.5, (rows[:, None] + 0.5).astype(np.float32), x0, y0, dx, dy)
    a = _coverage(d, r, alpha)
    keep = (cols >= 0) & (cols < w) & (a > 0)
    if not keep.any():
        return
    yy = np.broadcast_to(rows[:, None], cols.shape)[keep]
    xx = cols[keep]
    target = _shaded(np.asarray(color, dtype=np.float32).reshape(3, 1), d[keep][None, :], r, shade)
    px = img[:, yy, xx]
    img[:, yy, xx] = px + a[keep] * (target - px)


def polyline(
    img: Array, pts: Array, radius: float, color: Array, alpha: float = 1.0, shade: float = 0.45
) -> None:
    """Consecutive capsules through `pts` (N, 2): tubes, threads, needle arcs."""
    for a, b in itertools.pairwise(pts):
        capsule(img, (float(a[0]), float(a[1])), (float(b[0]), float(b[1])), radius, color, alpha, shade)


def ellipse(
    img: Array,
    center: tuple[float, float],
    radii: tuple[float, float],
    color: Array,
    alpha: float = 1.0,
    angle: float = 0.0,
    soft: float = 1.0,
) -> None:
    """A filled, soft-edged ellipse (holes, blotches, bags, blood)."""
    cx, cy = center
    rx, ry = max(float(radii[0]), 0.5), max(float(radii[1]), 0.5)
    reach = max(rx, ry) + soft + 1
    box = _box(img, cx - reach, cx + reach, cy - reach, cy + reach)
    if box is None:
        return
    xa, xb, ya, yb = box
    xs = np.arange(xa, xb, dtype=np.float32)[None, :] + 0.5 - cx
    ys = np.arange(ya, yb, dtype=np.float32)[:, None] + 0.5 - cy
    c, s = np.cos(angle), np.sin(angle)
    u = (xs * c + ys * s) / rx
    v = (-xs * s + ys * c) / ry
    q = np.sqrt(u * u + v * v)
    a = _coverage((q - 1.0) * (min(rx, ry) / max(soft, 1e-3)), 0.0, alpha)
    region = img[:, ya:yb, xa:xb]
    region += a * (_col(color) - region)


def rect(img: Array, x0: float, y0: float, x1: float, y1: float, color: Array, alpha: float = 1.0) -> None:
    """An axis-aligned rectangle (overlays, banners), pixel-snapped."""
    box = _box(img, x0, x1 - 1, y0, y1 - 1)
    if box is None:
        return
    xa, xb, ya, yb = box
    region = img[:, ya:yb, xa:xb]
    region += alpha * (_col(color) - region)


def rgb(values: list | tuple | Array) -> Array:
    """A colour from world.yaml (0-255) as float32 0-1, shape (3,)."""
    return np.asarray(values, dtype=np.float32) / 255.0


def planar(color: Array) -> Array:
    """A (3,) colour shaped (3, 1, 1) to broadcast over a planar image."""
    return _col(color)
