"""Broken dataset files: every fault is a SampleError (or a clear OS error) naming the file and line/row or sample."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vseek_env.data import Sample, SampleError, load_dataset

GOOD = {"id": "g1", "video": "v.mp4", "question": "Which colour?", "answer": "A", "options": ["red", "blue"]}


def write_jsonl(path: Path, lines: list) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "bad_row,fragments",
    [
        ({k: v for k, v in GOOD.items() if k != "question"} | {"id": "q2"}, ["'q2'", "missing", "question"]),
        ({k: v for k, v in GOOD.items() if k != "id"}, ["missing", "id"]),
        ({**GOOD, "id": "q3", "answer": ""}, ["'q3'", "answer"]),
        ({**GOOD, "id": "q4", "answer_kind": 5}, ["'q4'", "answer_kind"]),
        ({**GOOD, "id": "q5", "answer_kind": "span", "options": [], "answer": "early"}, ["'q5'"]),
        ({**GOOD, "id": "q6", "evidence": "ab"}, ["'q6'"]),
        ({**GOOD, "id": "q7", "options": 5}, ["'q7'"]),
        ({**GOOD, "id": "q8", "answer": "Z"}, ["'q8'", "option letters"]),
        ({**GOOD, "id": "q9", "colour": "red", "frame": 3}, ["'q9'", "unknown field", "colour", "frame"]),
        ({**GOOD, "id": "q11", "prompt": {"shape": "box"}}, ["'q11'", "shape"]),
        ({**GOOD, "id": "q12", "track": {"times": ["x"]}}, ["'q12'"]),
        ([GOOD], ["JSON object", "list"]),
        (None, ["JSON object"]),
    ],
    ids=["missing_question", "missing_id", "empty_answer", "answer_kind_int", "span_not_numbers", "evidence_str",
         "options_int", "answer_not_a_letter", "unknown_fields", "unknown_prompt_key",
         "track_time_str", "row_is_array", "row_is_null"],
)
def test_bad_jsonl_row_names_file_line_and_sample(tmp_path, bad_row, fragments):
    path = write_jsonl(tmp_path / "data.jsonl", [GOOD, "", bad_row])
    with pytest.raises(SampleError) as err:
        load_dataset(path)
    message = str(err.value)
    assert f"{path}:3:" in message, message  # blank lines still count
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize("text", ['{"id": "x", "video": ', "not json", '{"id": "x"} trailing', "{'id': 'x'}"],
                         ids=["truncated", "not_json", "trailing_garbage", "single_quotes"])
def test_bad_json_line_names_file_and_line(tmp_path, text):
    path = write_jsonl(tmp_path / "data.jsonl", [GOOD, text])
    with pytest.raises(SampleError, match=rf"{path}:2: not valid JSON"):
        load_dataset(path)


def test_truncated_last_line_without_newline(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps({**GOOD, "id": "g2"})[:-7], encoding="utf-8")
    with pytest.raises(SampleError, match=rf"{path}:2:"):
        load_dataset(path)


def test_duplicate_ids_name_the_sample(tmp_path):
    path = write_jsonl(tmp_path / "dups.jsonl", [GOOD, {**GOOD, "id": "g2"}, GOOD])
    with pytest.raises(SampleError, match=r"duplicate sample id 'g1'") as err:
        load_dataset(path)
    assert "dups" in str(err.value)


@pytest.mark.parametrize("suffix", [".json", ".parquet"])
def test_bad_row_in_json_array_and_parquet_names_file_and_row(tmp_path, suffix):
    rows = [GOOD, {**GOOD, "id": "p2", "answer": "Q"}]
    path = tmp_path / f"data{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(rows), encoding="utf-8")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    with pytest.raises(SampleError, match=rf"{path} row 1: sample 'p2'"):
        load_dataset(path)


def test_json_that_is_not_an_array(tmp_path):
    path = tmp_path / "data.json"
    path.write_text(json.dumps(GOOD), encoding="utf-8")
    with pytest.raises(SampleError, match=rf"{path}: a .json dataset must be an array"):
        load_dataset(path)


def test_missing_file_and_unknown_format_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_dataset(tmp_path / "nope.jsonl")
    path = tmp_path / "data.csv"
    path.write_text("id,video\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"{path}: unknown dataset format '.csv'"):
        load_dataset(path)


def test_good_rows_load(tmp_path):
    path = write_jsonl(tmp_path / "data.jsonl", [GOOD, "   ", {**GOOD, "id": "g2"}])
    assert [s.id for s in load_dataset(path).samples] == ["g1", "g2"]


@pytest.mark.parametrize("content", ["", "\n\n  \n"], ids=["empty", "blank_lines"])
def test_empty_file_names_the_file(tmp_path, content):
    path = tmp_path / "empty.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SampleError, match=str(path)):
        load_dataset(path)


@pytest.mark.parametrize("case", ["json_syntax", "json_row_not_object", "parquet_nested_text", "jsonl_not_utf8"])
def test_undecodable_files_name_the_file(tmp_path, case):
    if case == "json_syntax":
        path = tmp_path / "data.json"
        path.write_text('[{"id": "a",', encoding="utf-8")
    elif case == "json_row_not_object":
        path = tmp_path / "data.json"
        path.write_text(json.dumps([GOOD, "oops"]), encoding="utf-8")
    elif case == "parquet_nested_text":
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = tmp_path / "data.parquet"
        pq.write_table(pa.Table.from_pylist([{**GOOD, "prompt": "{not json"}]), path)
    else:
        path = tmp_path / "data.jsonl"
        path.write_bytes(json.dumps(GOOD).encode() + b"\n" + b'{"id": "\xff\xfe"}\n')
    with pytest.raises(SampleError, match=str(path)):
        load_dataset(path)


@pytest.mark.parametrize("field,value", [("prompt", {"box": [1, 2]}), ("prompt", {"box": [0, 0, "nan", 4]}),
                                         ("track", {"times": [0.0], "boxes": [[1, 2, 3]]})])
def test_malformed_boxes_name_the_sample(tmp_path, field, value):
    path = write_jsonl(tmp_path / "data.jsonl", [{**GOOD, field: value}])
    with pytest.raises(SampleError, match=rf"{path}:1: sample 'g1'"):
        load_dataset(path)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"prompt": {"time": "abc", "style": "rectangle"}}, "prompt.time"),
        ({"prompt": {"time": 1.0, "style": "hexagon"}}, "prompt.style"),
        ({"prompt": {"time": 1.0, "seed": "x"}}, "prompt.seed"),
        ({"prompt": {"time": 1.0, "label": None}}, "prompt.label"),
        ({"track": {"times": [2.0, 1.0], "boxes": [[0, 0, 1, 1], [0, 0, 1, 1]]}}, "sorted"),
        ({"answer_time": "soon"}, "answer_time"),
        ({"duration": float("nan")}, "duration"),
        ({"needs_tools": "maybe"}, "needs_tools"),
        ({"answer_kind": "number", "answer": "lots", "options": []}, "number"),
    ],
)
def test_bad_field_values_are_rejected_naming_the_sample(change, match):
    """Values that would only fail later, inside reset(), are refused when the row is read."""
    row = {"id": "bad-1", "video": "v.mp4", "question": "q?", "answer": "A", "options": ["x", "y"], **change}
    with pytest.raises(SampleError, match=match) as err:
        Sample.from_dict(row)
    assert "bad-1" in str(err.value)
