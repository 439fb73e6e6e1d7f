"""Instrument glyphs and their action-tied motion.

Each instrument has a shaft entering from outside the view and a tip with its own shape and colour
(world.yaml `instruments`); its tip moves with the pattern of what it is doing (world.yaml `actions`):
short strokes to dissect, an open-close cycle to clip or cut, circles to suture, a slow pull to extract.
"""

from __future__ import annotations

import numpy as np

from hecvl.synth import draw, vocab
from hecvl.synth.world import ToolTrack

Array = np.ndarray
NEEDLE = np.array([0.85, 0.86, 0.9], dtype=np.float32)
THREAD = np.array([0.45, 0.22, 0.66], dtype=np.float32)
DARK = np.array([0.08, 0.08, 0.09], dtype=np.float32)


def visible(track: ToolTrack, t: float) -> tuple[float, float] | None:
    """The visible stretch of `track` that contains time t, if any."""
    for a, b in track.on:
        if a <= t < b:
            return a, b
    return None


def _opening(mode: str, freq: float, t: float, phase: float) -> float:
    if mode == "closed":
        return 0.08
    if mode == "hold":
        return 0.45
    x = 2 * np.pi * freq * t + phase
    if mode == "pulse":
        return 0.5 + 0.5 * np.sin(x)
    frac = (x / (2 * np.pi)) % 1.0  # cycle: open wide, then snap shut
    return 1.0 - frac if frac > 0.3 else frac / 0.3


def pose(track: ToolTrack, t: float, stretch: tuple[float, float], size: tuple[int, int]) -> tuple:
    """Tip position (x, y) in pixels, unit shaft direction, and jaw opening 0-1 at time t."""
    h, w = size
    act = vocab.world()["actions"][track.action]
    amp, freq, drift = float(act["amp"]) * h, float(act["freq"]), float(act["drift"]) * h
    ph = track.phase
    entry = np.array([track.entry[0] * w, track.entry[1] * h])
    tip = np.array([track.anchor[0] * w, track.anchor[1] * h])
    tip = tip + drift * np.array([np.sin(0.31 * t + ph), np.cos(0.23 * t + 1.7 * ph)])
    if track.tool == "trocar":
        return tip, np.array([0.0, 1.0]), 0.0
    u = tip - entry
    u = u / (np.linalg.norm(u) + 1e-6)
    x = 2 * np.pi * freq * t + ph
    if act.get("circle"):
        tip = tip + amp * np.array([np.cos(x), np.sin(x)])
    else:
        tip = tip + u * amp * np.sin(x) ** 3 + np.array([-u[1], u[0]]) * 0.25 * amp * np.sin(0.5 * x)
    if act.get("pull"):
        a, b = stretch
        tip = tip + (entry - tip) * 0.7 * ((t - a) / max(b - a, 1e-3))
    return tip, u, _opening(str(act["open"]), freq, t, ph)


PORT_RIM = (1.25, 0.8)  # the trocar's outer ellipse, radii in multiples of `radius`
PORT_OPENING = (0.85, 0.5)  # its dark opening
BAG_RADII = (0.55, 0.38)  # the bag's ellipse, radii in multiples of `tip_len`
# The drawn parts of each tip kind (world.yaml `instruments: tip`), as full widths in multiples of the
# instrument's `radius` (or of its `tip_len` for the bag): draw_tool draws exactly these, and
# hecvl.synth.visibility measures the narrowest one at the model's input. The needle driver's thread is
# suture material, not part of the instrument, and is left out.
TIP_PARTS: dict[str, dict[str, tuple[float, str]]] = {
    "jaws": {"jaw": (1.1, "radius")},
    "hook": {"hook": (0.76, "radius")},
    "prongs": {"prong": (0.6, "radius")},
    "blade": {"blade": (0.84, "radius")},
    "shears": {"active blade": (1.0, "radius"), "clamp arm": (0.6, "radius")},
    "tube": {"tube": (1.84, "radius")},
    "bag": {"bag": (2 * min(BAG_RADII), "tip_len"), "rod": (1.0, "radius")},
    "needle": {"jaw": (1.0, "radius"), "needle": (0.76, "radius")},
    "stapler": {"anvil": (0.9, "radius"), "cartridge": (0.84, "radius")},
    "port": {
        "rim": (min(a - b for a, b in zip(PORT_RIM, PORT_OPENING, strict=True)), "radius"),
        "opening": (2 * min(PORT_OPENING), "radius"),
    },
    "bar": {"bar": (1.7, "radius")},
}


def _half(kind: str, part: str, r: float) -> float:
    """The capsule radius (half the drawn width) of one tip part, in pixels."""
    return 0.5 * TIP_PARTS[kind][part][0] * r


def draw_tool(img: Array, track: ToolTrack, t: float, stretch: tuple[float, float]) -> None:
    """Draw one instrument at time t into `img` (3, H, W) float32."""
    spec = vocab.world()["instruments"][track.tool]
    h, w = img.shape[1:]
    tip, u, o = pose(track, t, stretch, (h, w))
    n = np.array([-u[1], u[0]])
    r = float(spec["radius"]) * h
    length = float(spec["tip_len"]) * h
    shaft, col = draw.rgb(spec["shaft"]), draw.rgb(spec["tip_color"])
    kind = spec["tip"]
    entry = np.array([track.entry[0] * w, track.entry[1] * h])
    base = tip - u * length

    def seg(p, q, rad, color, shade=0.45):
        draw.capsule(img, (float(p[0]), float(p[1])), (float(q[0]), float(q[1])), rad, color, shade=shade)

    if kind == "port":
        c = (float(tip[0]), float(tip[1]))
        draw.ellipse(img, c, (r * PORT_RIM[0], r * PORT_RIM[1]), shaft, 1.0, soft=1.5)
        draw.ellipse(img, c, (r * PORT_OPENING[0], r * PORT_OPENING[1]), col, 1.0, soft=1.5)
        return
    if kind == "tube":
        seg(entry, tip, r, shaft)
        seg(tip - u * length, tip, _half(kind, "tube", r), col, shade=0.3)
        return
    if kind == "bar":
        seg(entry, base, r * 0.7, shaft)
        seg(base - n * length * 0.35, base + n * length * 0.35, _half(kind, "bar", r), col, shade=0.5)
        return
    seg(entry, base, r, shaft)
    if kind == "jaws":
        for sgn in (-1, 1):
            seg(base, tip + sgn * n * o * length * 0.45, _half(kind, "jaw", r), col)
    elif kind == "hook":
        seg(base, tip, _half(kind, "hook", r), col)
        seg(tip, tip + n * length * 0.45 - u * length * 0.1, _half(kind, "hook", r), col)
    elif kind == "prongs":
        gap = r * (0.35 + 0.45 * o)
        for sgn in (-1, 1):
            seg(base + sgn * n * r * 0.4, tip + sgn * n * gap, _half(kind, "prong", r), col)
    elif kind == "shears":  # ultrasonic shears: the active blade and a clamp arm that opens away from it
        seg(base, tip, _half(kind, "active blade", r), col)
        arm = _half(kind, "clamp arm", r)
        seg(base + n * r * 0.5, tip + n * (r * 0.5 + o * length * 0.3), arm, shaft)
    elif kind == "blade":
        for sgn in (-1, 1):
            bend = tip + sgn * n * o * length * 0.35 + n * length * 0.12
            seg(base, bend, _half(kind, "blade", r), col)
    elif kind == "bag":
        centre = tip + u * length * 0.45
        draw.ellipse(
            img,
            (float(centre[0]), float(centre[1])),
            (length * BAG_RADII[0], length * BAG_RADII[1]),
            col,
            0.8,
            angle=float(np.arctan2(u[1], u[0])),
            soft=2.0,
        )
        seg(base, tip, _half(kind, "rod", r), DARK)
    elif kind == "needle":
        for sgn in (-1, 1):
            seg(base, tip + sgn * n * o * length * 0.3, _half(kind, "jaw", r), col)
        ang = np.linspace(0, np.pi, 7) + 3.0 * t + track.phase
        arc = tip[None, :] + length * 0.45 * np.stack([np.cos(ang), np.sin(ang)], axis=1)
        draw.polyline(img, arc, _half(kind, "needle", r), NEEDLE, shade=0.2)
        draw.polyline(
            img,
            np.stack([arc[-1], arc[-1] + (entry - tip) * 0.25 + n * length]),
            max(0.5, r * 0.12),
            THREAD,
            shade=0.0,
        )
    elif kind == "stapler":
        gap = r * (0.45 + 0.7 * o)
        seg(base + n * gap * 0.5, tip + n * gap, _half(kind, "anvil", r), col)
        seg(base - n * gap * 0.5, tip - n * gap, _half(kind, "cartridge", r), shaft * 1.6)
