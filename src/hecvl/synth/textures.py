"""Anatomy textures and scene canvases: the tissue a camera pans over during one phase segment.

A canvas is larger than the frame; the camera samples a moving, zooming window from it, so camera motion
costs one indexing operation per frame. Each site has its own colour and pattern (world.yaml `sites`);
each patient (video) shifts the colours a little, so no two videos look alike.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from hecvl.synth import draw, vocab
from hecvl.synth.world import Scene

Array = np.ndarray
VESSEL = np.array([0.45, 0.08, 0.12], dtype=np.float32)
GLARE = np.array([1.0, 1.0, 0.98], dtype=np.float32)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: float) -> Array:
    """Value noise in [0, 1]: a random grid with about `cells` cells across, bicubically enlarged."""
    h, w = shape
    gx = max(2, round(cells))
    gy = max(2, round(cells * h / w))
    grid = rng.random((gy + 1, gx + 1)).astype(np.float32)
    img = Image.fromarray(grid, mode="F").resize((w, h), Image.BICUBIC)
    return np.asarray(img, dtype=np.float32)


def fbm(rng: np.random.Generator, shape: tuple[int, int], cells: float, octaves: int = 3) -> Array:
    """Fractal noise normalised to [0, 1]: coarse shapes with finer grain on top."""
    out = np.zeros(shape, dtype=np.float32)
    amp, total = 1.0, 0.0
    for k in range(octaves):
        out += amp * smooth_noise(rng, shape, cells * 2**k)
        total += amp
        amp *= 0.5
    out -= out.min()
    return out / max(float(out.max()), 1e-6)


def _smoothstep(x: Array) -> Array:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def site_texture(
    site: str, shape: tuple[int, int], rng: np.random.Generator, tint: Array | None = None
) -> Array:
    """The tissue of one anatomical site, planar (3, H, W) float32 in 0-1."""
    spec = vocab.world()["sites"][site]
    h, w = shape
    base, alt = draw.planar(draw.rgb(spec["base"])), draw.planar(draw.rgb(spec["alt"]))
    if tint is not None:
        base, alt = base * draw.planar(tint), alt * draw.planar(tint)
    cells = float(spec.get("cells", 4))
    n = fbm(rng, shape, cells)
    pattern = spec.get("pattern", "smooth")
    if pattern == "lobular":
        m = fbm(rng, shape, cells * 1.5, octaves=2)
        a = _smoothstep((m - 0.42) * 5.0)
        crease = np.exp(-(((m - 0.42) / 0.05) ** 2))
        a = np.clip(a + 0.25 * n - 0.1, 0.0, 1.0)
        shade = 1.0 - 0.25 * crease
    elif pattern == "striated":
        ang = np.deg2rad(float(spec.get("angle", 0.0)))
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        u = (xx * np.cos(ang) + yy * np.sin(ang)) / max(h, w)
        a = 0.5 + 0.5 * np.sin(2 * np.pi * u * cells + 4.0 * n)
        shade = 0.88 + 0.12 * a
    elif pattern == "loops":
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        phase = float(rng.uniform(0, 2 * np.pi))
        s = np.sin(2 * np.pi * (yy / h * cells + 0.35 * np.sin(2 * np.pi * xx / w * 1.2 + phase) + 0.3 * n))
        a = 0.5 + 0.5 * s
        shade = 0.55 + 0.45 * np.sqrt(np.clip(a, 0.0, 1.0))  # dark creases between bowel loops
    else:
        a = _smoothstep(n * 1.4 - 0.2)
        shade = np.ones(shape, dtype=np.float32)
    light = 0.82 + 0.3 * fbm(rng, shape, 1.5, octaves=1)
    tex = (base * (1.0 - a) + alt * a) * (shade * light)
    density = float(spec.get("vessels", 0.0))
    if density > 0:
        v = fbm(rng, shape, cells * 1.2, octaves=2)
        ridge = np.exp(-(((v - 0.5) / (0.006 + 0.012 * density)) ** 2))
        keep = smooth_noise(rng, shape, 3.0) < 0.25 + 0.75 * density
        ridge = (ridge * keep * 0.75).astype(np.float32)
        tex += ridge * (draw.planar(VESSEL) - tex)
    return np.clip(tex, 0.0, 1.0).astype(np.float32)


def _band_mask(shape: tuple[int, int], side: str, frac: float, rng: np.random.Generator) -> Array:
    """Where the secondary site shows: a band on one side with a wavy, soft border."""
    h, w = shape
    along, across = (w, h) if side in ("top", "bottom") else (h, w)
    wobble = (smooth_noise(rng, (1, along), 3.0)[0] - 0.5) * 0.25 * across
    edge = frac * across + wobble
    pos = np.arange(across, dtype=np.float32)[:, None]
    if side in ("bottom", "right"):
        pos = across - 1 - pos
    m = np.clip((edge[None, :] - pos) / 2.5 + 0.5, 0.0, 1.0)
    return m if side in ("top", "bottom") else m.T


def _tube_path(shape: tuple[int, int], rng: np.random.Generator) -> Array:
    """A gently curved path across the middle of the canvas (a duct or vessel)."""
    h, w = shape
    ang = rng.uniform(-0.6, 0.6) + (np.pi / 2 if rng.random() < 0.3 else 0.0)
    cx, cy = w * rng.uniform(0.4, 0.6), h * rng.uniform(0.4, 0.6)
    t = np.linspace(-0.75, 0.75, 16) * max(h, w)
    bend = np.sin(np.linspace(0, np.pi, 16)) * rng.uniform(-0.12, 0.12) * h
    x = cx + t * np.cos(ang) - bend * np.sin(ang)
    y = cy + t * np.sin(ang) + bend * np.cos(ang)
    return np.stack([x, y], axis=1)


def _draw_tube(canvas: Array, spec: dict, color: Array, unit: float, path: Array) -> None:
    """A duct or vessel along `path`."""
    draw.polyline(canvas, path, 0.5 * spec["width"] * unit, color, shade=0.5)


def _draw_bars(
    canvas: Array, spec: dict, color: Array, unit: float, path: Array, rng: np.random.Generator
) -> None:
    """Clips: short bars across `path` (the segment's first tube, else a path of their own)."""
    k0 = int(rng.integers(4, 8))
    for k in range(int(spec["count"])):
        i = min(k0 + 2 * k, len(path) - 2)
        p, q = path[i], path[i + 1]
        d = (q - p) / (np.linalg.norm(q - p) + 1e-6)
        nrm = np.array([-d[1], d[0]]) * 0.07 * unit
        draw.capsule(canvas, tuple(p - nrm), tuple(p + nrm), 0.018 * unit, color, shade=0.6)


def _draw_row(
    canvas: Array, kind: str, spec: dict, color: Array, unit: float, rng: np.random.Generator
) -> None:
    """A staple line (pairs of dots) or a suture (dashes across the line) along a straight row."""
    h, w = canvas.shape[1:]
    x0, y0 = w * rng.uniform(0.2, 0.4), h * rng.uniform(0.3, 0.7)
    ang = rng.uniform(-0.7, 0.7)
    step = 0.045 * unit if kind == "dots" else 0.07 * unit
    across = np.array([-np.sin(ang), np.cos(ang)])
    for k in range(int(spec["count"])):
        p = np.array([x0 + k * step * np.cos(ang), y0 + k * step * np.sin(ang)])
        if kind == "dots":
            for off in (-0.02 * unit, 0.02 * unit):
                q = p + off * across
                draw.ellipse(canvas, (q[0], q[1]), (0.012 * unit, 0.012 * unit), color)
        else:
            nrm = 0.03 * unit * across
            draw.capsule(canvas, tuple(p - nrm), tuple(p + nrm), 0.008 * unit, color, shade=0.2)


def _draw_blotches(canvas: Array, spec: dict, color: Array, unit: float, rng: np.random.Generator) -> None:
    """Char, fluid, dye or blood: soft ellipses scattered over the middle of the canvas."""
    h, w = canvas.shape[1:]
    alpha = float(spec.get("alpha", 0.85))
    for _ in range(int(spec["count"])):
        c = (w * rng.uniform(0.15, 0.85), h * rng.uniform(0.15, 0.85))
        r = float(spec["size"]) * unit * rng.uniform(0.6, 1.4)
        draw.ellipse(canvas, c, (r, r * rng.uniform(0.5, 1.0)), color, alpha, rng.uniform(0, np.pi), soft=3.0)


def _draw_hole(canvas: Array, spec: dict, color: Array, unit: float, rng: np.random.Generator) -> None:
    """A cuff, port or enterotomy: a light rim around a dark opening."""
    h, w = canvas.shape[1:]
    c = (w * rng.uniform(0.35, 0.65), h * rng.uniform(0.35, 0.65))
    r = float(spec["size"]) * unit
    draw.ellipse(canvas, c, (r * 1.3, r * 0.8), np.clip(color * 3.0, 0, 1), 0.9, soft=2.0)
    draw.ellipse(canvas, c, (r * 1.05, r * 0.6), color, 1.0, soft=2.0)


def _draw_structures(canvas: Array, names: list[str], unit: float, rng: np.random.Generator) -> None:
    """The scene's structures (world.yaml `structures`), in order; clips sit on the first tube drawn."""
    world = vocab.world()
    shape = canvas.shape[1:]
    tube = None
    for name in names:
        spec = world["structures"][name]
        kind, color = spec["kind"], draw.rgb(spec["color"])
        if kind == "tube":
            path = _tube_path(shape, rng)
            if tube is None:
                tube = path
            _draw_tube(canvas, spec, color, unit, path)
        elif kind == "bars":
            path = tube if tube is not None else _tube_path(shape, rng)
            _draw_bars(canvas, spec, color, unit, path, rng)
        elif kind in ("dots", "dashes"):
            _draw_row(canvas, kind, spec, color, unit, rng)
        elif kind == "blotches":
            _draw_blotches(canvas, spec, color, unit, rng)
        elif kind == "hole":
            _draw_hole(canvas, spec, color, unit, rng)


def _draw_glare(canvas: Array, site: str, unit: float, rng: np.random.Generator) -> None:
    """Specular highlights, more on glossier sites (world.yaml `sites: gloss`)."""
    h, w = canvas.shape[1:]
    gloss = float(vocab.world()["sites"][site].get("gloss", 0.3))
    for _ in range(int(rng.poisson(gloss * 10))):
        c = (w * rng.random(), h * rng.random())
        r = 0.012 * unit * rng.uniform(0.5, 2.0)
        draw.ellipse(canvas, c, (r * rng.uniform(1.0, 2.5), r), GLARE, 0.9, rng.uniform(0, np.pi), soft=1.5)


def build_canvas(scene: Scene, unit: float, tissue: Callable[[str], Array]) -> Array:
    """The segment's tissue canvas: primary site, secondary band, structures, specular highlights.

    `tissue(site)` gives the patient's texture of a site (the same liver in every phase of one video,
    seen flipped differently); `unit` is the frame height in canvas pixels: structure sizes in
    world.yaml are fractions of it.
    """
    rng = np.random.default_rng(scene.seed)

    def flipped(site: str) -> Array:
        tex = tissue(site)
        k = int(rng.integers(4))
        return tex[:, :: 1 - 2 * (k // 2), :: 1 - 2 * (k % 2)]

    canvas = flipped(scene.site).copy()
    if scene.secondary:
        site2, side, frac = scene.secondary
        m = _band_mask(canvas.shape[1:], side, frac, rng)
        canvas = canvas * (1.0 - m) + flipped(site2) * m
    _draw_structures(canvas, scene.structures, unit, rng)
    _draw_glare(canvas, scene.site, unit, rng)
    return canvas


def operating_room(shape: tuple[int, int], rng: np.random.Generator) -> Array:
    """What the camera sees out of the body: drapes, gowns, lights, instrument tables; blurred."""
    h, w = shape
    drape = draw.rgb([60, 120, 150]) if rng.random() < 0.5 else draw.rgb([70, 140, 110])
    room = draw.planar(drape) * (0.7 + 0.5 * fbm(rng, shape, 2.0, octaves=2))
    for _ in range(int(rng.integers(4, 8))):
        color = draw.rgb(
            [[225, 225, 230], [210, 170, 150], [120, 130, 140], [240, 240, 210], [40, 60, 90]][
                int(rng.integers(5))
            ]
        )
        c = (w * rng.random(), h * rng.random())
        r = h * rng.uniform(0.08, 0.3)
        draw.ellipse(
            room, c, (r * rng.uniform(0.6, 2.0), r), color, 0.9, rng.uniform(0, np.pi), soft=0.25 * r
        )
    return np.clip(room, 0.0, 1.0).astype(np.float32)
