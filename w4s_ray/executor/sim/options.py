"""Command-line options of the simulator, shared by `w4s sim serve` and `python -m ...sim`.

Light on purpose (argparse and the config only), so `w4s --help` stays fast.
"""

from __future__ import annotations

import argparse

from w4s_ray.config import SimConfig


def add_sim_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default=None, help="bind address (default: sim.host, 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port; 0 picks a free one (default: sim.port)")
    p.add_argument("--profile", default=None, help="default simulated model, e.g. sim-gpt-4o-mini")
    p.add_argument("--latency", choices=["profile", "fixed", "lognormal", "none"], default=None,
                   help="latency model (fixed/lognormal use --latency-ms)")
    p.add_argument("--latency-ms", type=float, default=None,
                   help="fixed latency, or the median for lognormal; implies --latency fixed")
    p.add_argument("--fault-429", type=float, default=None, help="rate of HTTP 429 (with Retry-After)")
    p.add_argument("--fault-500", type=float, default=None, help="rate of HTTP 500")
    p.add_argument("--fault-hang", type=float, default=None, help="rate of requests that hang")
    p.add_argument("--fault-malformed", type=float, default=None, help="rate of malformed JSON bodies")
    p.add_argument("--hang-s", type=float, default=None, help="how long a hung request sleeps")
    p.add_argument("--retry-after-s", type=float, default=None, help="Retry-After sent with 429s")
    p.add_argument("--seed", type=int, default=None, help="seed of fault decisions")
    p.add_argument("--rpm-limit", type=int, default=None,
                   help="provider-style requests per minute per key and model (429 past it)")
    p.add_argument("--tpm-limit", type=int, default=None,
                   help="provider-style tokens per minute per key and model (429 past it)")
    p.add_argument("--limit-window-s", type=float, default=None,
                   help="the limits hold over any window of this many seconds (default 60)")
    p.add_argument("--tpm-charge", choices=["used", "requested"], default=None,
                   help="a request's cost against --tpm-limit: prompt + the completion it got "
                        "(used, default) or prompt + n x max_tokens (requested: OpenAI, Anthropic)")
    p.add_argument("--one-choice", action="store_true", default=None,
                   help="answer one choice whatever n asks (as Ollama's /v1 does)")
    p.add_argument("--data-dir", default=None, help="benchmark data (default: config / W4S_DATA_DIR)")
    p.add_argument("--items-file", default=None,
                   help="JSONL of items to recognise instead of the benchmark data (tests)")


def sim_config_from_args(base: SimConfig, args: argparse.Namespace) -> SimConfig:
    """The config's sim section with command-line values on top."""
    data = base.model_dump()
    pairs = {
        "host": args.host, "port": args.port, "profile": args.profile, "latency": args.latency,
        "latency_ms": args.latency_ms, "rate_429": args.fault_429, "rate_500": args.fault_500,
        "rate_hang": args.fault_hang, "rate_malformed": args.fault_malformed,
        "hang_s": args.hang_s, "retry_after_s": args.retry_after_s, "seed": args.seed,
        "rpm_limit": args.rpm_limit, "tpm_limit": args.tpm_limit,
        "limit_window_s": args.limit_window_s, "tpm_charge": args.tpm_charge,
        "one_choice": args.one_choice,
    }
    data.update({k: v for k, v in pairs.items() if v is not None})
    if args.latency_ms is not None and args.latency is None:
        data["latency"] = "fixed"
    return SimConfig.model_validate(data)


def to_argv(cfg: SimConfig) -> list[str]:
    """The command line that reproduces `cfg` (used by the launcher)."""
    argv = ["--host", cfg.host, "--port", str(cfg.port), "--profile", cfg.profile,
            "--latency", cfg.latency, "--fault-429", str(cfg.rate_429),
            "--fault-500", str(cfg.rate_500), "--fault-hang", str(cfg.rate_hang),
            "--fault-malformed", str(cfg.rate_malformed), "--hang-s", str(cfg.hang_s),
            "--retry-after-s", str(cfg.retry_after_s), "--seed", str(cfg.seed)]
    if cfg.latency_ms is not None:
        argv += ["--latency-ms", str(cfg.latency_ms)]
    if cfg.rpm_limit is not None:
        argv += ["--rpm-limit", str(cfg.rpm_limit)]
    if cfg.tpm_limit is not None:
        argv += ["--tpm-limit", str(cfg.tpm_limit)]
    argv += ["--limit-window-s", str(cfg.limit_window_s), "--tpm-charge", cfg.tpm_charge]
    if cfg.one_choice:
        argv += ["--one-choice"]
    return argv
