"""The HTTP server as a real process on loopback with tiny models: classification, batching
equivalence, generation (plain and streamed), auth, limits, timeouts, saturation, graceful
shutdown, Prometheus metrics, and schemathesis fuzzing against the OpenAPI schema."""

import concurrent.futures as cf
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import httpx
import pytest
from conftest import run_cli, sentiment_rows, write_csv

KEY = "s3cret-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def server(art, *args, env=None):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "supremum", "serve", str(art), "--port", str(port), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise AssertionError(f"server did not start: {proc.stderr.read()}")
        time.sleep(0.1)
    try:
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def wait_until_queued(url: str, n: int, timeout: float = 30) -> None:
    """Until the server holds `n` texts waiting for a batch (its readiness probe reports the depth)."""
    deadline = time.time() + timeout
    while httpx.get(url + "/readyz", timeout=5).json()["queue_depth"] < n:
        assert time.time() < deadline, "the request never reached the batch queue"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    d = tmp_path_factory.mktemp("serve")
    data = write_csv(d / "reviews.csv", sentiment_rows(240))
    art = d / "clf"
    env = {"SUPREMUM_HOME": str(d / "home")}
    run_cli("finetune", "--model", "tiny-bert", "--data", str(data), "--max-steps", "20", "--lr", "3e-3",
            "--output", str(art), "--no-progress", env=env, check=True)
    return art


@pytest.fixture(scope="module")
def causal(tmp_path_factory):
    from supremum.artifact import save_artifact
    from supremum.models import load_model

    model, tok = load_model("tiny-llama", "causal-lm")
    out = tmp_path_factory.mktemp("gen") / "lm"
    save_artifact(model, tok, out, task="text-generation", label_names=None, base_model="tiny-llama",
                  config={}, artifact_id="tinyllama-lm")
    return out


TEXTS = ["great good fine", "awful dull", "lovely superb brilliant film", "bad", "weak boring poor plot"]


def test_classify_batched_equals_single_and_metrics(classifier):
    with server(classifier, "--max-wait-ms", "50") as (url, _):
        single = [httpx.post(url + "/v1/classify", json={"texts": [t]}).json()["predictions"][0] for t in TEXTS]
        with cf.ThreadPoolExecutor(len(TEXTS)) as ex:
            together = list(ex.map(lambda t: httpx.post(url + "/v1/classify", json={"texts": [t]}).json(), TEXTS))
        for a, b in zip(single, together, strict=True):
            b = b["predictions"][0]
            assert a["label"] == b["label"]
            for k in a["probabilities"]:
                assert a["probabilities"][k] == pytest.approx(b["probabilities"][k], abs=1e-6)
        many = httpx.post(url + "/v1/classify", json={"texts": TEXTS}).json()["predictions"]
        assert [p["label"] for p in many] == [p["label"] for p in single]
        metrics = httpx.get(url + "/metrics").text
        batches = [line for line in metrics.splitlines() if line.startswith("supremum_batch_size_count")]
        n_batches = float(batches[0].split()[-1])
        assert n_batches < 2 * len(TEXTS) + 1  # concurrent texts shared forward passes
        assert 'supremum_requests_total{endpoint="/v1/classify",status="200"}' in metrics
        info = httpx.get(url + "/v1/model").json()
        assert info["labels"] == ["neg", "pos"] and info["lineage"] == "full"
        assert httpx.get(url + "/readyz").json()["ready"] is True
        schema = httpx.get(url + "/openapi.json").json()
        paths = {"/v1/classify", "/v1/generate", "/healthz", "/readyz", "/v1/model", "/metrics"}
        assert paths <= set(schema["paths"])


def test_limits_and_bad_input_are_4xx(classifier):
    with server(classifier, "--limit", "max_texts=3", "--limit", "max_chars=50",
                "--limit", "max_body_bytes=2000") as (url, _):
        post = lambda body, **kw: httpx.post(url + "/v1/classify", **({"json": body} if body is not None else kw))  # noqa: E731
        assert post({"texts": ["a"] * 4}).status_code == 422
        assert post({"texts": ["a" * 51]}).status_code == 422
        assert post({"texts": []}).status_code == 422
        assert post({"texts": "not a list"}).status_code == 422
        assert post({"texts": [1, 2]}).status_code == 422
        assert post({"text": ["a"]}).status_code == 422
        assert post(None, content=b"{not json", headers={"content-type": "application/json"}).status_code == 422
        big = post(None, content=b"x" * 3000, headers={"content-type": "application/json"})
        assert big.status_code == 413 and "2000 bytes" in big.json()["detail"]
        lone = post(None, content=b'{"texts": ["\\ud800"]}', headers={"content-type": "application/json"})
        assert lone.status_code == 422  # a lone surrogate escaped in JSON
        assert httpx.post(url + "/v1/generate", json={"prompt": "hi"}).status_code == 422  # a classifier


def test_auth_timeout_saturation(classifier):
    with server(classifier, env={"SUPREMUM_API_KEY": KEY}) as (url, _):
        assert httpx.post(url + "/v1/classify", json={"texts": ["a"]}).status_code == 401
        bad = httpx.post(url + "/v1/classify", json={"texts": ["a"]}, headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401 and bad.headers["www-authenticate"] == "Bearer"
        ok = httpx.post(url + "/v1/classify", json={"texts": ["a"]}, headers={"Authorization": f"Bearer {KEY}"})
        assert ok.status_code == 200
        assert httpx.get(url + "/healthz").status_code == 200  # probes need no key
    with server(classifier, "--max-wait-ms", "300", "--timeout-s", "0.05", "--max-queue", "2") as (url, _):
        assert httpx.post(url + "/v1/classify", json={"texts": ["a"]}).status_code == 504
        full = httpx.post(url + "/v1/classify", json={"texts": ["a", "b", "c"]})
        assert full.status_code == 503 and full.headers["retry-after"] == "1"
    refused = run_cli("serve", str(classifier), "--host", "0.0.0.0", env={"SUPREMUM_API_KEY": ""})
    assert refused.returncode == 2 and "without an API key" in refused.stderr


def test_graceful_shutdown_finishes_in_flight_requests(classifier):
    with server(classifier, "--max-wait-ms", "1500") as (url, proc):
        result = {}
        t = threading.Thread(target=lambda: result.update(
            r=httpx.post(url + "/v1/classify", json={"texts": ["good"]}, timeout=30)))
        t.start()
        wait_until_queued(url, 1)  # the request is waiting in the batch window
        proc.send_signal(signal.SIGTERM)
        t.join(30)
        assert result["r"].status_code == 200
        # uvicorn re-raises SIGTERM after its graceful shutdown, the conventional exit status
        assert proc.wait(30) in (0, -signal.SIGTERM)


def test_generate_plain_seeded_and_streamed(causal):
    with server(causal, "--limit", "max_new_tokens=16") as (url, _):
        greedy = {"prompt": "hello", "max_new_tokens": 8, "temperature": 0}
        a = httpx.post(url + "/v1/generate", json=greedy).json()
        assert a["tokens"] == 8 and a == httpx.post(url + "/v1/generate", json=greedy).json()
        seeded = {"prompt": "hello", "max_new_tokens": 8, "temperature": 1.0, "top_p": 0.9, "seed": 7}
        assert httpx.post(url + "/v1/generate", json=seeded).json() == httpx.post(url + "/v1/generate",
                                                                                 json=seeded).json()
        with httpx.stream("POST", url + "/v1/generate", json={**greedy, "stream": True}) as r:
            events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
        assert events[-1] == {"done": True, "tokens": 8}
        assert "".join(e.get("text", "") for e in events) == a["text"]
        assert httpx.post(url + "/v1/generate", json={**greedy, "max_new_tokens": 17}).status_code == 422
        assert httpx.post(url + "/v1/classify", json={"texts": ["a"]}).status_code == 422


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                    reason="llama-cpp-python is not installed (the `llama` extra)")
def test_generate_on_a_llama_cpp_artifact_answers_like_pytorch(causal, tmp_path):
    """The f32 GGUF export of the same model, served through llama.cpp: greedy answers equal the
    PyTorch server's; seeded sampling repeats; the stream concatenates to the plain answer."""
    gguf = tmp_path / "gguf"
    run_cli("compress", str(causal), "--method", "gguf", "quant=f32", "--output", str(gguf), check=True)
    greedy = {"prompt": "hello", "max_new_tokens": 8, "temperature": 0}
    with server(causal) as (url, _):
        want = httpx.post(url + "/v1/generate", json=greedy).json()
    with server(gguf) as (url, _):
        assert httpx.get(url + "/v1/model").json()["backend"] == "llamacpp"
        # the first answer builds llama.cpp's context: seconds on a loaded machine (past httpx's 5 s)
        got = httpx.post(url + "/v1/generate", json=greedy, timeout=300).json()
        assert (got["text"], got["tokens"]) == (want["text"], want["tokens"]) and got["tokens"] == 8
        seeded = {"prompt": "hello", "max_new_tokens": 8, "temperature": 1.0, "top_p": 0.9, "seed": 7}
        a, b = (httpx.post(url + "/v1/generate", json=seeded).json() for _ in range(2))
        assert a == b and a["tokens"] > 0
        blank = httpx.post(url + "/v1/generate", json={"prompt": " \n"})
        assert blank.status_code == 422 and blank.json()["detail"][0]["loc"] == ["body", "prompt"]
        with httpx.stream("POST", url + "/v1/generate", json={**greedy, "stream": True}) as r:
            events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
        assert events[-1] == {"done": True, "tokens": 8}
        assert "".join(e.get("text", "") for e in events) == got["text"]


def test_fuzzing_the_openapi_schema_finds_no_server_errors(classifier):
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings

    with server(classifier, "--limit", "max_new_tokens=4", env={"SUPREMUM_API_KEY": KEY}) as (url, _):
        schema = schemathesis.openapi.from_url(url + "/openapi.json")
        failures, calls = [], []

        def fuzz(operation) -> None:
            @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            @given(case=operation.as_strategy())
            def check(case):
                for headers in ({"Authorization": f"Bearer {KEY}"}, {}):
                    r = case.call(base_url=url, headers=headers)
                    calls.append(r.status_code)
                    if r.status_code >= 500:
                        failures.append(f"{operation.method.upper()} {operation.path}: {r.status_code} "
                                        f"for {case.body!r}")

            check()

        for op in schema.get_all_operations():
            fuzz(op.ok())
        assert failures == []
        assert len(calls) > 100 and 200 in calls and 422 in calls and 401 in calls
