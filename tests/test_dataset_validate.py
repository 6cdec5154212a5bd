"""`vseek dataset validate FILE`: every problem with its line, without stopping at the first."""

from __future__ import annotations

import json

from conftest import make_sample
from hypothesis import given
from hypothesis import strategies as st

from vseek_env.cli import main
from vseek_env.data.sample import Sample, SampleError
from vseek_env.data.validate import validate_file


def write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def good_row(sample_id="s0", **kw):
    return make_sample(sample_id, **kw).to_dict()


def test_a_valid_file_has_no_problem(tmp_path, indexed_video, capsys):
    (tmp_path / "indexed.mp4").symlink_to(indexed_video)  # relative paths resolve against the file's folder
    path = write(tmp_path / "ok.jsonl", [good_row("a"), good_row("b")])
    assert validate_file(path) == []
    assert main(["dataset", "validate", str(path)]) == 0
    assert "valid" in capsys.readouterr().out


def test_every_problem_is_reported_with_its_line(tmp_path, indexed_video, capsys):
    (tmp_path / "indexed.mp4").symlink_to(indexed_video)  # 192x120, 6 s
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all")
    late = good_row("late")
    late["prompt"]["time"] = 30.0
    wide = good_row("wide")
    wide["prompt"]["box"] = [10, 10, 500, 50]
    other = good_row("other")
    other["prompt"]["others"] = [[0, 0, 50, 500]]
    rows = [
        good_row("fine"),                       # 1
        "{this is not json",                    # 2
        {"id": "q", "video": "indexed.mp4"},    # 3 missing question and answer
        late,                                   # 4 prompt time after the end
        wide,                                   # 5 box outside the frame
        good_row("gone", video="missing.mp4"),  # 6
        good_row("bad", video="broken.mp4"),    # 7
        good_row("fine"),                       # 8 duplicate id
        other,                                  # 9 an others box outside the frame
    ]
    path = write(tmp_path / "bad.jsonl", rows)
    problems = validate_file(path)
    by_line = {p.line: p.message for p in problems}
    assert sorted(by_line) == [2, 3, 4, 5, 6, 7, 8, 9]
    assert "JSON" in by_line[2]
    assert "question" in by_line[3] and "answer" in by_line[3]
    assert "prompt.time 30" in by_line[4] and "outside the video" in by_line[4]
    assert "prompt.box" in by_line[5] and "192x120" in by_line[5]
    assert "missing.mp4" in by_line[6] and "no such file" in by_line[6]
    assert "broken.mp4" in by_line[7] and "does not open" in by_line[7]
    assert "duplicate id" in by_line[8] and "line 1" in by_line[8]
    assert "prompt.others[0]" in by_line[9]
    assert all(str(p).startswith(f"{path}:{p.line}: ") for p in problems)
    assert main(["dataset", "validate", str(path)]) == 1
    out = capsys.readouterr()
    assert out.out.count(str(path) + ":") == len(problems)


def test_fast_mode_and_missing_file(tmp_path, indexed_video):
    (tmp_path / "indexed.mp4").symlink_to(indexed_video)
    late = good_row("late")
    late["prompt"]["time"] = 30.0
    path = write(tmp_path / "d.jsonl", [late])
    assert validate_file(path, open_videos=False) == []  # no decoding: duration unknown
    assert [p.line for p in validate_file(path)] == [1]
    assert "no such file" in str(validate_file(tmp_path / "nope.jsonl")[0])


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=3),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=2), inner, max_size=3),
                           max_leaves=12)


@given(others=json_values)
def test_any_prompt_others_value_is_a_valid_list_of_boxes_or_a_sample_error(others):
    row = good_row("p")
    row["prompt"]["others"] = others
    try:
        sample = Sample.from_dict(row)
    except SampleError as exc:
        assert "'p'" in str(exc)
        return
    assert all(len(b) == 4 for b in sample.prompt.others)
