"""The response grammar: what parses, what errors, and that nothing raises."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from vseek_env.protocol import ErrorCode, parse_response


def codes(parsed):
    return {e.code for e in parsed.errors}


def test_tool_calls_parse_in_order():
    text = (
        '<think>plan</think><tool_call>{"name": "crop_video", "arguments": {"start_time": 1, "end_time": 2}}</tool_call>'
        '<tool_call>{"name": "view_visual_prompt", "arguments": {}}</tool_call>'
    )
    parsed = parse_response(text)
    assert [c.name for c in parsed.tool_calls] == ["crop_video", "view_visual_prompt"]
    assert parsed.tool_calls[0].arguments == {"start_time": 1, "end_time": 2}
    assert parsed.think == "plan" and parsed.answer is None and not parsed.errors and parsed.well_formed


def test_answer_parses_and_is_well_formed():
    parsed = parse_response("<think>so</think>\n<answer> B </answer>")
    assert parsed.answer == "B" and parsed.well_formed and not parsed.errors


def test_openai_style_string_arguments_are_accepted():
    parsed = parse_response('<tool_call>{"name": "crop_video", "arguments": "{\\"start_time\\": 3, \\"end_time\\": 4}"}</tool_call>')
    assert parsed.tool_calls[0].arguments == {"start_time": 3, "end_time": 4}


def test_missing_open_think_tag_is_tolerated():
    parsed = parse_response("reasoning...</think><answer>A</answer>")
    assert parsed.answer == "A" and parsed.think == "reasoning..." and not parsed.errors


def test_tags_inside_think_are_not_actions():
    parsed = parse_response('<think>maybe <tool_call>{"name": "x", "arguments": {}}</tool_call> or <answer>C</answer></think>')
    assert parsed.tool_calls == () and parsed.answer is None
    assert codes(parsed) == {ErrorCode.NO_ACTION}


def test_error_codes():
    assert codes(parse_response("")) == {ErrorCode.NO_ACTION}
    assert codes(parse_response("<answer>A</answer><answer>B</answer>")) == {ErrorCode.MULTIPLE_ANSWERS}
    assert codes(parse_response("<answer>  </answer>")) == {ErrorCode.EMPTY_ANSWER}
    assert ErrorCode.INVALID_JSON in codes(parse_response("<tool_call>{nope</tool_call>"))
    assert ErrorCode.INVALID_JSON in codes(parse_response('<tool_call>{"name": "a", "arguments": {}} trailing</tool_call>'))
    assert ErrorCode.INVALID_JSON in codes(parse_response('<tool_call>{"name": "a", "name": "b", "arguments": {}}</tool_call>'))
    assert ErrorCode.INVALID_JSON in codes(parse_response('<tool_call>{"name": "a", "arguments": {"t": NaN}}</tool_call>'))
    assert ErrorCode.BAD_TOOL_CALL in codes(parse_response('<tool_call>["crop_video"]</tool_call>'))
    assert ErrorCode.BAD_TOOL_CALL in codes(parse_response('<tool_call>{"name": "a", "arguments": 3}</tool_call>'))
    assert ErrorCode.UNCLOSED_TAG in codes(parse_response('<tool_call>{"name": "a", "arguments": {}}'))
    assert ErrorCode.UNCLOSED_TAG in codes(parse_response("<think>never closed <answer>A</answer>"))
    assert codes(parse_response("x" * 50, max_chars=10)) == {ErrorCode.RESPONSE_TOO_LONG}


def test_tool_calls_next_to_an_answer_are_dropped_with_a_warning():
    parsed = parse_response('<tool_call>{"name": "crop_video", "arguments": {}}</tool_call><answer>A</answer>')
    assert parsed.answer == "A" and parsed.tool_calls == ()
    assert [w.code for w in parsed.warnings] == [ErrorCode.TOOL_CALL_WITH_ANSWER]
    assert not parsed.well_formed


def test_too_many_tool_calls_are_cut():
    one = '<tool_call>{"name": "view_visual_prompt", "arguments": {}}</tool_call>'
    parsed = parse_response(one * 5, max_tool_calls=2)
    assert len(parsed.tool_calls) == 2 and ErrorCode.TOO_MANY_TOOL_CALLS in codes(parsed)


@given(st.text(max_size=400))
def test_parse_never_raises_on_any_text(text):
    parsed = parse_response(text)
    assert isinstance(parsed.errors, tuple)
    # Something is always actionable or explained.
    assert parsed.tool_calls or parsed.answer is not None or parsed.errors


tag = st.sampled_from(["<think>", "</think>", "<tool_call>", "</tool_call>", "<answer>", "</answer>", "{", "}", '"name"', ":"])


@given(st.lists(st.one_of(tag, st.text(max_size=8)), max_size=30))
def test_parse_never_raises_on_tag_soup(pieces):
    parsed = parse_response("".join(pieces))
    if parsed.well_formed:  # a well-formed response asks for exactly one kind of action
        assert bool(parsed.tool_calls) != (parsed.answer is not None)
        assert parsed.think is not None


@given(st.dictionaries(st.text(max_size=10), st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=10)), max_size=4))
def test_any_json_arguments_round_trip(arguments):
    text = "<think>t</think><tool_call>" + json.dumps({"name": "crop_video", "arguments": arguments}) + "</tool_call>"
    parsed = parse_response(text)
    assert parsed.tool_calls[0].arguments == arguments and parsed.well_formed
