"""The litellm meta-agent backend sends the sampling settings `w4s serve` honours."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from w4s_ray.config import load_config
from w4s_ray.meta_agent import make_meta_agent

MSGS = [{"role": "user", "content": "Write solver(agent, task)."}]


class _Echo(BaseHTTPRequestHandler):
    bodies: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).bodies.append(body)
        data = json.dumps({
            "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": i, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "ok"}}
                        for i in range(body.get("n", 1))],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


def test_top_k_and_repetition_penalty_reach_the_server_only_when_set():
    _Echo.bodies = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base = [f"meta_agent.api_base=http://127.0.0.1:{srv.server_address[1]}/v1",
            "meta_agent.backend=litellm", "meta_agent.model=openai/w4s-sampling-test",
            "meta_agent.max_retries=0"]
    try:
        make_meta_agent(load_config(None, base)).generate(MSGS, 1)
        make_meta_agent(load_config(None, [*base, "meta_agent.top_k=50",
                                           "meta_agent.repetition_penalty=1.2"])
                        ).generate(MSGS, 1)
    finally:
        srv.shutdown()
        srv.server_close()
    plain, tuned = _Echo.bodies
    assert "top_k" not in plain and "repetition_penalty" not in plain  # defaults: nothing extra
    assert tuned["top_k"] == 50 and tuned["repetition_penalty"] == 1.2
