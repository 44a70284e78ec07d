"""The one typed experiment config.

Loaded once from YAML (files under `experiments/`), overridden from the CLI with
`--set key.path=value`, validated on load, then passed down to every stage as an object. No
stage re-reads YAML. An unknown key or a wrong type is a `ConfigError` naming the key path.

Each section belongs to one part of the system; defaults are the paper code's where it has one
(m = 5 candidates, meta-agent temperature 0.5, history window 2, up to 3 repairs, RWR T = 0.4)
and otherwise what runs offline on a laptop: local Ray, the simulated executor, the tiny local
meta-agent.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from w4s_ray.errors import ConfigError
from w4s_ray.models.sampling import (
    DEFAULT_REPETITION_PENALTY,
    DEFAULT_TOP_K,
    DEFAULT_TOP_P,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS_DIR = REPO_ROOT / "experiments"


class _Section(BaseModel):
    # forbid: a typo in a key must be an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    # None: take W4S_DATA_DIR, else ./data under the current directory.
    dir: str | None = None


class CacheConfig(_Section):
    enabled: bool = True
    # None: ~/.cache/w4s/completions.sqlite (node-local, shared by every worker of the node).
    path: str | None = None


class ExecutorConfig(_Section):
    """The strong model every workflow calls (over plain HTTP or litellm, see `transport`)."""

    model: str = "openai/sim-gpt-4o-mini"
    api_base: str | None = "http://127.0.0.1:8765/v1"
    # How a request is sent: "http" = plain aiohttp POST in the OpenAI wire format (about a
    # tenth of litellm's CPU per call), "litellm" = litellm.acompletion (any provider), "auto" =
    # http for OpenAI-compatible routes (openai/..., hosted_vllm/...) with an api_base, else
    # litellm. See docs/EXECUTOR.md "Transports".
    transport: Literal["auto", "litellm", "http"] = "auto"
    # Name of the env var holding the key, or a file holding it; never the key itself.
    api_key_env: str = "OPENAI_API_KEY"
    api_key_file: str | None = None
    # Price-map entry used for dollars when `model` is not in litellm's map (e.g. the simulator).
    pricing_model: str | None = "gpt-4o-mini"
    temperature: float = 0.0
    max_tokens: int = 1024
    max_concurrency: int = 64
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_retries: int = 6
    retry_base_delay_s: float = 0.5
    retry_max_delay_s: float = 30.0
    timeout_s: float = 60.0
    budget_usd: float | None = None
    seed: int = 0
    cache: CacheConfig = Field(default_factory=CacheConfig)


class SimConfig(_Section):
    """The simulated OpenAI-compatible executor (`w4s sim serve`)."""

    host: str = "127.0.0.1"
    port: int = 8765
    profile: str = "sim-gpt-4o-mini"
    latency: Literal["profile", "fixed", "lognormal", "none"] = "profile"
    latency_ms: float | None = None
    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_hang: float = 0.0
    rate_malformed: float = 0.0
    hang_s: float = 120.0
    # Seconds sent in Retry-After with an injected 429.
    retry_after_s: float = 1.0
    seed: int = 0


class SandboxConfig(_Section):
    """Limits for the OS process that runs untrusted workflow code."""

    item_timeout_s: float = 120.0
    workflow_timeout_s: float = 1800.0
    cpu_seconds: int = 600
    memory_mb: int = 2048
    max_processes: int = 64
    max_open_files: int = 256
    max_output_bytes: int = 65536
    code_exec_timeout_s: float = 10.0
    # An answer longer than this is cut (a code answer is a whole function; 100k is generous).
    max_answer_chars: int = 100_000
    max_file_mb: int = 64
    # Stack per item thread; the address-space limit must hold threads x stack.
    thread_stack_kb: int = 4096
    # Interpreter start-up allowance before the workflow's own load time counts.
    startup_timeout_s: float = 20.0
    # Nested processes (execute_code, public tests) running at once per evaluation.
    max_code_procs: int = 4


class EvalConfig(_Section):
    """Parallel evaluation of workflows on a benchmark split."""

    num_evaluators: int = 2
    # Calls in flight across one evaluator (threads in its sandbox).
    max_inflight_per_evaluator: int = 64
    limit: int | None = None
    failure_samples: int = 5
    self_check_items: int = 1
    # Logical CPUs per evaluator actor (fractional: they mostly wait on the executor).
    actor_num_cpus: float = 0.25
    # An evaluation whose actor died is re-run on a fresh one up to this many times.
    max_request_retries: int = 2


class RacingConfig(_Section):
    enabled: bool = False
    slices: list[Annotated[float, Field(gt=0, le=1)]] = Field(
        default_factory=lambda: [0.25, 0.5, 1.0], min_length=1)
    confidence: float = Field(default=0.95, gt=0, lt=1)
    bound: Literal["wilson", "hoeffding"] = "wilson"


class RLAOConfig(_Section):
    """The W4S decision process and RLAO collection."""

    turns: int = Field(default=10, ge=0)
    candidates: int = Field(default=5, ge=1)
    history_window: int = Field(default=2, ge=0)
    max_repairs: int = Field(default=3, ge=0)
    reward: Literal["w4s", "continuous"] = "w4s"
    low_accuracy_threshold: float = Field(default=0.3, ge=0, le=1)
    low_accuracy_penalty: float = Field(default=0.1, ge=0, allow_inf_nan=False)
    episodes_per_benchmark: int = Field(default=1, ge=1)
    racing: RacingConfig = Field(default_factory=RacingConfig)
    # Trajectory rows carry this run id; None: the experiment name.
    run_id: str | None = None
    # optimize: also evaluate the seed workflows on test at the end, for the report only.
    report_seed_test: bool = True
    # optimize: test items for the final evaluation (None: the whole test split).
    test_limit: int | None = Field(default=None, ge=1)


class MetaAgentConfig(_Section):
    """The weak model that writes workflows."""

    backend: Literal["litellm", "local", "scripted"] = "local"
    # litellm: a model name (e.g. openai/<served-name>); local: an HF directory, a .gguf file, a
    # prepared model name (`w4s models list`) or a hub id (docs/MODELS.md).
    model: str = "runs/tiny-meta-agent/model"
    api_base: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    # The W4S paper's meta-agent temperature; the other sampling settings default to the values
    # `w4s serve` uses (w4s_ray/models/sampling.py), so local and served sampling agree.
    temperature: float = 0.5
    top_p: float = Field(default=DEFAULT_TOP_P, gt=0.0, le=1.0)
    # 0 = off (no top-k cut), as in the OpenAI API and `w4s serve`.
    top_k: int = Field(default=DEFAULT_TOP_K, ge=0)
    # > 1 discourages tokens already in the prompt or reply (1 = off).
    repetition_penalty: float = Field(default=DEFAULT_REPETITION_PENALTY, gt=0.0)
    max_tokens: int = 1024
    num_gpus: float = 0.0
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    seed: int = 0
    # litellm backend: retries/timeout per call; local backend: CPUs of its Ray actor.
    max_retries: int = 3
    timeout_s: float = 600.0
    num_cpus: float = 0.5


class TinyModelConfig(_Section):
    """The offline meta-agent built by `w4s meta-agent init-tiny`."""

    out_dir: str = "runs/tiny-meta-agent"
    arch: Literal["llama", "qwen2"] = "llama"
    vocab_size: int = 4096
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    # The context the model is trained for. The local backend cuts prompts to this minus
    # meta_agent.max_tokens, so generation never meets token distances the warm start did not.
    max_position_embeddings: int = 1536
    warmstart_steps: int = 300
    warmstart_lr: float = 3e-3
    # Warm-start sequences keep the prompt's tail (left truncation); None: the context above.
    warmstart_max_seq_len: int | None = None
    warmstart_batch_size: int = 4
    # Samples per benchmark (T=0.5) for the reported parseable-solver rate.
    parse_samples: int = 4
    seed: int = 0


class TrainConfig(_Section):
    """RWR training of the meta-agent (Ray Train)."""

    data: str = "runs/collect/trajectories"
    base_model: str = "runs/tiny-meta-agent/model"
    out_dir: str = "runs/train"
    temperature: float = 0.4
    normalize_weights: bool = False
    filter: Literal["all", "success", "selected", "valid"] = "all"
    max_seq_len: int = 2048
    epochs: int = 1
    batch_size: int = 4
    lr: float = 1e-4
    # LR schedule over the run's optimizer steps (transformers.get_scheduler): constant, or
    # linear / cosine decay to 0 after `warmup_steps` of linear warm-up.
    lr_scheduler: Literal["constant", "linear", "cosine"] = "constant"
    warmup_steps: int = Field(default=0, ge=0)
    # Micro-batches (of batch_size per worker) per optimizer step; a step's batch is
    # batch_size x grad_accum_steps x num_workers. Leftover micro-batches of an epoch are dropped.
    grad_accum_steps: int = Field(default=1, ge=1)
    weight_decay: float = 0.0
    num_workers: int = 2
    cpus_per_worker: float = 0.5
    strategy: Literal["deepspeed", "ddp"] = "deepspeed"
    zero_stage: Literal[1, 2, 3] = 2
    offload_optimizer: bool = False
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    merge_lora: bool = True
    bf16: bool | None = None
    use_gpu: bool = False
    checkpoint_every: int = 10
    seed: int = 0
    # Stop after this many optimizer steps in total (None: all epochs); resume may raise it.
    max_steps: int | None = None
    # Worker-group restarts Ray Train attempts from the latest checkpoint before giving up.
    max_failures: int = 2
    grad_clip: float = 1.0
    # Candidates sampled on the same prompt share one encoding of it in one packed sequence
    # (same loss; batch_size then counts packed sequences).
    pack_prompts: bool = True
    lora_target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"]
    )


class CompareConfig(_Section):
    """`w4s compare`: meta-agents judged by the validation accuracy of workflows they sample."""

    samples: int = Field(default=8, ge=1)  # workflows per (seed, benchmark) and model
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    # None: the config's `benchmarks` (the demo adds its held-out `benchmark`).
    benchmarks: list[str] | None = None


class ModelsConfig(_Section):
    """Where model inputs that need preparing go (`w4s models`, GGUF files; docs/MODELS.md)."""

    # `w4s models prepare NAME` writes here; a preset name given as a model is looked up here.
    dir: str = "runs/models"
    # Converted .gguf files (one checkpoint per file content); None: ~/.cache/w4s/models.
    cache_dir: str | None = None


class ServeConfig(_Section):
    """`w4s serve`: a Ray Serve app with an OpenAI-compatible API over a meta-agent checkpoint."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # An HF directory, a .gguf file, a prepared preset (`smollm2`) or a hub id (docs/MODELS.md).
    model: str = "runs/train/model"
    model_name: str = "w4s-meta-agent"
    lora_base: str | None = None
    num_replicas: int = Field(default=1, ge=1)
    # Either bound set: autoscaling between them instead of a fixed num_replicas.
    autoscale_min: int | None = Field(default=None, ge=0)
    autoscale_max: int | None = Field(default=None, ge=1)
    # Autoscaling target: requests in flight per replica (a replica decodes a batch of them).
    target_ongoing_requests: float = Field(default=8.0, gt=0)
    # Rows (sequences) a replica decodes together; a request takes n rows (1 when greedy).
    max_batch_size: int = Field(default=16, ge=1)
    # Cap on rows x padded length of the batch's KV cache, in tokens (None: no cap); a request
    # that would exceed it waits for rows to finish (alone it is always admitted).
    max_batch_tokens: int | None = Field(default=65536, ge=1)
    # Requests that may wait for a full batch to make room; beyond that: 429 + Retry-After.
    max_queue: int = Field(default=32, ge=0)
    # JSON mode (response_format json_object/json_schema): attempts per choice before a 422.
    json_max_attempts: int = Field(default=3, ge=1)
    # Serve's per-replica limit of requests in flight; None: max_batch_size + max_queue + 16,
    # so a full replica answers 429 itself instead of Serve queueing requests without bound.
    max_ongoing_requests: int | None = Field(default=None, ge=1)
    num_gpus: float = Field(default=0.0, ge=0)
    num_cpus: float = Field(default=0.5, ge=0)
    # transformers: the built-in batching engine (CPU or GPU); vllm: vLLM's engine in the
    # replica behind the same API (GPU nodes with vLLM installed).
    backend: Literal["transformers", "vllm"] = "transformers"
    # auto: bfloat16 on CUDA, float32 on CPU.
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    # torch threads per replica; None: the replica's whole CPUs (at least 1).
    torch_threads: int | None = Field(default=None, ge=1)
    max_n: int = Field(default=16, ge=1)
    # Keep the prompt's last tokens when it does not fit (room left for max_tokens), as the local
    # backend and the tiny warm start do; off = OpenAI semantics (a 400 context_length_exceeded).
    truncate_prompt: bool = False
    # Used when a request gives neither max_tokens nor max_completion_tokens.
    default_max_tokens: int = Field(default=512, ge=1)
    startup_timeout_s: float = Field(default=300.0, gt=0)
    # Where `w4s serve` records what it started (for --status/--shutdown); None: ~/.cache/w4s/serve.
    registry_dir: str | None = None


class SweepConfig(_Section):
    """`w4s sweep`: many benchmarks at once on one evaluator pool, rate limit and budget."""

    # Benchmarks optimized at the same time (None: all of them).
    max_parallel: int | None = Field(default=None, ge=1)
    # Seconds to wait for a TCP connection to `ray.address` before any work starts.
    connect_timeout_s: float = Field(default=3.0, gt=0)
    # Evaluate each benchmark's seed workflows on test as reported baselines.
    baselines: bool = True


class RayConfig(_Section):
    # None: start a local Ray; "auto" or ray://...: connect to a cluster.
    address: str | None = None
    num_cpus: int | None = 4
    temp_dir: str | None = None


class ExperimentConfig(_Section):
    name: str = "w4s"
    seed: int = 0
    benchmark: str = "gsm8k"
    benchmarks: list[str] = Field(
        default_factory=lambda: [
            "mgsm", "gsm8k", "gsm_hard", "gsm_plus", "svamp", "math",
            "drop", "mmlu_pro", "gpqa", "humaneval", "mbpp",
        ]
    )
    run_dir: str = "runs"
    data: DataConfig = Field(default_factory=DataConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    sim: SimConfig = Field(default_factory=SimConfig)
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    rlao: RLAOConfig = Field(default_factory=RLAOConfig)
    meta_agent: MetaAgentConfig = Field(default_factory=MetaAgentConfig)
    tiny: TinyModelConfig = Field(default_factory=TinyModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    compare: CompareConfig = Field(default_factory=CompareConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    sweep: SweepConfig = Field(default_factory=SweepConfig)

    def data_dir(self) -> Path:
        """The benchmark data directory: config, else $W4S_DATA_DIR, else ./data."""
        raw = self.data.dir or os.environ.get("W4S_DATA_DIR") or "data"
        return Path(raw).expanduser().resolve()


def _format_validation_error(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    path = ".".join(str(p) for p in first["loc"]) or "<root>"
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown key '{path}'"
    got = first.get("input")
    got_txt = "" if isinstance(got, dict) else f" (got {got!r})"
    return f"{source}: {path}: {first['msg']}{got_txt}"


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key.path=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {item!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def _apply_override(tree: dict, path: list[str], value: Any) -> None:
    node = tree
    for part in path[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"--set {'.'.join(path)}: '{part}' is not a section")
        node = child
    node[path[-1]] = value


def resolve_config_path(path: str | os.PathLike) -> Path:
    """A config path as given, or a bare name looked up under experiments/."""
    p = Path(path)
    if p.exists():
        return p
    for cand in (EXPERIMENTS_DIR / p, EXPERIMENTS_DIR / f"{p}.yaml"):
        if cand.exists():
            return cand
    raise ConfigError(f"config file not found: {path}")


def load_config(
    path: str | os.PathLike | None = None, overrides: list[str] | None = None
) -> ExperimentConfig:
    """Load YAML (or the embedded defaults when `path` is None), apply overrides, validate."""
    tree: dict = {}
    source = "defaults"
    if path is not None:
        cfg_path = resolve_config_path(path)
        source = str(cfg_path)
        try:
            loaded = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"{source}: malformed YAML{where}") from None
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read ({exc.strerror})") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{source}: top level must be a mapping of sections")
        tree = loaded
    for item in overrides or []:
        key_path, value = _parse_override(item)
        _apply_override(tree, key_path, value)
    try:
        return ExperimentConfig.model_validate(tree)
    except ValidationError as err:
        loc = [str(p) for p in err.errors()[0]["loc"]]
        for item in overrides or []:
            key_path, _ = _parse_override(item)
            if loc[: len(key_path)] == key_path or key_path[: len(loc)] == loc:
                source = f"--set {item.split('=', 1)[0]}"
                break
        raise ConfigError(_format_validation_error(err, source)) from None


def dump_config(cfg: ExperimentConfig, path: str | os.PathLike) -> None:
    """Write the resolved config next to a run's outputs, so a run records what it used."""
    Path(path).write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
