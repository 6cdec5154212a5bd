"""Built-in rewards, IoU primitives, the registry and the composite."""

from __future__ import annotations

import math

import gymnasium as gym
import pytest
from conftest import make_sample
from hypothesis import assume, given
from hypothesis import strategies as st

import vseek_env  # noqa: F401  (registers the env ids)
from vseek_env.rewards import PRESETS, RewardOutput, available_rewards, get_reward, make_reward, register_reward
from vseek_env.rewards.matching import (
    box_iou,
    extract_choice,
    interval_iou,
    intervals_iou,
    match_answer,
    match_option_text,
    parse_span,
)
from vseek_env.trajectory import ToolRecord, Trajectory, trajectory_from_text

BUILTINS = ("accuracy", "format", "parsimony", "temporal_iou", "crop_iou", "spatial_iou")
CROP = '<think>look</think><tool_call>{{"name": "crop_video", "arguments": {{"start_time": {}, "end_time": {}}}}}</tool_call>'

pytestmark = pytest.mark.usefixtures("no_judge_from_the_environment")


finite = st.floats(-1e6, 1e6, allow_nan=False)
any_float = st.floats(allow_nan=True, allow_infinity=True)


def answered(answer: str, windows=()) -> Trajectory:
    """A trajectory with one crop per window, then ``answer``."""
    text = "".join(CROP.format(a, b) + "\nuser\n<tool_response>frames</tool_response>\nassistant\n" for a, b in windows)
    return trajectory_from_text(text + f"<think>done</think><answer>{answer}</answer>")


# -- strategies --------------------------------------------------------------------------------

@st.composite
def samples(draw):
    kind = draw(st.sampled_from(["choice", "open", "span", "box", "number"]))
    evidence = draw(st.none() | st.tuples(finite, finite))
    if kind == "choice":
        options = tuple(draw(st.lists(st.text(max_size=12), min_size=2, max_size=6)))
        answer = chr(65 + draw(st.integers(0, len(options) - 1)))
        return make_sample(answer=answer, options=options, evidence=evidence)
    answer = {
        "open": st.text(max_size=20),
        "number": finite,
        "span": st.tuples(finite, finite),
        "box": st.tuples(finite, finite, finite, finite),
    }[kind]
    value = draw(answer)
    assume(value != "")
    return make_sample(answer=value, answer_kind=kind, options=(), evidence=evidence, answer_time=1.0)


text_or_markup = st.one_of(
    st.text(max_size=200),
    st.builds(lambda a: f"<think>x</think><answer>{a}</answer>", st.text(max_size=40)),
    st.builds(lambda a, b, c: CROP.format(a, b) + f"\nuser\n<tool_response>ok</tool_response>\nassistant\n<answer>{c}</answer>",
              any_float, any_float, st.text(max_size=20)),
)


# -- every reward in its range -----------------------------------------------------------------

@given(samples(), text_or_markup, st.floats(0, 5))
def test_every_builtin_reward_stays_in_its_range(sample, text, lam):
    traj = trajectory_from_text(text)
    for name in BUILTINS:
        spec = get_reward(name)
        out = spec(sample, traj, **({"lam": lam} if name == "parsimony" else {"judge": False} if name == "accuracy" else {}))
        lo, hi = spec.range
        assert math.isfinite(out.value) and lo <= out.value <= hi, (name, out)


@given(samples(), text_or_markup, st.dictionaries(st.sampled_from(BUILTINS), st.floats(-3, 3), min_size=1))
def test_composite_is_the_weighted_sum_of_its_nonzero_terms(sample, text, weights):
    traj = trajectory_from_text(text)
    composite = make_reward({**weights, **({"accuracy": {"weight": weights["accuracy"], "judge": False}} if "accuracy" in weights else {})})
    total, components, _ = composite(sample, traj)
    assert set(components) == set(weights)  # zero-weight terms are reported too
    expected = sum(w * get_reward(n)(sample, traj, **composite.options[n]).value for n, w in weights.items() if w != 0)
    assert total == pytest.approx(expected)
    lo, hi = composite.range
    assert lo - 1e-9 <= total <= hi + 1e-9


def test_zero_weight_term_is_reported_not_summed():
    sample = make_sample(evidence=(2.0, 4.0))
    traj = answered("B", windows=[(2, 4)])
    total, components, _ = make_reward({"accuracy": 1.0, "crop_iou": 0.0})(sample, traj)
    assert components == {"accuracy": 1.0, "crop_iou": 1.0} and total == 1.0


# -- IoU properties ----------------------------------------------------------------------------

@given(st.tuples(any_float, any_float), st.tuples(any_float, any_float))
def test_interval_iou_symmetric_bounded_never_raises(a, b):
    v = interval_iou(a, b)
    assert 0.0 <= v <= 1.0 and v == interval_iou(b, a)


@given(finite, st.floats(1e-3, 1e6))
def test_interval_iou_identical_is_one(start, length):
    assert interval_iou((start, start + length), (start, start + length)) == 1.0


@given(finite, st.floats(0, 1e5), st.floats(0, 1e5), st.floats(0, 1e5))
def test_interval_iou_disjoint_is_zero(s, len_a, gap, len_b):
    assert interval_iou((s, s + len_a), (s + len_a + gap, s + len_a + gap + len_b)) == 0.0


@given(st.tuples(*[any_float] * 4), st.tuples(*[any_float] * 4))
def test_box_iou_symmetric_bounded_never_raises(a, b):
    v = box_iou(a, b)
    assert 0.0 <= v <= 1.0 and v == box_iou(b, a)


@given(finite, finite, st.floats(1e-3, 1e5), st.floats(1e-3, 1e5))
def test_box_iou_identical_is_one(x, y, w, h):
    box = (x, y, x + w, y + h)
    assert box_iou(box, box) == pytest.approx(1.0)
    assert box_iou(box, (x + w, y + h, x, y)) == pytest.approx(1.0)  # corner order does not matter


@given(finite, finite, st.floats(0, 1e4), st.floats(0, 1e4), st.floats(0, 1e4))
def test_box_iou_disjoint_is_zero(x, y, w, h, gap):
    assert box_iou((x, y, x + w, y + h), (x + w + gap, y, x + 2 * w + gap, y + h)) == 0.0


def test_iou_extremes_do_not_overflow_or_divide_by_zero():
    assert interval_iou((-1e308, 1e308), (-1e308, 1e308)) == 1.0
    assert box_iou((-1e308, -1e308, 1e308, 1e308), (0, 0, 1e308, 1e308)) == pytest.approx(0.25)
    assert box_iou((0, 0, 1e-300, 1e-300), (0, 0, 1e-300, 1e-300)) == pytest.approx(1.0)
    assert interval_iou((1, 1), (1, 1)) == 0.0 and box_iou((0, 0, 0, 5), (0, 0, 0, 5)) == 0.0


interval_lists = st.lists(st.tuples(any_float, any_float), max_size=5)


@given(interval_lists, interval_lists)
def test_intervals_iou_symmetric_bounded(a, b):
    v = intervals_iou(a, b)
    assert 0.0 <= v <= 1.0 and v == pytest.approx(intervals_iou(b, a))


@given(st.lists(st.tuples(finite, st.floats(1e-2, 1e4)), min_size=1, max_size=5))
def test_intervals_iou_identical_is_one_and_matches_single_interval(ivs):
    ivs = [(s, s + length) for s, length in ivs]
    assert intervals_iou(ivs, list(reversed(ivs))) == pytest.approx(1.0)
    assert intervals_iou(ivs[:1], ivs[1:2] or ivs[:1]) == pytest.approx(interval_iou(ivs[0], (ivs[1:2] or ivs[:1])[0]))


# -- accuracy rules ----------------------------------------------------------------------------

@given(st.integers(0, 5), st.sampled_from(["{}", "({})", "{}.", "{}: left", "The answer is {}", "Answer: ({})",
                                            "**{}**", "I choose option {}.", "{}) up", "[{}]"]))
def test_extract_choice_reads_common_letter_formats(i, template):
    letter = chr(65 + i)
    assert extract_choice(template.format(letter), 6) == letter


@pytest.mark.parametrize("text", ["a dog runs", "", "Z", "either (A) or (B)", "I think so", "42"])
def test_extract_choice_declines_unclear_text(text):
    assert extract_choice(text, 4) is None


HEDGES = ["(A) or (B)", "A. or B.", "A) or B)", "the answer is A or B", "The answer is (A) or (B)", "answer: A, B",
          "A: left. B: right", "A.B.C.D", "[A] [B]", "**A** or **B**", "A-B"]


@pytest.mark.parametrize("text", HEDGES)
def test_extract_choice_gives_no_credit_for_naming_two_options(text):
    assert extract_choice(text, 4) is None
    assert match_answer(make_sample(answer="A"), text)[0] == 0.0  # neither letter earns the reward


@given(st.sampled_from(HEDGES), st.permutations("ABCDEF"))
def test_extract_choice_hedging_between_any_two_letters_picks_none(template, letters):
    x, y = letters[:2]
    assert extract_choice(template.replace("A", "\0").replace("B", "\1").replace("\0", x).replace("\1", y), 6) is None


@pytest.mark.parametrize("text,letter", [("B: A man walks", "B"), ("The answer is (B).", "B"), ("(C) A dog runs", "C"),
                                         ("I think the answer is D", "D"), ("D. I am sure", "D")])
def test_extract_choice_an_article_or_pronoun_is_not_a_second_option(text, letter):
    assert extract_choice(text, 4) == letter


@given(st.text(max_size=100), st.integers(-3, 30))
def test_extract_choice_never_raises_and_is_valid(text, n):
    letter = extract_choice(text, n)
    assert letter is None or (0 <= ord(letter) - 65 < n)


def test_choice_accuracy_by_letter_or_option_text():
    sample = make_sample(options=("left", "right", "dark red", "red"), answer="B")
    assert match_answer(sample, "B. right") == (1.0, "letter")
    assert match_answer(sample, "It moves to the right.") == (1.0, "option_text")
    assert match_answer(sample, "A") == (0.0, "letter")
    assert match_answer(sample, "no idea") == (0.0, "unparsed")
    assert match_option_text("the dark red one", ("left", "right", "dark red", "red")) == "C"


@pytest.mark.parametrize("truth,pred,score,rule", [
    ("a red umbrella", "The red umbrella.", 1.0, "exact"),
    ("3", "three", 1.0, "numeric"),
    ("3", "4 cars", 0.0, "numeric"),
    ("2.5", "about 2.5", 1.0, "numeric"),
    ("walks into the kitchen", "walks in to kitchen", 1.0, "fuzzy"),
    ("a red umbrella", "umbrella", 0.0, "no_match"),
    ("walks into the kitchen", "sits on the sofa", 0.0, "no_match"),
    ("B", "the answer is B", 1.0, "letter"),
])
def test_open_answer_rules(truth, pred, score, rule):
    sample = make_sample(answer=truth, answer_kind="open", options=())
    assert match_answer(sample, pred) == (score, rule)


def test_number_span_box_rules():
    assert match_answer(make_sample(answer=3.0, answer_kind="number", options=()), "3") == (1.0, "numeric")
    span = make_sample(answer=(2.0, 4.0), answer_kind="span", options=())
    assert match_answer(span, "[2.1, 4.2]")[0] == 1.0 and match_answer(span, "from 0:05 to 0:09")[0] == 0.0
    assert parse_span("0:01:02.5 - 1:10") == (62.5, 70.0)


# -- grounding terms ---------------------------------------------------------------------------

def test_temporal_iou_of_answered_span():
    sample = make_sample(answer=(2.0, 4.0), answer_kind="span", options=())
    out = get_reward("temporal_iou")(sample, answered("[3, 5]"))
    assert out.value == pytest.approx(1 / 3) and out.metrics == {"applicable": True, "parsed": True}
    assert get_reward("temporal_iou")(sample, answered("soon")).value == 0.0
    assert get_reward("temporal_iou")(make_sample(), answered("[2, 4]")).metrics == {"applicable": False}


def test_crop_iou_merges_windows_against_evidence():
    sample = make_sample(evidence=(2.0, 6.0))
    crop = get_reward("crop_iou")
    assert crop(sample, answered("B", windows=[(2, 4), (3, 6)])).value == pytest.approx(1.0)
    assert crop(sample, answered("B", windows=[(0, 4)])).value == pytest.approx(2 / 6)
    assert crop(sample, answered("B", windows=[(7, 9)])).value == 0.0
    assert crop(sample, answered("B")).value == 0.0  # no crop
    assert crop(make_sample(evidence=None), answered("B", windows=[(2, 6)])).metrics["applicable"] is False
    failed = Trajectory(answer="B")
    failed.turns = answered("B", windows=[(2, 6)]).turns
    failed.turns[0].tools[0] = ToolRecord("crop_video", {}, ok=False, window=None)
    assert crop(sample, failed).value == 0.0  # a failed call covered nothing


def test_spatial_iou_against_box_at_answer_time():
    sample = make_sample(answer=(0.0, 0.0, 10.0, 10.0), answer_kind="box", options=(), answer_time=2.0)
    assert get_reward("spatial_iou")(sample, answered("[5, 0, 15, 10]")).value == pytest.approx(1 / 3)
    assert get_reward("spatial_iou")(sample, answered("(0,0,10,10)")).value == 1.0
    assert get_reward("spatial_iou")(sample, answered("left")).metrics["parsed"] is False


def test_format_and_parsimony():
    good = answered("B", windows=[(1, 2), (2, 3)])
    assert get_reward("format")(make_sample(), good).value == 1.0
    bad = trajectory_from_text("<answer>B</answer>")  # no <think>
    assert get_reward("format")(make_sample(), bad).value == 0.0
    assert get_reward("format")(make_sample(), trajectory_from_text("<think>x</think>")).value == 0.0
    assert get_reward("parsimony")(make_sample(), good).value == pytest.approx(0.8)
    assert get_reward("parsimony")(make_sample(), good, lam=0.6).value == 0.0
    assert make_reward({"parsimony": {"weight": 1.0, "lam": 0.25}})(make_sample(), good)[0] == pytest.approx(0.5)
    # No answer, no parsimony: a policy that never answers must not earn the parsimony share.
    unanswered = trajectory_from_text("<think>x</think>")
    assert get_reward("parsimony")(make_sample(), unanswered).value == 0.0
    assert make_reward("paper")(make_sample(), unanswered)[0] == 0.0


# -- registry and specs ------------------------------------------------------------------------

def test_presets():
    assert make_reward("paper").weights == {"accuracy": 0.8, "format": 0.15, "parsimony": 0.05}
    assert make_reward("paper_code").weights == {"accuracy": 0.8, "format": 0.2}
    assert set(PRESETS) >= {"paper", "paper_code"} and set(available_rewards()) >= set(BUILTINS)
    spec = make_reward({"preset": "paper", "accuracy": {"judge": False}, "crop_iou": 0.0})
    assert spec.weights == {"accuracy": 0.8, "format": 0.15, "parsimony": 0.05, "crop_iou": 0.0}
    assert spec.options["accuracy"] == {"judge": False}
    assert make_reward(spec.to_spec()).weights == spec.weights


def test_judge_auto_is_resolved_when_built_and_recorded_without_the_key(monkeypatch):
    assert make_reward("paper").to_spec()["accuracy"] == {"weight": 0.8, "judge": False}  # no endpoint set
    monkeypatch.setenv("VSEEK_JUDGE_BASE_URL", "http://judge.local/v1")
    monkeypatch.setenv("VSEEK_JUDGE_MODEL", "grader")
    monkeypatch.setenv("VSEEK_JUDGE_API_KEY", "sk-env-SECRET")
    built = make_reward("paper")
    monkeypatch.delenv("VSEEK_JUDGE_BASE_URL")  # later changes do not alter a built composite
    judge = built.to_spec()["accuracy"]["judge"]
    assert judge["base_url"] == "http://judge.local/v1" and judge["model"] == "grader"
    assert built.options["accuracy"]["judge"].api_key == "sk-env-SECRET"  # still used for the calls
    given = make_reward({"accuracy": {"weight": 1.0, "judge": {"base_url": "http://h/v1", "api_key": "sk-given-SECRET"}}})
    for text in (repr(built), str(built.to_spec()), repr(given), str(given.to_spec()), repr(given.options)):
        assert "SECRET" not in text
    monkeypatch.setenv("VSEEK_JUDGE_API_KEY", "sk-replay")
    assert make_reward(given.to_spec()).options["accuracy"]["judge"].api_key == "sk-replay"  # rebuilt: key from the env


@pytest.mark.parametrize("spec,error,match", [
    ("nope", KeyError, "unknown reward 'nope'"),
    ({"parsimony": {"weight": 1, "lambda": 0.2}}, TypeError, "options: lam"),
    ({"parsimony": {"weight": 1, "lam": -1}}, ValueError, "lam must be >= 0"),
    ({"accuracy": {"judge": False}}, ValueError, "give a 'weight'"),
    ({"accuracy": "heavy"}, TypeError, "must be a number"),
    ({"accuracy": {"weight": 1, "judge": {"base_url": "localhost"}}}, ValueError, "http"),
    ({"preset": "nope"}, KeyError, "unknown reward preset"),
    ({}, ValueError, "at least one term"),
    (3, TypeError, "preset name"),
])
def test_bad_specs_say_what_is_wrong(spec, error, match):
    with pytest.raises(error, match=match):
        make_reward(spec)


@pytest.fixture
def scratch_registry():
    from vseek_env.rewards import registry

    before = dict(registry._REGISTRY)
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(before)


def test_decorator_registration_and_range_check(scratch_registry):
    @register_reward("test_half", range=(0.0, 0.5))
    def half(sample, trajectory, *, value: float = 0.5):
        return RewardOutput(value, {"note": "x"})

    total, components, metrics = make_reward({"test_half": 2.0})(make_sample(), Trajectory())
    assert total == 1.0 and components == {"test_half": 0.5} and metrics == {"test_half/note": "x"}
    with pytest.raises(ValueError, match="returned 0.9 for sample 's0', outside its declared range"):
        make_reward({"test_half": {"weight": 1.0, "value": 0.9}})(make_sample(), Trajectory())
    with pytest.raises(ValueError, match="already registered"):
        register_reward("test_half")(lambda s, t: 0.0)
    with pytest.raises(ValueError, match="non-empty"):
        register_reward("preset")


def test_env_reports_every_component(small_dataset):
    env = gym.make("VideoSeeker-v0", dataset=small_dataset, reward={"preset": "paper_logged", "parsimony": {"lam": 0.5}})
    env.reset(seed=0, options={"sample_id": "s0"})
    env.step(CROP.format(2, 4))
    _, reward, terminated, _, info = env.step("<think>right</think><answer>B</answer>")
    comps = info["reward_components"]
    assert terminated and set(comps) == set(PRESETS["paper_logged"])
    assert comps["accuracy"] == 1.0 and comps["format"] == 1.0 and comps["parsimony"] == 0.5
    assert comps["crop_iou"] == pytest.approx(1.0)  # cropped exactly the evidence window (2, 4)
    assert reward == pytest.approx(0.8 + 0.15 + 0.05 * 0.5)
    assert info["reward_metrics"]["accuracy/rule"] == "letter"
    env.close()


@pytest.mark.parametrize("module", ["vseek_env.rewards.registry", "vseek_env.rewards.matching", "vseek_env.rewards.judge",
                                    "vseek_env.rewards.verl_score", "vseek_env.trajectory"])
def test_docstring_examples_hold(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
