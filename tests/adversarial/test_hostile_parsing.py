"""Parsing is linear in the response length, and the verl reward path caps what it parses.

The old parser used ``<think>(.*?)</think>``-style regexes, which retry from every opening tag: a
response of ``<think>`` repeated without a closing one took seconds at 32 K characters and tens of
seconds at 128 K. The block scanner must agree with the regex on every input (hypothesis), and
1 M-character pathological inputs must parse in a child process before a hang guard kills it
(about an hour with the old regexes).
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vseek_env.protocol import ErrorCode, parse_response, tag_blocks
from vseek_env.trajectory import MAX_TRANSCRIPT_CHARS, trajectory_from_text

PATHOLOGICAL = {
    "think": lambda n: "<think>" * (n // 7),
    "tool_call": lambda n: "<think>a</think>" + "<tool_call>" * (n // 11),
    "answer": lambda n: "<think>a</think>" + "<answer>" * (n // 8),
    "mixed": lambda n: "<think>a</think>" + "<tool_call><answer></think>" * (n // 27),
    "tool_response": lambda n: "<tool_response>" * (n // 15),
}


def _regex_blocks(text: str, tags: tuple[str, ...], flags: int = 0) -> list[tuple[str, str]]:
    pattern = re.compile(r"<(" + "|".join(tags) + r")>(.*?)</(?:\1)>", re.S | flags)
    return [(m.group(1).lower() if flags else m.group(1), m.group(2)) for m in pattern.finditer(text)]


_PIECES = st.sampled_from(["<a>", "</a>", "<b>", "</b>", "<A>", "</A>", "x", "<", ">", "/", "a", "b", "<a", "</", "\n"])


@given(st.lists(_PIECES, max_size=30).map("".join))
def test_the_block_scanner_finds_exactly_what_the_regex_finds(text):
    for tags in (("a",), ("a", "b"), ("b", "a")):
        mine = [(t, text[c:d]) for t, _, c, d, _ in tag_blocks(text, tags)]
        assert mine == _regex_blocks(text, tags)
        mine = [(t, text[c:d]) for t, _, c, d, _ in tag_blocks(text, tags, ignore_case=True)]
        assert mine == _regex_blocks(text, tags, re.I)


def test_v2p_score_reads_a_pathological_response_in_linear_time():
    import subprocess
    import sys

    code = ("from vseek_env.data.v2p import robust_letter\n"
            "robust_letter('<ANSWER>' * 150_000 + ' B')\n"
            "assert robust_letter('<Answer> (C) </answer>') == 'C'\nprint('ok')")
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("robust_letter on 1.2 M characters of unclosed <ANSWER> did not finish")
    assert done.stdout.strip() == "ok", done.stderr


_CHILD = """
import sys
from vseek_env.protocol import parse_response
from vseek_env.trajectory import trajectory_from_text
text = {make}
parse_response(text)
trajectory_from_text(text, max_chars=None)
print("parsed", len(text))
"""


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL))
def test_pathological_megabyte_responses_parse_without_hanging(name):
    # 1 M characters: linear parsing takes well under a second; the old regexes needed about an hour
    # (21 s at 128 K, x64). The child is killed at the guard, which only catches a hang.
    make = {"think": '"<think>" * 150_000', "tool_call": '"<think>a</think>" + "<tool_call>" * 95_000',
            "answer": '"<think>a</think>" + "<answer>" * 130_000',
            "mixed": '"<think>a</think>" + "<tool_call><answer></think>" * 38_000',
            "tool_response": '"<tool_response>" * 70_000'}[name]
    try:
        done = subprocess.run([sys.executable, "-c", _CHILD.format(make=make)], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"parsing a 1 M-character {name!r} response did not finish: parsing is not linear")
    assert done.returncode == 0 and "parsed" in done.stdout, done.stderr


def test_duplicate_key_check_is_linear_in_the_number_of_keys():
    body = "{" + ",".join(f'"k{i}": 1' for i in range(20_000)) + ', "k7": 2}'
    parsed = parse_response(f"<think>t</think><tool_call>{body}</tool_call>")
    assert [e.code for e in parsed.errors] == [ErrorCode.INVALID_JSON] and "k7" in parsed.errors[0].message


def test_the_verl_reward_path_caps_the_transcript():
    from vseek_env.rewards import compute_score

    huge = "<think>" + "x" * (MAX_TRANSCRIPT_CHARS + 1) + "</think><answer>B</answer>"
    traj = trajectory_from_text(huge)
    assert traj.answer is None and [e.code for e in traj.turns[0].errors] == [ErrorCode.RESPONSE_TOO_LONG]
    assert len(traj.turns[0].response) <= MAX_TRANSCRIPT_CHARS
    out = compute_score("x", huge, "B", {"question": "q", "options": ["a", "b"]})
    assert out["acc"] == 0.0 and out["answered"] == 0.0
    assert trajectory_from_text("<think>t</think><answer>B</answer>", max_chars=10).answer is None
    assert trajectory_from_text("<think>t</think><answer>B</answer>").answer == "B"
