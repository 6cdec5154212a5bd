"""Env chat messages -> the flat messages of the SFT formats (text with ``<image>``, images apart).

One renderer per format turns a list of env-style messages — live ones from ``info["messages"]``
(images as arrays) or stored ones from a rollout record (images as ``frames/`` paths) — into
:class:`Flat` messages. The exporters write what the renderer gives for the stored conversation;
the replay check renders the live env's messages with the same function and compares, so "the file
holds exactly what the env returns" is checked, not assumed.

* ``verl``: one flat message per env message (``system``, ``user``, ``assistant``, ``tool``), except
  that the tool messages of one response become one ``tool`` message, their texts joined by
  ``</tool_response><tool_response>`` (``merge_tools=True``, the default). Qwen chat templates
  render consecutive tool messages as one user turn of ``<tool_response>`` blocks, which is what the
  ``vseek_agent`` loop trains on; the merged message renders to the same tokens on its own, so
  verl's per-message tokenisation matches the whole conversation (its sanity check passes).
* ``sharegpt``: LLaMA-Factory's alternation: the system prompt apart, then ``human``, and after each
  response one ``observation`` (every tool result of the turn, joined the way LLaMA-Factory joins
  parallel tool responses, then the env's feedback) or, when the turn ran no tool, one ``human``
  message with the env's feedback.

Assistant turns keep the model's exact response text, tool calls included as
``<tool_call>{...}</tool_call>``: that is the text the env parses and the token sequence the RL
loop trains, and it survives chat templates that drop structured ``tool_calls`` (Qwen2.5-VL's).

Example:
    >>> msgs = [{"role": "user", "content": [{"type": "text", "text": "<1 seconds>"},
    ...                                      {"type": "image", "image": "frames/a.png"}]}]
    >>> render("verl", msgs)
    [Flat(role='user', text='<1 seconds><image>', images=['frames/a.png'])]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

IMAGE_TOKEN = "<image>"
VIDEO_TOKEN = "<video>"  # LLaMA-Factory's video placeholder; a video is stored as its list of frame files
FORMATS = ("verl", "sharegpt")
# LLaMA-Factory's separator between parallel tool responses (its OpenAI-format converter).
TOOL_RESPONSE_JOIN = "\n</tool_response>\n<tool_response>\n"
SHAREGPT_ROLE = {"user": "human", "assistant": "gpt", "tool": "observation", "system": "system"}


@dataclass
class Flat:
    """One message as the SFT formats store it."""

    role: str
    text: str
    images: list[Any] = field(default_factory=list)
    videos: list[list[Any]] = field(default_factory=list)  # each video: its frames, in order


def flatten(message: dict) -> Flat:
    """An env-style message as text with one ``<image>`` per image and one ``<video>`` per video
    (the paper protocol's overview), plus the images and the videos' frame lists in order."""
    content = message["content"]
    if isinstance(content, str):
        return Flat(message["role"], content)
    pieces: list[str] = []
    images: list[Any] = []
    videos: list[list[Any]] = []
    for part in content:
        if part.get("type") == "image":
            pieces.append(IMAGE_TOKEN)
            images.append(part["image"])
        elif part.get("type") == "video":
            pieces.append(VIDEO_TOKEN)
            videos.append(list(part["video"]))
        else:
            pieces.append(part.get("text", ""))
    return Flat(message["role"], "".join(pieces), images, videos)


def render(fmt: str, messages: list[dict], *, merge_tools: bool = True) -> list[Flat]:
    """The messages of one env observation (reset's, or a step's) in format ``fmt``."""
    flats = [flatten(m) for m in messages]
    if fmt == "verl":
        if not merge_tools:
            return flats
        out: list[Flat] = []
        for f in flats:
            if f.role == "tool" and out and out[-1].role == "tool":
                out[-1] = Flat("tool", out[-1].text + TOOL_RESPONSE_JOIN + f.text, out[-1].images + f.images,
                               out[-1].videos + f.videos)
            else:
                out.append(f)
        return out
    if fmt != "sharegpt":
        raise ValueError(f"unknown SFT format {fmt!r}; choose one of {FORMATS}")
    out = [Flat("system", f.text, f.images, f.videos) for f in flats if f.role == "system"]
    rest = [f for f in flats if f.role != "system"]
    if not rest:
        return out
    tools = [f for f in rest if f.role == "tool"]
    users = [f for f in rest if f.role != "tool"]
    if tools:
        text = TOOL_RESPONSE_JOIN.join(f.text for f in tools)
        if users:
            text += "\n" + "\n".join(f.text for f in users)
        images = [im for f in tools + users for im in f.images]
        out.append(Flat("observation", text, images, [v for f in tools + users for v in f.videos]))
    else:
        out.append(Flat("human", "\n".join(f.text for f in users), [im for f in users for im in f.images],
                        [v for f in users for v in f.videos]))
    return out


@dataclass
class Exchange:
    """A conversation cut at the responses: the opening messages, then (response, observation) steps."""

    opening: list[Flat]
    steps: list[tuple[str, list[Flat]]]

    @property
    def images(self) -> list[Any]:
        return [im for f in self.opening for im in f.images] + [im for _, obs in self.steps for f in obs for im in f.images]

    @property
    def videos(self) -> list[list[Any]]:
        return [v for f in self.opening for v in f.videos] + [v for _, obs in self.steps for f in obs for v in f.videos]


def exchange_from_record(fmt: str, conversation: list[dict], *, merge_tools: bool = True) -> Exchange:
    """Cut a stored rollout conversation (env-style messages) into an :class:`Exchange` in ``fmt``."""
    opening: list[dict] = []
    steps: list[tuple[str, list[dict]]] = []
    for message in conversation:
        if message["role"] == "assistant":
            steps.append((flatten(message).text, []))
        elif steps:
            steps[-1][1].append(message)
        else:
            opening.append(message)
    return Exchange(render(fmt, opening, merge_tools=merge_tools),
                    [(resp, render(fmt, obs, merge_tools=merge_tools)) for resp, obs in steps])


def exchange_from_flat(messages: list[Flat]) -> Exchange:
    """Cut flat messages (read back from an export) at the assistant turns."""
    opening: list[Flat] = []
    steps: list[tuple[str, list[Flat]]] = []
    for f in messages:
        if f.role in ("assistant", "gpt"):
            steps.append((f.text, []))
        elif steps:
            steps[-1][1].append(f)
        else:
            opening.append(f)
    return Exchange(opening, steps)


def assign_images(messages: list[Flat], images: list[Any], where: str, videos: list[list[Any]] | None = None) -> list[Flat]:
    """Give each flat message its images (and videos) by counting ``<image>`` (``<video>``)
    placeholders; checks the counts."""
    videos = list(videos or [])
    for token, media in ((IMAGE_TOKEN, images), (VIDEO_TOKEN, videos)):
        total = sum(f.text.count(token) for f in messages)
        if total != len(media):
            raise ValueError(f"{where}: {total} {token} placeholders but {len(media)} {token.strip('<>')}s")
    out, i, j = [], 0, 0
    for f in messages:
        n, m = f.text.count(IMAGE_TOKEN), f.text.count(VIDEO_TOKEN)
        out.append(Flat(f.role, f.text, list(images[i: i + n]), [list(v) for v in videos[j: j + m]]))
        i, j = i + n, j + m
    return out
