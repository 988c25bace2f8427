"""``posefw serve --config serve.toml``: the pipeline behind Ray Serve (see docs/serving.md)."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="serve poses over HTTP on Ray Serve (pip install 'posefw[serve]')")
    p.add_argument("--config", default=None, help="TOML with [engine], [decoder], [pipeline] and [serve]")
    p.add_argument("--port", type=int, default=None, help="overrides [serve].port")
    p.add_argument("--host", default=None, help="overrides [serve].host")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from posefw.config import Config, load_config
    from posefw.console import console
    from posefw.serving.app import run, serve_unavailable

    why = serve_unavailable()
    if why:
        raise ImportError(why, name="ray")
    cfg = load_config(args.config) if args.config else Config()
    cfg = cfg.with_overrides("serve", port=args.port, host=args.host)
    s = cfg.serve
    console().print(
        f"posefw serve: http://{s.host}:{s.port}{s.route_prefix} - {s.num_replicas} replica(s), "
        f"{s.num_gpus} GPU(s) each, up to {s.max_batch_size} frames per engine call (Ctrl-C stops)"
    )
    run(cfg, blocking=True)
    return 0
