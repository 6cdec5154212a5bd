"""Published benchmarks: loaders on files in each official layout, the env without a prompt tool, the
oracle / random policies through `vseek eval`, and each official scoring rule on response files."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import benchmark_fixtures as fx
from vseek_env.cli import main
from vseek_env.data import load_dataset
from vseek_env.data import longvideobench, longvt, videomme, videorefer
from vseek_env.data.benchmarks import score_responses, split_spec
from vseek_env.data.sample import SampleError
from vseek_env.evaluation import evaluate
from vseek_env.evaluation.scoring import Tally, paper_correct, paper_prediction

NAMES = ("videomme", "longvideobench", "longvt", "videorefer")


@pytest.fixture(scope="module")
def bench_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("benchmarks")
    return {name: writer(root / name) for name, writer in fx.WRITERS.items()}


# -- the paper's rule --------------------------------------------------------------------------------
def test_paper_modes_follow_the_released_scorer():
    assert paper_prediction(" b \n", "direct") == "B"
    assert paper_correct("B.", "B", "direct") is False  # the whole response must be the letter
    assert paper_correct("<answer>b) bike</answer><answer>C</answer>", "B", "tool") is True  # first tag, first char
    assert paper_correct("<ANSWER> (B)</ANSWER>", "B", "reasoning") is None  # "(" is not a letter
    assert paper_correct("The answer is B", "B", "tool") is None  # no tag: dropped, not wrong
    assert paper_correct("", "B", "direct") is None and paper_correct(None, "B", "tool") is None
    with pytest.raises(ValueError, match="direct"):
        paper_prediction("B", "fast")


@given(st.lists(st.sampled_from([True, False, None]), max_size=40))
def test_tally_reports_both_denominators(verdicts):
    t = Tally()
    for v in verdicts:
        t.add(v)
    d = t.to_dict()
    assert d["n"] == len(verdicts) and d["unparseable"] == verdicts.count(None)
    assert d["correct"] == verdicts.count(True) and d["scored"] == len(verdicts) - verdicts.count(None)
    assert d["accuracy"] <= d["scored_accuracy"] or d["scored"] == 0


@given(st.text(max_size=30), st.sampled_from("ABCD"))
def test_paper_tool_mode_reads_only_the_first_answer_tag(noise, letter):
    response = f"<think>{noise.replace('<', '')}</think><answer>{letter}</answer><answer>Z</answer>"
    assert paper_correct(response, letter, "tool") is True


# -- loaders -----------------------------------------------------------------------------------------
def test_spec_dispatch():
    assert split_spec("videomme:/x/y.json") == ("videomme", "/x/y.json")
    assert split_spec("LongVT:/x") == ("longvt", "/x")
    assert split_spec("synth:tiny") is None and split_spec("videomme:") is None


@pytest.mark.parametrize("name", NAMES)
def test_loaders_keep_the_categories(bench_root, name):
    path = bench_root[name]
    ds = load_dataset(f"{name}:{path}")
    assert len(ds) == fx.N_QUESTIONS
    s = ds.samples[0]
    assert s.meta["benchmark"] == name and s.meta["categories"]
    assert ds.video_path(s).exists(), ds.video_path(s)
    # the folder works as well as the file
    assert len(load_dataset(f"{name}:{path.parent}")) == fx.N_QUESTIONS


def test_loader_details(bench_root):
    mme = load_dataset(f"videomme:{bench_root['videomme']}")["001-0"]
    assert mme.options == ("opt0a.", "opt0b.", "opt0c.", "opt0d.") and mme.answer == "A"
    assert mme.meta["categories"] == {"duration": "short", "domain": "Knowledge", "sub_category": "Astronomy",
                                      "task_type": "Counting Problem"}
    assert not mme.has_visual_prompt and mme.video.endswith("data/vidAAA.mp4")
    lvb = load_dataset(f"longvideobench:{bench_root['longvideobench']}")["lv3"]
    assert len(lvb.options) == 5 and lvb.answer == "D" and lvb.meta["categories"]["duration_group"] == 600
    lvt = load_dataset(f"longvt:{bench_root['longvt']}").samples[0]
    assert lvt.answer_kind == "open" and lvt.answer == "a red cup" and lvt.id == "long1#0"
    ref = load_dataset(f"videorefer:{bench_root['videorefer']}")
    first = ref["0"]
    assert first.has_visual_prompt and first.prompt.style == "set_of_mark" and first.prompt.label == 1
    assert first.question == "What is object 1 doing in clip 0?" and first.video.endswith("clipa.mp4")
    assert first.prompt.time == pytest.approx((10 + 0.25) / videorefer.FRAME_RATE)
    assert ref["5"].meta["unmarked_objects"] == 1 and ref["0"].meta["unmarked_objects"] == 0


def test_the_videomme_results_layout_loads_too(tmp_path, bench_root):
    rows = json.loads(bench_root["videomme"].read_text())
    nested = [{"video_id": "001", "videoID": "vidAAA", "duration_category": "short", "video_category": "Knowledge",
               "video_subcategory": "Astronomy",
               "questions": [{"question_id": r["question_id"], "task_type": r["task_type"], "question": r["question"],
                              "choices": r["options"], "answer": r["answer"], "response": "A"} for r in rows[:3]]}]
    path = tmp_path / "videomme" / "results.json"
    path.parent.mkdir()
    path.write_text(json.dumps(nested))
    ds = videomme.load(path, videos_root=bench_root["videomme"].parent.parent / "data")
    assert len(ds) == 3 and ds.samples[0].meta["categories"]["domain"] == "Knowledge"


@pytest.mark.parametrize("name, row, message", [
    ("videomme", {"question_id": "q", "videoID": "v", "question": "?", "options": ["A. x", "B. y"], "answer": "E"}, "not one of"),
    ("longvideobench", {"id": "q", "video_path": "v.mp4", "question": "?", "candidates": ["x"], "correct_choice": 3}, "out of range"),
    ("longvt", {"video_path": "v.mp4", "question": "?", "answer": ""}, "no answer"),
    ("videorefer", {"id": 1, "video": "v", "Question": "?", "options": ["(A) x"], "Answer": "(A) x", "annotation": []}, "no annotated object"),
])
def test_bad_rows_name_the_file_and_row(tmp_path, name, row, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([row]))
    with pytest.raises(SampleError, match=message) as err:
        load_dataset(f"{name}:{path}")
    assert "bad.json row 0" in str(err.value)


def test_missing_benchmark_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="videomme"):
        load_dataset(f"videomme:{tmp_path / 'nope.json'}")


# -- the env without a visual prompt --------------------------------------------------------------------
def test_questions_without_a_prompt_run_without_the_prompt_tool(bench_root):
    from vseek_env.env import VideoSeekerEnv

    env = VideoSeekerEnv(dataset=f"videomme:{bench_root['videomme']}")
    try:
        assert [t["function"]["name"] for t in env.tool_schemas()] == ["crop_video"]
        obs, info = env.reset(seed=0)
        system = info["messages"][0]["content"][0]["text"]
        assert "view_visual_prompt" not in system and "visual prompt" not in system
        assert "view_visual_prompt" not in obs["text"] and env.prompt_frame is None
        assert all(f["source"] == "overview" for f in info["frames"])
        _, _, _, _, info = env.step('<think>x</think><tool_call>{"name": "view_visual_prompt", "arguments": {}}</tool_call>')
        assert info["tool_results"][0]["error_code"] == "unknown_tool"
    finally:
        env.close()
    # a marked benchmark keeps the tool
    env = VideoSeekerEnv(dataset=f"videorefer:{bench_root['videorefer']}")
    try:
        assert "view_visual_prompt" in [t["function"]["name"] for t in env.tool_schemas()]
        _, info = env.reset(seed=0)
        assert any(f["source"] == "prompt" for f in info["frames"])
    finally:
        env.close()


# -- vseek eval: oracle 100 %, random about chance -------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_oracle_and_random_through_eval(tmp_path, bench_root, name):
    spec = f"{name}:{bench_root[name]}"
    data = load_dataset(spec)
    oracle = evaluate("oracle", spec, tmp_path / "oracle", workers=2, progress=False).summary
    assert oracle["accuracy"] == 1.0 and oracle["errored"] == 0
    rules = oracle["benchmark"]["rules"]
    assert oracle["benchmark"]["names"] == [name]
    assert rules["official"]["overall"]["accuracy"] == 1.0
    if name == "longvt":
        assert rules["official"]["decided_by"] == {"rule": len(data), "judge": 0, "judge_fallback": 0}
    else:
        assert rules["paper_tool"]["overall"]["accuracy"] == 1.0 and rules["paper_direct"]["overall"]["correct"] == 0  # a tagged reply is never a bare letter
    fields = data.samples[0].meta["categories"]
    assert set(oracle["per_category"]) >= set(fields)
    assert all(v["accuracy"] == 1.0 for groups in oracle["per_category"].values() for v in groups.values())
    html = (tmp_path / "oracle" / "report.html").read_text()
    assert "official" in html and next(iter(fields)) in html

    rnd = evaluate("random", spec, tmp_path / "random", workers=2, repeats=3, progress=False).summary
    if name == "longvt":
        chance = 0.0
    else:
        chance = sum(1 / len(s.options) for s in data.samples) / len(data)
    n = len(data) * 3
    sd = max((chance * (1 - chance) / n) ** 0.5, 0.02)
    assert abs(rnd["accuracy"] - chance) <= 4 * sd, (rnd["accuracy"], chance)
    assert abs(rnd["benchmark"]["rules"]["official"]["overall"]["accuracy"] - chance) <= 4 * sd


# -- response files scored by each official rule ------------------------------------------------------
def test_videomme_rule_drops_unanswered_rows():
    rows = [{"answer": "B", "response": r, "duration": "short", "task_type": "t"} for r in
            ("B", "The answer is B.", "(C)", "I am not able to determine this from the frames that I saw here", "B. cat")]
    out = score_responses("videomme", rows)
    off = out["official"]["overall"]
    assert (off["n"], off["scored"], off["correct"]) == (5, 4, 3)
    assert off["scored_accuracy"] == 0.75  # the official number: correct / answered
    # the two missing commas of the official prefix list: "Best answer:" alone is not removed,
    # so its capital "B" is read as the letter
    assert videomme.official_letter("Best answer: C") == "B"


def test_videomme_nested_response_file_through_the_cli(tmp_path, capsys):
    nested = [{"video_id": "001", "duration_category": "short", "video_category": "Knowledge", "video_subcategory": "Law",
               "questions": [{"question_id": "001-1", "task_type": "OCR Problems", "question": "?",
                              "choices": ["A. x", "B. y", "C. z", "D. w"], "answer": "A", "response": resp}
                             for resp in ("A", "D", "<answer>A</answer>")]}]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(nested))
    assert main(["score", "videomme", str(path), "--mode", "tool"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["official"]["overall"]["correct"] == 2 and out["paper"]["overall"]["scored"] == 1
    assert out["official"]["per_domain"]["Knowledge"]["n"] == 3


def test_longvideobench_rule_guesses_reproducibly():
    row = {"id": "q1", "candidates": ["a", "b", "c", "d"], "correct_choice": 2, "duration_group": 600,
           "question_category": "T3O"}
    assert longvideobench.official_verdict(row, "The best answer is C.") is True
    assert longvideobench.official_letter("D. A book", "ABCD") == ("D", False)  # not read as "A"
    guess = longvideobench.official_letter("no idea", "ABCD", seed="q1")
    assert guess[1] and guess == longvideobench.official_letter("no idea", "ABCD", seed="q1")
    out = score_responses("longvideobench", [{**row, "response": "no idea"}, {**row, "response": "C"}])
    assert out["random_fallbacks"] == 1 and out["official"]["overall"]["scored"] == 2


def test_videorefer_rule():
    row = {"Answer": "(C) runs", "type": "Basic Questions"}
    assert videorefer.official_verdict(row, "(C) runs away") and videorefer.official_verdict(row, "c.")
    assert videorefer.official_verdict(row, "C) runs") and not videorefer.official_verdict(row, "B")
    assert not videorefer.official_verdict(row, "")  # the script would crash; counted wrong
    out = score_responses("videorefer", [{**row, "pred": p} for p in ("(C)", "A", "<answer>C</answer>")])
    assert out["official"]["overall"]["correct"] == 1 and out["paper"]["overall"]["correct"] == 1


class _Judge:
    def __init__(self, score):
        self.score_value, self.fallbacks, self.calls = score, 0, 0

    def score(self, question, answer, prediction):
        from vseek_env.rewards.judge import JudgeResult

        self.calls += 1
        return JudgeResult(self.score_value, "judge" if self.score_value is not None else "error")

    def note_fallback(self):
        self.fallbacks += 1


def test_longvt_grading_rule_then_judge_with_fallback_counted():
    row = {"question": "What is held?", "answer": "a red cup", "question_type": "object"}
    assert longvt.official_verdict(row, "<think>..</think><answer>a red cup.</answer>")
    assert not longvt.official_verdict(row, "<answer>a crimson mug</answer>")
    yes = _Judge(1.0)
    assert longvt.official_verdict(row, "<answer>a crimson mug</answer>", judge=yes) and yes.calls == 1
    half = _Judge(0.5)  # LongVT counts only a full score; then it retries on the whole response
    assert not longvt.official_verdict(row, "<answer>a mug</answer>", judge=half) and half.calls == 2
    down, counts = _Judge(None), Counter()
    assert not longvt.official_verdict(row, "<answer>a mug</answer>", judge=down, counts=counts)
    assert down.fallbacks == 1 and counts["judge_fallback"] == 1
    out = score_responses("longvt", [{**row, "response": "<answer>a mug</answer>"}], judge=_Judge(None))
    assert out["grading"] == {"rule": 0, "judge": 0, "judge_fallback": 1} and "paper" not in out


def test_longvt_reads_boxed_and_trailing_numbers_and_letters():
    assert longvt.extract_answer("so \\boxed{12} or \\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert longvt.extract_answer("I counted.\nThere are 7.") == "7"
    assert longvt.parse_letter("I choose (B) because") == "B"
    assert longvt.relaxed_match("The answer is C", "C") == 1.0


def test_score_cli_errors(tmp_path, capsys):
    path = tmp_path / "r.json"
    path.write_text(json.dumps([{"Answer": "(A) x", "type": "t"}]))
    assert main(["score", "videorefer", str(path)]) == 2
    assert "pred" in capsys.readouterr().err
    assert main(["score", "videorefer", str(tmp_path / "missing.json")]) == 2


def test_cli_eval_takes_a_benchmark_spec(tmp_path, bench_root, capsys):
    out = tmp_path / "cli"
    assert main(["eval", "--policy", "oracle", "--dataset", f"longvideobench:{bench_root['longvideobench']}",
                 "--out", str(out), "--limit", "4", "--workers", "1", "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["accuracy"] == 1.0 and summary["benchmark"]["names"] == ["longvideobench"]
    assert set(summary["per_category"]) == {"duration_group", "question_category", "topic_category", "level"}
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line.strip()]
    assert all(r["verdicts"]["official"] is True and r["tool_counts"] == {} for r in records)


def test_longvt_videos_resolve_against_the_dataset_folder(tmp_path, bench_root):
    """The Hugging Face layout: the file in data/, video paths relative to the folder above it."""
    src = bench_root["longvt"].parent
    data = tmp_path / "VideoSIAH-Eval" / "data"
    data.mkdir(parents=True)
    (data / "test-00000-of-00001.json").write_text(bench_root["longvt"].read_text())
    (tmp_path / "VideoSIAH-Eval" / "videos").symlink_to(src / "videos")
    ds = load_dataset(f"longvt:{data}")
    assert ds.video_path(ds.samples[0]) == tmp_path / "VideoSIAH-Eval" / "videos" / "long1.mp4"
    assert ds.video_path(ds.samples[0]).exists()


@given(st.text(max_size=80), st.integers(2, 5), st.text(max_size=8))
def test_official_letter_readers_always_answer_within_their_alphabet(reply, n, qid):
    choices = "ABCDE"[:n]
    letter, guessed = longvideobench.official_letter(reply, choices, seed=qid)
    assert (letter in choices) if guessed else (letter in "ABCDE")
    assert longvideobench.official_letter(reply, choices, seed=qid) == (letter, guessed)  # reproducible
    assert videomme.official_letter(reply) in ("", "A", "B", "C", "D")
    read = videorefer.official_letter(reply)
    assert read is None or len(read) == 1
    assert longvt.parse_letter(reply) in ("",) + tuple("ABCDEFGH")


def test_longvt_episode_verdicts_record_the_judge_fallback():
    from vseek_env.data.sample import Sample
    from vseek_env.evaluation.scoring import episode_verdicts, summarize_verdicts

    s = Sample(id="q", video="v.mp4", question="What is held?", answer="a red cup", answer_kind="open",
               meta={"benchmark": "longvt", "categories": {"question_type": "object"}})
    down = _Judge(None)
    failed = episode_verdicts(s, "<think>.</think><answer>a mug</answer>", "a mug", judge=down)
    assert failed == {"official": False, "official_by": "judge_fallback"} and down.fallbacks == 1
    ok = episode_verdicts(s, "<answer>a red cup</answer>", "a red cup", judge=_Judge(1.0))
    assert ok == {"official": True, "official_by": "rule"}
    judged = episode_verdicts(s, "<answer>a crimson cup</answer>", "a crimson cup", judge=_Judge(1.0))
    assert judged == {"official": True, "official_by": "judge"}
    records = [{"status": "ok", "benchmark": "longvt", "categories": s.meta["categories"], "verdicts": v}
               for v in (failed, ok, judged)]
    rules = summarize_verdicts(records)
    assert set(rules) == {"official"} and rules["official"]["overall"]["correct"] == 2
    assert rules["official"]["decided_by"] == {"rule": 1, "judge": 1, "judge_fallback": 1}


def test_videorefer_prompt_is_drawn_on_its_frame_idx(bench_root):
    """frame_idx k of the JPEG folder is frame k of the encoded video: the prompt shows that frame."""
    from videos import read_index

    from vseek_env.env import VideoSeekerEnv

    env = VideoSeekerEnv(dataset=f"videorefer:{bench_root['videorefer']}")
    try:
        for sid in ("0", "3", "7"):
            env.reset(seed=0, options={"sample_id": sid})
            assert read_index(env.prompt_frame) == env.sample.meta["frame_idx"], sid
    finally:
        env.close()
