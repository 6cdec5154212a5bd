"""V2P-Bench: loader (options in the question, list frame paths, raw dimension codes) and scorer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from videos import write_indexed_video

from vseek_env.cli import main
from vseek_env.data import SampleError, load_dataset
from vseek_env.data.v2p import (
    DIMENSIONS_BY_CONTENT,
    DIMENSIONS_EVAL_PY,
    duration_bucket,
    official_correct,
    parse_v2p_question,
    robust_letter,
    score_v2p_responses,
)
from vseek_env.env import VideoSeekerEnv

SUFFIX = "\nSelect the best option that accurately addresses the question. Give only your option letter, no other words."


def v2p_question(stem: str, options: list[str]) -> str:
    return stem + "".join(f"\n{chr(65 + i)}: {o}" for i, o in enumerate(options)) + SUFFIX


def row(video_id="vid1", **kw) -> dict:
    base = {"video_id": video_id, "video_path": f"Src/{video_id}.mp4", "duration": 6,
            "question": v2p_question("What does the man in the box hold?", ["a cup", "a pen", "a phone", "nothing"]),
            "answer": "B", "source": "Src", "frame_path": f"Src/{video_id}.jpg", "dimension": 2, "category": 1}
    base.update(kw)
    return base


_line = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=40).map(str.strip).filter(bool)


@given(stem=_line, options=st.lists(_line, min_size=2, max_size=6))
def test_question_round_trip(stem, options):
    assert parse_v2p_question(v2p_question(stem, options)) == (stem, tuple(options))


def test_question_with_a_colon_line_in_the_stem_keeps_it():
    text = "Note:\nB: is not an option here\nWhat?\nA: x\nB: y" + SUFFIX
    assert parse_v2p_question(text) == ("Note:\nB: is not an option here\nWhat?", ("x", "y"))


@pytest.fixture
def v2p_root(tmp_path) -> Path:
    """The published layout: dataset_info.jsonl, videos/<Source>/..., frames/<Source>/..."""
    (tmp_path / "videos" / "Src").mkdir(parents=True)
    (tmp_path / "frames" / "Src").mkdir(parents=True)
    write_indexed_video(tmp_path / "videos" / "Src" / "vid1.mp4", n_frames=60, fps=10)
    frame = np.zeros((120, 192, 3), np.uint8)
    frame[20:60, 30:90] = (255, 0, 0)
    for name in ("vid1.jpg", "vid1_b.jpg"):
        Image.fromarray(frame).save(tmp_path / "frames" / "Src" / name)
    rows = [row(), row(frame_path=["Src/vid1_b.jpg", "Src/vid1.jpg"], answer="C", dimension=13),
            row("vid2", duration=2000, dimension=5)]
    (tmp_path / "dataset_info.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "dataset_info.json").write_text(json.dumps(rows))
    return tmp_path


@pytest.mark.parametrize("name", ["dataset_info.jsonl", "dataset_info.json"])
def test_loader(v2p_root, name):
    ds = load_dataset(v2p_root / name)
    assert [s.id for s in ds.samples] == ["vid1#0", "vid1#1", "vid2#0"]
    first, second, third = ds.samples
    assert first.question == "What does the man in the box hold?" and "Select" not in first.question
    assert first.options == ("a cup", "a pen", "a phone", "nothing") and first.answer == "B"
    assert first.video == str(v2p_root / "videos" / "Src" / "vid1.mp4")
    assert first.prompt.image == str(v2p_root / "frames" / "Src" / "vid1.jpg") and first.prompt.time is None
    assert second.prompt.image.endswith("vid1_b.jpg") and second.meta["frame_paths"] == ["Src/vid1_b.jpg", "Src/vid1.jpg"]
    assert first.dimension == 2 and isinstance(first.dimension, int)
    assert second.meta["dimension_eval_py"] == "SR" and second.meta["dimension_by_content"] == "PU"
    assert third.duration == 2000.0 and third.meta["video_path"] == "Src/vid2.mp4"


def test_dimension_maps_agree_only_on_the_first_four_codes():
    assert set(DIMENSIONS_EVAL_PY) == set(DIMENSIONS_BY_CONTENT)
    assert sorted(DIMENSIONS_EVAL_PY.values()) == sorted(DIMENSIONS_BY_CONTENT.values())
    assert [c for c in DIMENSIONS_EVAL_PY if DIMENSIONS_EVAL_PY[c] == DIMENSIONS_BY_CONTENT[c]] == [1, 2, 3, 4]


def test_env_plays_a_v2p_sample(v2p_root):
    env = VideoSeekerEnv(dataset=v2p_root / "dataset_info.jsonl")
    obs, info = env.reset(seed=0, options={"sample_id": "vid1#0"})
    prompt = [f for f in info["frames"] if f["source"] == "prompt"]
    assert len(prompt) == 1 and prompt[0]["time"] is None
    assert "B. a pen" in obs["text"]
    obs, reward, terminated, truncated, info = env.step("<think>the pen</think><answer>B</answer>")
    assert terminated and info["reward_components"]["accuracy"] == 1.0


@pytest.mark.parametrize(
    "bad, message",
    [({"answer": "E"}, "not one of"), ({"question": "no options here"}, "option lines"),
     ({"frame_path": []}, "missing"), ({"dimension": "two"}, "integer code")],
)
def test_bad_rows_name_the_file_and_sample(tmp_path, bad, message):
    path = tmp_path / "bench.jsonl"
    path.write_text(json.dumps(row()) + "\n" + json.dumps(row("vidX", **bad)) + "\n")
    with pytest.raises(SampleError, match=message) as err:
        load_dataset(path)
    assert "bench.jsonl row 1" in str(err.value) and "vidX#0" in str(err.value)


def test_official_rule_is_the_first_character():
    assert official_correct("B", "B") and official_correct("B. a pen", "B")
    assert not official_correct(" B", "B") and not official_correct("b", "B")
    assert not official_correct("The answer is B", "B") and not official_correct("", "B") and not official_correct(None, "B")


@given(letter=st.sampled_from("ABCD"), template=st.sampled_from([
    "{L}", "{l}", "({L})", "{L}.", "{L}: some text", "The answer is {L}.", "Answer: ({L})",
    "<think>A or B?</think><answer>{L}</answer>", "option {L}", "<answer>({L}) a pen</answer>",
]))
def test_robust_letter(letter, template):
    assert robust_letter(template.format(L=letter, l=letter.lower()), 4) == letter


@pytest.mark.parametrize("text", ["", "   ", "a man is walking", "none of them", "<answer></answer>", "E",
                                  "It is not D", "either A or B", "maybe C or D", "(A) or (B)", "A.B.C.D",
                                  "<answer>the answer is A or B</answer>"])
def test_robust_letter_refuses_to_guess(text):
    assert robust_letter(text, 4) is None


def test_robust_scoring_reads_a_lower_case_answer_key():
    score = score_v2p_responses([row(response="B", answer="b"), row(response="maybe A or B", answer="B")])
    assert (score["robust_correct"], score["unanswered"]) == (1, 1)


def test_duration_buckets_follow_eval_py():
    assert [duration_bucket(d) for d in (0, 239.9, 240, 1799, 1800, 7186)] == ["short", "short", "medium", "medium", "long", "long"]
    assert duration_bucket(None) == "unknown"


def test_score_and_cli(tmp_path, capsys):
    rows = [row(response="B"), row(response="The answer is B."), row(response=""), row(response="C", dimension=13),
            row(response="(B) a pen", dimension=13)]
    score = score_v2p_responses(rows)
    assert (score["n"], score["official_correct"], score["robust_correct"], score["unanswered"]) == (5, 1, 3, 1)
    assert score["per_dimension"]["2"] == {**score["per_dimension"]["2"], "n": 3, "official_correct": 1, "robust_correct": 2}
    assert score["per_dimension"]["13"]["robust_correct"] == 1
    path = tmp_path / "responses.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["v2p-score", str(path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["official_correct"] == 1 and set(printed["per_dimension"]) == {"2", "13"}
    assert main(["v2p-score", str(tmp_path / "missing.jsonl")]) == 2


def test_paper_rule_next_to_the_official_one(tmp_path, capsys):
    """VideoSeeker's rule: first letter in the first <answer> tag; rows without one leave the denominator."""
    rows = [row(response="<think>A?</think><answer>B</answer>"), row(response="<answer>b) a pen</answer>"),
            row(response="<answer>C</answer>", dimension=13), row(response="B"),  # no tag: not scored
            row(response="<answer> </answer>", dimension=13)]
    score = score_v2p_responses(rows)
    assert (score["paper_correct"], score["paper_scored"], score["official_correct"]) == (2, 3, 1)
    assert score["paper_accuracy"] == 2 / 3 and score["paper_accuracy_all"] == 2 / 5 and score["paper_mode"] == "tool"
    assert {k: score["per_dimension"]["2"][k] for k in ("n", "paper_correct", "paper_scored", "official_correct")} == {
        "n": 3, "paper_correct": 2, "paper_scored": 2, "official_correct": 1}
    assert (score["per_dimension"]["13"]["paper_scored"], score["per_dimension"]["13"]["paper_accuracy"]) == (1, 0.0)
    direct = score_v2p_responses(rows, mode="direct")
    assert (direct["paper_correct"], direct["paper_scored"]) == (1, 5)  # only the bare "B" equals the answer
    path = tmp_path / "responses.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["v2p-score", str(path), "--mode", "reasoning"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["paper_correct"] == 2 and printed["per_dimension"]["13"]["paper_scored"] == 1
    assert "official_accuracy" in printed and "robust_accuracy" in printed


def test_v2p_spec_and_episode_verdicts(v2p_root):
    """``v2p:PATH`` loads the same samples as the bare path, tagged with the benchmark and its categories."""
    path = v2p_root / "dataset_info.jsonl"
    ds = load_dataset(f"v2p:{v2p_root}")  # the folder finds dataset_info*.jsonl
    assert [s.id for s in ds.samples] == [s.id for s in load_dataset(path).samples]
    s = ds.samples[0]
    assert s.meta["benchmark"] == "v2p" and "dimension" in s.meta["categories"]


# Answer -> first character of the reply, counted over the 1,169 rows of V2P-Bench's published
# Qwen2.5-VL-72B-Instruct response file (data/Qwen2.5-VL-72B-Instruct.jsonl, read row by row through
# the project's public-code index; "!" stands for its ten replies of 64 exclamation marks). Only
# these counts are kept: the rows below are our own questions with the same answer/reply pattern.
PUBLISHED_72B_PATTERN = {
    "A!": 2, "AA": 206, "AB": 40, "AC": 49, "AD": 31, "B!": 1, "BA": 38, "BB": 167, "BC": 39, "BD": 34,
    "C!": 3, "CA": 24, "CB": 34, "CC": 196, "CD": 36, "D!": 4, "DA": 27, "DB": 31, "DC": 38, "DD": 169,
}


def test_official_rule_reproduces_the_published_72b_number(tmp_path, capsys):
    """The official rule gives 738 / 1,169 on replies with the published file's pattern; the paper's
    tool mode scores none of them (no answer tag) and its direct mode agrees with the official rule."""
    rows = []
    for pair, count in PUBLISHED_72B_PATTERN.items():
        answer, first = pair
        reply = "!" * 64 if first == "!" else first
        rows += [row(video_id=f"v{pair}{k}", answer=answer, response=reply) for k in range(count)]
    assert len(rows) == 1169
    path = tmp_path / "qwen72b_pattern.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["v2p-score", str(path)]) == 0
    tool = json.loads(capsys.readouterr().out)
    assert (tool["n"], tool["official_correct"]) == (1169, 738)
    assert round(100 * tool["official_accuracy"], 1) == 63.1
    assert (tool["paper_scored"], tool["paper_correct"]) == (0, 0)
    direct = score_v2p_responses(rows, mode="direct")
    assert (direct["paper_correct"], direct["paper_scored"]) == (738, 1169)


def test_generic_score_command_agrees_with_v2p_score(tmp_path, capsys):
    rows = [row(response="B"), row(response="<answer>B</answer>", dimension=13), row(response="C")]
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["score", "v2p", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    v2p = score_v2p_responses(rows)
    assert out["official"]["overall"]["correct"] == v2p["official_correct"] == 1
    assert out["paper"]["overall"]["correct"] == v2p["paper_correct"] == 1
    assert out["official"]["per_dimension"]["13"]["n"] == 1
