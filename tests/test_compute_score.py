"""verl's compute_score: same functions as the env, fixed keys, transcripts or single responses."""

from __future__ import annotations

import pytest
from conftest import make_sample
from hypothesis import given
from hypothesis import strategies as st

from vseek_env.data import SampleError
from vseek_env.env import VideoSeekerEnv
from vseek_env.rewards import compute_score, make_reward

CROP = '<think>look</think><tool_call>{{"name": "crop_video", "arguments": {{"start_time": {}, "end_time": {}}}}}</tool_call>'
SPEC = {"preset": "paper_logged", "parsimony": {"lam": 0.25}}


pytestmark = pytest.mark.usefixtures("no_judge_from_the_environment")


def verl_transcript(responses: list[str], tool_texts: list[list[str]], special_tokens: bool) -> str:
    """What verl decodes as the response of a multi-turn rollout (its first assistant header is in the prompt)."""
    out = responses[0]
    for texts, response in zip(tool_texts, responses[1:]):
        replies = "\n".join(f"<tool_response>\n{t}\n</tool_response>" for t in texts)
        out += f"<|im_end|>\n<|im_start|>user\n{replies}<|im_end|>\n<|im_start|>assistant\n{response}"
    out += "<|im_end|>"
    return out if special_tokens else out.replace("<|im_start|>", "").replace("<|im_end|>", "")


EPISODES = {
    "crop_then_right": [CROP.format(2, 4), "<think>right</think><answer>B</answer>"],
    "two_crops_one_failed": [CROP.format(1, 3) + CROP.format(50, 60), "<think>hm</think><answer>(B)</answer>"],
    "wrong_after_view": ['<think>v</think><tool_call>{"name": "view_visual_prompt", "arguments": {}}</tool_call>',
                         "<answer>A</answer>"],
    "direct": ["<think>guess</think><answer>B: right</answer>"],
}


@pytest.mark.parametrize("special_tokens", [True, False])
@pytest.mark.parametrize("episode", sorted(EPISODES))
def test_compute_score_equals_the_env_reward(small_dataset, episode, special_tokens):
    env = VideoSeekerEnv(dataset=small_dataset, reward=SPEC)
    env.reset(seed=0, options={"sample_id": "s0"})
    tool_texts = []
    for response in EPISODES[episode]:
        _, reward, terminated, truncated, info = env.step(response)
        tool_texts.append([r["text"] for r in info["tool_results"]])
    assert terminated
    sample = env.sample
    out = compute_score("vseek", verl_transcript(EPISODES[episode], tool_texts, special_tokens), sample.answer,
                        {"sample": sample.to_dict()}, reward=SPEC)
    assert out["score"] == pytest.approx(reward)
    for name, value in info["reward_components"].items():
        assert out[name] == pytest.approx(value), name
    assert out["num_tool_calls"] == info["trajectory"].num_tool_calls
    assert out["num_turns"] == len(EPISODES[episode])
    env.close()


def test_single_response_and_ground_truth_only_rows():
    out = compute_score("x", "<think>a</think><answer>C</answer>", "C", {"options": ["a", "b", "c"], "question": "q"})
    assert out["score"] == pytest.approx(1.0) and out["acc"] == 1.0
    out = compute_score("x", "<answer>three</answer>", "3", {"answer_kind": "number"}, reward="accuracy")
    assert out["score"] == 1.0
    out = compute_score("x", "<think>a</think><answer>[2, 4]</answer>", "[2.0, 4.0]", {"answer_kind": "span"},
                        reward={"temporal_iou": 1.0})
    assert out["score"] == 1.0 and out["acc"] == 1.0  # "acc" is the score when the spec has no accuracy term


def test_extra_info_sample_wins_and_bad_rows_are_named():
    sample = make_sample("row7", answer="A")
    out = compute_score("x", "<think>a</think><answer>A</answer>", "B", {"sample": sample.to_dict()}, reward="accuracy")
    assert out["score"] == 1.0
    with pytest.raises(SampleError, match="row7"):
        compute_score("x", "A", "A", {"sample": {**sample.to_dict(), "answer": "Q"}})
    with pytest.raises(SampleError, match="'r1'.*no ground_truth"):
        compute_score("x", "A", "", {"index": "r1"})


solutions = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from(list(EPISODES.values())[0] + ["<|im_end|>", "\nuser\n", "<tool_response>Error: x</tool_response>",
                                                           "<|im_start|>assistant\n", "<answer>B</answer>", "garbage"]),
             max_size=8).map("".join),
)


@given(solutions, st.sampled_from(["B", "3", "[1, 2]", "a red car"]))
def test_same_keys_on_every_call_and_score_in_range(solution, truth):
    kind = {"B": "choice", "3": "number", "[1, 2]": "span", "a red car": "open"}[truth]
    extra = {"answer_kind": kind, **({"options": ["x", "y"]} if kind == "choice" else {})}
    out = compute_score("src", solution, truth, extra)
    assert set(out) == {"score", "acc", "accuracy", "format", "parsimony", "answered", "num_turns", "num_tool_calls",
                        "judge_fallback"}
    lo, hi = make_reward("paper").range
    assert lo <= out["score"] <= hi and all(isinstance(v, (int, float)) for v in out.values())


def test_rows_as_verl_reads_them_from_parquet():
    import json

    import numpy as np

    sample = make_sample("row9", answer="B", evidence=(2.0, 4.0))
    extra = {"sample": json.dumps(sample.to_dict()), "index": np.int64(9)}
    assert compute_score("x", "<think>a</think><answer>B</answer>", "B", extra, reward="accuracy")["score"] == 1.0
    extra = {"options": np.array(["left", "right"], dtype=object), "question": "q"}
    assert compute_score("x", "<think>a</think><answer>right</answer>", "B", extra)["acc"] == 1.0
