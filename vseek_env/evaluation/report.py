"""The browsable HTML report of an eval run: summary tables, then every episode.

Per episode: the question and options, the visual prompt, the overview frames and, turn by turn,
the model's response, each tool call with the frames it returned (captioned with their times), the
errors and the env's feedback, and the reward breakdown. Images are the JPEG thumbnails under
``assets/`` next to the report, referenced by relative path, so the folder can be copied as is.

Example:
    >>> write_report(Path("runs/x"), records, summary)                   # doctest: +SKIP
    PosixPath('runs/x/report.html')
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Iterable

from vseek_env.protocol import format_number

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1400px;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px;text-align:left}
.ok{color:#070}.bad{color:#b00}.episode{border-top:3px solid #888;margin-top:2em;padding-top:.5em}
.frames{display:flex;flex-wrap:wrap;gap:4px}figure{margin:0;font-size:11px;text-align:center}
figure img{display:block;max-height:140px}pre{white-space:pre-wrap;background:#f6f6f6;padding:6px;font-size:12px}
.prompt img{max-height:260px}.err{color:#b00;font-size:12px}.turn{margin-left:1em;border-left:2px solid #ddd;padding-left:.8em}
"""


def _time(t) -> str:
    return f"{format_number(float(t))} s" if t is not None and float(t) >= 0 else "time unknown"


def _figure(frame: dict, extra: str = "") -> str:
    caption = escape(f"{extra}{_time(frame.get('time'))}")
    return (f'<figure><img src="{escape(frame["image"])}" loading="lazy" alt="{caption}">'
            f"<figcaption>{caption}</figcaption></figure>")


def _table(rows: dict, header: str) -> str:
    body = "".join(
        f"<tr><td>{escape(str(k))}</td><td>{v['n']}</td><td>{v['correct']}</td><td>{v['accuracy']:.3f}</td></tr>"
        for k, v in rows.items()
    )
    return f"<table><tr><th>{escape(header)}</th><th>n</th><th>correct</th><th>accuracy</th></tr>{body}</table>"


def _rules_html(rules: dict) -> list[str]:
    """One table per scoring rule (official, paper_direct, ...): overall then each category value,
    with the accuracy over all rows and over the rows the rule could read."""
    parts = []
    for rule, result in rules.items():
        rows = [("overall", result["overall"])]
        if result.get("decided_by"):
            rows[0] = (f"overall (decided by {', '.join(f'{k} {v}' for k, v in result['decided_by'].items())})", result["overall"])
        for key, groups in result.items():
            if key.startswith("per_"):
                rows += [(f"{key[4:]} = {value}", t) for value, t in groups.items()]
        body = "".join(
            f"<tr><td>{escape(str(name))}</td><td>{t['n']}</td><td>{t['scored']}</td><td>{t['correct']}</td>"
            f"<td>{t['accuracy']:.3f}</td><td>{t['scored_accuracy']:.3f}</td></tr>" for name, t in rows)
        parts.append(f"<h3>rule: {escape(rule)}</h3><table><tr><th>group</th><th>n</th><th>scored</th><th>correct</th>"
                     f"<th>accuracy (all)</th><th>accuracy (scored)</th></tr>{body}</table>")
    return parts


def _summary_html(summary: dict, title: str) -> str:
    parts = [f"<h1>{escape(title)}</h1>",
             f"<p>accuracy <b>{summary['accuracy']:.3f}</b> ({summary['correct']}/{summary['episodes']}); "
             f"parse failures {summary['parse_failures']}; errored episodes {summary['errored']}; "
             f"mean reward {summary['reward']['mean']:.3f}; tool calls per episode "
             f"{summary['tool_calls']['mean_per_episode']:.2f}; latency mean {summary['latency_s']['mean']:.2f} s</p>"]
    for key, header in (("per_dimension", "dimension"), ("per_prompt_style", "prompt style"),
                        ("per_answer_kind", "answer kind"), ("per_duration", "duration")):
        parts.append(_table(summary.get(key, {}), header))
    for field, groups in (summary.get("per_category") or {}).items():
        parts.append(_table(groups, field))
    parts += _rules_html((summary.get("benchmark") or {}).get("rules") or {})
    parts.append("<details><summary>summary JSON</summary><pre>" + escape(json.dumps(summary, indent=1)) + "</pre></details>")
    return "\n".join(parts)


def _index_html(records: list[dict]) -> str:
    rows = []
    for i, r in enumerate(records):
        mark = '<span class="ok">✔</span>' if r.get("correct") else '<span class="bad">✘</span>'
        rows.append(
            f'<tr><td><a href="#ep-{i}">{escape(r["key"])}</a></td><td>{escape(str(r.get("dimension")))}</td>'
            f'<td>{escape(str(r.get("prompt_style")))}</td><td>{escape(str(r.get("answer_kind")))}</td>'
            f'<td>{escape(str(r.get("answer")))}</td><td>{escape(json.dumps(r.get("truth")))}</td><td>{mark}</td>'
            f'<td>{r.get("reward", 0.0):.3f}</td><td>{r.get("num_tool_calls", 0)}</td><td>{r.get("latency_s", 0.0):.2f}</td></tr>'
        )
    return ("<h2>Episodes</h2><table><tr><th>episode</th><th>dimension</th><th>prompt</th><th>kind</th><th>answer</th>"
            "<th>truth</th><th></th><th>reward</th><th>tool calls</th><th>latency s</th></tr>" + "".join(rows) + "</table>")


def _episode_html(i: int, r: dict) -> str:
    out = [f'<section class="episode" id="ep-{i}" data-key="{escape(r["key"])}">',
           f"<h2>{escape(r['key'])} <small>{escape(str(r.get('dimension')))} · {escape(str(r.get('prompt_style')))} · "
           f"{escape(str(r.get('answer_kind')))}</small></h2>",
           f"<p><b>Question:</b> {escape(r.get('question', ''))}</p>"]
    if r.get("options"):
        out.append("<ol type='A'>" + "".join(f"<li>{escape(str(o))}</li>" for o in r["options"]) + "</ol>")
    if r.get("status") != "ok":
        out.append(f'<p class="err">episode failed: {escape(str(r.get("error")))}</p>')
    verdict = '<span class="ok">correct</span>' if r.get("correct") else '<span class="bad">wrong</span>'
    out.append(f"<p><b>Answer:</b> {escape(str(r.get('answer')))} · <b>truth:</b> {escape(json.dumps(r.get('truth')))} · "
               f"{verdict} ({escape(str(r.get('match_rule')))})</p>")
    components = r.get("components") or {}
    out.append("<table><tr><th>reward</th>" + "".join(f"<th>{escape(k)}</th>" for k in components) + "</tr>"
               f"<tr><td>{r.get('reward', 0.0):.3f}</td>" + "".join(f"<td>{v:.3f}</td>" for v in components.values()) + "</tr></table>")
    if r.get("prompt_image"):
        out.append('<div class="prompt"><b>Visual prompt</b>' + _figure({"image": r["prompt_image"], "time": r.get("prompt_time")}) + "</div>")
    for turn in r.get("turns", []):
        out.append('<div class="turn">')
        if turn["response"] is None:
            out.append(f"<h3>Overview ({len(turn['frames'])} frames)</h3>")
            out.append('<div class="frames">' + "".join(_figure(f) for f in turn["frames"]) + "</div>")
        else:
            out.append(f"<h3>Turn {turn['turn']}</h3><pre>{escape(turn['response'])}</pre>")
            for tool in turn["tool_results"]:
                status = "ok" if tool["ok"] else f"error {tool['error_code']}"
                out.append(f"<p><b>{escape(tool['name'])}</b>({escape(json.dumps(tool['arguments']))}) → {escape(status)}: "
                           f"{escape(tool['text'])}</p>")
                if tool["frames"]:
                    out.append('<div class="frames">' + "".join(_figure(f) for f in tool["frames"]) + "</div>")
            for err in turn["errors"]:
                out.append(f'<p class="err">{escape(err["code"])}: {escape(err["message"])}</p>')
            if turn.get("feedback"):
                out.append(f"<pre>{escape(turn['feedback'])}</pre>")
        out.append("</div>")
    out.append("</section>")
    return "\n".join(out)


def write_report(out_dir: Path, records: Iterable[dict], summary: dict, title: str = "vseek eval") -> Path:
    """Write ``out_dir/report.html`` for ``records`` (their thumbnails must already be in ``out_dir``)."""
    records = list(records)
    html = ["<!DOCTYPE html><html><head><meta charset='utf-8'>", f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
            _summary_html(summary, title), _index_html(records)]
    html += [_episode_html(i, r) for i, r in enumerate(records)]
    html.append("</body></html>")
    path = Path(out_dir) / "report.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text("\n".join(html), encoding="utf-8")
    tmp.replace(path)
    return path
