"""The HTML report: it parses, every episode is there, every image it shows exists, text is escaped."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

from PIL import Image

from vseek_env.evaluation import ResultsFile, evaluate
from vseek_env.policies import register_policy
from vseek_env.policies.base import Policy


class _Report(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, dict] = {}
        self.current: dict | None = None
        self.scripts = 0
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.current = {"images": [], "alts": []}
            self.sections[attrs["data-key"]] = self.current
        elif tag == "img" and self.current is not None:
            self.current["images"].append(attrs["src"])
            self.current["alts"].append(attrs.get("alt", ""))
        elif tag == "script":
            self.scripts += 1

    def handle_endtag(self, tag):
        if tag == "section":
            self.current = None

    def handle_data(self, data):
        self.text.append(data)


class _HostilePolicy(Policy):
    """Crops, then answers with markup in its reasoning that must be shown, not executed."""

    def reset(self, seed=None):
        self.turn = 0

    def act(self, obs, info):
        self.turn += 1
        if self.turn == 1:
            return ('<think><script>alert(1)</script> & more</think><tool_call>{"name": "crop_video", '
                    '"arguments": {"start_time": 1, "end_time": 4}}</tool_call>')
        if self.turn == 2:
            return "no tags at all"  # a parse error the report must show
        return "<think>ok</think><answer>A</answer>"


def test_report_has_every_episode_with_its_images(tmp_path):
    register_policy("test_hostile", f"{__name__}:_HostilePolicy")
    result = evaluate("test_hostile", "synth:tiny", tmp_path, workers=2, progress=False)
    html = result.report.read_text(encoding="utf-8")
    parser = _Report()
    parser.feed(html)
    parser.close()
    records = ResultsFile(tmp_path / "results.jsonl").records()
    assert set(parser.sections) == {r["key"] for r in records} and len(records) == result.summary["episodes"]
    assert parser.scripts == 0 and "<script>alert(1)</script>" in "".join(parser.text)
    for record in records:
        section = parser.sections[record["key"]]
        images = section["images"]
        assert record["prompt_image"] in images  # the visual prompt
        tool_frames = [f["image"] for t in record["turns"] for tr in t["tool_results"] for f in tr["frames"]]
        overview = [f["image"] for t in record["turns"] for f in t["frames"]]
        assert tool_frames and overview and set(tool_frames + overview) <= set(images)
        for src in images:
            path = Path(tmp_path) / src
            assert not Path(src).is_absolute() and path.exists()
            with Image.open(path) as im:
                assert im.format == "JPEG" and max(im.size) <= 320
        # every crop frame is captioned with its time
        times = [f["time"] for t in record["turns"] for tr in t["tool_results"] for f in tr["frames"]]
        assert all(1.0 - 1e-6 <= t <= 4.0 + 1e-6 for t in times)
        assert any(alt.endswith(" s") for alt in section["alts"])
    assert "no_action" in html  # the second turn's parse error is shown
