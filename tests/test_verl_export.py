"""``vseek export-verl``: Parquet rows in verl's format that verl's ``RLHFDataset`` loads."""

from __future__ import annotations

import json

import pytest

from vseek_env.cli import main
from vseek_env.data import Sample
from vseek_env.integrations.verl.rows import ROW_KEYS, env_from_extra_info, export_verl, read_rows

pa = pytest.importorskip("pyarrow")

try:
    from verl.utils.dataset.rl_dataset import RLHFDataset
except ImportError:  # the export itself needs no verl; only the RLHFDataset checks do
    RLHFDataset = None

if RLHFDataset is not None:

    class PILDataset(RLHFDataset):
        """qwen_vl_utils (verl's default image path) needs torchvision, which this CPU box lacks:
        take the PIL images straight from the messages, as ``data.custom_cls`` would."""

        @classmethod
        def _process_multi_modal_info(cls, messages, image_patch_size, config):
            images = [p["image"] for m in messages if isinstance(m["content"], list) for p in m["content"]
                      if p.get("type") == "image"]
            return images or None, None, None


needs_verl = pytest.mark.skipif(RLHFDataset is None, reason="needs the verl extra: pip install 'vseek-env[verl]'")


@pytest.fixture(scope="module")
def exported(small_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("verl")
    plain = export_verl(small_dataset, out / "train.parquet", split="train", env_options={"overview_frames": 3})
    with_images = export_verl(small_dataset, out / "img.parquet", env_options={"overview_frames": 3}, embed_images=True)
    return plain, with_images


def test_rows_have_the_same_keys_and_rebuild_their_samples(exported, small_dataset):
    rows = read_rows(exported[0])
    assert [r["extra_info"]["sample_id"] for r in rows] == [s.id for s in small_dataset.samples]
    for index, (row, sample) in enumerate(zip(rows, small_dataset.samples)):
        assert set(row) == set(ROW_KEYS)
        assert set(row["extra_info"]) == set(rows[0]["extra_info"])
        assert row["agent_name"] == "vseek_agent" and row["extra_info"]["index"] == index
        assert Sample.from_dict(json.loads(row["extra_info"]["sample"])) == sample
        assert row["prompt"][0]["role"] == "system" and sample.question in row["prompt"][1]["content"]
        assert "<image>" not in row["prompt"][1]["content"] and "seconds>" not in row["prompt"][1]["content"]
        gt = row["reward_model"]["ground_truth"]
        assert gt == sample.answer if isinstance(sample.answer, str) else json.loads(gt) == list(sample.answer)
        kwargs = row["extra_info"]["tools_kwargs"]
        assert sorted(kwargs) == ["crop_video", "view_visual_prompt"]
        env, sample_id = env_from_extra_info(kwargs["crop_video"]["create_kwargs"])
        assert sample_id == sample.id and env.config.overview_frames == 3
        env.close()


def test_embedded_images_pair_up_with_placeholders(exported):
    for row in read_rows(exported[1]):
        assert row["prompt"][1]["content"].count("<image>") == len(row["images"]) == 3 + 1
        assert all(cell["bytes"].startswith(b"\x89PNG") for cell in row["images"])


@needs_verl
@pytest.mark.parametrize("which", [0, 1])
def test_rlhf_dataset_loads_the_rows(exported, which, tmp_path):
    from omegaconf import OmegaConf
    from tiny_vlm import build_tiny_processor

    processor = build_tiny_processor("qwen2_5_vl")
    config = OmegaConf.create({"max_prompt_length": 8192, "filter_overlong_prompts": True, "cache_dir": str(tmp_path)})
    dataset = PILDataset(data_files=[str(exported[which])], tokenizer=processor.tokenizer, config=config, processor=processor)
    assert len(dataset) == 3  # none filtered as overlong
    item = dataset[1]
    assert item["index"] == 1 and item["agent_name"] == "vseek_agent"
    assert set(item["tools_kwargs"]) == {"crop_video", "view_visual_prompt"}
    assert item["reward_model"]["ground_truth"] == "A"
    images = [p for m in item["raw_prompt"] if isinstance(m["content"], list) for p in m["content"] if p["type"] == "image"]
    assert len(images) == (4 if which else 0)


def test_cli_writes_rows_and_tool_config(small_dataset, tmp_path, capsys):
    from vseek_env.data.datasets import write_samples

    write_samples(tmp_path / "samples.jsonl", small_dataset.samples)
    (tmp_path / "indexed.mp4").symlink_to(small_dataset.video_path(small_dataset.samples[0]))
    out = tmp_path / "out" / "val.parquet"
    rc = main(["export-verl", str(tmp_path / "samples.jsonl"), str(out), "--split", "val",
               "--env-options", '{"overview_frames": 2, "tools": ["crop_video"]}', "--tool-config", str(tmp_path / "t.yaml")])
    assert rc == 0 and "wrote 3 rows" in capsys.readouterr().out
    rows = read_rows(out)
    assert {r["extra_info"]["split"] for r in rows} == {"val"}
    assert list(rows[0]["extra_info"]["tools_kwargs"]) == ["crop_video"]
    assert "tool: crop_video" in (tmp_path / "t.yaml").read_text() and "view_visual_prompt" not in (tmp_path / "t.yaml").read_text()


@pytest.mark.parametrize("options, message", [('{"max_turn": 3}', "unknown env option"), ("[1]", "JSON object"), ("{", "not valid JSON")])
def test_cli_rejects_bad_env_options(small_dataset, tmp_path, options, message):
    with pytest.raises(SystemExit, match=message):
        main(["export-verl", str(tmp_path / "never-read.jsonl"), str(tmp_path / "x.parquet"), "--env-options", options])


def test_cli_names_a_missing_dataset(tmp_path):
    with pytest.raises(SystemExit, match="no-such.jsonl"):
        main(["export-verl", str(tmp_path / "no-such.jsonl"), str(tmp_path / "x.parquet")])


def test_parquet_is_written_in_chunks_and_a_failed_write_leaves_no_temp_file(tmp_path):
    from vseek_env.integrations.verl.rows import write_parquet

    rows = [{"a": i, "b": {"x": str(i)}} for i in range(7)]
    path = write_parquet(iter(rows), tmp_path / "rows.parquet", chunk_rows=3)
    assert read_rows(path) == rows
    import pyarrow.parquet as pq

    assert pq.ParquetFile(path).metadata.num_row_groups == 3  # 3 + 3 + 1 rows

    def failing():
        yield from rows[:4]
        raise RuntimeError("video unreadable")

    with pytest.raises(RuntimeError, match="unreadable"):
        write_parquet(failing(), tmp_path / "bad.parquet", chunk_rows=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.parquet"]
    with pytest.raises(ValueError, match="no rows"):
        write_parquet([], tmp_path / "empty.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.parquet"]


def test_export_warns_when_the_needs_tools_overview_differs(small_dataset, tmp_path):
    import dataclasses
    import warnings

    from vseek_env.data import Dataset

    labelled = Dataset("labelled", [dataclasses.replace(s, meta={"overview_frames": 16}) for s in small_dataset.samples],
                       root=small_dataset.root)
    with pytest.warns(UserWarning, match=r"3 sample\(s\).*overview_frames=4.*'s0' \(16\)"):
        export_verl(labelled, tmp_path / "a.parquet", env_options={"overview_frames": 4})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        export_verl(labelled, tmp_path / "b.parquet", env_options={"overview_frames": 16})
