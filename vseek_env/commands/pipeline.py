"""``vseek pipeline``: convert a video-QA dataset into visual-prompt QA (``run``), or show progress (``status``)."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pipeline",
        help="four-stage conversion of a video-QA dataset into visual-prompt QA",
        description="G1 text filter -> G2 VLM verification -> G3 masks at 1 fps -> G4 render + rewrite. "
        "Resumable: re-run the same command to continue an interrupted run.",
    )
    psub = p.add_subparsers(title="actions", metavar="ACTION")
    run = psub.add_parser("run", help="run or resume the pipeline")
    run.add_argument("--input", required=True, help="QA file (JSONL, JSON array or Parquet)")
    run.add_argument("--format", required=True, choices=("native", "v2p", "llava"), help="input layout")
    run.add_argument("--videos", default=None, help="root that relative video paths resolve against (default: the input's folder)")
    run.add_argument("--out", required=True, help="output folder (samples.jsonl, prompts/, manifests/, retention.json)")
    run.add_argument("--segmenter", default="auto", choices=("auto", "given", "opencv", "sam", "sam3"),
                     help="G3 masks: auto = given annotations when present, else sam3 or sam when their weights are "
                          "on disk, else opencv (default: %(default)s)")
    run.add_argument("--sam-model", default="facebook/sam2.1-hiera-tiny", help="SAM 2 weights folder or cached Hub id")
    run.add_argument("--sam3-model", default="facebook/sam3", help="SAM 3 weights folder or cached Hub id")
    run.add_argument("--g1", default="auto", choices=("auto", "rules", "llm", "both", "off"),
                     help="G1 filter: auto = rules + LLM when an endpoint is given, else rules")
    run.add_argument("--llm-base-url", default=None, help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    run.add_argument("--llm-model", default=None, help="model name served there (used for G1 and G2 unless --vlm-model)")
    run.add_argument("--vlm-base-url", default=None, help="separate endpoint for G2 (default: --llm-base-url)")
    run.add_argument("--vlm-model", default=None, help="separate model for G2 (default: --llm-model)")
    run.add_argument("--api-key", default=None, help="API key (default: $OPENAI_API_KEY or EMPTY)")
    run.add_argument("--rewrite", default="template", choices=("template", "llm"), help="G4 <vp> rewrite (default: %(default)s)")
    run.add_argument("--styles", default="", help="comma-separated prompt styles to allow (default: all eight)")
    run.add_argument("--no-annotations", action="store_true", help="verify with the VLM even when the source has target boxes")
    run.add_argument("--fps", type=float, default=1.0, help="rate of the frames G2 watches and G3 segments (default: %(default)s)")
    run.add_argument("--frames", type=int, default=32,
                     help="G2's frame budget per VLM call: the whole video at --fps, in windows of at most this many "
                          "frames (default: %(default)s)")
    run.add_argument("--retries", type=int, default=2, help="retries of an invalid model reply (default: %(default)s)")
    run.add_argument("--seed", type=int, default=0, help="seed of style choice and rendering (default: %(default)s)")
    run.add_argument("--batch-size", type=int, default=8, help="items per batch (default: %(default)s)")
    run.add_argument("--concurrency", type=int, default=4, help="model requests in flight / Ray actors per stage (default: %(default)s)")
    run.add_argument("--timeout", type=float, default=120.0, help="seconds per model request (default: %(default)s)")
    run.add_argument("--parquet", action="store_true", help="also write samples.parquet")
    run.add_argument("--absolute-paths", action="store_true", help="store absolute video paths (default: relative to --out)")
    run.add_argument("--ray", action="store_true", help="run the stages as Ray Data operations")
    run.add_argument("--ray-address", default=None, help="Ray cluster address (default: start a local Ray)")
    run.add_argument("--ray-num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    run.set_defaults(func=_run)
    status = psub.add_parser("status", help="progress of a run folder")
    status.add_argument("out", help="the run's --out folder")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=_status)
    p.set_defaults(func=lambda args: p.print_help() or 0)


def _run(args: argparse.Namespace) -> int:
    import os

    from vseek_env.pipeline import ConfigError, InputError, PipelineConfig, run_pipeline
    from vseek_env.pipeline.llm import LLMError

    config = PipelineConfig(
        out=args.out, segmenter=args.segmenter, g1=args.g1, llm_base_url=args.llm_base_url, llm_model=args.llm_model,
        vlm_base_url=args.vlm_base_url, vlm_model=args.vlm_model,
        api_key=args.api_key or os.environ.get("OPENAI_API_KEY", "EMPTY"), rewrite=args.rewrite,
        styles=tuple(s.strip() for s in args.styles.split(",") if s.strip()), fps=args.fps, n_frames=args.frames,
        retries=args.retries, seed=args.seed, use_annotations=not args.no_annotations, sam_model=args.sam_model,
        sam3_model=args.sam3_model,
        timeout_s=args.timeout, batch_size=args.batch_size, concurrency=args.concurrency, parquet=args.parquet,
        absolute_paths=args.absolute_paths,
    )
    try:
        run_pipeline(
            args.input, args.format, config, videos_root=args.videos, use_ray=args.ray,
            ray_address=args.ray_address, ray_num_cpus=args.ray_num_cpus,
        )
    except (ConfigError, InputError, FileNotFoundError) as exc:
        print(f"vseek pipeline: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # on Ray an LLMError comes back wrapped (RayTaskError, UserCodeException)
        cause = llm_error_cause(exc, LLMError)
        if cause is None:
            raise
        print(f"vseek pipeline: model endpoint failed ({cause}); finished samples are saved — re-run to resume",
              file=sys.stderr)
        return 3
    return 0


def llm_error_cause(exc: BaseException, kind: type) -> BaseException | None:
    """``exc`` or the first ``kind`` among its causes (``__cause__``, ``__context__``, Ray's ``.cause``).

    >>> class Boom(Exception): ...
    >>> try:
    ...     try:
    ...         raise Boom("endpoint down")
    ...     except Boom as inner:
    ...         raise RuntimeError("task failed") from inner
    ... except RuntimeError as outer:
    ...     str(llm_error_cause(outer, Boom))
    'endpoint down'
    """
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, kind):
            return current
        for nxt in (getattr(current, "cause", None), current.__cause__, current.__context__):
            if isinstance(nxt, BaseException):
                todo.append(nxt)
    return None


def _status(args: argparse.Namespace) -> int:
    from vseek_env.pipeline import pipeline_status

    try:
        status = pipeline_status(args.out)
    except FileNotFoundError as exc:
        print(f"vseek pipeline: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    print(f"{status['out']}: {status['n_input']} input samples from {status['input']}"
          f" ({'finished' if status['finished'] else 'in progress'})")
    print(f"{'stage':<24}{'done':>7}{'kept':>7}{'dropped':>9}{'pending':>9}")
    for s in status["stages"]:
        print(f"{s['title']:<24}{s['done']:>7}{s['kept']:>7}{s['dropped']:>9}{s['pending']:>9}")
    return 0
