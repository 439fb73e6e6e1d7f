"""How a camera and a video source change the picture: the centres' domain shift and the lectures' look.

A target centre has one fixed look (colour balance, resolution, vignette or circular endoscope field,
sensor noise; world.yaml `centres`). A lecture draws its own look: colour balance, zoom, sometimes a
border around an inset picture and a caption banner with a logo (world.yaml `lectures`). Banner content
changes on a timer that knows nothing about phases, so the overlay never tells the phase.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hecvl.synth import draw, vocab

Array = np.ndarray
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
NOISE_BANK = 6
SLIDE_S = 25.0  # the banner's caption changes about this often
OFFSET_SD = 0.015  # spread of a lecture's per-channel colour offset (0-1 units)


def centre_style(name: str) -> dict[str, Any]:
    """A target centre's look, as in world.yaml."""
    return dict(vocab.world()["centres"][name])


def lecture_style(rng: np.random.Generator) -> dict[str, Any]:
    """Draw one lecture's look: every lecture comes from a different source and camera."""
    cfg = vocab.world()["lectures"]
    u = lambda lo_hi: round(float(rng.uniform(*lo_hi)), 4)  # noqa: E731
    style: dict[str, Any] = {
        "size": list(cfg["size"]),
        "fps": int(cfg["fps"]),
        "render_fps": int(cfg["fps"]),
        "gop_s": float(cfg["gop_s"]),
        "render_scale": 1,
        "gains": [round(float(g), 4) for g in np.exp(rng.normal(0.0, float(cfg["gains_sd"]), 3))],
        "offset": [round(float(o), 4) for o in rng.normal(0.0, OFFSET_SD, 3)],
        "saturation": u(cfg["saturation"]),
        "tone": u(cfg["tone"]),
        "vignette": u(cfg["vignette"]),
        "fov": u(cfg["fov"]) if rng.random() < float(cfg["fov_p"]) else None,
        "noise": u(cfg["noise"]),
        "zoom": u(cfg["zoom"]),
        "oob_rate": float(cfg["oob_rate"]),
        "bleed_rate": 0.0,
        "border": None,
        "overlay": None,
    }
    if rng.random() < float(cfg["border_p"]):
        colors = cfg["border_colors"]
        style["border"] = {
            "color": list(colors[int(rng.integers(len(colors)))]),
            "inset": u(cfg["inset"]),
            "x": u([0.0, 1.0]),
            "y": u([0.0, 1.0]),
        }
    if rng.random() < float(cfg["overlay_p"]):
        style["overlay"] = {
            "side": "top" if rng.random() < 0.4 else "bottom",
            "height": u([0.1, 0.17]),
            "color": [int(c) for c in rng.integers(0, 120, 3)],
            "logo": [int(c) for c in rng.integers(60, 256, 3)],
            "corner": int(rng.integers(4)),
            "seed": int(rng.integers(0, 2**31 - 1)),
        }
    return style


def colour_matrix(gains: Any, saturation: float) -> Array:
    """Saturation and channel gains as one colour matrix: G (s I + (1 - s) 1 luma^T)."""
    sat = float(saturation)
    mix = sat * np.eye(3, dtype=np.float32) + (1.0 - sat) * LUMA[None, :]
    return (np.asarray(gains, dtype=np.float32)[:, None] * mix).astype(np.float32)


def balance(colours: Array, style: dict[str, Any]) -> Array:
    """A look's colour balance applied to plain colours (..., 3) in 0-1, exactly as `Look.finish` does
    away from the vignette and before noise: y = T(clip(M c)) + offset, with M = colour_matrix(gains,
    saturation) and the tone curve T(x) = x + tone * x * (1 - x) (no clipping of the result)."""
    c = np.asarray(colours, dtype=np.float32)
    x = c @ colour_matrix(style["gains"], style["saturation"]).T
    tone = float(style.get("tone", 0.0))
    if tone:
        x = np.clip(x, 0.0, 1.0)
        x = x * ((1.0 + tone) - tone * x)
    return x + np.asarray(style["offset"], dtype=np.float32)


class Look:
    """Turns a rendered scene (float32 0-1) into the encoded video's uint8 frame for one style."""

    def __init__(self, style: dict[str, Any], size: tuple[int, int], seed: int) -> None:
        self.style = style
        self.size = (int(size[0]), int(size[1]))
        h, w = self.size
        rng = np.random.default_rng(seed)
        self.scale = int(style.get("render_scale", 1))
        border = style.get("border")
        if border:  # the scene fills the inset: drawn at 1/scale of it, enlarged, placed in the border
            ih, iw = round(h * border["inset"]), round(w * border["inset"])
            self.inner_at = (round((h - ih) * border["y"]), round((w - iw) * border["x"]))
            self.scene_size = (ih // self.scale, iw // self.scale)
        else:
            self.inner_at = (0, 0)
            self.scene_size = (h // self.scale, w // self.scale)
        sh, sw = self.scene_size
        self.matrix = colour_matrix(style["gains"], style["saturation"])  # out = matrix @ scene + offset
        self.tone = float(style.get("tone", 0.0))
        self.mask = self._vignette(sh * self.scale, sw * self.scale)
        sigma = float(style["noise"])
        offset = draw.planar(np.asarray(style["offset"], dtype=np.float32))
        # sensor noise bank with the colour offset folded in: one addition per frame
        self.noise = [
            (rng.normal(0.0, sigma, (3, h, w)) + offset).astype(np.float32)
            if sigma
            else np.broadcast_to(offset, (3, h, w))
            for _ in range(NOISE_BANK if sigma else 1)
        ]
        self.overlay = style.get("overlay")
        self._banner_cache: tuple[int, tuple[Array, Array]] = (-1, (np.zeros(0), np.zeros(0)))

    def _vignette(self, h: int, w: int) -> Array:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        dy, dx = (yy + 0.5 - h / 2) / (h / 2), (xx + 0.5 - w / 2) / (w / 2)
        mask = 1.0 - float(self.style["vignette"]) * 0.5 * (dx * dx + dy * dy)
        fov = self.style.get("fov")
        if fov:
            radius = float(fov) * w / 2
            dist = np.sqrt((xx + 0.5 - w / 2) ** 2 + (yy + 0.5 - h / 2) ** 2)
            mask = mask * np.clip((radius - dist) / 1.5 + 0.5, 0.0, 1.0)
        return np.clip(mask, 0.0, 1.0).astype(np.float32)

    def _banner(self, slide: int) -> tuple[Array, Array]:
        """The caption banner and logo of one slide, premultiplied: (colour (3, H, W), alpha (H, W))."""
        if self._banner_cache[0] == slide:
            return self._banner_cache[1]
        ov = self.overlay
        h, w = self.size
        color = np.zeros((3, h, w), dtype=np.float32)
        alpha = np.zeros((1, h, w), dtype=np.float32)
        white = np.full(3, 0.92, np.float32)
        rng = np.random.default_rng([ov["seed"], slide])
        bh = max(4, round(h * ov["height"]))
        y0 = 0 if ov["side"] == "top" else h - bh
        shapes = [(0, y0, w, y0 + bh, draw.rgb(ov["color"]), 0.8)]
        x = 0.04 * w
        while x < 0.8 * w:
            word = float(rng.uniform(0.04, 0.12)) * w
            shapes.append((x, y0 + 0.3 * bh, x + word, y0 + 0.7 * bh, white, 0.9))
            x += word + 0.025 * w
        s = max(3, round(0.12 * h))
        cy = 1 if ov["corner"] < 2 else h - s - 1
        cx = 1 if ov["corner"] % 2 == 0 else w - s - 1
        shapes.append((cx, cy, cx + s, cy + s, draw.rgb(ov["logo"]), 0.85))
        shapes.append((cx + s / 4, cy + s / 4, cx + 3 * s / 4, cy + 3 * s / 4, white, 0.9))
        for x0, y0_, x1, y1, col, a in shapes:  # "over" compositing of premultiplied layers
            draw.rect(color, x0, y0_, x1, y1, col, a)
            draw.rect(alpha, x0, y0_, x1, y1, np.ones(1, np.float32), a)
        self._banner_cache = (slide, (color, 1.0 - alpha[0]))
        return self._banner_cache[1]

    def finish(self, scene: Array, t: float, index: int) -> Array:
        """Colour balance, tone, vignette, resolution, border, banner and noise.

        `scene` is planar (3, h, w) float32; returns the frame as uint8 (H, W, 3), C-contiguous.
        """
        _c, sh, sw = scene.shape
        img = (self.matrix @ scene.reshape(3, -1)).reshape(3, sh, sw)
        if self.tone:
            np.clip(img, 0.0, 1.0, out=img)
            img *= (1.0 + self.tone) - self.tone * img
        if self.scale > 1:
            img = np.repeat(np.repeat(img, self.scale, axis=1), self.scale, axis=2)
        img *= self.mask
        h, w = self.size
        if self.style.get("border"):
            frame = np.empty((3, h, w), dtype=np.float32)
            frame[:] = draw.planar(draw.rgb(self.style["border"]["color"]))
            y, x = self.inner_at
            frame[:, y : y + img.shape[1], x : x + img.shape[2]] = img
        elif img.shape[1:] != (h, w):
            frame = np.zeros((3, h, w), dtype=np.float32)
            frame[:, : img.shape[1], : img.shape[2]] = img
        else:
            frame = img
        if self.overlay:
            color, keep = self._banner(int(t // SLIDE_S))
            frame *= keep
            frame += color
        frame += self.noise[index % len(self.noise)]
        frame *= 255.0
        frame += 0.5
        np.clip(frame, 0.0, 255.0, out=frame)
        planes = frame.astype(np.uint8)
        out = np.empty((h, w, 3), dtype=np.uint8)
        for c in range(3):  # one plane at a time: 3x faster than a strided transpose copy at 720p
            out[:, :, c] = planes[c]
        return out
