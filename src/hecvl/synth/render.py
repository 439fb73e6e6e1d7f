"""Procedural frames of a planned video: tissue under a moving camera, instruments, smoke, blood, blur.

Everything is drawn with vectorised numpy at the video's low resolution. The camera pans and zooms over a
per-segment canvas (one indexing operation), instruments are a few bounding-box-limited capsules, and
smoke is one blend with a drifting noise field, so a picture costs well under a millisecond or two.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from PIL import Image

from hecvl.synth import draw, instruments, textures, vocab
from hecvl.synth.style import Look
from hecvl.synth.world import Scene, VideoPlan, rng_for

Array = np.ndarray
CANVAS = 1.6  # canvas size relative to the view: the camera's room to move
SMOKE = np.array([0.86, 0.86, 0.84], dtype=np.float32).reshape(3, 1, 1)
BLOOD = np.array([0.36, 0.03, 0.05], dtype=np.float32)
TINT_SD = 0.06  # each video (patient) tints each site's colours by gains exp(N(0, TINT_SD)) per channel


class Camera:
    """Smooth pan, slow zoom, hand shake and sudden moves over one segment (canvas fractions)."""

    def __init__(
        self, seed: int, motion: float, zoom: float, start: float, end: float, jump_rate: float
    ) -> None:
        rng = np.random.default_rng([seed, 7])
        self.c0 = rng.uniform(0.38, 0.62, 2)
        self.amp = 0.05 * motion * rng.uniform(0.5, 1.0, 2)
        self.freq = rng.uniform(0.02, 0.07, 2)
        self.ph = rng.uniform(0, 2 * np.pi, 4)
        self.shake = 0.003 * motion
        self.zoom = zoom * rng.uniform(0.85, 1.15)
        n = rng.poisson(jump_rate * (end - start))
        self.jumps = [(float(rng.uniform(start, end)), rng.normal(0.0, 0.08, 2)) for _ in range(n)]

    def at(self, t: float) -> tuple[float, float, float]:
        x = self.c0 + self.amp * np.sin(2 * np.pi * self.freq * t + self.ph[:2])
        x = x + self.shake * np.sin(2 * np.pi * np.array([0.9, 1.3]) * t + self.ph[2:])
        for tj, off in self.jumps:
            s = min(max((t - tj) / 0.6, 0.0), 1.0)
            x = x + off * s * s * (3 - 2 * s)
        z = self.zoom * (1.0 + 0.06 * np.sin(2 * np.pi * 0.03 * t + self.ph[0]))
        return float(x[0]), float(x[1]), float(z)


class ZoomCanvas:
    """A canvas with lazily built zoom levels, so each camera view is a plain slice (no per-frame resampling).

    Zoom is quantised to steps of ZOOM_STEP (about 4 %); a view is `h * zoom` canvas pixels tall.
    """

    ZOOM_STEP = 1.04

    def __init__(self, canvas: Array) -> None:
        self.canvas = canvas
        self.levels: dict[int, Array] = {}

    def level(self, zoom: float) -> Array:
        k = round(np.log(zoom) / np.log(self.ZOOM_STEP))
        if k not in self.levels:
            z = self.ZOOM_STEP**k
            ch, cw = self.canvas.shape[1:]
            size = (max(1, round(cw / z)), max(1, round(ch / z)))
            if k == 0:
                self.levels[k] = self.canvas
            else:
                chans = [
                    np.asarray(Image.fromarray(self.canvas[c], mode="F").resize(size, Image.BILINEAR))
                    for c in range(self.canvas.shape[0])
                ]
                self.levels[k] = np.ascontiguousarray(np.stack(chans, axis=0), dtype=np.float32)
        return self.levels[k]

    def view(self, cx: float, cy: float, zoom: float, size: tuple[int, int]) -> Array:
        """A (c, h, w) window centred at (cx, cy) (fractions of the canvas), as a writable copy."""
        h, w = size
        ch, cw = self.canvas.shape[1:]
        zoom = min(zoom, 0.98 * ch / h, 0.98 * cw / w)
        lv = self.level(zoom)
        lh, lw = lv.shape[1:]
        y0 = min(max(round(cy * lh - h / 2), 0), max(lh - h, 0))
        x0 = min(max(round(cx * lw - w / 2), 0), max(lw - w, 0))
        out = lv[:, y0 : y0 + h, x0 : x0 + w]
        if out.shape[1:] != (h, w):  # only when a zoom level rounds below the view size
            out = np.pad(out, ((0, 0), (0, h - out.shape[1]), (0, w - out.shape[2])), mode="edge")
        return out.copy()


class Renderer:
    """Pictures of one planned video, in order; `pictures()` yields uint8 frames of the video's size."""

    def __init__(self, plan: VideoPlan) -> None:
        self.plan = plan
        rng = rng_for(plan.seed, "render")
        self.look = Look(plan.style, plan.size, int(rng.integers(0, 2**31 - 1)))
        h, w = self.look.scene_size
        self.view = (h, w)
        self.canvas_shape = (int(h * CANVAS) + 2, int(w * CANVAS) + 2)
        sites = vocab.world()["sites"]
        patient = rng_for(plan.seed, "patient")
        self.tints = {s: np.exp(patient.normal(0.0, TINT_SD, 3)).astype(np.float32) for s in sorted(sites)}
        self._tissue: dict[str, Array] = {}
        self.smoke = ZoomCanvas(textures.fbm(rng, self.canvas_shape, 2.5, octaves=3)[None])
        self.room = ZoomCanvas(textures.operating_room(self.canvas_shape, rng))
        self.zoom = float(plan.style.get("zoom", 1.0))
        nuis = vocab.world()["nuisance"]
        self.blur_speed = float(nuis["blur_speed"])
        self.jump_rate = float(nuis["jump_rate"])
        self._key: object = None
        self._canvas: ZoomCanvas | None = None
        self._camera: Camera | None = None
        self._bleed_at = {
            (e.start, e.end): rng.uniform(0.3, 0.7, 2) for e in plan.episodes if e.kind == "bleeding"
        }

    def _scene_at(self, t: float) -> tuple[object, Scene, float, float]:
        seg = self.plan.segment_at(t)
        if seg is not None:
            return (seg.start, seg.phase_id), seg.scene, seg.start, seg.end
        scene = self.plan.head_tail_scene
        assert scene is not None, "unlabelled time without a head/tail scene"
        return ("head_tail",), scene, 0.0, self.plan.duration

    def tissue(self, site: str) -> Array:
        """This patient's texture of a site, made once per video (its own random stream: order-free)."""
        if site not in self._tissue:
            rng = rng_for(self.plan.seed, "tissue", site)
            self._tissue[site] = textures.site_texture(site, self.canvas_shape, rng, self.tints[site])
        return self._tissue[site]

    def _prepare(self, key: object, scene: Scene, start: float, end: float) -> None:
        if key != self._key:
            self._key = key
            self._canvas = ZoomCanvas(textures.build_canvas(scene, self.view[0], self.tissue))
            self._camera = Camera(scene.seed, scene.camera, self.zoom, start, end, self.jump_rate)

    def scene_picture(self, t: float) -> Array:
        """The scene at content time t, before the camera's look (planar float32 0-1, view size)."""
        oob = self.plan.episode_at(t, "out_of_body")
        if oob is not None:
            cx = 0.5 + 0.25 * np.sin(1.3 * t + oob.start)
            cy = 0.5 + 0.2 * np.cos(0.9 * t + oob.start)
            return self.room.view(cx, cy, 0.9 * self.zoom, self.view)
        key, scene, start, end = self._scene_at(t)
        self._prepare(key, scene, start, end)
        assert self._canvas is not None and self._camera is not None
        cx, cy, z = self._camera.at(t)
        img = self._canvas.view(cx, cy, z, self.view)
        h, w = self.view
        bleed = self.plan.episode_at(t, "bleeding")
        if bleed is not None:
            bx, by = self._bleed_at[(bleed.start, bleed.end)]
            grow = min(1.0, (t - bleed.start + 0.5) / 2.0)
            r = 0.16 * h * grow
            draw.ellipse(img, (bx * w, by * h), (r * 1.3, r), BLOOD, 0.85, soft=0.4 * r + 1)
        energy = 0.0
        for track in scene.tools:
            stretch = instruments.visible(track, t)
            if stretch is None:
                continue
            instruments.draw_tool(img, track, t, stretch)
            if vocab.world()["instruments"][track.tool].get("energy"):
                energy = 1.0
        if scene.smoke and energy:
            level = scene.smoke * energy * (0.35 + 0.3 * np.sin(0.7 * t + scene.seed % 7))
            sm = self.smoke.view(0.5 + 0.1 * np.sin(0.2 * t), 0.5 + 0.1 * np.cos(0.15 * t), 1.0, self.view)
            img += (level * sm) * (SMOKE - img)
        prev = self._camera.at(t - 1.0 / self.plan.render_fps)
        speed = np.hypot(cx - prev[0], cy - prev[1]) * self.canvas_shape[0] / h
        if speed > self.blur_speed:
            dx = round((cx - prev[0]) * self.canvas_shape[1] / 3)
            dy = round((cy - prev[1]) * self.canvas_shape[0] / 3)
            img = (
                img + np.roll(img, (dy, dx), axis=(1, 2)) + np.roll(img, (2 * dy, 2 * dx), axis=(1, 2))
            ) / 3
        return img

    def picture(self, index: int) -> Array:
        t = self.plan.picture_time(index)
        return self.look.finish(self.scene_picture(t), t, index)

    def pictures(self) -> Iterator[Array]:
        for i in range(self.plan.n_pictures):
            yield self.picture(i)
