"""What the model can see of the world: instrument tips at its input, and anatomical sites whose colours
no camera can make look alike. Both are computed from world.yaml geometry and colours alone (no video is
read), and both are criteria of `hecvl synth --check`.

The model sees every frame, lecture or target, resized to exactly R x C (aspect ignored; the study's
`frames.transform`, 103 x 183) and cropped to a square (64 px). A crop does not scale, so what matters is
the resize: a source frame of H x W scales rows by R / H and columns by C / W, and a stroke's width is
scaled by at least min(R / H, C / W), whatever its direction.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from hecvl.synth import instruments, style
from hecvl.video import FrameTransform

MIN_TIP_PX = 2.0  # the narrowest part of every instrument's tip, in model-input pixels


def model_scale(size: tuple[int, int] | list[int], transform: FrameTransform) -> float:
    """Model-input pixels per source pixel across a stroke, in the worst direction: min(R / H, C / W)."""
    h, w = int(size[0]), int(size[1])
    if transform.size is None:
        return 1.0
    rows, cols = transform.size
    return min(rows / h, cols / w)


def part_width_px(
    fraction: float, size: tuple[int, int] | list[int], render_scale: int, transform: FrameTransform
) -> float:
    """Width in model-input pixels of a drawn part `fraction` of the frame height wide.

    A camera with render scale s draws its scene on h = H // s rows and enlarges it s times, so the part
    is fraction * h scene pixels, fraction * h * s source pixels and fraction * h * s * min(R / H, C / W)
    model pixels wide. A part thinner than one drawn pixel (fraction * h < 1, i.e. thinner than s source
    pixels) is lost in the drawing: it counts as 0.
    """
    s = max(int(render_scale), 1)
    drawn = float(fraction) * (int(size[0]) // s)
    if drawn < 1.0:
        return 0.0
    return drawn * s * model_scale(size, transform)


def tip_parts(spec: dict[str, Any]) -> dict[str, float]:
    """{part: full width as a fraction of the frame height} of one instrument's tip (world.yaml spec)."""
    out = {}
    for part, (multiple, of) in instruments.TIP_PARTS[spec["tip"]].items():
        out[part] = float(multiple) * float(spec["radius" if of == "radius" else "tip_len"])
    return out


def tip_widths(world: dict[str, Any], transform: FrameTransform) -> dict[str, dict[str, Any]]:
    """Per instrument: its tip's narrowest drawn part and that part's width at the model's input at the
    target centre that makes it thinnest (`px`, the criterion), with every centre's width; and, for
    reference, the width in a lecture whose picture is inset in a slide border at the smallest inset."""
    centres = world["centres"]
    lec = world["lectures"]
    inset = float(min(lec["inset"]))
    out: dict[str, dict[str, Any]] = {}
    for name, spec in world["instruments"].items():
        parts = tip_parts(spec)
        part = min(parts, key=lambda k: parts[k])
        frac = parts[part]
        per_centre = {
            c: round(part_width_px(frac, cfg["size"], int(cfg.get("render_scale", 1)), transform), 2)
            for c, cfg in centres.items()
        }
        worst = min(per_centre, key=lambda c: per_centre[c])
        lh, lw = (int(v) for v in lec["size"])
        inset_rows = round(lh * inset)
        lecture = frac * inset_rows * model_scale((lh, lw), transform) if frac * inset_rows >= 1 else 0.0
        out[name] = {
            "tip": spec["tip"],
            "part": part,
            "fraction_of_height": round(frac, 4),
            "px": per_centre[worst],
            "worst_centre": worst,
            "centres": per_centre,
            "lecture_inset_px": round(lecture, 2),
        }
    return out


def looks(world: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The colour balances a video can have: every target centre's, and the corners of the lectures'
    spread (gains exp(+-gains_sd) and offsets +-OFFSET_SD per channel, saturation and tone at the ends
    of their ranges: 256 looks)."""
    out = {name: dict(cfg) for name, cfg in world["centres"].items()}
    lec = world["lectures"]
    sd = float(lec["gains_sd"])
    signs = list(itertools.product((-1.0, 1.0), repeat=3))
    corners = itertools.product(signs, signs, lec["saturation"], lec["tone"])
    for k, (g, o, sat, tone) in enumerate(corners):
        out[f"lecture corner {k}"] = {
            "gains": [float(np.exp(x * sd)) for x in g],
            "offset": [x * style.OFFSET_SD for x in o],
            "saturation": float(sat),
            "tone": float(tone),
        }
    return out


def colour_jitter(colour: list[float] | np.ndarray, balances: dict[str, dict[str, Any]]) -> float:
    """How far (RGB Euclidean distance, 0-255 units) a camera's colour balance can move `colour` (0-255).

    jitter(c) = 255 * max over looks L of || L(c / 255) - c / 255 ||_2, where a look is
    L(c) = T(clip(G (s I + (1 - s) 1 luma^T) c)) + o, T(x) = x + tone * x * (1 - x) (style.balance: the
    code `Look.finish` runs), G = diag(gains), s the saturation, o the offset, over the looks of
    `looks()`. Not counted: each patient's per-site tint (exp(N(0, render.TINT_SD)) per channel, a
    variation between videos of one camera), the vignette and the textures' shading (spatial, not a
    colour balance), and sensor noise.
    """
    c = np.asarray(colour, dtype=np.float32) / 255.0
    shifted = np.stack([style.balance(c, look) for look in balances.values()])
    return float(255.0 * np.linalg.norm(shifted - c[None, :], axis=1).max())


def procedure_sites(proc: dict[str, Any]) -> list[str]:
    """The anatomical sites that fill a procedure's views (primary and secondary sites of its phases)."""
    sites: set[str] = set()
    for phase in proc["phases"]:
        scene = phase["scene"]
        sites.add(scene["site"])
        if scene.get("secondary"):
            sites.add(scene["secondary"][0])
    return sorted(sites)


def site_separation(world: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per procedure: every pair of its sites, whose base colours must differ (RGB distance) by more
    than the colour jitter one camera can apply to either of them (max of the two `colour_jitter`s);
    returns the closest pair (smallest margin = distance - jitter) and the pairs that fail."""
    balances = looks(world)
    sites = world["sites"]
    jitter = {s: colour_jitter(spec["base"], balances) for s, spec in sites.items()}
    out: dict[str, dict[str, Any]] = {}
    for name, proc in world["procedures"].items():
        pairs = []
        for a, b in itertools.combinations(procedure_sites(proc), 2):
            dist = float(np.linalg.norm(np.subtract(sites[a]["base"], sites[b]["base"], dtype=float)))
            jit = max(jitter[a], jitter[b])
            pairs.append(
                {
                    "pair": [a, b],
                    "distance": round(dist, 1),
                    "jitter": round(jit, 1),
                    "margin": round(dist - jit, 1),
                }
            )
        pairs.sort(key=lambda p: p["margin"])
        out[name] = {
            "sites": len(procedure_sites(proc)),
            "closest": pairs[0] if pairs else None,
            "failing": [p for p in pairs if p["margin"] <= 0],
        }
    return out
