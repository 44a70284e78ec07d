"""`w4s serve`: serve a meta-agent checkpoint with an OpenAI-compatible API on Ray Serve.

    w4s serve --model runs/train/model [--port 8000] [--name w4s-meta-agent] [--detach]
    w4s serve --status [--name NAME]
    w4s serve --shutdown [--name NAME]

Flags override the `serve.*` config section (`--model` → serve.model, `--name` →
serve.model_name, which is also the Serve application name and the registry key). See
docs/SERVING.md.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from w4s_ray.cli import add_config_args

    p = subparsers.add_parser(
        "serve",
        help="serve a meta-agent checkpoint with an OpenAI-compatible API (Ray Serve)",
        description="Serve a meta-agent model (HF dir, LoRA adapter + base, .gguf file, preset "
        "or hub id) on Ray Serve with POST /v1/chat/completions (batched, streaming), "
        "GET /v1/models, GET /health.",
    )
    add_config_args(p)
    p.add_argument("--model", help="HF model dir, LoRA adapter dir, .gguf file, prepared preset "
                   "(smollm2) or hub id (serve.model; docs/MODELS.md)")
    p.add_argument("--lora-base", help="base model for a LoRA adapter (serve.lora_base)")
    p.add_argument("--name", help="served model name = app name (serve.model_name)")
    p.add_argument("--host", help="bind address (serve.host; default 127.0.0.1)")
    p.add_argument("--port", type=int, help="HTTP port (serve.port; default 8000)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--detach", action="store_true",
                      help="start in the background and return once healthy")
    mode.add_argument("--status", action="store_true", help="print the app's status and URL")
    mode.add_argument("--shutdown", action="store_true",
                      help="stop the app (and the Ray it started)")
    p.set_defaults(func=run)


def _apply_flags(args: argparse.Namespace):
    updates = {
        "model": args.model, "lora_base": args.lora_base, "model_name": args.name,
        "host": args.host, "port": args.port,
    }
    from w4s_ray.config import ServeConfig
    from w4s_ray.errors import ConfigError

    merged = args.cfg.serve.model_dump()
    merged.update({k: v for k, v in updates.items() if v is not None})
    try:
        args.cfg.serve = ServeConfig.model_validate(merged)
    except Exception as exc:  # pydantic ValidationError: name the flag's key
        first = exc.errors()[0] if hasattr(exc, "errors") else {}
        key = ".".join(str(x) for x in first.get("loc", ())) or "serve"
        raise ConfigError(f"serve.{key}: {first.get('msg', exc)}") from None
    return args.cfg


def _print_status(st: dict) -> None:
    rows = [
        ("app", st.get("name")),
        ("state", st.get("state")),
        ("mode", st.get("mode")),
        ("url", st.get("url")),
        ("api_base", st.get("api_base")),
        ("model", st.get("model")),
        ("served as", st.get("model_name")),
        ("health", st.get("health")),
        ("models", ", ".join(st.get("models") or []) or "-"),
        ("pid", st.get("pid")),
        ("ray", st.get("ray_address") or "private (started by w4s serve)"),
        ("started", st.get("started_at")),
        ("log", st.get("log")),
    ]
    for key, value in rows:
        if value is not None:
            print(f"{key:>10}: {value}")


def run(args: argparse.Namespace) -> int:
    from w4s_ray.serve import manage

    cfg = _apply_flags(args)
    name = cfg.serve.model_name
    if args.status:
        st = manage.app_status(cfg.serve, name)
        _print_status(st)
        return 0 if st.get("health") == "ok" else 1
    if args.shutdown:
        print(manage.shutdown_app(cfg, name))
        return 0
    if args.detach:
        entry = manage.start_detached(cfg, name)
        print(f"serving '{name}' at {entry['api_base']} (detached; "
              f"stop with: w4s serve --shutdown --name {name})")
        return 0
    return manage.run_server(cfg, name, mode="foreground")
