"""Files a kill or an attacker leaves behind: torn JSONL stores, oversized masks (findings 9 and the store)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from vseek_env.evaluation import ResultsFile
from vseek_env.jsonl_store import JsonlStore
from vseek_env.masks import MAX_MASK_PIXELS, decode_rle, encode_rle
from vseek_env.pipeline.store import Manifest


@pytest.mark.parametrize("store", [lambda p: ResultsFile(p), lambda p: Manifest(p)], ids=["results", "manifest"])
def test_both_stores_drop_and_report_a_torn_or_corrupt_line_and_keep_finished_work(tmp_path, store):
    s = store(tmp_path / "x.jsonl")
    key = s.key
    s.append({key: "a", "status": "ok"})
    with open(s.path, "ab") as fh:
        fh.write(b"not json at all\n")  # an editor's slip, mid-file
    s.append({key: "b", "status": "ok"})
    with open(s.path, "ab") as fh:
        fh.write(b'{"' + key.encode() + b'": "c", "sta')  # killed mid-write
    with pytest.warns(UserWarning) as caught:
        assert sorted(store(s.path).latest()) == ["a", "b"]
    text = " ".join(str(w.message) for w in caught)
    assert "torn last line" in text and ":2:" in text
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s.append({key: "c", "status": "ok"})  # the torn tail is cut first: the new record survives
        assert sorted(store(s.path).latest()) == ["a", "b", "c"]
    assert s.path.read_bytes().endswith(b"\n")


def test_the_eval_results_and_the_manifests_are_one_store():
    assert issubclass(ResultsFile, JsonlStore) and issubclass(Manifest, JsonlStore)


def test_an_rle_declaring_a_huge_size_fails_before_allocating():
    rle = {"size": [40000, 40000], "counts": [40000 * 40000]}  # 30 bytes of JSON, 1.6 GB of mask
    with pytest.raises(ValueError, match="MAX_MASK_PIXELS"):
        decode_rle(rle)
    with pytest.raises(ValueError, match="does not match the frame"):
        decode_rle(rle, shape=(120, 192, 3), max_pixels=10**12)


def test_an_rle_of_the_frame_size_still_decodes():
    mask = np.zeros((120, 192), bool)
    mask[10:20, 30:50] = True
    assert (decode_rle(encode_rle(mask), shape=(120, 192, 3)) == mask).all()
    assert MAX_MASK_PIXELS >= 8192 * 8192


def test_a_row_with_a_huge_rle_fails_reset_naming_the_sample_without_the_memory(small_dataset):
    """In a child with a 1.5 GB address-space cap: the old decoder allocated 1.6 GB before the shape check."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (1536 << 20, 1536 << 20))
        sys.path.insert(0, {str(Path(__file__).parent.parent)!r})
        from hostile_data import HOSTILE_ROWS
        from vseek_env.data import Dataset, load_dataset
        from vseek_env.env import VideoSeekerEnv
        from vseek_env.video import VideoError
        ds = load_dataset({str(small_dataset.root / "small.jsonl")!r})
        s = ds.samples[0]
        bad = HOSTILE_ROWS["huge_rle"].change(s)
        env = VideoSeekerEnv(dataset=Dataset("x", [bad], root=ds.root), tool_timeout_s=None)
        try:
            env.reset(seed=0)
        except VideoError as exc:
            print("ERROR", exc)
        """)
    from vseek_env.data.datasets import write_samples

    write_samples(small_dataset.root / "small.jsonl", small_dataset.samples[:1])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ERROR sample 's0'" in done.stdout and "40000" in done.stdout
