"""Warm-start data and SFT for the tiny meta-agent (no Ray).

Pairs: the real first-turn meta-agent prompt of a benchmark under the run's protocol
(`rlao.prompts_w4s.build_messages` for w4s, `rlao.prompts.build_messages` for w4s-ray; archive =
that benchmark's seed workflows with placeholder validation feedback) and an answer
"analysis + one ```python solver``` block". Answers are the seed workflows and programmatic
variations of them: renamed local variables, other temperatures / num_of_response, an added
verification call, other agent roles / instructions. Variations are produced with `ast`, so
every answer parses.

`sft` is a plain single-process torch loop over the batched masked loss of `train.loss` (all
weights 1). `parse_rate` samples from the model and counts replies from which a `solver` can be
extracted. Both fit long prompts by the rule the local backend samples with and RWR trains with
(`meta_agent.context.fit_chat`, with the backend's chat encoder). The point is a model that emits well-formed workflows, not a good one: the archive
accuracies in these prompts are placeholders, not measurements.
"""

from __future__ import annotations

import ast
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import torch
from tqdm import tqdm

from w4s_ray.benchmarks import get_benchmark
from w4s_ray.meta_agent import context
from w4s_ray.rlao import prompts_w4s, w4s
from w4s_ray.rlao.mdp import ArchiveEntry, initial_state
from w4s_ray.rlao.prompts import PromptSpec, build_messages
from w4s_ray.train.loss import batch_loss, collate
from w4s_ray.train.rwr import IGNORE_INDEX, _TooLong, tokenize_example
from w4s_ray.workflow.errors import WorkflowError
from w4s_ray.workflow.extract import extract_workflow

log = logging.getLogger(__name__)

# Used only when a benchmark's own seeds cannot be loaded (an unknown name, a broken template).
_FALLBACK_SEEDS = {
    "cot": '''def solver(agent, task):
    messages = [{"role": "user", "content": task}]
    replies = agent.call_llm(messages=messages, temperature=0.0, num_of_response=1,
                             agent_role="task solver",
                             instructions="Think step by step, then give the final answer.")
    return {"answer": agent.extract_answer_str(replies[0])}
''',
    "self_consistency": '''def solver(agent, task):
    from collections import Counter
    messages = [{"role": "user", "content": task}]
    replies = agent.call_json_format_llm(messages=messages, temperature=0.7, num_of_response=5,
                                         agent_role="task solver",
                                         return_dict_keys=["reasoning", "answer"],
                                         instructions="Reason step by step; put only the final answer in answer.")
    answers = [str(r.get("answer", "")).strip() for r in replies]
    answers = [a for a in answers if a] or [""]
    return {"answer": Counter(answers).most_common(1)[0][0]}
''',
}

_TEMPERATURES = [0.0, 0.3, 0.5, 0.7, 1.0]
_NUM_RESPONSES = [1, 3, 5, 7]
_ROLES = ["task solver", "careful expert", "meticulous problem solver", "domain expert"]
_INSTRUCTIONS = [
    "Think step by step, then state the final answer.",
    "Explain your reasoning briefly and end with the final answer.",
    "Solve the problem carefully and double-check each step before answering.",
    "Break the problem into parts, solve each part, then combine them into the final answer.",
]
_NAME_POOL = ["msgs", "outs", "result", "reply", "cands", "draft", "votes", "final", "resp",
              "items", "chosen", "ans", "text", "parts", "value"]


# ----------------------------------------------------------------------------- seeds


def seeds_for(name: str, protocol: str = "w4s") -> tuple[dict[str, str], Any]:
    """(seed workflows, benchmark or None) — the benchmark's own seeds when available."""
    try:
        bm = get_benchmark(name)
    except Exception as exc:
        log.warning("benchmark %s unavailable (%s); using generic seeds", name, exc)
        return dict(_FALLBACK_SEEDS), None
    try:
        seeds = bm.seed_workflows(style=protocol)
        if seeds:
            return dict(seeds), bm
    except Exception as exc:
        log.warning("seed workflows of %s unavailable (%s); using generic seeds", name, exc)
    return dict(_FALLBACK_SEEDS), bm


# ----------------------------------------------------------------------------- variations


class _Rename(ast.NodeTransformer):
    def __init__(self, mapping: dict[str, str]):
        self.mapping = mapping

    def visit_Name(self, node: ast.Name) -> ast.Name:
        if node.id in self.mapping:
            node.id = self.mapping[node.id]
        return node

    def visit_arg(self, node: ast.arg) -> ast.arg:
        if node.arg in self.mapping:
            node.arg = self.mapping[node.arg]
        return node


def _assigned_locals(tree: ast.Module) -> list[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return sorted(names - {"agent", "task", "solver"})


def rename_variables(code: str, rng: random.Random) -> str | None:
    tree = ast.parse(code)
    names = _assigned_locals(tree)
    if not names:
        return None
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    pool = [p for p in _NAME_POOL if p not in used]
    rng.shuffle(pool)
    mapping = {n: pool[i] for i, n in enumerate(names[: len(pool)])}
    return ast.unparse(_Rename(mapping).visit(tree)) + "\n"


def set_call_kwargs(code: str, updates: dict[str, Any]) -> str | None:
    """Change keyword constants (temperature=, num_of_response=, agent_role=, ...) in agent calls."""
    tree = ast.parse(code)
    changed = False
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for kw in node.keywords:
            if kw.arg in updates and isinstance(kw.value, ast.Constant):
                kw.value = ast.Constant(updates[kw.arg])
                changed = True
    return ast.unparse(tree) + "\n" if changed else None


def add_verification(code: str) -> str:
    """Wrap the workflow: run it as a draft, then ask the model to verify and correct it."""
    body = "\n".join("    " + line if line.strip() else line for line in code.splitlines())
    inner = body.replace("def solver(agent, task):", "def draft_solver(agent, task):", 1)
    return (
        "def solver(agent, task):\n"
        f"{inner}\n"
        "    draft = draft_solver(agent, task)\n"
        "    answer = draft.get('answer', '') if isinstance(draft, dict) else str(draft)\n"
        "    check = agent.call_json_format_llm(\n"
        "        messages=[{'role': 'user', 'content': f'Task:\\n{task}\\n\\nProposed answer:\\n{answer}'}],\n"
        "        temperature=0.0, num_of_response=1, agent_role='careful verifier',\n"
        "        return_dict_keys=['is_correct', 'corrected_answer'],\n"
        "        instructions='Check the proposed answer. is_correct: true or false. '\n"
        "                     'corrected_answer: the answer in the same format, fixed if needed.')\n"
        "    verdict = check[0] if check else {}\n"
        "    fixed = verdict.get('corrected_answer')\n"
        "    if str(verdict.get('is_correct')).lower() == 'false' and isinstance(fixed, str) "
        "and fixed.strip() and not fixed.startswith('NO '):\n"
        "        answer = fixed\n"
        "    return {'answer': answer}\n"
    )


def variations(name: str, code: str, rng: random.Random) -> list[tuple[str, str]]:
    """(analysis, code) answers derived from one seed; each variation keeps a valid solver."""
    out: list[tuple[str, str]] = [(
        f"The archive shows the {name} workflow. I keep its structure, which already handles "
        "the answer format, and resubmit it as the baseline to build on.", code)]
    t, n = rng.choice(_TEMPERATURES), rng.choice(_NUM_RESPONSES)
    v = set_call_kwargs(code, {"temperature": t, "num_of_response": n})
    if v:
        out.append((f"Sampling settings matter here: I change the temperature to {t} and ask "
                    f"for {n} responses so the final answer is more reliable.", v))
    role, instr = rng.choice(_ROLES), rng.choice(_INSTRUCTIONS)
    v = set_call_kwargs(code, {"agent_role": role, "instructions": instr})
    if v:
        out.append((f"Failures in the feedback come from sloppy reasoning. I make the model act "
                    f"as a {role} and give clearer instructions: {instr}", v))
    v = rename_variables(code, rng)
    if v:
        out.append(("I rewrite the workflow more readably with clearer variable names; the "
                    "logic stays the same so its accuracy is preserved.", v))
    out.append(("Several validation errors look like answers that a second look would catch. "
                "I add a verification step: a verifier call checks the draft answer and "
                "corrects it when it is wrong.", add_verification(code)))
    return out


def format_answer(analysis: str, code: str) -> str:
    return f"{analysis}\n\n```python\n{code.rstrip()}\n```"


# ----------------------------------------------------------------------------- prompts


def _reply_like(question: str, rng: random.Random) -> str:
    """A wrong step-by-step reply of the shape executors give (real feedback quotes the
    workflow's whole answer, often several sentences with the question's numbers)."""
    parts = [p.strip() for p in question.replace("?", ".").split(".") if p.strip()][:4]
    steps = ["Let's think step by step."]
    steps += [f"Step {i}: From \"{p[:160]}\" we note the relevant quantities."
              for i, p in enumerate(parts, 1)]
    steps.append(f"Working through the computation, we get {rng.randint(0, 999)}.")
    return "\n".join(steps)


def sample_feedback_w4s(bm: Any, rng: random.Random) -> str:
    """Feedback shaped like `rlao.prompts_w4s.format_feedback` (cases drawn from all items,
    correct ones included), on real validation questions with made-up answers."""
    try:
        items = bm.load("valid")
    except Exception:
        items = []
    if not items:
        return "(no validation feedback available)"
    acc = rng.uniform(0.2, 0.95)
    lines = [f"Validation accuracy: {acc:.4f} ({round(acc * len(items))} of {len(items)} "
             "items correct)"]
    picked = rng.sample(items, min(len(items), rng.randint(1, 3)))
    lines.append(f"Evaluation cases ({len(picked)} drawn at random from the {len(items)} "
                 "evaluated items):")
    for num, it in enumerate(picked, 1):
        right = rng.random() < acc
        got = it.answer if right else rng.choice(
            [str(rng.randint(0, 999)), "I cannot determine the answer.", it.answer[::-1][:40],
             _reply_like(it.question, rng)])
        lines.append(f"\n### Case {num}\nQuestion:\n{it.question}\nWorkflow's answer: {got}\n"
                     f"Correct answer: {it.answer}\nCorrect: {'yes' if right else 'no'}")
    return "\n".join(lines)


def sample_feedback(bm: Any, rng: random.Random) -> str:
    """Feedback shaped like `rlao.prompts.format_feedback`, on real validation questions
    with made-up answers. Real runs put a few validation cases in every archive entry; a warm
    start that only ever saw one fixed placeholder learns to key on it and falls apart on the
    first real prompt (seen in the demo: parse rate 1.0 on warm-start prompts, 0 in collect)."""
    try:
        items = bm.load("valid")
    except Exception:
        items = []
    if not items:
        return "(no validation feedback available)"
    acc = rng.uniform(0.2, 0.95)
    lines = [f"Accuracy on the validation set: {acc * 100:.1f}% "
             f"({round(acc * len(items))}/{len(items)} fully correct)."]
    picked = rng.sample(items, min(len(items), rng.randint(1, 3)))
    lines.append(f"\nHere are {len(picked)} cases where the workflow was wrong:")
    for num, it in enumerate(picked, 1):
        wrong = rng.choice([str(rng.randint(0, 999)), "I cannot determine the answer.",
                            "(no answer) timeout: the item took too long", it.answer[::-1][:40],
                            _reply_like(it.question, rng), _reply_like(it.question, rng)])
        lines.append(f"\n### Case {num}\n#### Question\n{it.question}\n"
                     f"#### Workflow's answer\n{wrong}\n#### Correct answer\n{it.answer}")
    return "\n".join(lines)


def meta_agent_prompt(name: str, seeds: dict[str, str], bm: Any,
                      rng: random.Random, protocol: str = "w4s") -> list[dict[str, str]]:
    """The first-turn prompt of `protocol` for a benchmark with its seeds as the archive."""
    task = getattr(bm, "task_description", f"The {name} benchmark.")
    kind = getattr(bm, "kind", "math")
    fmt = getattr(bm, "answer_format", "")
    feedback = sample_feedback_w4s if protocol == "w4s" else sample_feedback
    entries = [
        ArchiveEntry(name=k, code=v, val_accuracy=round(rng.uniform(0.2, 0.9), 2),
                     feedback=feedback(bm, rng))
        for k, v in seeds.items()
    ]
    if protocol == "w4s":
        state = w4s.initial_state(name, task, entries)
        return prompts_w4s.build_messages(state, prompts_w4s.PromptSpec(kind, fmt))
    return build_messages(initial_state(name, task, entries),
                          PromptSpec(kind=kind, answer_format=fmt))


def warmstart_pairs(benchmarks: list[str], seed: int = 0, prompts_per_benchmark: int = 6,
                    protocol: str = "w4s") -> tuple[list[tuple[list, str]], dict]:
    """(messages, answer) pairs for every benchmark, plus the sampling prompt per benchmark."""
    rng = random.Random(seed)
    pairs: list[tuple[list, str]] = []
    eval_prompts: dict[str, list] = {}
    for name in benchmarks:
        seeds, bm = seeds_for(name, protocol)
        prompts = [meta_agent_prompt(name, seeds, bm, rng, protocol)
                   for _ in range(prompts_per_benchmark)]
        eval_prompts[name] = prompts[0]
        for seed_name, code in seeds.items():
            for analysis, v in variations(seed_name, code, rng):
                pairs.append((rng.choice(prompts), format_answer(analysis, v)))
    return pairs, eval_prompts


# ----------------------------------------------------------------------------- SFT + sampling


def chat_encoder(tokenizer) -> Callable[[list, bool], list[int]]:
    """The local backend's chat encoder (`models.chat.encode_chat`), memoised per message list
    (`context.fit_chat` encodes the same messages several times)."""
    from w4s_ray.models.chat import encode_chat

    cache: dict[tuple, list[int]] = {}

    def encode(messages: list, generation_prompt: bool) -> list[int]:
        key = (tuple(id(m) for m in messages), generation_prompt)
        if key not in cache:
            cache[key] = encode_chat(tokenizer, messages, add_generation_prompt=generation_prompt)
        return cache[key]

    return encode


def sft(model, tokenizer, pairs: list[tuple[list, str]], *, steps: int, lr: float,
        batch_size: int = 4, max_seq_len: int = 2048, seed: int = 0,
        min_prompt_tokens: int = 128, progress: bool = True) -> list[dict[str, float]]:
    """Supervised warm start on the answers only (prompt masked); returns the loss per step.

    Each prompt is fitted by the rule the local backend samples with (`meta_agent.context`:
    system prompt and task kept from the front, the end kept, the middle cut), to a budget drawn
    at random per step between `min_prompt_tokens` and what `max_seq_len` leaves after the
    answer. Why random: with one budget per pair (max_seq_len - answer length) the place where
    the middle is cut, and so the positions of the kept end, would tell the model which answer
    follows, it would key on that, and the backend's one fixed budget (context - reply room)
    would then read as noise. Random budgets also cover that fixed budget.
    """
    rng = random.Random(seed)
    encode = chat_encoder(tokenizer)
    examples = []  # (messages, full prompt length, completion ids)
    for msgs, answer in pairs:
        try:
            ids, labels, _ = tokenize_example(tokenizer, msgs, answer, 1 << 30)
        except _TooLong:
            continue
        n_prompt = next(i for i, t in enumerate(labels) if t != IGNORE_INDEX)
        if max_seq_len - (len(ids) - n_prompt) >= 1:
            examples.append((msgs, len(encode(msgs, True)), ids[n_prompt:]))
    if not examples:
        raise ValueError("no warm-start example fits max_seq_len")

    def window(msgs: list, n_prompt: int, completion: list[int]) -> tuple[list[int], list[int]]:
        hi = min(n_prompt, max_seq_len - len(completion))
        prompt = context.fit_chat(msgs, encode, rng.randint(min(hi, min_prompt_tokens), hi)
                                  ).fitted_ids()
        return prompt + completion, [IGNORE_INDEX] * len(prompt) + completion
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 20) * max(0.05, 1 - s / max(1, steps)))
    pad = tokenizer.pad_token_id
    model.train()
    history = []
    bar = tqdm(range(steps), desc="warm start", disable=not progress)
    for step in bar:
        batch = [window(*ex) for ex in rng.sample(examples, min(batch_size, len(examples)))]
        b = collate([x for x, _ in batch], [y for _, y in batch], [1.0] * len(batch), pad)
        loss, _ = batch_loss(model, b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        history.append({"step": step + 1, "loss": loss.item()})
        bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    return history


def _default_checker() -> Callable[[str], bool]:
    def ok(text: str) -> bool:
        try:
            extract_workflow(text)
            return True
        except WorkflowError:
            return False

    return ok


def parse_rate(model, tokenizer, prompts: dict[str, list], *, k: int = 4,
               temperature: float = 0.5, max_new_tokens: int = 512, max_prompt_tokens: int = 2048,
               seed: int = 0) -> dict[str, Any]:
    """Sample k replies per benchmark prompt; the share from which a solver can be extracted."""
    ok = _default_checker()
    encode = chat_encoder(tokenizer)
    torch.manual_seed(seed)
    per: dict[str, float] = {}
    samples: dict[str, str] = {}
    t0 = time.perf_counter()
    total_ok = total = 0
    for name, msgs in prompts.items():
        # Fitted as the local backend fits its prompts (same rule, same encoder).
        ids = torch.tensor([context.fit_chat(msgs, encode, max_prompt_tokens).fitted_ids()])
        with torch.no_grad():
            out = model.generate(
                input_ids=ids.repeat(k, 1), attention_mask=torch.ones_like(ids).repeat(k, 1),
                do_sample=True, temperature=temperature, top_p=1.0,
                max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        replies = tokenizer.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True)
        good = sum(ok(r) for r in replies)
        per[name] = good / k
        samples[name] = replies[0]
        total_ok += good
        total += k
    return {"parse_rate": total_ok / max(1, total), "per_benchmark": per, "k": k,
            "temperature": temperature, "samples": samples,
            "wall_s": time.perf_counter() - t0}
