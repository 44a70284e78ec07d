"""Replies of a real (non-JSON-trained) executor through the real sandbox: fenced or embedded
JSON is read, and when a JSON call got nothing usable the meta-agent's feedback quotes a
clipped excerpt of what the executor said (issue #17)."""

from __future__ import annotations

import json

from tests.workflow.fake_lm import FakeLM
from tests.workflow.helpers import GOOD, run_eval
from w4s_ray.rlao.prompts import format_feedback
from w4s_ray.sandbox.jsonreply import EXCERPT_CHARS


def _gold(bm):
    return {it.question: it.answer for it in bm.load("valid")}


def _q(msgs):
    return msgs[-1]["content"].split("# Your Task:\n", 1)[-1]


def test_fenced_and_embedded_json_replies_are_scored(gsm8k, sandbox_cfg, eval_cfg):
    gold = _gold(gsm8k)
    forms = [lambda a: f'```json\n{{"answer": "{a}"}}\n```',
             lambda a: f'Sure! The result is {{"reasoning": "step {{1}}", "answer": "{a}"}}.']
    lm = FakeLM(lambda msgs, t, j, occ: forms[len(_q(msgs)) % 2](gold[_q(msgs)]))
    res = run_eval(GOOD, gsm8k, lm, sandbox_cfg, eval_cfg, limit=4)
    assert res.scores == [1.0] * 4
    assert not any("executor_reply" in c for c in res.cases)  # usable JSON: nothing to quote


def test_feedback_quotes_a_clipped_reply_that_had_no_json(gsm8k, sandbox_cfg, eval_cfg):
    secret = "sk-live-abcdefghijklmnop"
    prose = (f"I believe the answer is 42 (as {secret} said) because the farmer sells eggs. "
             * 30)

    def reply(msgs, t, j, occ):
        q = _q(msgs)
        if q == gsm8k.load("valid")[1].question:  # valid JSON that lacks the asked-for key
            return json.dumps({"result": "42"})
        return prose

    res = run_eval(GOOD, gsm8k, FakeLM(reply), sandbox_cfg, eval_cfg, limit=3)
    assert res.answers == ["NO answer IN DICTIONARY"] * 3 and res.scores == [0.0] * 3
    excerpts = [c.get("executor_reply") for c in res.cases]
    assert excerpts[0] and excerpts[2] and excerpts[0].startswith("I believe the answer is 42")
    assert len(excerpts[0]) <= EXCERPT_CHARS + len(" [...]") and excerpts[0].endswith("[...]")
    assert secret not in excerpts[0] and "(as *** said)" in excerpts[0]  # key-like: masked
    assert excerpts[1] == '{"result": "42"}'  # parsed, but the key was missing: quoted too
    fb = format_feedback(res, 3)
    assert fb.count("#### Executor reply (no usable JSON; excerpt)\nI believe the answer") == 2
    assert '#### Executor reply (no usable JSON; excerpt)\n{"result": "42"}' in fb
    assert secret not in fb and len(fb) < 6000
    for c in res.cases:  # the excerpt sits between the workflow's answer and the gold
        block = fb.split(c["question"], 1)[1]
        assert block.index("Workflow's answer") < block.index("Executor reply") \
            < block.index("Correct answer")


def test_text_calls_and_usable_json_add_no_excerpt(gsm8k, sandbox_cfg, eval_cfg):
    code = '''
def solver(agent, task):
    agent.call_llm(messages=[{"role": "user", "content": task}])  # text mode: no JSON wanted
    r = agent.call_json_format_llm(messages=[{"role": "user", "content": task}],
                                   return_dict_keys=["answer"])
    return {"answer": r[0]["answer"]}
'''
    lm = FakeLM(lambda msgs, t, j, occ: json.dumps({"answer": "-1"})
                if "JSON" in msgs[0]["content"] else "plain prose, no JSON at all")
    res = run_eval(code, gsm8k, lm, sandbox_cfg, eval_cfg, limit=2)
    assert res.scores == [0.0, 0.0] and len(res.cases) == 2
    assert all("executor_reply" not in c for c in res.cases)
    assert "Executor reply" not in format_feedback(res, 2)


def test_a_capped_and_free_executor_end_to_end(gsm8k, sim_executor_cfg, sandbox_cfg, eval_cfg):
    """Workflow -> sandbox -> ExecutorClient -> HTTP -> simulator: a workflow asking 100k
    tokens is answered (sent the cap, counted), and a free executor's result costs $0."""
    import asyncio

    from w4s_ray.executor.client import ExecutorClient
    from w4s_ray.workflow.evaluate import EvalRequest, evaluate

    code = '''
def solver(agent, task):
    r = agent.call_json_format_llm(messages=[{"role": "user", "content": task}],
                                   max_completion_tokens=100000, return_dict_keys=["answer"])
    return {"answer": str(r[0]["answer"])}
'''
    cfg = sim_executor_cfg.model_copy(update={"max_tokens_cap": 48, "pricing_model": "free"})

    async def run():
        with ExecutorClient(cfg) as client:
            res = await evaluate(EvalRequest(code=code, benchmark="gsm8k", limit=3), gsm8k,
                                 client, sandbox_cfg, eval_cfg)
            return res, client.stats()

    res, stats = asyncio.run(run())
    assert res.errors == {} and res.calls == 3 and res.capped_calls == 3
    assert stats["capped"] == 3 and res.summary()["capped_calls"] == 3
    assert res.completion_tokens <= 3 * 48 and res.prompt_tokens > 0
    assert res.cost_usd == 0.0 and stats["cost_usd"] == 0.0
