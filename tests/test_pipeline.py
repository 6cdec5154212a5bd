"""The four-stage pipeline: rules, schemas, adapters, resumability, the env loading its output, and Ray.

Model-backed stages talk to tests/fake_openai.py; videos are generated moving shapes with exact
masks (tests/test_segmenter.py::write_shapes_video).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fake_openai import FakeOpenAIServer, Reply
from test_segmenter import write_shapes_video

from vseek_env.data import Sample, Track, VisualPromptSpec
from vseek_env.masks import box_to_mask, decode_rle, encode_rle, mask_to_box
from vseek_env.pipeline import ConfigError, InputError, PipelineConfig, pipeline_status, read_items, run_pipeline
from vseek_env.pipeline.adapters import split_options
from vseek_env.pipeline.g1_filter import REJECT_RULES, rule_reject
from vseek_env.pipeline.g2_verify import validate_verification
from vseek_env.pipeline.g4_render import obfuscate_name, rewrite_template
from vseek_env.pipeline.llm import parse_json_reply
from vseek_env.pipeline.segmenters import mask_iou
from vseek_env.pipeline.store import Manifest
from vseek_env.visual_prompts import STYLES, phrase_for

W, H = 192, 144

# --------------------------------------------------------------------------- G1 rules

REJECTED = {
    "camera": ["How does the camera move in the clip?", "What kind of shot is used, a close-up?", "Is the scene filmed from above?"],
    "scene": ["What is in the background?", "Describe the setting of the video.", "What is the weather like?"],
    "summary": ["What is the video mainly about?", "Summarize the events.", "What is the main topic of the video?"],
    "counting": ["How many dogs are there?", "What is the number of cars?", "How often does the boy jump?"],
    "abstract": ["What is the mood of the video?", "What does the narrator say about the dog?", "What music plays?"],
    "lighting": ["How is the lighting in the room?", "What is the dominant colour of the video?", "Is the video black and white?"],
}
KEPT = [
    "What does the man in the red shirt pick up after he sits down?",
    "What colour is the ball that the girl throws?",
    "Where does the brown dog run after the whistle?",
    "What does the woman put into the pan?",
    "Which direction does the red ellipse move?",
]


@pytest.mark.parametrize("category", sorted(REJECTED))
def test_rules_reject_each_category_of_the_papers_list(category):
    assert set(REJECT_RULES) == set(REJECTED)
    for question in REJECTED[category]:
        assert rule_reject(question) == category, question


@given(st.sampled_from(KEPT), st.sampled_from(sorted(REJECTED)), st.integers(0, 2))
def test_rules_keep_instance_questions_and_a_reject_phrase_flips_them(question, category, k):
    assert rule_reject(question) is None
    assert rule_reject(question + " " + REJECTED[category][k]) is not None


# --------------------------------------------------------------------------- parsers and schemas


option_text = st.text(st.characters(codec="ascii", categories=("L", "N", "Zs")), min_size=1, max_size=20).map(str.strip).filter(bool)


@given(st.sampled_from(["What is it?", "Where does the cat go next?"]), st.lists(option_text, min_size=0, max_size=6),
       st.sampled_from([". ", ": ", ") "]))
def test_split_options_round_trip(question, options, sep):
    text = "<video>\n" + question + "".join(f"\n{chr(65 + i)}{sep}{o}" for i, o in enumerate(options))
    text += "\nAnswer with the option's letter from the given choices directly."
    q, opts = split_options(text)
    assert q == question and opts == options


def _good_reply(**over):
    obj = {"valid": True, "reason": "one clear target", "target": "the red ellipse", "tag": "red ellipse moving to the right",
           "time_window": [0.0, 5.0], "question": "Which way does <vp> move?", "options": ["left", "right"],
           "prompt_style": "arrow", "seed_time": 2.0, "seed_box": [100, 200, 300, 600]}
    obj.update(over)
    return obj


BAD_FIELDS = [
    ("valid", "yes"), ("tag", "two words"), ("tag", " ".join(["w"] * 11)), ("question", "Which way does it move?"),
    ("time_window", [4.0, 2.0]), ("time_window", [0, 60]), ("options", ["left"]), ("prompt_style", "hexagon"),
    ("seed_time", 7.5), ("seed_box", [300, 200, 100, 600]), ("seed_box", [1, 2, 3]), ("target", ""),
]


@given(st.sampled_from(BAD_FIELDS))
def test_validation_rejects_each_bad_field_and_names_it(bad):
    key, value = bad
    record, error = validate_verification(_good_reply(**{key: value}), duration=6.0, n_options=2, frame_size=(W, H))
    assert record is None and key in error


@given(st.floats(0, 5.9), st.floats(0.01, 1), st.tuples(st.integers(0, 900), st.integers(0, 900), st.integers(1, 100), st.integers(1, 100)))
def test_validation_accepts_good_replies_and_converts_the_box(start, frac, box):
    end = start + frac * (6.0 - start)
    if end <= start:
        return
    x, y, w, h = box
    rec, err = validate_verification(
        _good_reply(time_window=[start, end], seed_time=(start + end) / 2, seed_box=[x, y, x + w, y + h]),
        duration=6.0, n_options=2, frame_size=(W, H),
    )
    assert err == "" and rec["via"] == "vlm"
    assert rec["seed_box"] == pytest.approx([x * W / 1000, y * H / 1000, (x + w) * W / 1000, (y + h) * H / 1000])
    assert start <= rec["seed_time"] <= end


def test_validation_passes_the_models_rejection_through():
    rec, err = validate_verification({"valid": False, "reason": "two identical balls"}, duration=6, n_options=0, frame_size=(W, H))
    assert err == "" and rec == {"valid": False, "reason": "two identical balls"}


@given(st.text(max_size=80))
def test_parse_json_reply_never_raises(text):
    obj, why = parse_json_reply(text)
    assert (obj is None) != (why == "")


@given(st.lists(st.sampled_from(["<vp>", "walks", "left.", "Where is", "?", "and"]), min_size=1, max_size=12), st.sampled_from(STYLES))
def test_template_rewrite_replaces_every_placeholder(words, style):
    text = " ".join(words)
    phrase = phrase_for(style, 3)
    out = rewrite_template(text, phrase)
    assert "<vp>" not in out
    assert out.lower().count(phrase.lower()) == text.count("<vp>") + text.lower().count(phrase.lower())


def test_obfuscation_removes_the_entity_name_only():
    out = obfuscate_name("A red ellipse moves left past the blue square", ["the red ellipse", "red ellipse moving right"])
    assert out == "the target moves left past the blue square"


# --------------------------------------------------------------------------- manifests


def test_manifest_drops_a_torn_last_line_and_appends_cleanly(tmp_path):
    m = Manifest(tmp_path / "g1.jsonl")
    m.append({"id": "a", "kept": True, "reason": "", "data": {}})
    with open(m.path, "ab") as fh:
        fh.write(b'{"id": "b", "kept": tr')  # killed mid-write
    assert list(m.load()) == ["a"]
    m.append({"id": "b", "kept": False, "reason": "x"})
    assert list(Manifest(m.path).load()) == ["a", "b"]


# --------------------------------------------------------------------------- generated data + fake VLM


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipe")
    videos = root / "videos"
    videos.mkdir()
    truth = {}
    for k in range(3):
        truth[f"clip{k}.mp4"] = write_shapes_video(videos / f"clip{k}.mp4", seed=k)
    return root, truth


QA = [  # (video, human, gpt)
    ("clip0.mp4", "<video>\nWhich direction does the red ellipse move?\nA. left\nB. right\nC. up\nD. down\nAnswer with the option's letter.", "B"),
    ("clip0.mp4", "How many shapes are in the video?", "Two."),
    ("clip1.mp4", "What is in the background?", "Blocks."),
    ("clip1.mp4", "What does the red ellipse do?", "It moves to the right along a wave."),
    ("clip2.mp4", "Is the red ellipse bigger at the end?\nA. yes\nB. no", "A"),
    ("clip2.mp4", "What colour is the small square?", "Blue."),  # the VLM calls it invalid
    ("clip2.mp4", "What does the blue square look like when the ellipse passes?", "Unchanged."),  # garbage forever
    ("clip1.mp4", "What is written on the ellipse?", "Nothing."),  # the LLM filter rejects it
]


def write_llava(path: Path) -> None:
    rows = {}
    for i, (video, human, gpt) in enumerate(QA):
        rows.setdefault(video, {"id": video.split(".")[0], "video": video, "data_source": "test", "conversations": []})
        rows[video]["conversations"] += [{"from": "human", "value": human}, {"from": "gpt", "value": gpt}]
    path.write_text(json.dumps(list(rows.values())))


def _text(request: dict) -> str:
    content = request["messages"][0]["content"]
    if isinstance(content, str):
        return content
    return "\n".join(p["text"] for p in content if p.get("type") == "text")


def make_reply(truth: dict):
    """A deterministic fake LLM/VLM: answers depend only on the request."""

    def reply(request: dict) -> Reply:
        text = _text(request)
        retry = len(request["messages"]) > 1
        if text.startswith("You filter"):
            keep = "written on" not in text
            return Reply.text(json.dumps({"keep": keep, "reason": "text on objects is not visible" if not keep else "instance question"}))
        if "small square" in text:
            return Reply.text(json.dumps({"valid": False, "reason": "the square is not the ellipse"}))
        if "blue square look" in text:
            return Reply.text("I am not sure, sorry!")
        if "bigger at the end" in text and not retry:
            return Reply.text("```json\n{\"valid\": true, \"tag\": \"ellipse\"}\n```")  # schema error first
        gt = truth["clip0.mp4"]["masks"]["target"][20]  # the same motion in every clip; t = 2 s
        x1, y1, x2, y2 = mask_to_box(gt)
        options = ["left", "right", "up", "down"] if "A. left" in text else (["yes", "no"] if "A. yes" in text else [])
        question = {"left": "Which direction does <vp> move?", "yes": "Is <vp> bigger at the end?"}.get(
            options[0] if options else "", "What does <vp> do?")
        return Reply.text(json.dumps({
            "valid": True, "reason": "one red ellipse", "target": "the red ellipse", "tag": "red ellipse crossing the frame",
            "time_window": [0.0, 5.0], "question": question, "options": options,
            "prompt_style": {"left": "rectangle", "yes": "mask_contour"}.get(options[0] if options else "", None),
            "seed_time": 2.0, "seed_box": [x1 * 1000 / W, y1 * 1000 / H, x2 * 1000 / W, y2 * 1000 / H],
        }))

    return reply


def _files(out: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != "run.json"
    }


@pytest.fixture(scope="module")
def local_run(shapes):
    root, truth = shapes
    qa = root / "qa.json"
    write_llava(qa)
    with FakeOpenAIServer(make_reply(truth)) as server:
        cfg = PipelineConfig(out=str(root / "out_local"), llm_base_url=server.base_url, llm_model="fake", segmenter="opencv",
                             concurrency=1, parquet=True)
        report = run_pipeline(qa, "llava", cfg, videos_root=root / "videos", log=lambda s: None)
        n_requests = len(server.requests)
    return root, truth, qa, Path(cfg.out), report, n_requests


def test_end_to_end_llava_to_a_playable_dataset(local_run):
    import gymnasium as gym

    import vseek_env  # noqa: F401

    root, truth, qa, out, report, n_requests = local_run
    by_stage = {r["stage"]: r["output"] for r in report["retention"]}
    assert by_stage == {"input": 8, "g1": 5, "g2": 3, "g3": 3, "g4": 3}
    assert report["retention"][2]["relative"] == pytest.approx(3 / 5)
    g1 = Manifest(out / "manifests" / "g1.jsonl").load()
    assert g1["clip0#1"]["reason"] == "g1.rule: counting" and g1["clip1#0"]["reason"] == "g1.rule: scene"
    assert g1["clip1#2"]["reason"].startswith("g1.llm: text on objects")
    g2 = Manifest(out / "manifests" / "g2.jsonl").load()
    assert g2["clip2#1"]["reason"] == "g2.invalid: the square is not the ellipse"
    assert g2["clip2#2"]["reason"].startswith("g2.schema: invalid reply after 3 attempt(s)")
    # G1 asks the LLM about the 6 questions the rules keep; G2: 1 + 1 + 2 (one correction) + 1 + 3 (gives up)
    assert n_requests == 6 + 8

    samples = [Sample.from_dict(json.loads(line)) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [s.id for s in samples] == ["clip0#0", "clip1#1", "clip2#0"]
    direction = samples[0]
    assert direction.prompt.style == "rectangle"
    assert direction.question == "Which direction does the target in the highlighted box move?"
    assert direction.options == ("left", "right", "up", "down") and direction.answer == "B"
    assert samples[1].answer_kind == "open" and "<vp>" not in samples[1].question
    assert samples[1].question.startswith("What does " + phrase_for(samples[1].prompt.style, samples[1].prompt.label))
    for s in samples:
        assert (out / s.meta["prompt_png"]).is_file() and s.evidence == (0.0, 5.0)
        fps = truth[Path(s.video).name]["fps"]
        gt = truth[Path(s.video).name]["masks"]["target"][int(round(s.prompt.time * fps))]
        # the stored prompt box marks the real target at the prompt time
        assert mask_iou(box_to_mask(s.prompt.box, (H, W)), gt) > 0.5
        # G3's 1 fps masks travel with the track, one per time, on the real target
        assert len(s.track.masks) == len(s.track.times) > 1
        for t_track, rle in zip(s.track.times, s.track.masks):
            truth_mask = truth[Path(s.video).name]["masks"]["target"][int(round(t_track * fps))]
            assert mask_iou(decode_rle(rle), truth_mask) > 0.5
    assert (out / "samples.parquet").is_file()

    env = gym.make("VideoSeeker-v0", dataset=str(out / "samples.jsonl"))
    obs, info = env.reset(seed=0, options={"sample_id": "clip0#0"})
    assert "highlighted box" in obs["text"]
    obs, reward, terminated, truncated, info = env.step('<think>it goes right</think><tool_call>{"name": "view_visual_prompt", "arguments": {}}</tool_call>')
    assert not terminated and info["tool_results"]
    obs, reward, terminated, truncated, info = env.step("<think>right</think><answer>B</answer>")
    assert terminated and reward > 0.5
    env.close()


def test_status_and_rerun_do_nothing_more(local_run, capsys):
    root, truth, qa, out, report, _ = local_run
    status = pipeline_status(out)
    assert status["finished"] and [s["pending"] for s in status["stages"]] == [0, 0, 0, 0]
    assert [s["kept"] for s in status["stages"]] == [5, 3, 3, 3]
    before = _files(out)
    with FakeOpenAIServer(make_reply(truth)) as server:
        cfg = PipelineConfig(out=str(out), llm_base_url=server.base_url, llm_model="fake", segmenter="opencv", concurrency=1, parquet=True)
        run_pipeline(qa, "llava", cfg, videos_root=root / "videos", log=lambda s: None)
        assert server.requests == []
    assert _files(out) == before
    from vseek_env.cli import main

    assert main(["pipeline", "status", str(out)]) == 0
    assert "G2 video verification" in capsys.readouterr().out


def test_resume_with_other_settings_is_refused(local_run):
    root, truth, qa, out, report, _ = local_run
    cfg = PipelineConfig(out=str(out), llm_base_url="http://127.0.0.1:9/v1", llm_model="fake", segmenter="opencv", seed=7)
    with pytest.raises(ConfigError, match="seed"):
        run_pipeline(qa, "llava", cfg, videos_root=root / "videos", log=lambda s: None)


def test_resume_on_an_edited_input_is_refused(local_run, tmp_path):
    import shutil

    root, truth, qa, out, report, _ = local_run
    copy = tmp_path / "qa.json"
    shutil.copy(qa, copy)
    out2 = tmp_path / "out"
    cfg = PipelineConfig(out=str(out2), llm_base_url="http://127.0.0.1:9/v1", llm_model="fake", segmenter="opencv",
                         concurrency=1, parquet=True)
    shutil.copytree(out, out2)
    meta = json.loads((out2 / "run.json").read_text())
    meta["input"] = str(copy.resolve())  # the copied run now belongs to the copied input
    (out2 / "run.json").write_text(json.dumps(meta))
    assert meta["input_size"] == copy.stat().st_size and len(meta["input_sha256"]) == 64
    run_pipeline(copy, "llava", cfg, videos_root=root / "videos", log=lambda s: None)  # same bytes: resumes
    items = json.loads(copy.read_text())
    items[0]["conversations"][0]["value"] += " (edited)"
    copy.write_text(json.dumps(items))
    with pytest.raises(ConfigError, match=r"qa\.json changed since the run .* restore the file or choose a new --out"):
        run_pipeline(copy, "llava", cfg, videos_root=root / "videos", log=lambda s: None)


def test_killed_run_resumes_without_losing_or_redoing_work(local_run, tmp_path):
    """SIGKILL the CLI in the middle of G2 (from inside the fake server), then re-run it."""
    root, truth, qa, out_clean, report, clean_requests = local_run
    out = root / "out_killed"
    base = make_reply(truth)
    kill_at = 8  # 6 G1 requests, then the 2nd G2 request
    state = {"proc": None, "n": 0}
    lock = threading.Lock()

    def reply(request):
        with lock:
            state["n"] += 1
            if state["n"] == kill_at:
                os.kill(state["proc"].pid, signal.SIGKILL)
                return Reply(close=True)
        return base(request)

    with FakeOpenAIServer(reply) as server:
        cmd = [sys.executable, "-m", "vseek_env.cli", "pipeline", "run", "--input", str(qa), "--format", "llava",
               "--videos", str(root / "videos"), "--out", str(out), "--segmenter", "opencv", "--concurrency", "1",
               "--parquet", "--llm-base-url", server.base_url, "--llm-model", "fake"]
        state["proc"] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        state["proc"].communicate(timeout=300)
        assert state["proc"].returncode == -signal.SIGKILL
        answered_before_kill = kill_at - 1
        status = pipeline_status(out)
        assert status["stages"][0]["done"] == 8 and status["stages"][1]["done"] == 1 and not status["finished"]
        n_first = len(server.requests)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        resumed = len(server.requests) - n_first
    # nothing answered before the kill is asked again; everything else is asked exactly once
    assert resumed == clean_requests - answered_before_kill
    assert "G4 render + rewrite" in proc.stdout
    assert _files(out) == _files(out_clean)


def test_ray_produces_the_same_files(local_run):
    ray = pytest.importorskip("ray")
    root, truth, qa, out_clean, report, clean_requests = local_run
    out = root / "out_ray"
    with FakeOpenAIServer(make_reply(truth)) as server:
        cfg = PipelineConfig(out=str(out), llm_base_url=server.base_url, llm_model="fake", segmenter="opencv",
                             concurrency=2, batch_size=2, parquet=True)
        run_pipeline(qa, "llava", cfg, videos_root=root / "videos", use_ray=True, ray_num_cpus=2, log=lambda s: None)
        assert len(server.requests) == clean_requests
    assert not ray.is_initialized()
    assert _files(out) == _files(out_clean)


# --------------------------------------------------------------------------- native input, no model at all


def test_native_samples_with_annotations_need_no_model(shapes, tmp_path):
    import vseek_env

    root, truth = shapes
    t = truth["clip1.mp4"]
    times = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    boxes = tuple(mask_to_box(t["masks"]["target"][int(x * t["fps"])]) for x in times)
    seed_mask = t["masks"]["target"][20]
    sample = Sample(
        id="n0", video=str(root / "videos" / "clip1.mp4"), question="Which way does <vp> move?", options=("left", "right"),
        answer="B", prompt=VisualPromptSpec(time=2.0, box=mask_to_box(seed_mask), mask_rle=encode_rle(seed_mask)),
        track=Track(times=tuple(times), boxes=boxes), evidence=(1.0, 4.0), meta={"target": "red ellipse"},
    )
    src = tmp_path / "native.jsonl"
    src.write_text(json.dumps(sample.to_dict()) + "\n")
    items = read_items(src, "native")
    assert items[0]["annotations"]["seed_time"] == 2.0
    out = tmp_path / "out"
    cfg = PipelineConfig(out=str(out), styles=("point",))
    report = run_pipeline(src, "native", cfg, log=lambda s: None)
    assert report["samples"] == 1
    [s] = [Sample.from_dict(json.loads(line)) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert s.prompt.style == "point" and s.question == "Which way does the target marked by the dot move?"
    assert s.meta["pipeline"]["segmenter"] == "given" and s.meta["pipeline"]["g2"] == "annotations"
    assert s.track.times == (1.0, 2.0, 3.0, 4.0) and s.prompt.time in s.track.times
    env = vseek_env.VideoSeekerEnv(dataset=str(out / "samples.jsonl"))
    env.reset(seed=1)
    *_, terminated, truncated, info = env.step("<answer>B</answer>")
    assert terminated


def test_v2p_rows_and_clear_errors(shapes, tmp_path):
    root, _ = shapes
    rows = [{"video_id": "clip0", "video_path": "clip0.mp4", "duration": 6, "question": "What is <the boxed thing>?\nA: a\nB: b\nSelect the best option that accurately addresses the question.",
             "answer": "B", "source": "T", "frame_path": "clip0.jpg", "dimension": 2, "category": 1}]
    path = tmp_path / "v2p.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    [item] = read_items(path, "v2p", root / "videos")
    assert item["id"] == "clip0#0" and item["options"] == ["a", "b"] and item["answer"] == "B"
    assert item["video_path"] == str((root / "videos" / "clip0.mp4").resolve())
    with pytest.raises(ConfigError, match="--llm-base-url"):  # no annotations and no VLM: refused up front
        run_pipeline(path, "v2p", PipelineConfig(out=str(tmp_path / "o")), videos_root=root / "videos", log=lambda s: None)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"video": "x.mp4", "conversations": [{"from": "human", "value": "Q?\nA. x\nB. y"}, {"from": "gpt", "value": "maybe"}]}]))
    with pytest.raises(InputError, match=r"bad.json row 0 turn 1"):
        read_items(bad, "llava")
    with pytest.raises(ConfigError, match="given, opencv, sam"):
        PipelineConfig(out="x", segmenter="nope").validate()
    with pytest.raises(ConfigError, match="not on this machine|needs torch"):
        run_pipeline(path, "v2p", PipelineConfig(out=str(tmp_path / "o2"), segmenter="sam", sam_model=str(tmp_path / "none"),
                                                 llm_base_url="http://127.0.0.1:9/v1", llm_model="m"), log=lambda s: None)


def test_cli_reports_an_endpoint_failure_wrapped_by_ray_as_resumable(monkeypatch, tmp_path, capsys):
    """Ray Data hands an actor's LLMError back inside its own exception types: still exit 3."""
    ray_exceptions = pytest.importorskip("ray.exceptions")
    import vseek_env.pipeline as pipeline_pkg
    from vseek_env.cli import main
    from vseek_env.pipeline.llm import LLMError

    def failing_run(*args, **kwargs):
        try:
            try:
                raise LLMError("HTTP 503 from http://gpu:8000/v1", status=503)
            except LLMError as inner:
                raise ray_exceptions.UserCodeException("map_batches(_RayStageFn) failed") from inner
        except ray_exceptions.UserCodeException as wrapped:
            raise ray_exceptions.RayTaskError("_RayStageFn", "traceback", wrapped) from None

    monkeypatch.setattr(pipeline_pkg, "run_pipeline", failing_run)
    args = ["pipeline", "run", "--input", str(tmp_path / "qa.json"), "--format", "llava", "--out", str(tmp_path / "o")]
    assert main(args) == 3
    err = capsys.readouterr().err
    assert "HTTP 503" in err and "re-run to resume" in err

    def other_failure(*args, **kwargs):
        raise ray_exceptions.RayTaskError("_RayStageFn", "traceback", ZeroDivisionError("bug"))

    monkeypatch.setattr(pipeline_pkg, "run_pipeline", other_failure)
    with pytest.raises(ray_exceptions.RayTaskError):
        main(args)
