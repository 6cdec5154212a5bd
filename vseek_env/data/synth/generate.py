"""Random scene specs and the questions planted in them.

Every question is about one *target* instance, marked by a visual prompt on one frame of the
16-frame overview; the question text only says "the target marked by ..." so the prompt is needed
(distractors share the target's colour or shape). The answer depends on transient events of the
target (or around it) that the generator places either

* **hidden**: strictly inside one gap between two consecutive overview frames (frames
  ``f_g < f0 <= f < f1 <= f_{g+1}``) — the overview and the prompt frame never show them, so the
  sample ``needs_tools``; or
* **visible**: around one overview frame, which then shows the event (``needs_tools`` is False).

Each instance is the target of at most one question per video, question events own their gaps
(no other event happens there), and only non-target instances get "noise" events, so every answer
follows from the event timeline alone.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from vseek_env.data.synth.palette import COLORS, SHAPES, TEXTURES
from vseek_env.data.synth.scene import INSET, MAX_SPEED_PER_GAP, SIDES, overview_indices

#: Question templates: name -> (dimension code, answer kind).
TEMPLATES: dict[str, tuple[str, str]] = {
    "attribute_choice": ("OA", "choice"),
    "attribute_open": ("OA", "open"),
    "direction": ("OD", "choice"),
    "counting": ("CT", "number"),
    "forward_temporal": ("FT", "choice"),
    "reverse_temporal": ("RT", "choice"),
    "action_sequence": ("AS", "choice"),
    "spatial_relation": ("SR", "choice"),
    "feature_mapping": ("FM", "choice"),
    "temporal_grounding": ("TG", "span"),
    "spatial_grounding": ("SG", "box"),
}
#: Dimension codes (V2P-Bench style) and their names.
DIMENSIONS: dict[str, str] = {
    "OA": "object attribute", "OD": "object direction", "CT": "counting", "FT": "forward temporal",
    "RT": "reverse temporal", "AS": "action sequence", "SR": "spatial relation", "FM": "feature mapping",
    "TG": "temporal grounding", "SG": "spatial grounding",
}
FLASH_COLORS = tuple(COLORS) + ("white",)
DIR_WORDS = ("left", "right", "up", "down")
MAX_COUNT = 4

# Question texts. "{ref}" becomes the visual prompt's phrase ("the target in the highlighted box").
Q_ATTRIBUTE = "What colour does {ref} briefly turn?"
Q_DIRECTION = "In which direction does {ref} briefly jump?"
Q_COUNTING = "How many times does {ref} turn white? (between 1 and %d)" % MAX_COUNT
Q_FORWARD = "What does {ref} do right after it {action}?"
Q_REVERSE = "What does {ref} do right before it {action}?"
Q_SEQUENCE = "In which order does {ref} do these things: {actions}?"
Q_SPATIAL = "A {color} {shape} briefly appears next to {ref}. On which side of {ref} does it appear?"
Q_FEATURE = "Another object briefly comes over to touch {ref}. Which object is it?"
Q_TEMPORAL = "When does {ref} {action}?"
Q_BOX = "Where is {ref} at {time} seconds?"


def action_text(action: tuple, *, base_form: bool = False) -> str:
    """``("flash", "green")`` -> "turns green" ("turn green" with ``base_form``, after "does")."""
    kind = action[0]
    if kind == "flash":
        return f"turn{'' if base_form else 's'} {action[1]}"
    if kind == "dart":
        return f"jump{'' if base_form else 's'} {action[1]}"
    if kind == "grow":
        return "grow bigger" if base_form else "grows bigger"
    if kind == "hide":
        return "get hidden behind a dark panel" if base_form else "is hidden behind a dark panel"
    raise ValueError(action)


@dataclass
class Planned:
    """A question placed in a scene (before rendering)."""

    template: str
    target: int
    question: str  # with "{ref}" still in it
    answer: object
    options: tuple[str, ...] = ()
    events: list[dict] = field(default_factory=list)
    hidden: bool = True
    answer_frame: int | None = None  # spatial grounding: the frame whose box is the answer
    answer_time: float | None = None
    prompt_index: int = 0  # frame index of the prompt frame
    meta: dict = field(default_factory=dict)


class ScenePlanner:
    """Builds one scene spec and plants questions in it (all randomness from ``rng``)."""

    def __init__(self, rng: np.random.Generator, *, width: int, height: int, fps: int, duration: float,
                 n_instances: int, background_seed: int, visible_share: float = 0.2,
                 max_event_s: float | None = None, attribute_pool_extra: int = 1,
                 event_inset: tuple[float, float] = (0.12, 0.22)) -> None:
        self.rng = rng
        self.width, self.height, self.fps = width, height, fps
        self.n_frames = int(round(duration * fps))
        self.ov = overview_indices(self.n_frames, fps, 16)
        if len(self.ov) != 16 or min(np.diff(self.ov)) < 8:
            raise ValueError(f"{duration}s at {fps} fps leaves fewer than 8 frames between overview frames")
        self.gap_s = self.n_frames / fps / 16
        self.visible_share = visible_share
        self.max_event_frames = None if max_event_s is None else max(4, int(max_event_s * fps))
        # fewer distinct colours and shapes than instances means more distractors that share
        # the target's colour or shape; a larger inset means shorter hidden events
        self.attribute_pool_extra = max(0, int(attribute_pool_extra))
        self.event_inset = event_inset
        self.used_gaps: set[int] = set()
        self.targets: set[int] = set()
        self.involved: set[int] = set()  # targets and partners of question events
        self.events: list[dict] = []
        self.questions: list[Planned] = []
        self.cols = 4 if n_instances > 6 else 3
        self.rows = 2
        self._layout(n_instances, background_seed)

    # -- layout -------------------------------------------------------------------------------------
    def _layout(self, n: int, background_seed: int) -> None:
        rng = self.rng
        cw, ch = self.width / self.cols, self.height / self.rows
        size = int(min(cw, ch) * rng.uniform(0.2, 0.235))
        k_attr = max(2, math.ceil(n / 2) + self.attribute_pool_extra)
        colours = list(rng.permutation(list(COLORS)))[:k_attr]
        shapes = list(rng.permutation(list(SHAPES)))[:k_attr]
        pairs = [(c, s) for c in colours for s in shapes]
        order = rng.permutation(len(pairs))
        chosen = [pairs[i] for i in order[:n]]
        cells = [(c, r) for r in range(self.rows) for c in range(self.cols)]
        cell_order = rng.permutation(len(cells))[:n]
        instances = []
        gap_frames = self.n_frames / 16
        for k, ((colour, shape), ci) in enumerate(zip(chosen, cell_order)):
            col, row = cells[ci]
            isize = int(size * rng.uniform(0.9, 1.1))
            m = INSET * isize + 2
            region = [col * cw + m, row * ch + m, (col + 1) * cw - m, (row + 1) * ch - m]
            if region[2] <= region[0] or region[3] <= region[1]:
                cx, cy = (col + 0.5) * cw, (row + 0.5) * ch
                region = [cx, cy, cx + 1e-3, cy + 1e-3]
            start = [float(rng.uniform(region[0], region[2])), float(rng.uniform(region[1], region[3]))]
            motion = []
            f = 0
            heading = rng.uniform(0, 2 * np.pi)
            while f < self.n_frames:
                kind = str(rng.choice(["linear", "stop", "turn"], p=[0.4, 0.25, 0.35])) if f else "linear"
                if kind == "turn" or not motion:
                    heading = rng.uniform(0, 2 * np.pi)
                speed = rng.uniform(0.05, MAX_SPEED_PER_GAP) * isize / self.gap_s
                vel = [0.0, 0.0] if kind == "stop" else [float(speed * np.cos(heading)), float(speed * np.sin(heading))]
                motion.append({"frame": int(f), "kind": kind, "velocity": vel})
                f += int(rng.uniform(1.5, 4.0) * gap_frames) + 1
            instances.append({
                "id": k, "shape": shape, "color": colour, "texture": str(rng.choice(TEXTURES)), "size": isize,
                "cell": [int(col), int(row)], "region": [float(v) for v in region], "start": start, "motion": motion,
            })
        self.instances = instances
        self.spec = {"width": self.width, "height": self.height, "fps": self.fps, "n_frames": self.n_frames,
                     "background_seed": int(background_seed), "instances": instances, "events": self.events,
                     "overview": [int(i) for i in self.ov]}

    def inst(self, k: int) -> dict:
        return self.instances[k]

    # -- slots --------------------------------------------------------------------------------------
    def _free_slots(self, hidden: bool) -> list[int]:
        if hidden:
            return [g for g in range(15) if g not in self.used_gaps]
        return [i for i in range(1, 15) if i - 1 not in self.used_gaps and i not in self.used_gaps]

    def _take(self, k: int, hidden: bool) -> list[int] | None:
        """``k`` slots (gap indices if hidden, overview positions if visible), sorted; marks them used."""
        chosen: list[int] = []
        for _ in range(k):
            free = [s for s in self._free_slots(hidden) if all(abs(s - c) > (0 if hidden else 1) for c in chosen)]
            if not free:
                return None
            s = int(self.rng.choice(free))
            chosen.append(s)
            if hidden:
                self.used_gaps.add(s)
            else:
                self.used_gaps.update((s - 1, s))
        return sorted(chosen)

    def _release(self, slots: list[int], hidden: bool) -> None:
        for s in slots:
            if hidden:
                self.used_gaps.discard(s)
            else:
                self.used_gaps.difference_update((s - 1, s))

    def _frames(self, slot: int, hidden: bool) -> tuple[int, int]:
        """Event frames ``[f0, f1)`` for a slot."""
        ov, rng = self.ov, self.rng
        if hidden:
            a, b = ov[slot], ov[slot + 1]
            n = b - a
            lo = max(1, int(round(rng.uniform(*self.event_inset) * n)))
            hi = max(1, int(round(rng.uniform(*self.event_inset) * n)))
            f0, f1 = a + lo, b - hi + 1
            if self.max_event_frames and f1 - f0 > self.max_event_frames:
                start = int(rng.integers(f0, f1 - self.max_event_frames + 1))
                f0, f1 = start, start + self.max_event_frames
            return f0, f1
        c = ov[slot]
        left, right = c - ov[slot - 1], ov[slot + 1] - c
        h0 = max(1, int(round(rng.uniform(0.25, 0.35) * left)))
        h1 = max(1, int(round(rng.uniform(0.25, 0.35) * right)))
        if self.max_event_frames:
            h0, h1 = min(h0, self.max_event_frames // 2), min(h1, self.max_event_frames // 2)
        return c - h0, c + h1 + 1

    def _event(self, kind: str, inst: int, frames: tuple[int, int], role: str, **kw) -> dict:
        e = {"kind": kind, "inst": int(inst), "f0": int(frames[0]), "f1": int(frames[1]), "role": role,
             "color": kw.get("color"), "direction": kw.get("direction"), "partner": kw.get("partner")}
        self.events.append(e)
        return e

    # -- helpers --------------------------------------------------------------------------------------
    def _flash_colours(self, k: int) -> list[str]:
        """Colours instance ``k`` may flash without looking like another instance (same shape and colour)."""
        me = self.inst(k)
        taken = {i["color"] for i in self.instances if i["shape"] == me["shape"] and i["id"] != k}
        return [c for c in FLASH_COLORS if c != me["color"] and c not in taken]

    def _actions_for(self, k: int) -> list[tuple]:
        acts: list[tuple] = [("flash", c) for c in self._flash_colours(k)]
        acts += [("dart", d) for d in DIR_WORDS] + [("grow",), ("hide",)]
        return acts

    def _add_action(self, k: int, action: tuple, frames: tuple[int, int]) -> dict:
        if action[0] == "flash":
            return self._event("flash", k, frames, "question", color=action[1])
        if action[0] == "dart":
            return self._event("dart", k, frames, "question", direction=action[1])
        return self._event(action[0], k, frames, "question")

    def _neighbours(self, k: int) -> list[tuple[int, str]]:
        """(instance, side of ``k`` it is on) for instances in the 4-adjacent cells with another colour."""
        me = self.inst(k)
        out = []
        for other in self.instances:
            dc, dr = other["cell"][0] - me["cell"][0], other["cell"][1] - me["cell"][1]
            if abs(dc) + abs(dr) == 1 and other["color"] != me["color"] and other["id"] not in self.involved:
                side = {(-1, 0): "left", (1, 0): "right", (0, -1): "up", (0, 1): "down"}[(dc, dr)]
                out.append((other["id"], side))
        return out

    def _options(self, correct: str, pool: list[str], n: int = 4) -> tuple[tuple[str, ...], str]:
        others = [p for p in pool if p != correct]
        picks = [others[i] for i in self.rng.permutation(len(others))[: n - 1]]
        opts = picks + [correct]
        opts = [opts[i] for i in self.rng.permutation(len(opts))]
        return tuple(opts), "ABCDEFGH"[opts.index(correct)]

    # -- questions ------------------------------------------------------------------------------------
    def plant(self, template: str) -> Planned | None:
        """Place one question of ``template`` on a fresh target; None if the scene has no room."""
        rng = self.rng
        candidates = [i["id"] for i in self.instances if i["id"] not in self.involved]
        if len(candidates) < 2:  # keep at least one uninvolved instance besides the target
            return None
        hidden = bool(rng.uniform() >= self.visible_share)
        order = [int(x) for x in rng.permutation(candidates)]
        for k in order:
            planned = self._plant_on(template, k, hidden)
            if planned is not None:
                planned.hidden = hidden
                self.targets.add(k)
                self.involved.add(k)
                for e in planned.events:
                    if e.get("partner") is not None:
                        self.involved.add(e["partner"])
                if not self._choose_prompt(planned):
                    raise RuntimeError("no clean overview frame for the visual prompt")  # pragma: no cover
                self.questions.append(planned)
                return planned
        return None

    def _plant_on(self, template: str, k: int, hidden: bool) -> Planned | None:
        rng = self.rng
        me = self.inst(k)
        if template in ("attribute_choice", "attribute_open"):
            colours = self._flash_colours(k)
            slots = self._take(1, hidden)
            if slots is None or len(colours) < 4:
                if slots:
                    self._release(slots, hidden)
                return None
            colour = str(rng.choice(colours))
            e = self._add_action(k, ("flash", colour), self._frames(slots[0], hidden))
            if template == "attribute_open":
                return Planned(template, k, Q_ATTRIBUTE, colour, (), [e])
            opts, letter = self._options(colour, colours)
            return Planned(template, k, Q_ATTRIBUTE, letter, opts, [e])
        if template == "direction":
            slots = self._take(1, hidden)
            if slots is None:
                return None
            d = str(rng.choice(DIR_WORDS))
            e = self._add_action(k, ("dart", d), self._frames(slots[0], hidden))
            opts, letter = self._options(d, list(DIR_WORDS))
            return Planned(template, k, Q_DIRECTION, letter, opts, [e])
        if template == "counting":
            if "white" not in self._flash_colours(k):
                return None
            n = int(rng.integers(1, MAX_COUNT + 1))
            slots = self._take(n, hidden)
            if slots is None:
                return None
            evs = [self._add_action(k, ("flash", "white"), self._frames(s, hidden)) for s in slots]
            return Planned(template, k, Q_COUNTING, float(n), (), evs)
        if template in ("forward_temporal", "reverse_temporal", "action_sequence"):
            n = 3 if template == "action_sequence" else 2
            acts = self._actions_for(k)
            slots = self._take(n, hidden)
            if slots is None:
                return None
            picks = [acts[i] for i in rng.permutation(len(acts))]
            seq: list[tuple] = []
            for a in picks:  # distinct kinds of action keep the options easy to tell apart
                if all(a[0] != b[0] for b in seq) or (a[0] == "flash" and sum(b[0] == "flash" for b in seq) == 0):
                    seq.append(a)
                if len(seq) == n:
                    break
            if len(seq) < n:
                self._release(slots, hidden)
                return None
            evs = [self._add_action(k, a, self._frames(s, hidden)) for a, s in zip(seq, slots)]
            texts = [action_text(a) for a in seq]
            pool = [action_text(a) for a in acts]
            if template == "forward_temporal":
                opts, letter = self._options(texts[1], [p for p in pool if p != texts[0]])
                return Planned(template, k, Q_FORWARD.replace("{action}", texts[0]), letter, opts, evs,
                               meta={"actions": texts})
            if template == "reverse_temporal":
                opts, letter = self._options(texts[0], [p for p in pool if p != texts[1]])
                return Planned(template, k, Q_REVERSE.replace("{action}", texts[1]), letter, opts, evs,
                               meta={"actions": texts})
            perms = [", then ".join(texts[i] for i in p) for p in itertools.permutations(range(3))]
            correct = perms[0]
            shown = [texts[i] for i in rng.permutation(3)]
            opts, letter = self._options(correct, perms)
            q = Q_SEQUENCE.replace("{actions}", "; ".join(shown))
            return Planned(template, k, q, letter, opts, evs, meta={"actions": texts})
        if template == "spatial_relation":
            used = {(i["color"], i["shape"]) for i in self.instances}
            free = [(c, s) for c in COLORS for s in SHAPES if (c, s) not in used and c != me["color"]]
            # the companion must not look like any instance's flash either
            free = [(c, s) for c, s in free if not any(i["shape"] == s for i in self.instances)] or free
            slots = self._take(1, hidden)
            if slots is None:
                return None
            colour, shape = free[int(rng.integers(len(free)))]
            cid = len(self.instances)
            comp = {"id": cid, "shape": shape, "color": colour, "texture": str(rng.choice(TEXTURES)),
                    "size": int(round(me["size"] * 0.8)), "cell": me["cell"], "region": me["region"],
                    "start": me["start"], "motion": [], "companion": True}
            self.instances.append(comp)
            d = str(rng.choice(DIR_WORDS))
            e = self._event("appear", k, self._frames(slots[0], hidden), "question", direction=d, partner=cid)
            opts, letter = self._options(SIDES[d], list(SIDES.values()))
            q = Q_SPATIAL.replace("{color}", colour).replace("{shape}", shape)
            return Planned(template, k, q, letter, opts, [e], meta={"companion": cid})
        if template == "feature_mapping":
            nbrs = self._neighbours(k)
            if len(nbrs) < 2:
                return None
            slots = self._take(1, hidden)
            if slots is None:
                return None
            partner, side = nbrs[int(rng.integers(len(nbrs)))]
            e = self._event("contact", k, self._frames(slots[0], hidden), "question", direction=side, partner=partner)
            names = [f"the {self.inst(o)['color']} {self.inst(o)['shape']}" for o, _ in nbrs]
            correct = f"the {self.inst(partner)['color']} {self.inst(partner)['shape']}"
            opts, letter = self._options(correct, names)
            return Planned(template, k, Q_FEATURE, letter, opts, [e], meta={"partner": partner})
        if template == "temporal_grounding":
            slots = self._take(1, hidden)
            if slots is None:
                return None
            acts = self._actions_for(k)
            action = acts[int(rng.integers(len(acts)))]
            e = self._add_action(k, action, self._frames(slots[0], hidden))
            span = [round(e["f0"] / self.fps, 4), round(e["f1"] / self.fps, 4)]
            return Planned(template, k, Q_TEMPORAL.replace("{action}", action_text(action, base_form=True)), span, (), [e])
        if template == "spatial_grounding":
            slots = self._take(1, hidden)
            if slots is None:
                return None
            d = str(rng.choice(DIR_WORDS))
            e = self._add_action(k, ("dart", d), self._frames(slots[0], hidden))
            if hidden:
                hold = list(range(e["f0"] + 2, e["f1"] - 2)) or [(e["f0"] + e["f1"]) // 2]
                f = int(rng.choice(hold))
            else:
                f = self.ov[slots[0]]
            t = round((f + 0.5) / self.fps, 2)
            while int(math.floor(t * self.fps + 1e-9)) != f:  # keep the shown frame exact after rounding
                t = round(t + (0.01 if t * self.fps < f else -0.01), 2)
            return Planned(template, k, Q_BOX.replace("{time}", f"{t:.2f}"), None, (), [e], answer_frame=f, answer_time=t)
        raise ValueError(f"unknown template {template!r}")

    def _active(self, f: int) -> bool:
        return any(e["f0"] <= f < e["f1"] for e in self.events)

    def _choose_prompt(self, planned: Planned) -> bool:
        clean = [f for f in self.ov if not self._active(f)]
        if not clean:
            return False
        planned.prompt_index = int(clean[int(self.rng.integers(len(clean)))])
        return True

    def add_noise(self, max_events: int) -> None:
        """Transient events of instances no question is about, in gaps no question uses."""
        rng = self.rng
        free_inst = [i["id"] for i in self.instances if i["id"] not in self.involved and not i.get("companion")]
        if not free_inst:
            return
        prompt_frames = {q.prompt_index for q in self.questions}
        for _ in range(max_events):
            k = int(rng.choice(free_inst))
            hidden = bool(rng.uniform() >= 0.3)
            free = self._free_slots(hidden)
            if not free:
                continue
            slot = int(rng.choice(free))
            frames = self._frames(slot, hidden)
            if any(frames[0] <= p < frames[1] for p in prompt_frames):
                continue
            if any(e["inst"] == k and not (frames[1] <= e["f0"] or e["f1"] <= frames[0]) for e in self.events):
                continue
            acts = self._actions_for(k)
            action = acts[int(rng.integers(len(acts)))]
            kw = {"color": action[1]} if action[0] == "flash" else {"direction": action[1]} if action[0] == "dart" else {}
            self._event(action[0], k, frames, "noise", **kw)
            # noise never shares a gap with a question event; other noise may share it
