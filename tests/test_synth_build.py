"""`vseek synth build --samples N --seed S --out DIR`: determinism, balance, resume, split, options."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import gymnasium as gym
import pytest

import vseek_env  # noqa: F401  (registers the env ids)
import vseek_env.data.synth.build as sb
from vseek_env.cli import main
from vseek_env.data import load_dataset
from vseek_env.data.synth.build import BuildError, build_synth, split_videos, synth_config
from vseek_env.data.synth.generate import TEMPLATES
from vseek_env.data.synthetic import _plan
from vseek_env.visual_prompts import STYLES

SMALL = dict(samples=8, seed=3, preset="tiny", progress=False)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_build(tmp_path_factory) -> Path:
    return build_synth(tmp_path_factory.mktemp("b") / "a", workers=1, **SMALL).parent


def test_two_builds_with_one_seed_are_byte_identical_whatever_the_workers(small_build, tmp_path):
    other = build_synth(tmp_path / "b", workers=2, **SMALL).parent
    a, b = tree(small_build), tree(other)
    assert a.keys() == b.keys() and any(k.endswith(".mp4") for k in a)
    assert [k for k in a if a[k] != b[k]] == []
    assert not (small_build / "parts").exists()  # the resume journal is gone once finished


def test_ray_build_is_identical_too(small_build, tmp_path):
    ray = pytest.importorskip("ray")
    try:
        other = build_synth(tmp_path / "ray", workers=2, use_ray=True, **SMALL).parent
    finally:
        ray.shutdown()
    assert tree(other) == tree(small_build)


def test_build_has_exactly_n_samples_and_plays_in_the_env(small_build):
    ds = load_dataset(str(small_build / "samples.jsonl"))
    assert len(ds) == 8 and len({s.id for s in ds.samples}) == 8
    env = gym.make("VideoSeeker-v0", dataset=str(small_build / "samples.jsonl"))
    obs, info = env.reset(seed=0)
    assert "<image>" in obs["text"]
    _, reward, terminated, truncated, _ = env.step("<think>guess</think><answer>A</answer>")
    assert terminated or truncated
    env.close()


def test_train_and_val_never_share_a_video(small_build):
    train = load_dataset(str(small_build / "train.jsonl")).samples
    val = load_dataset(str(small_build / "val.jsonl")).samples
    assert train and val
    assert not {s.video for s in train} & {s.video for s in val}
    everything = load_dataset(str(small_build / "samples.jsonl")).samples
    assert sorted(s.id for s in train + val) == sorted(s.id for s in everything)
    assert all(s.meta["split"] == "train" for s in train) and all(s.meta["split"] == "val" for s in val)


def test_split_videos_share_and_edges():
    ids = [f"v{i}" for i in range(20)]
    assert len(split_videos(ids, 0.1, 0)) == 2
    assert split_videos(ids, 0.1, 0) == split_videos(ids, 0.1, 0) != split_videos(ids, 0.1, 1)
    assert split_videos(ids, 0.0, 0) == set()
    assert len(split_videos(["a", "b"], 0.01, 0)) == 1  # a positive share keeps one val video
    assert split_videos(["a"], 0.5, 0) == set()  # ... but never the only one


def test_another_seed_gives_other_data(small_build, tmp_path):
    other = build_synth(tmp_path / "c", workers=1, **{**SMALL, "seed": 4}).parent
    assert (other / "samples.jsonl").read_bytes() != (small_build / "samples.jsonl").read_bytes()


@pytest.mark.parametrize("n", [1, 37, 200])
def test_plans_are_balanced_over_templates_and_styles(n):
    plans = _plan(synth_config("default", seed=5), samples=n)
    qs = [q for p in plans for q in p["questions"]]
    assert len(qs) == n
    styles = Counter(q["style"] for q in qs)
    templates = Counter(q["planned"].template for q in qs)
    assert max(styles.values()) - min(styles.get(s, 0) for s in STYLES[: min(n, 8)]) <= 1
    if n >= 200:
        assert set(templates) == set(TEMPLATES)
        assert max(templates.values()) - min(templates.values()) <= 3
        kinds = Counter(TEMPLATES[t][1] for t in templates.elements())
        assert kinds["open"] >= n // 12 and kinds["span"] >= n // 12 and kinds["box"] >= n // 12


def test_difficulty_knob_changes_instances_lookalikes_events_and_length():
    easy, medium, hard = (synth_config("default", d, seed=1) for d in ("easy", "medium", "hard"))
    assert easy.instances[1] < medium.instances[1] <= hard.instances[1]
    assert easy.attribute_pool_extra > medium.attribute_pool_extra > hard.attribute_pool_extra
    assert easy.event_inset[0] < medium.event_inset[0] < hard.event_inset[0]  # shorter events when hard
    assert easy.durations[1] < medium.durations[1] < hard.durations[1]

    def measured(cfg):
        plans = _plan(cfg, samples=60)
        n_inst = [len([i for i in p["spec"]["instances"] if not i.get("companion")]) for p in plans]
        lookalike = []  # share of instances sharing colour or shape with another instance
        for p in plans:
            inst = [i for i in p["spec"]["instances"] if not i.get("companion")]
            lookalike += [any(o is not i and (o["color"] == i["color"] or o["shape"] == i["shape"]) for o in inst) for i in inst]
        events = [(e["f1"] - e["f0"]) / (p["spec"]["n_frames"] / 16) for p in plans for e in p["spec"]["events"]
                  if e["role"] == "question"]
        return sum(n_inst) / len(n_inst), sum(lookalike) / len(lookalike), sum(events) / len(events)

    e, h = measured(easy), measured(hard)
    assert e[0] < h[0] and e[1] < h[1] and e[2] > h[2]


def test_a_killed_build_resumes_and_ends_identical(small_build, tmp_path, monkeypatch):
    calls = []
    real = sb._render

    def dying(job):
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        calls.append(job[0]["video_id"])
        return real(job)

    monkeypatch.setattr(sb, "_render", dying)
    with pytest.raises(KeyboardInterrupt):
        build_synth(tmp_path / "r", workers=1, **SMALL)
    assert not (tmp_path / "r" / "samples.jsonl").exists()
    assert len(list((tmp_path / "r" / "parts").glob("*.json"))) == 2
    calls.clear()
    monkeypatch.setattr(sb, "_render", lambda job: (calls.append(job[0]["video_id"]), real(job))[1])
    build_synth(tmp_path / "r", workers=1, **SMALL)
    n_videos = json.loads((small_build / "manifest.json").read_text())["counts"]["videos"]
    assert len(calls) == n_videos - 2  # only the missing videos were rendered
    assert tree(tmp_path / "r") == tree(small_build)


def test_settings_mismatch_and_foreign_folders_are_refused(small_build, tmp_path):
    with pytest.raises(BuildError, match="other settings"):
        build_synth(small_build, workers=1, **{**SMALL, "seed": 9})
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "mine.txt").write_text("hello")
    with pytest.raises(BuildError, match="not empty"):
        build_synth(tmp_path / "x", workers=1, **SMALL)
    for bad in (dict(samples=0), dict(seed=-1), dict(preset="huge"), dict(difficulty="extreme"),
                dict(open_ended=1.5), dict(val_fraction=1.0)):
        with pytest.raises(BuildError):
            build_synth(tmp_path / "y", workers=1, **{**SMALL, **bad})


def test_open_ended_option_uses_the_one_conversion(tmp_path):
    path = build_synth(tmp_path / "o", workers=1, open_ended=1.0, **SMALL)
    samples = load_dataset(str(path)).samples
    assert not [s for s in samples if s.answer_kind == "choice"]
    converted = [s for s in samples if "open_ended_from" in s.meta]
    assert converted
    for s in converted:
        src = s.meta["open_ended_from"]
        assert s.options == () and s.answer == src["options"][ord(src["answer"]) - ord("A")]


def test_cli_build_stats_and_diversity(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["synth", "build", "--samples", "8", "--seed", "3", "--preset", "tiny", "--out", str(out), "--quiet"]) == 0
    assert "samples/s per core" in capsys.readouterr().out
    stats = json.loads((out / "stats.json").read_text())
    assert stats["samples"] == 8 and set(stats["split"]) == {"train", "val"}
    d = stats["diversity"]
    assert d["questions"] == 8 and d["distinct_questions"] <= 8 and 0.0 <= d["near_duplicate_question_share"] <= 1.0
    assert main(["synth", "build", "--samples", "8", "--out", str(out), "--seed", "4", "--preset", "tiny"]) == 2
    assert main(["synth", "build", "--samples", "8"]) == 2  # --out missing
