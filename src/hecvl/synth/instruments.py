"""Instrument glyphs and their action-tied motion.

Each instrument has a shaft entering from outside the view and a tip with its own shape and colour
(world.yaml `instruments`); its tip moves with the pattern of what it is doing (world.yaml `actions`):
short strokes to dissect, an open-close cycle to clip or cut, circles to suture, a slow pull to extract.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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


@dataclass(frozen=True)
class _Tip:
    """Where one instrument's tip is at one time, in pixels: what each tip kind's drawing needs."""

    img: Array  # (3, H, W) float32, drawn into
    kind: str  # world.yaml `instruments: tip`
    tip: Array  # tip position (x, y)
    base: Array  # where the tip part meets the shaft
    entry: Array  # where the shaft enters the view
    u: Array  # unit shaft direction, towards the tip
    n: Array  # unit normal of the shaft
    opening: float  # jaw opening 0-1
    r: float  # shaft radius
    length: float  # tip length
    shaft: Array  # shaft colour
    col: Array  # tip colour
    t: float
    phase: float

    def seg(self, p: Array, q: Array, rad: float, color: Array, shade: float = 0.45) -> None:
        """A capsule from p to q."""
        p0, q0 = (float(p[0]), float(p[1])), (float(q[0]), float(q[1]))
        draw.capsule(self.img, p0, q0, rad, color, shade=shade)

    def half(self, part: str) -> float:
        """The capsule radius of one of this tip's parts (TIP_PARTS)."""
        return _half(self.kind, part, self.r)


def _draw_port(a: _Tip) -> None:
    """The trocar seen end-on: a rim around a dark opening, no shaft."""
    c = (float(a.tip[0]), float(a.tip[1]))
    draw.ellipse(a.img, c, (a.r * PORT_RIM[0], a.r * PORT_RIM[1]), a.shaft, 1.0, soft=1.5)
    draw.ellipse(a.img, c, (a.r * PORT_OPENING[0], a.r * PORT_OPENING[1]), a.col, 1.0, soft=1.5)


def _draw_tube(a: _Tip) -> None:
    """The irrigator: a shaft to the tip, its last stretch a wider tube."""
    a.seg(a.entry, a.tip, a.r, a.shaft)
    a.seg(a.tip - a.u * a.length, a.tip, a.half("tube"), a.col, shade=0.3)


def _draw_bar(a: _Tip) -> None:
    """The retractor: a thinner shaft ending in a bar across it."""
    a.seg(a.entry, a.base, a.r * 0.7, a.shaft)
    a.seg(a.base - a.n * a.length * 0.35, a.base + a.n * a.length * 0.35, a.half("bar"), a.col, shade=0.5)


def _draw_jaws(a: _Tip) -> None:
    for sgn in (-1, 1):
        a.seg(a.base, a.tip + sgn * a.n * a.opening * a.length * 0.45, a.half("jaw"), a.col)


def _draw_hook(a: _Tip) -> None:
    a.seg(a.base, a.tip, a.half("hook"), a.col)
    a.seg(a.tip, a.tip + a.n * a.length * 0.45 - a.u * a.length * 0.1, a.half("hook"), a.col)


def _draw_prongs(a: _Tip) -> None:
    gap = a.r * (0.35 + 0.45 * a.opening)
    for sgn in (-1, 1):
        a.seg(a.base + sgn * a.n * a.r * 0.4, a.tip + sgn * a.n * gap, a.half("prong"), a.col)


def _draw_shears(a: _Tip) -> None:
    """Ultrasonic shears: the active blade and a clamp arm that opens away from it."""
    a.seg(a.base, a.tip, a.half("active blade"), a.col)
    arm = a.half("clamp arm")
    a.seg(a.base + a.n * a.r * 0.5, a.tip + a.n * (a.r * 0.5 + a.opening * a.length * 0.3), arm, a.shaft)


def _draw_blade(a: _Tip) -> None:
    for sgn in (-1, 1):
        bend = a.tip + sgn * a.n * a.opening * a.length * 0.35 + a.n * a.length * 0.12
        a.seg(a.base, bend, a.half("blade"), a.col)


def _draw_bag(a: _Tip) -> None:
    """The specimen bag: an ellipse beyond the tip, held by a dark rod."""
    centre = a.tip + a.u * a.length * 0.45
    draw.ellipse(
        a.img,
        (float(centre[0]), float(centre[1])),
        (a.length * BAG_RADII[0], a.length * BAG_RADII[1]),
        a.col,
        0.8,
        angle=float(np.arctan2(a.u[1], a.u[0])),
        soft=2.0,
    )
    a.seg(a.base, a.tip, a.half("rod"), DARK)


def _draw_needle(a: _Tip) -> None:
    """The needle driver: jaws holding a turning curved needle, its thread trailing back to the entry."""
    for sgn in (-1, 1):
        a.seg(a.base, a.tip + sgn * a.n * a.opening * a.length * 0.3, a.half("jaw"), a.col)
    ang = np.linspace(0, np.pi, 7) + 3.0 * a.t + a.phase
    arc = a.tip[None, :] + a.length * 0.45 * np.stack([np.cos(ang), np.sin(ang)], axis=1)
    draw.polyline(a.img, arc, a.half("needle"), NEEDLE, shade=0.2)
    draw.polyline(
        a.img,
        np.stack([arc[-1], arc[-1] + (a.entry - a.tip) * 0.25 + a.n * a.length]),
        max(0.5, a.r * 0.12),
        THREAD,
        shade=0.0,
    )


def _draw_stapler(a: _Tip) -> None:
    gap = a.r * (0.45 + 0.7 * a.opening)
    a.seg(a.base + a.n * gap * 0.5, a.tip + a.n * gap, a.half("anvil"), a.col)
    a.seg(a.base - a.n * gap * 0.5, a.tip - a.n * gap, a.half("cartridge"), a.shaft * 1.6)


# Tip kinds drawn without the common shaft (the port has none, the tube and bar draw their own).
_WHOLE: dict[str, Callable[[_Tip], None]] = {"port": _draw_port, "tube": _draw_tube, "bar": _draw_bar}
# Tip kinds drawn at the end of the common shaft.
_ON_SHAFT: dict[str, Callable[[_Tip], None]] = {
    "jaws": _draw_jaws,
    "hook": _draw_hook,
    "prongs": _draw_prongs,
    "shears": _draw_shears,
    "blade": _draw_blade,
    "bag": _draw_bag,
    "needle": _draw_needle,
    "stapler": _draw_stapler,
}


def draw_tool(img: Array, track: ToolTrack, t: float, stretch: tuple[float, float]) -> None:
    """Draw one instrument at time t into `img` (3, H, W) float32."""
    spec = vocab.world()["instruments"][track.tool]
    h, w = img.shape[1:]
    tip, u, o = pose(track, t, stretch, (h, w))
    length = float(spec["tip_len"]) * h
    a = _Tip(
        img=img,
        kind=spec["tip"],
        tip=tip,
        base=tip - u * length,
        entry=np.array([track.entry[0] * w, track.entry[1] * h]),
        u=u,
        n=np.array([-u[1], u[0]]),
        opening=o,
        r=float(spec["radius"]) * h,
        length=length,
        shaft=draw.rgb(spec["shaft"]),
        col=draw.rgb(spec["tip_color"]),
        t=t,
        phase=track.phase,
    )
    if a.kind in _WHOLE:
        _WHOLE[a.kind](a)
        return
    a.seg(a.entry, a.base, a.r, a.shaft)
    if a.kind in _ON_SHAFT:
        _ON_SHAFT[a.kind](a)
