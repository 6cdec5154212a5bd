"""`vseek bench --quick` runs end to end and writes the documented JSON (no timing asserts)."""

from __future__ import annotations

import json

from vseek_env.cli import main


def test_bench_quick_writes_the_documented_keys(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--repeats", "2", "--calls", "20", "--cache-mb", "8", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    for key in ("cold_speedup", "warm_speedup", "store_speedup", "step_overhead_ms", "rss_growth_mb", "cache_cap_mb"):
        assert isinstance(result[key], (int, float)) and not isinstance(result[key], bool), key
    assert result["cache_cap_mb"] == 8.0
    assert result["rss"]["calls"] == 20 and result["fd_growth"] == 0
    assert set(result["timings"]) == {"reference", "cold", "warm_overlap", "warm_same", "store"}
    assert all(t["n"] == 2 and t["median_ms"] > 0 for t in result["timings"].values())
    assert result["window"]["frames"] >= 4
    printed = capsys.readouterr().out
    assert "(b) crop_video cold" in printed and f"wrote {out}" in printed


def test_bench_long_reports_the_overview_against_decord(tmp_path, capsys):
    """``--long`` on a short generated video: documented keys, exact frames, a store that decodes nothing."""
    import pytest

    pytest.importorskip("decord")
    out = tmp_path / "long.json"
    assert main(["bench", "--long", "--long-only", "--long-seconds", "40", "--threads", "2", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    for key in ("long_overview_s", "long_overview_decord_s", "long_speedup", "long_frames_decoded_per_frame",
                "long_overview_tolerance_s", "long_overview_store_s"):
        assert isinstance(result[key], (int, float)) and result[key] > 0, key
    long = result["long"]
    assert long["frames"] == 40 and long["threads"] == 2  # 1 fps over 40 s
    assert long["exact"]["ours_exact"] and long["exact"]["decord_exact"] and long["exact"]["store_equal"]
    assert long["work"]["store"]["frames_decoded"] == 0
    assert long["tolerance_offsets_s"]["max"] <= long["tolerance_s"] + 1e-6
    assert long["work"]["tolerance"]["frames_decoded"] < long["work"]["ours"]["frames_decoded"]
    assert "frame store" in capsys.readouterr().out


def test_bench_step_only_reports_the_step_overhead(tmp_path, capsys):
    out = tmp_path / "step.json"
    assert main(["bench", "--quick", "--step-only", "--repeats", "4", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert isinstance(result["step_overhead_ms"], float) and result["step_overhead_ms"] > 0
    assert result["step"]["overhead"]["n"] == 20 and result["window"]["end"] > result["window"]["start"]
    assert "step_overhead_ms" in capsys.readouterr().out
