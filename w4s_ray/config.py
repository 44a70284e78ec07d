"""The one typed experiment config.

Loaded once from YAML (files under `experiments/`), overridden from the CLI with
`--set key.path=value`, validated on load, then passed down to every stage as an object. No
stage re-reads YAML. An unknown key or a wrong type is a `ConfigError` naming the key path.

Each section belongs to one part of the system and is passed to it as is (no mirror
dataclasses); every field carries its description, bounds and cross-field rules live here, and a
field marked `resume=True` is one `--resume` refuses to change (`resume_keys()`). Defaults are
the paper code's where it has one (`rlao.protocol: w4s`: m = 5 candidates, meta-agent
temperature 0.5 and 4096 reply tokens, 2-turn trajectories, 3 evaluated attempts per candidate,
10 feedback cases, RWR T = 0.4, lr 2e-5, 3 epochs; docs/FIDELITY.md) and otherwise what runs
offline on a laptop: local Ray, the simulated executor, the tiny local meta-agent.

Protocol presets: `rlao.protocol: w4s-ray` (the project's earlier decision process) changes the
defaults of the fields it owns (`rlao.max_repairs`, `eval.failure_samples`, `eval.feedback`,
`eval.execute_code_guard`, `eval.extra_random_items`) when they are not set explicitly; this
happens once, when the config is validated, so a dumped config holds the values a run used.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

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


def F(default: Any = ..., description: str = "", *, resume: bool = False, **kw: Any) -> Any:
    """A field with its description; `resume=True` marks a setting that changes what a turn
    means, so `--resume` refuses a run whose value differs (see `resume_keys`)."""
    extra = {"resume": True} if resume else None
    return Field(default, description=description, json_schema_extra=extra, **kw)


def FF(factory: Any, description: str = "", *, resume: bool = False, **kw: Any) -> Any:
    """`F` with a default factory."""
    extra = {"resume": True} if resume else None
    return Field(default_factory=factory, description=description, json_schema_extra=extra,
                 **kw)


class DataConfig(_Section):
    dir: str | None = F(None, "Benchmark data directory; None: $W4S_DATA_DIR, else ./data.")
    node_cache: bool = F(True, "Evaluator actors and a sweep's benchmark host share each "
                         "benchmark's built splits through ~/.cache/w4s/benchmarks (built once "
                         "per machine, not once per process; never GPQA; "
                         "w4s_ray/benchmarks/node_cache.py).")


class CacheConfig(_Section):
    enabled: bool = F(True, "Answer repeated executor requests from the completion cache.")
    path: str | None = F(None, "SQLite file of the cache; None: ~/.cache/w4s/completions.sqlite "
                         "(node-local, shared by every worker of the node).")


def _one_request_per_window(per_minute: int | None, window_s: float, what: str) -> None:
    if per_minute and per_minute * window_s / 60.0 < 1:
        raise ValueError(f"{what}={per_minute} allows less than one request per "
                         f"{window_s:g} s window: use a longer window")


class ExecutorConfig(_Section):
    """The strong model every workflow calls (over plain HTTP or litellm, see `transport`)."""

    model: str = F("openai/sim-gpt-4o-mini", "litellm model name of the executor.", resume=True)
    api_base: str | None = F("http://127.0.0.1:8765/v1", "OpenAI-compatible endpoint; None: the "
                             "provider's default.")
    transport: Literal["auto", "litellm", "http"] = F(
        "auto", "http: a plain aiohttp POST in the OpenAI wire format (about a tenth of "
        "litellm's CPU per call); litellm: litellm.acompletion (any provider); auto: http for "
        "OpenAI-compatible routes with an api_base, else litellm (docs/EXECUTOR.md).")
    lazy_litellm: bool = F(True, "Import litellm only where a call needs it (the litellm "
                           "transport, a provider litellm must place, a price that is not two "
                           "per-token rates): the price map and the transport choice are read "
                           "from litellm's bundled map file, the same answers without the "
                           "~2.3 CPU-s import per process (executor/price_map.py). false: "
                           "import it in every client, as before.")
    api_key_env: str | None = F(None, "Name of the env var holding the key (never the key); "
                                "None: the provider's own (ANTHROPIC_API_KEY for anthropic/..., "
                                "docs/EXECUTOR.md \"Providers\").")
    api_key_file: str | None = F(None, "A file holding the key, read instead of api_key_env.")
    pricing_model: str | None = F("gpt-4o-mini", "Price-map entry for dollars when `model` is "
                                  "not in litellm's map (e.g. the simulator); `free`: every "
                                  "call costs $0 (a self-hosted executor); None: only models in "
                                  "the map (others are refused).")
    price_per_mtok_in: float | None = F(None, "Dollars per million prompt tokens; set with "
                                        "price_per_mtok_out it prices every call (over "
                                        "pricing_model and litellm's map).", ge=0)
    price_per_mtok_out: float | None = F(None, "Dollars per million completion tokens (with "
                                         "price_per_mtok_in).", ge=0)
    temperature: float = F(0.0, "Default sampling temperature of a call.", resume=True, ge=0,
                           le=2)
    max_tokens: int = F(1024, "Default completion-token limit of a call.", resume=True, ge=1)
    max_tokens_cap: int | None = F(
        4096, "Most completion tokens any call may ask for: a workflow asking more is sent the "
        "cap (counted as `capped` in the usage stats), never refused. 4096 is the W4S agent "
        "API's own default, so API-hosted runs are unchanged; lower it for a slow self-hosted "
        "executor (about timeout_s x its tokens/s, docs/EXECUTOR.md). None: no cap.",
        resume=True, ge=1)
    max_concurrency: int = F(64, "Executor calls in flight per process.", ge=1)
    requests_per_minute: int | None = F(None, "Run-wide request rate limit.", ge=1)
    tokens_per_minute: int | None = F(None, "Run-wide token rate limit.", ge=1)
    rate_limit_tokens: Literal["requested", "used"] = F(
        "requested", "What a call costs against tokens_per_minute. requested: the prompt plus "
        "n x max_tokens, counted when it is sent and kept (OpenAI and Anthropic count "
        "max_tokens at admission: reserving less draws 429s); used: the tokens the reply "
        "reports (a provider or gateway that charges usage only, the simulator's default "
        "sim.tpm_charge), reserved from recent replies. Lower executor.max_tokens_cap to fit "
        "more calls in a token limit (docs/EXECUTOR.md \"Rate limits\").")
    rate_limit_window_s: float = F(60.0, "The limits hold over ANY window of this many "
                                   "seconds, as rate x window / 60 (60: the per-minute limit "
                                   "as providers state it; shorter: the same rate at a finer "
                                   "grain). Match the provider's (sim.limit_window_s).", gt=0)
    rate_limit_guard_s: float = F(0.5, "Seconds added to the limiter's window to cover the time "
                                  "from a grant to the request reaching the provider; a grant "
                                  "older than this when it comes back is taken again.", ge=0)
    shared_limiter: str | None = F(None, "Name of a rate limiter shared by every run on the "
                                   "cluster that names it (a detached Ray actor); None: one "
                                   "limiter per run.")
    max_retries: int = F(6, "Retries of a failed call (backoff with full jitter).", ge=0)
    retry_base_delay_s: float = F(0.5, "First backoff cap; doubles each retry.", ge=0)
    retry_max_delay_s: float = F(30.0, "Longest wait between retries.", ge=0)
    timeout_s: float = F(60.0, "Seconds one attempt may take.", gt=0)
    budget_usd: float | None = F(None, "Run-wide executor budget in dollars; spent: the run "
                                 "stops at a safe point (exit 3).", ge=0)
    seed: int = F(0, "Sampling seed sent with every call (with the occurrence number).",
                  resume=True)
    cache: CacheConfig = FF(CacheConfig, "The completion cache.")
    reject_limit: int = F(20, "Calls failed in a row (rejected per item, or a transient failure "
                          "that outlasted the retries) with no answer in between, after which "
                          "a trivial request with the same max_tokens is tried: failing too, "
                          "the endpoint cannot serve the run (from the start, or since an "
                          "outage mid-run) and it stops (ExecutorFatal) instead of scoring "
                          "every item 0 (docs/EXECUTOR.md \"Errors\").", ge=1)

    @model_validator(mode="after")
    def _prices_together(self) -> ExecutorConfig:
        given = (self.price_per_mtok_in is not None, self.price_per_mtok_out is not None)
        if any(given) and not all(given):
            raise ValueError("executor.price_per_mtok_in and executor.price_per_mtok_out are "
                             "set together (one alone would leave the other side unpriced)")
        if all(given) and self.pricing_model == "free" \
                and (self.price_per_mtok_in or self.price_per_mtok_out):
            raise ValueError("executor.pricing_model=free contradicts non-zero "
                             "executor.price_per_mtok_in/out: choose one")
        return self

    @model_validator(mode="after")
    def _window_holds_a_request(self) -> ExecutorConfig:
        _one_request_per_window(self.requests_per_minute, self.rate_limit_window_s,
                                "requests_per_minute")
        return self


class SimConfig(_Section):
    """The simulated OpenAI-compatible executor (`w4s sim serve`)."""

    host: str = F("127.0.0.1", "Bind address.")
    port: int = F(8765, "Port (0: a free one).", ge=0, le=65535)
    profile: str = F("sim-gpt-4o-mini", "Accuracy/latency profile (executor/sim/profiles.py).")
    latency: Literal["profile", "fixed", "lognormal", "none"] = F(
        "profile", "Reply latency model.")
    latency_ms: float | None = F(None, "Latency for `fixed`/`lognormal`; None: the profile's.",
                                 ge=0)
    rate_429: float = F(0.0, "Share of requests answered 429 (fault injection).", ge=0, le=1)
    rate_500: float = F(0.0, "Share of requests answered 500.", ge=0, le=1)
    rate_hang: float = F(0.0, "Share of requests that hang for hang_s.", ge=0, le=1)
    rate_malformed: float = F(0.0, "Share of requests answered with malformed JSON.", ge=0, le=1)
    hang_s: float = F(120.0, "How long a hanging request hangs.", ge=0)
    retry_after_s: float = F(1.0, "Seconds sent in Retry-After with an injected 429.", ge=0)
    rpm_limit: int | None = F(None, "Provider-style request limit per API key and model "
                              "(429 with Retry-After past it); None: off.", ge=1)
    tpm_limit: int | None = F(None, "Provider-style token limit (prompt + completion tokens) "
                              "per API key and model; None: off.", ge=1)
    tpm_charge: Literal["used", "requested"] = F(
        "used", "What a request costs against tpm_limit: used = prompt + the completion tokens "
        "it got; requested = prompt + n x its max_tokens, as OpenAI and Anthropic count at "
        "admission (the completion when it sets no max_tokens).")
    limit_window_s: float = F(60.0, "The limits hold over any window of this many seconds, as "
                              "rate x window / 60 (executor.rate_limit_window_s).", gt=0)
    one_choice: bool = F(False, "Answer one choice whatever n asks, as Ollama's /v1 and other "
                         "servers without `n` do (clients then send one request per sample).")

    @model_validator(mode="after")
    def _window_holds_a_request(self) -> SimConfig:
        _one_request_per_window(self.rpm_limit, self.limit_window_s, "rpm_limit")
        return self
    seed: int = F(0, "Seed of the simulator's draws.")


class SandboxConfig(_Section):
    """Limits for the OS processes that run untrusted workflow code (w4s_ray.sandbox)."""

    backend: Literal["auto", "bwrap", "process"] = F(
        "auto", "How children are isolated: bwrap = bubblewrap namespaces and a filesystem of "
        "their own; process = rlimits and unshare() namespaces where the kernel allows; auto = "
        "bwrap where it runs here, else process.")
    item_timeout_s: float = F(120.0, "Wall-clock seconds per item.", gt=0)
    workflow_timeout_s: float = F(1800.0, "Wall-clock seconds per evaluation.", gt=0)
    cpu_seconds: int = F(600, "CPU-time rlimit of a workflow child.", ge=1)
    memory_mb: int = F(2048, "Address-space rlimit of a workflow child.", ge=1)
    max_processes: int = F(64, "Process rlimit (not enforced by the kernel for root).", ge=1)
    max_open_files: int = F(256, "Open-file rlimit.", ge=1)
    max_output_bytes: int = F(65536, "Captured stdout/stderr per evaluation.", ge=0)
    code_exec_timeout_s: float = F(10.0, "Longest agent.execute_code / public-test run.", gt=0)
    max_answer_chars: int = F(100_000, "An answer longer than this is cut (a code answer is a "
                              "whole function).", ge=1)
    max_file_mb: int = F(64, "File-size rlimit.", ge=1)
    thread_stack_kb: int = F(4096, "Stack per item thread; memory_mb must hold threads x stack.",
                             ge=1)
    startup_timeout_s: float = F(20.0, "Interpreter start-up allowance before the workflow's "
                                 "own load time counts.", gt=0)
    max_code_procs: int = F(4, "Nested processes (execute_code, public tests) running at once "
                            "per evaluation.", ge=1)


class EvalConfig(_Section):
    """Parallel evaluation of workflows on a benchmark split."""

    num_evaluators: int = F(2, "Evaluator actors in the pool.", ge=1)
    max_inflight_per_evaluator: int = F(64, "Executor calls in flight across one evaluator "
                                        "(threads in its sandbox).", ge=1)
    limit: int | None = F(None, "Validation items per evaluation (first N); None: all.",
                          resume=True, ge=1)
    failure_samples: int = F(10, "Validation cases shown in a workflow's feedback (see "
                             "`feedback`). Default follows rlao.protocol (w4s: 10, w4s-ray: 5).",
                             resume=True, ge=0)
    self_check_items: int = F(1, "Validation items a candidate is self-checked on before its "
                              "evaluation.", resume=True, ge=1)
    actor_num_cpus: float = F(0.25, "Logical CPUs per evaluator actor (fractional: they mostly "
                              "wait on the executor).", ge=0)
    max_request_retries: int = F(2, "An evaluation whose actor died is re-run on a fresh one up "
                                 "to this many times.", ge=0)
    scoring: Literal["official", "lenient"] = F(
        "official", "How every benchmark scores an answer: 'official' = each benchmark's one "
        "upstream rule (docs/BENCHMARKS.md), 'lenient' = the tolerant matching (sentences, $, "
        "commas, option text, ...). Reports name the mode used.", resume=True)
    feedback: Literal["w4s", "w4s-ray"] = F(
        "w4s", "Validation feedback the meta-agent reads: 'w4s' = the accuracy and "
        "`failure_samples` cases drawn at random (seeded) from ALL evaluated items, correct ones "
        "included (upstream); 'w4s-ray' = the error histogram and `failure_samples` failed "
        "cases. Default follows rlao.protocol.", resume=True)
    execute_code_guard: bool = F(
        True, "Refuse `agent.execute_code` snippets containing upstream's unsafe patterns "
        "(while, eval/exec, open, os/sys/subprocess imports, plotting, ...) with a clear error "
        "the workflow can catch (docs/WORKFLOWS.md). Default follows rlao.protocol (w4s: on).",
        resume=True)
    extra_random_items: int = F(
        10, "RLAO validation noise as upstream: each candidate and seed evaluation adds this many "
        "items drawn (seeded by the workflow) from the benchmark's extra pool, disjoint from "
        "validation and test; 0 where a benchmark has no pool (docs/BENCHMARKS.md). Default "
        "follows rlao.protocol (w4s: 10, w4s-ray: 0).", resume=True, ge=0)


class RacingConfig(_Section):
    """Candidate racing: evaluate on growing validation slices, stop hopeless candidates."""

    enabled: bool = F(False, "Race a turn's candidates instead of evaluating all on every item.",
                      resume=True)
    slices: list[Annotated[float, Field(gt=0, le=1)]] = FF(
        lambda: [0.25, 0.5, 1.0], "Cumulative fractions of the validation items per round.",
        resume=True, min_length=1)
    confidence: float = F(0.95, "Confidence of the bounds that stop a candidate.", resume=True,
                          gt=0, lt=1)
    bound: Literal["wilson", "hoeffding"] = F("wilson", "Confidence bound.", resume=True)


class RLAOConfig(_Section):
    """The W4S decision process and RLAO collection."""

    protocol: Literal["w4s", "w4s-ray"] = F(
        "w4s", "The decision process. w4s: the authors' (2-turn trajectories from a reset chat "
        "over the archive, frozen-best rewards, failed and <= drop_accuracy candidates dropped, "
        "turns re-sampled, repair on any exception; docs/FIDELITY.md). w4s-ray: the project's "
        "earlier process (one episode with a rolling window, global best, failed candidates "
        "rewarded -0.1, 1-item self-check, docs/RLAO.md).", resume=True)
    turns: int = F(10, "Turns per episode (upstream: 30 iterations).", ge=0)
    candidates: int = F(5, "Workflows sampled per turn (m).", resume=True, ge=1)
    redraw_repeats: int = F(0, "Rounds of drawing again the candidates whose workflow repeats "
                            "a seed, an earlier turn's choice or another candidate of the turn "
                            "(code normalised; rlao/redraw.py). 0: upstream, every copy is "
                            "evaluated.", resume=True, ge=0, le=10)
    history_window: int = F(2, "w4s: turns per trajectory (upstream context_window: the chat "
                            "is reset to the archive every this many turns); w4s-ray: past "
                            "turns shown in the prompt.", resume=True, ge=0)
    max_repairs: int = F(2, "Repair replies per candidate. w4s: evaluated repairs after the "
                         "first attempt (upstream debug_max=3 evaluated attempts); w4s-ray: "
                         "self-check repair rounds (default 3).", resume=True, ge=0)
    max_turn_attempts: int = F(3, "w4s: times a turn is sampled when all its candidates are "
                               "dropped; then the run stops with an error (upstream: 3).",
                               resume=True, ge=1)
    drop_accuracy: float = F(0.05, "w4s: a candidate whose validation accuracy is at or below "
                             "this is dropped (no reward, never trained on; upstream 0.05).",
                             resume=True, ge=0, le=1)
    collect_split: Literal["valid", "train"] = F(
        "valid", "Where candidates and seeds are evaluated: 'valid' (upstream main.py) or "
        "'train', upstream's training mode: a collection split disjoint from validation and "
        "test (60 fixed items + 10 drawn from the rest, where the data allows; "
        "docs/BENCHMARKS.md). optimize always selects on validation.", resume=True)
    reward: Literal["w4s", "continuous"] = F("w4s", "Turn reward (rlao/rewards.py).",
                                             resume=True)
    low_accuracy_threshold: float = F(0.3, "w4s reward: below this accuracy, the penalty "
                                      "applies.", resume=True, ge=0, le=1)
    low_accuracy_penalty: float = F(0.1, "w4s reward: subtracted below the threshold.",
                                    resume=True, ge=0, allow_inf_nan=False)
    episodes_per_benchmark: int = F(1, "collect: episodes per benchmark.", ge=1)
    racing: RacingConfig = FF(RacingConfig, "Candidate racing (w4s-ray protocol only).")
    run_id: str | None = F(None, "Run id written in trajectory rows; None: the experiment name.",
                           resume=True)
    report_seed_test: bool = F(True, "optimize: also evaluate the seed workflows on test at the "
                               "end, for the report only.")
    test_limit: int | None = F(None, "optimize: test items of the final evaluation (first N); "
                               "None: the whole test split.", ge=1)
    bootstrap_samples: int = F(100_000, "optimize: bootstrap resamples of the 95% confidence "
                               "interval of each final test metric (upstream: 100,000).", ge=1)

    @model_validator(mode="after")
    def _protocol_defaults(self) -> RLAOConfig:
        if self.protocol == "w4s-ray" and "max_repairs" not in self.model_fields_set:
            object.__setattr__(self, "max_repairs", 3)
        if self.protocol == "w4s" and self.history_window < 1:
            raise ValueError("rlao.history_window: the w4s protocol needs trajectories of at "
                             "least 1 turn")
        if self.protocol == "w4s" and self.racing.enabled:
            raise ValueError("rlao.racing.enabled: racing evaluates candidates on partial "
                             "slices, which the w4s protocol (full validation, repair on any "
                             "exception) cannot honour; use rlao.protocol=w4s-ray with racing")
        return self


class MetaAgentConfig(_Section):
    """The weak model that writes workflows."""

    backend: Literal["litellm", "local", "scripted"] = F("local", "Where the model runs.",
                                                         resume=True)
    model: str = F("runs/tiny-meta-agent/model", "litellm: a model name (e.g. "
                   "openai/<served-name>); local: an HF directory, a .gguf file, a prepared "
                   "model name (`w4s models list`) or a hub id (docs/MODELS.md); scripted: a "
                   "replies file or seed-variants.", resume=True)
    api_base: str | None = F(None, "litellm backend: the endpoint.")
    api_key_env: str | None = F(None, "litellm backend: the env var holding the key; None: the "
                                "provider's (OPENAI_API_KEY for openai/..., ANTHROPIC_API_KEY, ...).")
    temperature: float = F(0.5, "Sampling temperature (the W4S paper's meta-agent value).",
                           resume=True, ge=0, le=2)
    # The other sampling settings default to the values `w4s serve` uses
    # (w4s_ray/models/sampling.py), so local and served sampling agree.
    top_p: float = F(DEFAULT_TOP_P, "Nucleus sampling mass.", resume=True, gt=0, le=1)
    top_k: int = F(DEFAULT_TOP_K, "Top-k cut; 0 = off, as in the OpenAI API and `w4s serve`.",
                   resume=True, ge=0)
    repetition_penalty: float = F(DEFAULT_REPETITION_PENALTY, "> 1 discourages tokens already "
                                  "in the prompt or reply (1 = off).", resume=True, gt=0)
    max_tokens: int = F(4096, "Completion-token limit of one reply (upstream 4096). The local "
                        "backend clamps it to the room the model's context leaves (see "
                        "meta_agent/local_backend.py).", resume=True, ge=1)
    num_gpus: float = F(0.0, "GPUs of the local backend's actor.", ge=0)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = F("auto", "Local model dtype.")
    seed: int = F(0, "Sampling seed base (sample i of a call uses seed + i).", resume=True)
    max_retries: int = F(3, "litellm backend: retries per call.", ge=0)
    timeout_s: float = F(600.0, "Seconds one generate call may take.", gt=0)
    num_cpus: float = F(0.5, "Logical CPUs of the local backend's actor.", ge=0)
    max_restarts: int = F(2, "Times the hosted local backend's actor is started again (on any "
                          "node that fits it) after its process or node is lost; the call in "
                          "flight is sent again (a reply is a function of prompt, n and seed, "
                          "so a retried call returns what the lost one would have). 0: a lost "
                          "actor stops the run.", ge=0)


class TinyModelConfig(_Section):
    """The offline meta-agent built by `w4s meta-agent init-tiny`."""

    out_dir: str = F("runs/tiny-meta-agent", "Output directory (the model goes to OUT/model).")
    arch: Literal["llama", "qwen2"] = F("llama", "Model architecture.")
    vocab_size: int = F(4096, "BPE vocabulary size.", ge=1)
    hidden_size: int = F(128, "Hidden size; a multiple of num_heads.", ge=1)
    num_layers: int = F(2, "Transformer layers.", ge=1)
    num_heads: int = F(4, "Attention heads; a multiple of num_kv_heads.", ge=1)
    num_kv_heads: int = F(2, "Key/value heads.", ge=1)
    max_position_embeddings: int = F(
        1536, "The context the model is trained for. The local backend cuts prompts to this "
        "minus meta_agent.max_tokens, so generation never meets token distances the warm start "
        "did not.", ge=1)
    warmstart_steps: int = F(300, "Supervised warm-start steps.", ge=0)
    warmstart_lr: float = F(3e-3, "Warm-start learning rate.", gt=0)
    warmstart_max_seq_len: int | None = F(None, "Warm-start sequence length (prompts fitted "
                                          "by meta_agent/context.py to random budgets below it "
                                          "minus the answer); None: the context above.", ge=1)
    warmstart_batch_size: int = F(4, "Warm-start batch size.", ge=1)
    parse_samples: int = F(4, "Samples per benchmark (T=0.5) for the reported parseable-solver "
                           "rate.", ge=1)
    seed: int = F(0, "Seed of the tokenizer corpus order, initialisation and warm start.")

    @model_validator(mode="after")
    def _heads_divide(self) -> TinyModelConfig:
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ValueError(f"hidden_size {self.hidden_size}, num_heads {self.num_heads} and "
                             f"num_kv_heads {self.num_kv_heads} must divide evenly")
        return self


class TrainConfig(_Section):
    """RWR training of the meta-agent (Ray Train)."""

    data: str = F("runs/collect/trajectories", "Trajectory Parquet file or directory.")
    base_model: str = F("runs/tiny-meta-agent/model", "HF model directory to start from.")
    out_dir: str = F("runs/train", "Output directory.")
    temperature: float = F(0.4, "RWR temperature T of the weights exp(r / T).", gt=0,
                           allow_inf_nan=False)
    normalize_weights: bool = F(False, "Scale weights to mean 1 over the kept examples.")
    filter: Literal["all", "success", "selected", "valid"] = F(
        "all", "Rows trained on: all, success (reward > 0), selected (chosen), valid. Every "
        "filter leaves out dropped candidates (w4s protocol), which have no reward.")
    repeats: Literal["keep", "once"] = F(
        "keep", "Candidates of one prompt that are the same program (comments and formatting "
        "ignored): keep = one example each, as upstream; once = one example per distinct "
        "program, rewarded with their mean reward, so copies do not multiply its weight.")
    kl_coef: float = F(0.0, "Weight of a KL(base model || policy) term at every label token, "
                       "not reward-weighted, that holds sampling near the base model's "
                       "diversity (0: none, as upstream; the base is kept frozen in memory, "
                       "or with LoRA is the model with its adapters off).", ge=0,
                       allow_inf_nan=False)
    loss_on: Literal["all_assistant", "candidate"] = F(
        "all_assistant", "Tokens the weighted loss covers: all_assistant = every assistant turn "
        "of the sample (the trajectory's earlier chosen replies and the candidate), each weighted "
        "by the candidate's exp(r/T), as upstream; candidate = the candidate reply only.")
    max_seq_len: int | None = F(
        None, "Tokens per example; a longer prompt loses its oldest history first, never the "
        "system prompt or task (meta_agent.context). None: the base model's context length, at "
        "most max_seq_len_cap; an explicit value wins over the cap (never over the context).",
        ge=1)
    max_seq_len_cap: int = F(8192, "Upper bound of the automatic max_seq_len (memory: activations "
                             "grow with it; 131k-token contexts would not fit a worker).", ge=1)
    gradient_checkpointing: bool | Literal["auto"] = F(
        "auto", "Recompute activations in the backward pass (less memory, ~1/3 more compute). "
        "auto: on for pretrained models, off for the tiny test model; true on a model that "
        "cannot is refused. Packed prompts then use the one-forward block-mask loss (the KV "
        "cache path cannot be checkpointed).")
    dtype: Literal["auto", "float32", "bfloat16"] = F(
        "auto", "Training precision: bfloat16 = bf16 mixed precision (GPU workers; refused "
        "without), float32 = full precision; auto = bfloat16 on GPU workers, else float32.")
    epochs: int = F(3, "Passes over the examples (upstream: the HF Trainer default, 3).", ge=1)
    batch_size: int = F(4, "Micro-batch per worker (packed sequences).", ge=1)
    lr: float = F(2e-5, "Peak learning rate (upstream train.py: 2e-5).", gt=0)
    lr_scheduler: Literal["constant", "linear", "cosine"] = F(
        "constant", "LR schedule over the run's optimizer steps (transformers.get_scheduler): "
        "constant, or linear / cosine decay to 0 after the warm-up.")
    warmup_steps: int = F(0, "Steps of linear warm-up.", ge=0)
    grad_accum_steps: int = F(1, "Micro-batches per optimizer step; a step's batch is "
                              "batch_size x grad_accum_steps x num_workers. Leftover "
                              "micro-batches of an epoch are dropped.", ge=1)
    weight_decay: float = F(0.0, "AdamW weight decay.", ge=0)
    num_workers: int = F(2, "Ray Train workers.", ge=1)
    cpus_per_worker: float = F(0.5, "Logical CPUs per worker.", gt=0)
    strategy: Literal["deepspeed", "ddp"] = F("deepspeed", "Data-parallel strategy.")
    zero_stage: Literal[1, 2, 3] = F(2, "DeepSpeed ZeRO stage.")
    offload_optimizer: bool = F(False, "DeepSpeed: optimizer state on the CPU.")
    lora: bool = F(False, "Train LoRA adapters (peft) instead of all weights.")
    lora_r: int = F(16, "LoRA rank.", ge=1)
    lora_alpha: int = F(32, "LoRA alpha.", ge=1)
    merge_lora: bool = F(True, "Export the base with the adapters merged in.")
    bf16: bool | None = F(None, "Older spelling of dtype: true = bfloat16, false = float32 "
                          "(None: follow dtype).")
    use_gpu: bool = F(False, "Workers on GPUs.")
    checkpoint_every: int = F(10, "Optimizer steps between checkpoints.", ge=1)
    seed: int = F(0, "Seed of example order and initialisation.")
    max_steps: int | None = F(None, "Stop after this many optimizer steps in total (None: all "
                              "epochs); resume may raise it.", ge=1)
    max_failures: int = F(2, "Worker-group restarts Ray Train attempts from the latest "
                          "checkpoint before giving up.", ge=0)
    grad_clip: float = F(1.0, "Gradient-norm clip.", gt=0)
    pack_prompts: bool = F(True, "Candidates sampled on the same prompt share one encoding of "
                           "it in one packed sequence (same loss; batch_size then counts packed "
                           "sequences).")
    lora_target_modules: list[str] = FF(lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
                                        "Modules LoRA adapts.", min_length=1)


class CompareConfig(_Section):
    """`w4s compare`: meta-agents judged by the validation accuracy of workflows they sample."""

    samples: int = F(8, "Workflows per (seed, benchmark) and model.", ge=1)
    seeds: list[int] = FF(lambda: [0, 1, 2], "Sampling seeds.", min_length=1)
    benchmarks: list[str] | None = F(None, "None: the config's `benchmarks` (the demo adds its "
                                     "held-out `benchmark`).")


class DemoConfig(_Section):
    """`w4s demo`: the tiny-model pipeline, or `--real` with a pretrained meta-agent."""

    real: bool = F(False, "Run the pipeline with a real pretrained meta-agent (`w4s demo "
                   "--real`, experiments/demo-real.yaml) instead of the tiny one.")
    model: str = F("smollm2", "--real: the model preset prepared as the warm-start meta-agent "
                   "(`w4s models list`; prepared from its packaged GGUF, nothing downloaded).")
    executor_benchmark: str | None = F(None, "--real: benchmark of the one evaluation of the "
                                       "seed workflows with the served model as the executor; "
                                       "None: `benchmark`.")
    executor_limit: int = F(4, "--real: validation items of that evaluation.", ge=1)
    executor_max_tokens_cap: int = F(96, "--real: executor.max_tokens_cap for the served model "
                                     "(a CPU replica decodes tens of tokens/s).", ge=1)
    executor_timeout_s: float = F(300.0, "--real: executor.timeout_s for the served model.",
                                  gt=0)


class ModelsConfig(_Section):
    """Where model inputs that need preparing go (`w4s models`, GGUF files; docs/MODELS.md)."""

    dir: str = F("runs/models", "`w4s models prepare NAME` writes here; a preset name given as "
                 "a model is looked up here.")
    cache_dir: str | None = F(None, "Converted .gguf files (one checkpoint per file content); "
                              "None: ~/.cache/w4s/models.")


class ServeConfig(_Section):
    """`w4s serve`: a Ray Serve app with an OpenAI-compatible API over a meta-agent checkpoint."""

    host: str = F("127.0.0.1", "Bind address.")
    port: int = F(8000, "HTTP port.", ge=1, le=65535)
    model: str = F("runs/train/model", "An HF directory, a LoRA adapter dir, a .gguf file, a "
                   "prepared preset (`smollm2`) or a hub id (docs/MODELS.md).")
    model_name: str = F("w4s-meta-agent", "Served model name (also the app name).")
    lora_base: str | None = F(None, "Base model of a LoRA adapter.")
    num_replicas: int = F(1, "Replicas (fixed, unless an autoscale bound is set).", ge=1)
    autoscale_min: int | None = F(None, "Autoscaling lower bound.", ge=0)
    autoscale_max: int | None = F(None, "Autoscaling upper bound.", ge=1)
    target_ongoing_requests: float = F(8.0, "Autoscaling target: requests in flight per replica "
                                       "(a replica decodes a batch of them).", gt=0)
    max_batch_size: int = F(16, "Rows (sequences) a replica decodes together; a request takes n "
                            "rows (1 when greedy).", ge=1)
    max_batch_tokens: int | None = F(65536, "Cap on rows x padded length of the batch's KV "
                                     "cache, in tokens (None: no cap); a request that would "
                                     "exceed it waits for rows to finish (alone it is always "
                                     "admitted).", ge=1)
    max_queue: int = F(32, "Requests that may wait for a full batch to make room; beyond that: "
                       "429 + Retry-After.", ge=0)
    json_max_attempts: int = F(3, "JSON mode (response_format json_object/json_schema): "
                               "attempts per choice before a 422.", ge=1)
    max_ongoing_requests: int | None = F(None, "Serve's per-replica limit of requests in flight; "
                                         "None: max_batch_size + max_queue + 16, so a full "
                                         "replica answers 429 itself instead of Serve queueing "
                                         "requests without bound.", ge=1)
    num_gpus: float = F(0.0, "GPUs per replica.", ge=0)
    num_cpus: float = F(0.5, "CPUs per replica.", ge=0)
    backend: Literal["transformers", "vllm"] = F(
        "transformers", "transformers: the built-in batching engine (CPU or GPU); vllm: vLLM's "
        "engine in the replica behind the same API (GPU nodes with vLLM installed).")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = F(
        "auto", "Model dtype; auto: bfloat16 on CUDA, float32 on CPU.")
    torch_threads: int | None = F(None, "torch threads per replica; None: the replica's whole "
                                  "CPUs (at least 1).", ge=1)
    max_n: int = F(16, "Largest `n` a request may ask for.", ge=1)
    truncate_prompt: bool = F(False, "Fit a prompt that does not fit (room left for "
                              "max_tokens, at most a third of the context) by the local "
                              "backend's rule (system prompt and task kept, oldest history "
                              "dropped first, then the middle cut; meta_agent/context.py); off = "
                              "OpenAI semantics (a 400 context_length_exceeded).")
    default_max_tokens: int = F(512, "Used when a request gives neither max_tokens nor "
                                "max_completion_tokens.", ge=1)
    startup_timeout_s: float = F(300.0, "Seconds to wait for the app to become healthy.", gt=0)
    registry_dir: str | None = F(None, "Where `w4s serve` records what it started (for "
                                 "--status/--shutdown); None: ~/.cache/w4s/serve.")

    @model_validator(mode="after")
    def _autoscale_bounds(self) -> ServeConfig:
        lo, hi = self.autoscale_min, self.autoscale_max
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"autoscale_min ({lo}) is larger than autoscale_max ({hi})")
        return self


class SweepConfig(_Section):
    """`w4s sweep`: many benchmarks at once on one evaluator pool, rate limit and budget."""

    max_parallel: int | None = F(None, "Benchmarks optimized at the same time (None: all).",
                                 ge=1)
    connect_timeout_s: float = F(3.0, "Seconds to wait for a TCP connection to `ray.address` "
                                 "before any work starts.", gt=0)
    baselines: bool = F(True, "Evaluate each benchmark's seed workflows on test as reported "
                        "baselines.")
    task_host: Literal["shared", "per_benchmark"] = F(
        "shared", "Where each benchmark's driver loop (meta-agent turns, run-dir writes, "
        "reports) runs: 'shared', threads of one Ray worker process on the driver's node that "
        "imports the platform once; 'per_benchmark', one Ray task (and so one worker process "
        "with its own imports) per benchmark, the old path (bench/bench_sweep.py compares "
        "them).")
    pool_host: Literal["auto", "own_actor", "task_host"] = F(
        "auto", "Where the sweep's evaluator pool (its slots, retries and replacements of dead "
        "evaluator actors) lives: 'task_host', in the shared benchmark host process (one Ray "
        "worker fewer; the pool dies with that host, as the benchmarks running there do); "
        "'own_actor', in an actor of its own (the old path); 'auto', task_host when "
        "task_host is 'shared', else own_actor. 'task_host' needs task_host 'shared'.")
    methods: list[str] | None = F(
        None, "The paper-shaped table's methods (`w4s sweep --methods`): hand-designed "
        "baselines (`w4s baselines list`), adas, aflow, w4s; None: W4S with each benchmark's "
        "seed workflows as its baselines.", min_length=1)


class AdasConfig(_Section):
    """ADAS (Meta Agent Search) as `w4s optimize --method adas` (docs/BASELINES.md)."""

    generations: int = F(30, "Generations of the search (ADAS `n_generation`).", ge=0)
    debug_max: int = F(3, "Evaluations per proposal, repairs included (ADAS).", resume=True,
                       ge=1)
    min_accuracy: float = F(0.01, "A proposal below this validation accuracy is repaired like "
                            "an error (ADAS's 'All 0 accuracy').", resume=True, ge=0, le=1)
    reflexion_rounds: int = F(2, "Reflexion prompts after each proposal (0-2; ADAS: 2).",
                              resume=True, ge=0, le=2)
    bootstrap_samples: int = F(100_000, "Bootstrap resamples of the fitness CI (ADAS: "
                               "100,000).", resume=True, ge=1)
    initial: list[str] | None = F(None, "Hand-designed baselines of the initial archive "
                                  "(`w4s baselines list`); None: all seven.", resume=True)


class AflowConfig(_Section):
    """AFlow as `w4s optimize --method aflow` (docs/BASELINES.md)."""

    max_rounds: int = F(20, "Optimisation rounds after round 1 (AFlow `max_rounds`).", ge=0)
    validation_rounds: int = F(5, "Evaluations per candidate, averaged (AFlow).", resume=True,
                               ge=1)
    sample: int = F(4, "Top rounds a parent is drawn from (AFlow `--sample`).", resume=True,
                    ge=1)
    alpha: float = F(0.2, "Selection softmax sharpness (AFlow).", resume=True, ge=0)
    lambda_: float = F(0.3, "Selection's uniform mixing weight (AFlow).", resume=True, ge=0,
                       le=1)
    check_convergence: bool = F(True, "Stop when the top-k mean is stable (AFlow).")
    convergence_top_k: int = F(3, "Rounds in the convergence mean.", resume=True, ge=1)
    convergence_z: float = F(0.0, "Standard errors the top-k mean may move and count as "
                             "stable.", resume=True, ge=0)
    convergence_rounds: int = F(5, "Stable rounds in a row that stop the search.", resume=True,
                                ge=1)
    max_generation_retries: int = F(20, "Rejected replies before a round is skipped.",
                                    resume=True, ge=1)
    dry_run_items: int = F(1, "Validation items a new graph is dry-run on (0: no dry run).",
                           resume=True, ge=0)


class OptimizersConfig(_Section):
    """Which workflow optimizer `w4s optimize` runs, and the settings of ADAS and AFlow."""

    method: Literal["w4s", "adas", "aflow"] = F(
        "w4s", "w4s: the meta-agent's turns (rlao); adas / aflow: those searches on the same "
        "runtime. Also `w4s optimize --method`.", resume=True)
    meta_agent: MetaAgentConfig | None = F(
        None, "The meta model of ADAS and AFlow (a strong API model in the papers); None: the "
        "`meta_agent` section. W4S always uses `meta_agent`.", resume=True)
    adas: AdasConfig = FF(AdasConfig, "ADAS settings.")
    aflow: AflowConfig = FF(AflowConfig, "AFlow settings.")


class RayConfig(_Section):
    address: str | None = F(None, "None: $RAY_ADDRESS when set (a job), else a private local "
                            "Ray; HOST:PORT or ray://...: join that cluster; \"auto\": the "
                            "cluster this user started with `ray start` on this machine (never "
                            "another user's). Also `--address`.")
    num_cpus: int | None = F(4, "Logical CPUs of a local Ray (over-subscribed on purpose: "
                             "actors mostly wait).", ge=1)
    temp_dir: str | None = F(None, "Ray's temp dir; None: a short per-user one under the system tmp (w4sray-<uid>).")
    dashboard: bool = F(False, "Start the Ray dashboard with a local Ray (the stage prints its "
                        "URL); joined clusters keep their own.")
    dashboard_port: int | None = F(None, "Dashboard port; None: Ray's default (8265).", ge=1,
                                   le=65535)
    placement: Literal["auto", "roles", "off"] = F(
        "auto", "Placement by role (docs/CLUSTERS.md): 'auto' = each role requests its custom "
        "resource when the cluster declares any role resource (none declared, e.g. one "
        "machine: Ray's default scheduling); 'roles' = always (an absent resource is an "
        "error); 'off' = never.")
    evaluator_resource: str | None = F(
        "evaluator", "Custom resource evaluator actors request (CPU nodes in clusters/); None: "
        "none.")
    evaluator_resource_per_actor: float = F(
        1.0, "Units of `evaluator_resource` per evaluator actor (a node declaring 16 hosts 16).",
        gt=0)
    meta_agent_resource: str | None = F(
        "meta_agent", "Custom resource of the meta-agent role: the local meta-agent actor, Ray "
        "Train workers and Serve replicas (GPU nodes in clusters/); None: none.")
    meta_agent_resource_per_actor: float = F(
        0.01, "Units of `meta_agent_resource` per actor of that role (a share of the GPU "
        "node's 1, so the meta-agent actor, train workers and replicas fit on one node).",
        gt=0)

    @model_validator(mode="after")
    def _role_resource_names(self) -> RayConfig:
        for key in ("evaluator_resource", "meta_agent_resource"):
            name = getattr(self, key)
            if name is not None and (not name.strip() or name in (
                    "CPU", "GPU", "memory", "object_store_memory")):
                raise ValueError(f"{key}: {name!r} is not a custom resource name")
        return self


class StorageConfig(_Section):
    """Run directories given as URIs (s3://, gs://, hdfs://; `w4s_ray.storage`, docs/CLUSTERS.md
    "Keeping results"): the stage writes a local staging copy that is synced to the URI."""

    staging_dir: str | None = F(None, "Where a URI run's local copy is written (one new "
                                "directory per stage run, kept afterwards); None: "
                                "~/.cache/w4s-ray/staging.")
    sync_interval_s: float = F(30.0, "Seconds between copies of new files to the URI (besides "
                               "each completed turn and the stage's end); 0: only those.", ge=0)
    check_timeout_s: float = F(60.0, "Longest wait for the storage's answer to the check made "
                               "before a stage starts (a probe object written and deleted).",
                               gt=0)


class TrackingConfig(_Section):
    """Experiment tracking (docs/API.md "Tracking", `w4s_ray.tracking`): per-turn metrics,
    dollars, the chosen workflow and the final table logged to MLflow or W&B. Off by default."""

    backend: Literal["none", "mlflow", "wandb"] = F(
        "none", "none: no tracking; mlflow / wandb: log every stage run through the API or the "
        "CLI (needs `pip install -e .[tracking]`).")
    uri: str | None = F(None, "MLflow: the tracking URI; None: sqlite:///<run_dir>/mlflow.db "
                        "(absolute); any MLflow URI works (http://host:5000, databricks, ...). "
                        "W&B (online only): the server's base URL; None: W&B's default.")
    experiment: str | None = F(None, "MLflow experiment / W&B project; None: the config's name.")
    mode: Literal["offline", "online"] = F(
        "offline", "W&B only: offline writes the run under <run_dir>/wandb (nothing leaves the "
        "machine; `wandb sync` uploads it); online logs to the W&B server as the run goes.")


class PaperFigure(_Section):
    """A headline number of the paper (Nie et al. 2025) this experiment reproduces."""

    benchmark: str = F(..., "Benchmark the figure is about.")
    metric: str = F("accuracy", "What the figure measures (accuracy, pass@1, ...).")
    value: float = F(..., "The paper's value, in percent.")
    executor: str | None = F(None, "The executor model the paper used.")
    wall_min: float | None = F(None, "The paper's wall time for the run, minutes.")
    dollars: float | None = F(None, "The paper's cost for the run, US dollars.")
    source: str = F("", "Where in the paper (table / figure / text).")


_PROTOCOL_EVAL_DEFAULTS = {
    "w4s-ray": {"failure_samples": 5, "feedback": "w4s-ray", "execute_code_guard": False,
                "extra_random_items": 0},
}


class ExperimentConfig(_Section):
    name: str = F("w4s", "Experiment name (the default run id).", resume=True)
    seed: int = F(0, "Experiment seed (turn seeds derive from it).", resume=True)
    benchmark: str = F("gsm8k", "The benchmark of single-benchmark stages (optimize, eval; the "
                       "demo's held-out one).")
    benchmarks: list[str] | None = F(None, "Benchmarks of multi-benchmark stages (collect, "
                                     "sweep, compare, the demo's training set); None: every "
                                     "registered benchmark.")
    run_dir: str = F("runs", "Root of the run directories: a path (a mounted NFS/PVC path "
                     "on a cluster) or a URI (file://, s3://, gs://; see `storage`).")
    include: list[str] = FF(list, "Your own benchmarks and seed workflows: directories (each "
                            "imported as a package named after it) or installed module names, "
                            "loaded by every stage and every Ray worker (docs/HOWTO.md). "
                            "Also `--include`.")
    data: DataConfig = FF(DataConfig, "Benchmark data.")
    executor: ExecutorConfig = FF(ExecutorConfig, "The strong executor.")
    sim: SimConfig = FF(SimConfig, "The simulated executor.")
    sandbox: SandboxConfig = FF(SandboxConfig, "Limits of untrusted code.")
    eval: EvalConfig = FF(EvalConfig, "Workflow evaluation.")
    rlao: RLAOConfig = FF(RLAOConfig, "The decision process and collection.")
    meta_agent: MetaAgentConfig = FF(MetaAgentConfig, "The meta-agent.")
    tiny: TinyModelConfig = FF(TinyModelConfig, "The tiny offline meta-agent.")
    train: TrainConfig = FF(TrainConfig, "RWR training.")
    compare: CompareConfig = FF(CompareConfig, "Policy comparison.")
    serve: ServeConfig = FF(ServeConfig, "Serving.")
    models: ModelsConfig = FF(ModelsConfig, "Model inputs that need preparing (GGUF, presets).")
    demo: DemoConfig = FF(DemoConfig, "`w4s demo` (--real: a pretrained meta-agent).")
    ray: RayConfig = FF(RayConfig, "Ray.")
    sweep: SweepConfig = FF(SweepConfig, "Sweeps.")
    tracking: TrackingConfig = FF(TrackingConfig, "Experiment tracking (MLflow).")
    storage: StorageConfig = FF(StorageConfig, "Run directories on shared storage (URIs).")
    optimizers: OptimizersConfig = FF(OptimizersConfig, "ADAS / AFlow and the method choice.")
    paper: list[PaperFigure] = FF(list, "The paper's figures this experiment reproduces; reports "
                                  "print them next to the measured values.")

    @model_validator(mode="after")
    def _protocol_defaults(self) -> ExperimentConfig:
        # Evaluation fields whose default depends on rlao.protocol, when not set explicitly.
        for name, value in _PROTOCOL_EVAL_DEFAULTS.get(self.rlao.protocol, {}).items():
            if name not in self.eval.model_fields_set:
                object.__setattr__(self.eval, name, value)
        return self

    def data_dir(self) -> Path:
        """The benchmark data directory: config, else $W4S_DATA_DIR, else ./data."""
        raw = self.data.dir or os.environ.get("W4S_DATA_DIR") or "data"
        return Path(raw).expanduser().resolve()


def yaml_error_text(exc: yaml.YAMLError) -> str:
    """'malformed YAML at line L, column C: <the parser's reason> (<context> at line M)'.

    The line is the one to fix: where the parser gave up, except when it gave up at the end
    of the file (an unclosed quote or bracket), where it is the line the construct opened."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    ctx, ctx_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    at_end = "end of stream" in problem or "<stream end>" in problem
    main = ctx_mark if (at_end and ctx_mark is not None) else mark
    where = f" at line {main.line + 1}, column {main.column + 1}" if main is not None else ""
    text = f"malformed YAML{where}: {problem}"
    if ctx:
        text += f" ({ctx}" + (f" that starts at line {ctx_mark.line + 1}" if ctx_mark else "") + ")"
    return text


def resume_keys(model: type[BaseModel] = ExperimentConfig, prefix: str = "") -> list[str]:
    """Dotted paths of every field marked `resume=True` (a section marked so: all its fields)."""
    out: list[str] = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        marked = bool((info.json_schema_extra or {}).get("resume"))
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            sub = resume_keys(ann, f"{path}.")
            out += sub if not marked else [path]
        elif marked:
            out.append(path)
    return out


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
            raise ConfigError(f"{source}: {yaml_error_text(exc)}") from None
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


def apply_overrides(cfg: ExperimentConfig, overrides: dict[str, Any] | list[str] | None
                    ) -> ExperimentConfig:
    """A new config: `cfg` with overrides applied, validated like `--set` (the Python API's
    keyword overrides: {"eval.limit": 8} or ["eval.limit=8"]). `cfg` itself is unchanged."""
    if not overrides:
        return cfg
    if isinstance(overrides, dict):
        items = [(str(k).split("."), v) for k, v in overrides.items()]
        names = [str(k) for k in overrides]
    else:
        items = [_parse_override(o) for o in overrides]
        names = [o.split("=", 1)[0] for o in overrides]
    tree = cfg.model_dump(mode="json")
    for key_path, value in items:
        if not key_path or any(not part for part in key_path):
            raise ConfigError(f"override {'.'.join(key_path)!r}: empty key")
        node = tree
        for part in key_path[:-1]:  # a section given as a dict merges into the section
            node = node.get(part) if isinstance(node.get(part), dict) else {}
        old = node.get(key_path[-1]) if isinstance(node, dict) else None
        if isinstance(value, dict) and isinstance(old, dict):
            value = _merged(old, value)
        _apply_override(tree, key_path, value)
    try:
        return ExperimentConfig.model_validate(tree)
    except ValidationError as err:
        loc = [str(p) for p in err.errors()[0]["loc"]]
        source = "overrides"
        for (key_path, _), name in zip(items, names, strict=True):
            if loc[: len(key_path)] == key_path or key_path[: len(loc)] == loc:
                source = f"override {name}"
                break
        raise ConfigError(_format_validation_error(err, source)) from None


def _merged(old: dict, new: dict) -> dict:
    out = dict(old)
    for k, v in new.items():
        out[k] = _merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def dump_config(cfg: ExperimentConfig, path: str | os.PathLike) -> None:
    """Write the resolved config next to a run's outputs, so a run records what it used."""
    Path(path).write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))


from w4s_ray import _callable_stage  # noqa: E402

_callable_stage(__name__)  # `w4s_ray.config(...)` is `w4s_ray.api.config` (docs/API.md)
