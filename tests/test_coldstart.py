"""Cold-start data (``vseek_env.coldstart``): rollouts -> rejection sampling -> SFT export -> pass@k -> RL rows."""

from __future__ import annotations

import json
import shutil
import sys
import types
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vseek_env.cli import main
from vseek_env.coldstart import (
    Criteria,
    export_selection,
    export_sft,
    format_passk_table,
    rejection_sample,
    run_rollouts,
    select_band,
    select_trajectories,
    validate_sharegpt,
    verify_export,
)
from vseek_env.coldstart.mixture import MixturePolicy
from vseek_env.coldstart.passk import pass_at_k
from vseek_env.coldstart.rollouts import RolloutSet
from vseek_env.policies.oracle import OraclePolicy
from vseek_env.coldstart.rejection import REASONS, rejection_reason

pytest.importorskip("pyarrow")
MIX = {"policies": {"oracle": 0.5, "random": 0.5}}
SECRET = "sk-coldstart-SECRET-42"


class KeyedOracle(OraclePolicy):
    """The oracle with an ``api_key`` argument, as a hosted teacher would have."""

    def __init__(self, api_key: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.api_key = api_key


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """oracle/random mixture, 4 rollouts per synth:tiny sample: a spread of pass rates."""
    out = tmp_path_factory.mktemp("mixed")
    return run_rollouts("vseek_env.coldstart.mixture:MixturePolicy", "synth:tiny", out, k=4, policy_args=MIX,
                        workers=2, progress=False)


@pytest.fixture(scope="module")
def pixel(tmp_path_factory):
    """The pixel policy on one sample: several tool calls per response."""
    out = tmp_path_factory.mktemp("pixel")
    return run_rollouts("pixel", "synth:tiny", out, k=1, limit=1, workers=1, progress=False)


@pytest.fixture(scope="module")
def exports(mixed, pixel, tmp_path_factory):
    out = tmp_path_factory.mktemp("sft")
    paths = {}
    for name, rs in (("mixed", mixed), ("pixel", pixel)):
        kept, _ = rejection_sample(rs.records)
        chosen = select_trajectories(kept)
        paths[name, "verl"] = export_sft(rs, chosen, out / name / "train.parquet", fmt="verl")
        paths[name, "split"] = export_sft(rs, chosen, out / name / "split.parquet", fmt="verl", merge_tools=False)
        paths[name, "sharegpt"] = export_sft(rs, chosen, out / name / "lf" / "train.json", fmt="sharegpt")
        paths[name, "n"] = len(chosen)
    return paths


def _image_refs(record: dict) -> list[str]:
    return [p["image"] for m in record["conversation"] for p in m["content"] if p["type"] == "image"]


# ------------------------------------------------------------------------------------------- rollouts
def test_rollouts_store_conversations_and_each_frame_once(mixed):
    assert len(mixed.records) == 6 * 4 and mixed.k == 4
    refs = [ref for r in mixed.records for ref in _image_refs(r)]
    files = {str(p.relative_to(mixed.root)) for p in (mixed.root / "frames").rglob("*") if p.is_file()}
    assert set(refs) == files  # every frame a trajectory saw is on disk, nothing else is
    assert len(refs) > len(files)  # repeats of a sample share their frames instead of copying them
    for r in mixed.records:
        roles = [m["role"] for m in r["conversation"]]
        assert roles[:2] == ["system", "user"] and roles.count("assistant") == r["num_turns"]
        tool_msgs = [m for m in r["conversation"] if m["role"] == "tool"]
        assert [m["name"] for m in tool_msgs] == [t["name"] for turn in r["turns"] for t in turn["tool_results"]]
        assert set(r["components"]) >= {"accuracy", "format"}


def test_rollouts_resume_without_replaying_finished_episodes(mixed, tmp_path):
    out = tmp_path / "ro"
    shutil.copytree(mixed.root, out)
    lines = (out / "results.jsonl").read_text().count("\n")
    again = run_rollouts("vseek_env.coldstart.mixture:MixturePolicy", "synth:tiny", out, k=4, policy_args=MIX,
                         workers=1, progress=False)
    assert (out / "results.jsonl").read_text().count("\n") == lines and len(again.records) == 24
    more = run_rollouts("vseek_env.coldstart.mixture:MixturePolicy", "synth:tiny", out, k=5, policy_args=MIX,
                        workers=1, progress=False)
    assert (out / "results.jsonl").read_text().count("\n") == lines + 6 and more.k == 5


# ---------------------------------------------------------------------------------------- rejection
@given(acc=st.sampled_from([0.0, 0.5, 1.0]), fmt=st.sampled_from([0.0, 1.0]), calls=st.integers(0, 6),
       errors=st.integers(0, 3), status=st.sampled_from(["ok", "error"]), lo=st.integers(0, 3),
       hi=st.one_of(st.none(), st.integers(3, 6)), no_errors=st.booleans())
def test_rejection_keeps_exactly_the_correct_well_formed_filtered(acc, fmt, calls, errors, status, lo, hi, no_errors):
    record = {"status": status, "components": {"accuracy": acc, "format": fmt}, "num_tool_calls": calls,
              "num_errors": errors, "sample_id": "s", "dimension": "OA"}
    crit = Criteria(min_tools=lo, max_tools=hi, no_errors=no_errors)
    keep = (status == "ok" and acc == 1.0 and fmt == 1.0 and calls >= lo and (hi is None or calls <= hi)
            and not (no_errors and errors))
    assert (rejection_reason(record, crit) is None) == keep
    kept, stats = rejection_sample([record], crit)
    assert len(kept) == keep and stats["overall"]["kept"] == keep


def test_rejection_stats_per_dimension_add_up(mixed):
    kept, stats = rejection_sample(mixed.records, Criteria(min_tools=1))
    assert all(r["correct"] and r["num_tool_calls"] >= 1 for r in kept)
    overall = stats["overall"]
    assert overall["n"] == 24 and overall["kept"] == len(kept) == sum(d["kept"] for d in stats["per_dimension"].values())
    assert overall["kept"] + sum(overall[r] for r in REASONS) == overall["n"]
    assert overall["wrong"] == sum(not r["correct"] for r in mixed.records)
    assert 0 < overall["keep_rate"] < 1


def test_format_is_recomputed_when_the_reward_does_not_log_it():
    good = {"status": "ok", "components": {"accuracy": 1.0}, "terminated": True, "num_tool_calls": 0,
            "turns": [{"response": None}, {"response": "<think>x</think><answer>A</answer>"}]}
    bad = {**good, "turns": [{"response": None}, {"response": "A"}]}
    assert rejection_reason(good, Criteria()) is None and rejection_reason(bad, Criteria()) == "format"


# ------------------------------------------------------------------------------------------- export
@pytest.mark.parametrize("which", ["mixed", "pixel"])
@pytest.mark.parametrize("fmt", ["verl", "split", "sharegpt"])
def test_every_exported_conversation_replays_through_the_env(exports, which, fmt):
    report = verify_export(exports[which, fmt], "sharegpt" if fmt == "sharegpt" else fmt.replace("split", "verl"))
    assert report.mismatches == [] and report.checked == exports[which, "n"] > 0


def test_pixel_export_merges_the_tool_results_of_one_response(exports, pixel):
    from vseek_env.integrations.verl.rows import read_rows

    (row,) = read_rows(exports["pixel", "verl"])
    (split,) = read_rows(exports["pixel", "split"])
    record = pixel.records[0]
    per_turn = [len(t["tool_results"]) for t in record["turns"] if t["response"] is not None]
    assert max(per_turn) > 1
    assert sum(m["role"] == "tool" for m in split["messages"]) == sum(per_turn)
    assert sum(m["role"] == "tool" for m in row["messages"]) == sum(1 for n in per_turn if n)
    assert len(row["images"]) == len(split["images"]) == len(_image_refs(record))


def test_replay_catches_a_tampered_tool_response_or_frame(exports, tmp_path):
    src = exports["pixel", "sharegpt"]
    (entry,) = json.loads(src.read_text())
    entry["images"] = [str((src.parent / p).resolve()) for p in entry["images"]]
    text = json.loads(json.dumps(entry))
    obs = next(m for m in text["conversations"] if m["from"] == "observation")
    obs["value"] = obs["value"].replace(" seconds>", " seconds> ", 1)
    frame = json.loads(json.dumps(entry))
    first = frame["conversations"][0]["value"].count("<image>")  # the first tool frame follows the opening ones
    frame["images"][first], frame["images"][first + 1] = frame["images"][first + 1], frame["images"][first]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([entry, text, frame]))
    report = verify_export(bad, "sharegpt")
    assert report.checked == 3 and len(report.mismatches) == 2
    assert "messages differ" in report.mismatches[0] and "differs from the frame" in report.mismatches[1]


def test_sharegpt_follows_llama_factory_schema(exports):
    path = exports["pixel", "sharegpt"]
    entries = json.loads(path.read_text())
    assert validate_sharegpt(entries, path.parent) == []
    info = json.loads((path.parent / "dataset_info.json").read_text())
    assert info["vseek_coldstart"] == {"file_name": "train.json", "formatting": "sharegpt",
                                       "columns": {"messages": "conversations", "system": "system", "images": "images"}}
    entry = entries[0]
    tags = [m["from"] for m in entry["conversations"]]
    assert tags[0] == "human" and tags[-1] == "gpt" and "observation" in tags
    assert all(not Path(p).is_absolute() for p in entry["images"])


@pytest.mark.parametrize("mutate, problem", [
    (lambda e: e["conversations"].pop(), "odd number"),
    (lambda e: e["conversations"].insert(1, {"from": "human", "value": "x"}), "expected one of"),
    (lambda e: e["images"].pop(), "placeholders"),
    (lambda e: e["conversations"][1].update(tag="x"), "exactly"),
    (lambda e: e.update(system=["s"]), "must be a string"),
    (lambda e: e["conversations"].__setitem__(1, {"from": "function_call", "value": "{bad"}), "function_call"),
])
def test_sharegpt_schema_check_rejects_broken_entries(exports, mutate, problem):
    entry = json.loads(exports["mixed", "sharegpt"].read_text())[0]
    mutate(entry)
    problems = validate_sharegpt([entry])
    assert problems and problem in " ".join(problems)


@pytest.fixture
def fetch_image_stand_in(monkeypatch):
    """verl's image loader imports qwen_vl_utils, which needs torchvision (absent here); this stand-in
    opens local paths the way qwen_vl_utils.fetch_image does for a plain path."""
    from PIL import Image

    mod = types.ModuleType("qwen_vl_utils")
    mod.fetch_image = lambda ele, image_patch_size=14: Image.open(ele["image"]).convert("RGB")
    monkeypatch.setitem(sys.modules, "qwen_vl_utils", mod)


@pytest.mark.parametrize("which", ["mixed", "pixel"])
def test_verl_multiturn_sft_dataset_loads_the_export(exports, which, fetch_image_stand_in):
    pytest.importorskip("verl")
    from omegaconf import OmegaConf
    from tiny_vlm import build_tiny_processor, image_pad_id
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    from vseek_env.integrations.verl.rows import read_rows

    processor = build_tiny_processor("qwen2_5_vl")
    config = OmegaConf.create({"max_length": 65536, "truncation": "error", "pad_mode": "no_padding"})
    dataset = MultiTurnSFTDataset(str(exports[which, "verl"]), processor.tokenizer, config, processor=processor)
    rows = read_rows(exports[which, "verl"])
    assert len(dataset) == len(rows)
    item = dataset[len(rows) - 1]  # verl's own check: per-message tokens == whole-conversation tokens
    grid = item["multi_modal_inputs"]["image_grid_thw"]
    assert grid.shape[0] == len(rows[-1]["images"])
    assert int((item["input_ids"] == image_pad_id(processor)).sum()) == int(grid.prod(-1).sum()) // 4
    text = processor.tokenizer.decode(item["input_ids"][item["loss_mask"].bool()])
    answers = [m["content"] for m in rows[-1]["messages"] if m["role"] == "assistant"]
    assert all(a in text for a in answers) and "<tool_response>" not in text


# -------------------------------------------------------------------------------------------- pass@k
def test_passk_selects_the_band_and_exports_rl_rows(mixed, tmp_path):
    from vseek_env.integrations.verl.rows import read_rows

    per_sample: dict[str, list[bool]] = {}
    for r in mixed.records:
        per_sample.setdefault(r["sample_id"], []).append(bool(r["correct"]))
    low, high = 0.3, 0.8
    expected = {sid for sid, c in per_sample.items() if low <= sum(c) / len(c) <= high}
    sel = select_band(mixed, low, high)
    assert set(sel.sample_ids) == expected and 0 < len(expected) < len(per_sample)  # a nontrivial band
    assert sum(sel.stats["histogram"].values()) == sel.stats["samples"] == len(per_sample)
    assert sum(d["selected"] for d in sel.stats["per_dimension"].values()) == len(expected)
    rows = read_rows(export_selection(mixed, sel, tmp_path / "rl.parquet"))
    assert [r["extra_info"]["sample_id"] for r in rows] == sel.sample_ids
    with pytest.raises(ValueError, match="widen the band"):
        export_selection(mixed, select_band(mixed, 0.99, 0.99), tmp_path / "none.parquet")


def _record(sid: str, correct: bool, status: str = "ok") -> dict:
    return {"key": f"{sid}#x", "sample_id": sid, "status": status, "dimension": "OD",
            "components": {"accuracy": float(correct)} if status == "ok" else {}}


def test_passk_is_the_unbiased_estimator_over_finished_rollouts(tmp_path):
    records = ([_record("a", i == 0) for i in range(4)] + [_record("b", False) for _ in range(4)]
               + [_record("c", True) for _ in range(3)] + [_record("c", False, "error") for _ in range(2)])
    rs = RolloutSet(root=tmp_path, run={"dataset": "synth:tiny"}, records=records)
    assert rs.k == 4  # errored episodes do not count
    sel = select_band(rs, 0.1, 0.9)
    st_ = sel.stats
    # a: 1 of 4 right, so any 4 tries include it (pass@4 = 1); b: never; c has only 3 finished rollouts.
    assert (st_["k"], st_["pass_at_k"], st_["pass_at_k_samples"], st_["samples_below_k"]) == (4, 0.5, 2, ["c"])
    assert sel.rates == {"a": 0.25, "b": 0.0, "c": 1.0} and sel.sample_ids == ["a"] and st_["errored_episodes"] == 2
    assert st_["mean_success_rate"] == pytest.approx(1.25 / 3)
    assert "pass@4 0.500" in format_passk_table(st_) and "1 with fewer than 4" in format_passk_table(st_)


@given(st.integers(1, 8).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_pass_at_k_is_the_chance_that_k_of_the_n_tries_include_a_correct_one(nck):
    from itertools import combinations

    n, c, k = nck
    outcomes = [True] * c + [False] * (n - c)
    subsets = list(combinations(outcomes, k))
    assert pass_at_k(n, c, k) == pytest.approx(sum(any(s) for s in subsets) / len(subsets))


def test_keys_never_reach_the_rollout_folder_or_any_export(tmp_path, monkeypatch):
    from vseek_env.integrations.verl.rows import read_rows

    monkeypatch.delenv("VSEEK_JUDGE_API_KEY", raising=False)
    judge = {"base_url": "http://127.0.0.1:9/v1", "api_key": SECRET, "retries": 0, "timeout_s": 0.5}
    rs = run_rollouts("test_coldstart:KeyedOracle", "synth:tiny", tmp_path / "ro", k=1, limit=2,
                      policy_args={"api_key": SECRET}, env_args={"reward": {"preset": "paper", "accuracy": {"judge": judge}}},
                      workers=1, progress=False)
    kept, _ = rejection_sample(rs.records)
    verl = export_sft(rs, kept, tmp_path / "sft" / "train.parquet", fmt="verl")
    lf = export_sft(rs, kept, tmp_path / "lf" / "train.json", fmt="sharegpt")
    rl = export_selection(rs, select_band(rs, 0.0, 1.0), tmp_path / "rl.parquet")
    files = [rs.root / "run.json", rs.root / "results.jsonl", rs.root / "report.html", lf]
    texts = [f.read_text() for f in files] + [json.dumps(read_rows(p), default=str) for p in (verl, rl)]
    assert kept and all(SECRET not in t for t in texts)
    assert all(SECRET.encode() not in p.read_bytes() for p in (verl, rl))
    assert all("127.0.0.1:9" not in t for t in texts[-2:])  # nor the endpoint: rows may not choose one
    monkeypatch.setenv("VSEEK_JUDGE_API_KEY", "sk-from-env")  # how a replay gets the key and endpoint back
    monkeypatch.setenv("VSEEK_JUDGE_BASE_URL", judge["base_url"])
    assert verify_export(verl, "verl").ok


def test_verify_takes_a_dataset_override_and_fails_clearly_without_it(exports, tmp_path, capsys):
    from vseek_env.integrations.verl.rows import read_rows, write_parquet

    rows = read_rows(exports["mixed", "verl"])[:2]
    for row in rows:
        row["extra_info"]["dataset"] = "synth:moved-away"
    moved = write_parquet(rows, tmp_path / "moved.parquet")
    assert main(["rollouts", "verify", str(moved), "--format", "verl"]) == 2
    err = capsys.readouterr().err
    assert "synth:moved-away" in err and "--dataset" in err and "Traceback" not in err
    assert main(["rollouts", "verify", str(moved), "--format", "verl", "--dataset", "synth:tiny"]) == 0
    assert verify_export(moved, "verl", dataset="synth:tiny").checked == 2


# ------------------------------------------------------------------------------------ policy and CLI
def test_mixture_policy_draws_by_episode_seed_and_checks_weights():
    policy = MixturePolicy({"oracle": 1.0, "random": 1.0})
    draws = []
    for seed in range(40):
        policy.reset(seed)
        draws.append(policy.current)
        policy.reset(seed)
        assert policy.current == draws[-1]
    assert set(draws) == {"oracle", "random"}
    with pytest.raises(ValueError, match="weights"):
        MixturePolicy({"oracle": -1.0})
    with pytest.raises(ValueError, match="not in policies"):
        MixturePolicy({"oracle": 1.0}, policy_args={"pixel": {}})


def test_cli_end_to_end_sequence(tmp_path, capsys):
    ro, out = tmp_path / "ro", tmp_path / "out"
    assert main(["rollouts", "run", "--policy", "mixture", "--policy-arg", 'policies={"oracle": 0.7, "random": 0.3}',
                 "--dataset", "synth:tiny", "--k", "3", "--out", str(ro), "--workers", "2", "--no-progress"]) == 0
    assert main(["rollouts", "filter", str(ro), "--min-tools", "1", "--out", str(tmp_path / "keep.json")]) == 0
    assert json.loads((tmp_path / "keep.json").read_text())["criteria"]["min_tools"] == 1
    assert main(["rollouts", "export-sft", str(ro), "--format", "verl", "--out", str(out / "sft.parquet"), "--min-tools", "1"]) == 0
    assert main(["rollouts", "export-sft", str(ro), "--format", "sharegpt", "--out", str(out / "lf" / "d.json")]) == 0
    assert main(["rollouts", "verify", str(out / "sft.parquet"), "--format", "verl"]) == 0
    assert main(["rollouts", "select", str(ro), "--band", "0.1", "0.9", "--out", str(out / "rl.parquet")]) == 0
    stats = json.loads((out / "rl.parquet.passk.json").read_text())
    assert stats["selected"] == len(stats["sample_ids"]) and "histogram" in stats and len(stats["success_rates"]) == stats["samples"]
    printed = capsys.readouterr().out
    assert "keep_rate" not in printed and "rate" in printed and "verified" in printed
    assert main(["rollouts", "filter", str(tmp_path / "nothing")]) == 2
    assert "not a rollout folder" in capsys.readouterr().err
