"""The words of a lecture: ASR narration, keystep titles and summaries, abstract.

Only a configurable fraction of narration sentences describes what is visible (with varied wording from
language.yaml); the rest is patient history, asides, filler, or talk about the phase before or after,
and every sentence passes through ASR-like errors. Keystep titles paraphrase the phase (not always the
class name) and abstracts name the procedure and its steps, as real lectures do: that is the only path
from prompt words to pixels that a zero-shot model gets.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Any

import numpy as np

from hecvl.synth import instruments, vocab
from hecvl.synth.world import Scene, Segment, VideoPlan

FIELD = re.compile(r"\{(\w+)\}")


@dataclass
class Sentence:
    start: float
    end: float
    text: str
    kind: str  # visible | history | aside | talk | ahead | back


def _pick(rng: np.random.Generator, items: list) -> Any:
    return items[int(rng.integers(len(items)))]


def _fields(template: str) -> set[str]:
    return set(FIELD.findall(template))


def _fill(template: str, values: dict[str, str]) -> str:
    return FIELD.sub(lambda m: values[m.group(1)], template)


def scene_terms(scene: Scene) -> tuple[set[str], set[str]]:
    """The tool names and anatomy names (world keys) of a scene: what a relevant sentence may mention."""
    tools = {t.tool for t in scene.tools}
    anatomy = {scene.site, scene.target, *scene.structures}
    if scene.secondary:
        anatomy.add(scene.secondary[0])
    return tools, anatomy


def mentions(text: str, tools: set[str], anatomy: set[str]) -> bool:
    """Whether `text` names one of these tools or anatomical sites by any of their words (any case)."""
    lang = vocab.language()
    low = f" {_normalise(text)} "
    words = [w for t in tools for w in lang["tools"][t]]
    words += [w for a in anatomy for w in lang["sites"].get(a, []) + lang["structures"].get(a, [])]
    return any(f" {_normalise(w)} " in low for w in words)


def _normalise(text: str) -> str:
    table = str.maketrans({c: " " for c in string.punctuation if c != "'"})
    return " ".join(text.lower().translate(table).split())


class Narrator:
    """Writes one lecture's narration, keysteps and abstract from its plan."""

    def __init__(self, plan: VideoPlan, relevance: float, seed: int) -> None:
        self.plan = plan
        self.relevance = float(relevance)
        self.rng = np.random.default_rng(seed)
        self.lang = vocab.language()
        proc = self.lang["procedures"][plan.procedure]
        self.name = _pick(self.rng, proc["names"])
        self.indication = _pick(self.rng, proc["indications"])
        self.age = int(self.rng.integers(25, 78))
        self.sex = _pick(self.rng, self.lang["sexes"])
        self.bmi = int(
            self.rng.integers(36, 52) if plan.procedure == "gastric_bypass" else self.rng.integers(21, 34)
        )
        self.punctuated = bool(self.rng.random() < 0.5)  # some ASR engines punctuate, some do not
        self.title = _fill(_pick(self.rng, proc["titles"]), {"indication": self.indication})

    # --- words for scenes --------------------------------------------------------------------------
    def _tool(self, tool: str) -> str:
        return _pick(self.rng, self.lang["tools"][tool])

    def _anatomy(self, key: str) -> str:
        words = self.lang["sites"].get(key) or self.lang["structures"][key]
        return _pick(self.rng, words)

    def _plain(self, key: str) -> str:
        return (self.lang["sites"].get(key) or self.lang["structures"][key])[0]

    def _action(self, action: str) -> dict[str, str]:
        forms = self.lang["actions"][action]
        out = {k: _pick(self.rng, forms[k]) for k in ("verb", "gerund", "past", "noun")}
        out["noun_cap"] = out["noun"][:1].upper() + out["noun"][1:]
        return out

    def _visible(self, seg: Segment, t: float) -> str | None:
        scene = seg.scene
        tools = [tr for tr in scene.tools if instruments.visible(tr, t) is not None]
        anatomy = [scene.target] * 3 + [scene.site] * 2 + list(scene.structures)
        anatomy += [scene.secondary[0]] if scene.secondary else []
        values = {"site": self._anatomy(_pick(self.rng, anatomy))}
        if tools:
            order = [tools[i] for i in self.rng.permutation(len(tools))]
            values["tool"] = self._tool(order[0].tool)
            if len(order) > 1 and order[1].tool != order[0].tool:
                values["tool2"] = self._tool(order[1].tool)
            values.update(self._action(order[0].action))
        elif scene.tools:
            values.update(self._action(scene.tools[0].action))
        else:
            return None
        usable = [tpl for tpl in self.lang["visible"] if _fields(tpl) <= set(values)]
        return _fill(_pick(self.rng, usable), values) if usable else None

    def _other_scene(self, seg_index: int, step: int) -> Scene | None:
        segs = self.plan.segments
        i = seg_index + step
        while 0 <= i < len(segs):
            if segs[i].phase_id != segs[seg_index].phase_id:
                return segs[i].scene
            i += step
        return None

    def _around(self, kind: str, seg_index: int) -> str | None:
        """A remark on the phase after (`ahead`) or before (`back`), avoiding the words of what is visible."""
        other = self._other_scene(seg_index, 1 if kind == "ahead" else -1)
        if other is None:
            return None
        here_tools, here_anatomy = scene_terms(self.plan.segments[seg_index].scene)
        tools, anatomy = scene_terms(other)
        tools, anatomy = sorted(tools - here_tools), sorted(anatomy - here_anatomy)
        prefix = "next" if kind == "ahead" else "prev"
        values: dict[str, str] = {}
        if tools:
            values[f"{prefix}_tool"] = self._tool(_pick(self.rng, tools))
        if anatomy:
            values[f"{prefix}_site"] = self._anatomy(_pick(self.rng, anatomy))
        if other.tools:
            values.update({f"{prefix}_{k}": v for k, v in self._action(other.tools[0].action).items()})
        usable = [tpl for tpl in self.lang[kind] if _fields(tpl) <= set(values)]
        return _fill(_pick(self.rng, usable), values) if usable else None

    def _talk(self, kind: str) -> str:
        values = {
            "age": str(self.age),
            "sex": self.sex,
            "indication": self.indication,
            "bmi": str(self.bmi),
            "procedure": self.name,
        }
        return _fill(_pick(self.rng, self.lang[kind]), values)

    # --- ASR -----------------------------------------------------------------------------------------
    def _asr(self, text: str) -> str:
        cfg = self.lang["asr"]
        out: list[str] = []
        if self.rng.random() < float(cfg["filler_p"]):
            out.append(_pick(self.rng, cfg["fillers"]))
        for word in text.split():
            low = word.lower().strip(string.punctuation)
            if self.rng.random() < float(cfg["drop_p"]):
                continue
            if low in cfg["confusions"] and self.rng.random() < float(cfg["substitute_p"]):
                word = _pick(self.rng, cfg["confusions"][low])
            out.append(word)
            if self.rng.random() < float(cfg["repeat_p"]):
                out.append(word)
        sentence = " ".join(out) if out else text
        if self.punctuated:
            return sentence[:1].upper() + sentence[1:] + "."
        return sentence.lower()

    # --- outputs -------------------------------------------------------------------------------------
    def narration(self) -> list[Sentence]:
        """A sentence every few seconds over the whole video."""
        mix = self.lang["other_mix"]
        kinds = list(mix)
        probs = np.array([float(mix[k]) for k in kinds])
        probs /= probs.sum()
        out: list[Sentence] = []
        t = float(self.rng.uniform(0.3, 2.0))
        total = self.plan.duration
        while t < total - 1.5:
            end = min(t + float(np.clip(self.rng.normal(4.0, 1.2), 2.0, 7.0)), total)
            mid = 0.5 * (t + end)
            seg_index = next((i for i, s in enumerate(self.plan.segments) if s.start <= mid < s.end), None)
            in_body = self.plan.episode_at(mid, "out_of_body") is None
            text, kind = None, "visible"
            if seg_index is not None and in_body and self.rng.random() < self.relevance:
                text = self._visible(self.plan.segments[seg_index], mid)
            if text is None:
                kind = str(kinds[int(self.rng.choice(len(kinds), p=probs))])
                if kind in ("ahead", "back") and seg_index is not None:
                    text = self._around(kind, seg_index)
                if text is None:
                    kind = kind if kind not in ("ahead", "back") else "talk"
                    text = self._talk(kind)
            out.append(Sentence(round(t, 2), round(end, 2), self._asr(text), kind))
            gap = float(self.rng.exponential(0.6))
            if self.rng.random() < 0.05:
                gap += float(self.rng.uniform(3.0, 8.0))  # the lecturer pauses
            t = end + gap
        return out

    def keysteps(self) -> tuple[list[dict[str, Any]], bool]:
        """One keystep per phase segment: a paraphrased title, and in some lectures a clean summary."""
        with_text = bool(self.rng.random() < 0.6)
        titles = self.lang["keysteps"][self.plan.procedure]
        rows = []
        for seg in self.plan.segments:
            options = titles[seg.phase_id]
            title = options[0] if self.rng.random() < 0.25 else _pick(self.rng, options[1:])
            row: dict[str, Any] = {"start": round(seg.start, 2), "end": round(seg.end, 2), "step": title}
            if with_text:
                row["text"] = self._summary(seg.scene)
            rows.append(row)
        return rows, with_text

    def _summary(self, scene: Scene) -> str:
        """A clean sentence with the plain names of the segment's main instruments and site."""
        tools = list(dict.fromkeys(t.tool for t in scene.tools))
        values = {"site": self._plain(scene.target)}
        if tools:
            values["tool"] = self.lang["tools"][tools[0]][0]
            values.update(self._action(scene.tools[0].action))
        if len(tools) > 1:
            values["tool2"] = self.lang["tools"][tools[1]][0]
        usable = [tpl for tpl in self.lang["keystep_text"] if _fields(tpl) <= set(values)]
        if not usable:
            return f"View of the {values['site']}."
        return _fill(_pick(self.rng, usable), values)

    def abstract(self, keysteps: list[dict[str, Any]]) -> str:
        """A paragraph: procedure, indication, main steps in order, outcome."""
        cfg = self.lang["abstract"]
        steps = list(dict.fromkeys(k["step"][:1].lower() + k["step"][1:] for k in keysteps))
        joined = steps[0] if len(steps) == 1 else ", ".join(steps[:-1]) + " and " + steps[-1]
        values = {
            "name": self.name,
            "age": str(self.age),
            "sex": self.sex,
            "indication": self.indication,
            "steps": joined,
            "day": str(int(self.rng.integers(1, 5))),
            "minutes": str(int(self.rng.integers(35, 180))),
        }
        parts = [_pick(self.rng, cfg[k]) for k in ("opening", "steps", "closing")]
        text = " ".join(_fill(p, values) for p in parts)
        return f"{self.title}. {text[:1].upper()}{text[1:]}"
