"""Training rows and exports as an attacker writes them: endpoints and keys never come from data.

A row's ``env_options`` may not decide where the LLM judge's requests (and the user's
``VSEEK_JUDGE_API_KEY``) go; ``vseek export-verl`` never writes a key into its Parquet or output.
"""

from __future__ import annotations

import json
import shutil

import pytest
from fake_openai import FakeOpenAIServer, Reply

from vseek_env.integrations.verl.rows import env_from_extra_info, make_rows, read_rows

USER_KEY = "sk-user-judge-key-0123456789"


@pytest.fixture
def servers(monkeypatch):
    """The user's own judge (configured in the environment) and an attacker's server."""
    with FakeOpenAIServer(lambda req: Reply.text("0")) as mine, FakeOpenAIServer(lambda req: Reply.text("1")) as evil:
        monkeypatch.setenv("VSEEK_JUDGE_BASE_URL", mine.base_url)
        monkeypatch.setenv("VSEEK_JUDGE_API_KEY", USER_KEY)
        yield mine, evil


def hostile_row(small_dataset, evil_url: str) -> dict:
    row = next(make_rows(small_dataset, env_options={"reward": {"accuracy": {"weight": 1.0, "judge": False}}}))
    judge = {"base_url": evil_url, "model": "m", "api_base": evil_url}
    row["extra_info"]["env_options"] = json.dumps(
        {"reward": {"accuracy": {"weight": 1.0, "judge": judge, "judge_kinds": ["choice"]}}})
    return row


def test_a_row_cannot_point_the_judge_and_the_users_key_elsewhere(small_dataset, servers):
    mine, evil = servers
    row = hostile_row(small_dataset, evil.base_url)
    with pytest.warns(UserWarning, match=r"ignored .*judge\.base_url"):
        env, sample_id = env_from_extra_info(row["extra_info"])
    try:
        env.reset(options={"sample_id": sample_id})
        env.step("<think>t</think><answer>D</answer>")  # wrong by the rule: goes to the judge
    finally:
        env.close()
    assert evil.requests == []
    assert len(mine.requests) == 1 and mine.requests[0]["_headers"]["Authorization"] == f"Bearer {USER_KEY}"


def test_the_verl_reward_hook_ignores_a_rows_judge_endpoint(small_dataset, servers):
    from vseek_env.integrations.verl.reward import compute_score

    mine, evil = servers
    row = hostile_row(small_dataset, evil.base_url)
    with pytest.warns(UserWarning, match="ignored"):
        compute_score(row["data_source"], "<think>t</think><answer>D</answer>", "B", row["extra_info"])
    assert evil.requests == [] and len(mine.requests) == 1


def test_export_verl_writes_no_secret_into_the_parquet_or_its_output(small_dataset, tmp_path, capsys, monkeypatch):
    from vseek_env.cli import main
    from vseek_env.data.datasets import write_samples

    write_samples(tmp_path / "samples.jsonl", small_dataset.samples[:1])
    shutil.copy(small_dataset.video_path(small_dataset.samples[0]), tmp_path / "indexed.mp4")
    monkeypatch.delenv("VSEEK_JUDGE_BASE_URL", raising=False)
    secret = "sk-export-secret-abcdef"
    options = {"max_turns": 4, "reward": {"accuracy": {"weight": 1.0, "judge": {
        "base_url": "http://127.0.0.1:9/v1", "model": "m", "api_key": secret}}}}
    out = tmp_path / "rows.parquet"
    with pytest.warns(UserWarning, match="api_key"):
        rc = main(["export-verl", str(tmp_path / "samples.jsonl"), str(out), "--env-options", json.dumps(options)])
    assert rc == 0
    printed = capsys.readouterr()
    assert secret not in printed.out + printed.err
    assert secret.encode() not in out.read_bytes()
    rows = read_rows(out)
    assert json.loads(rows[0]["extra_info"]["env_options"])["max_turns"] == 4
    assert all(secret not in json.dumps(r, default=str) for r in rows)


def test_export_verl_does_not_echo_unparseable_options(small_dataset, tmp_path, capsys):
    from vseek_env.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["export-verl", "synth:tiny", str(tmp_path / "x.parquet"), "--env-options", '{"api_key": "sk-typo-secret",'])
    assert "sk-typo-secret" not in str(exit_info.value)
