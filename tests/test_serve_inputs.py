"""Inputs real clients send the server: empty and whitespace-only texts (422 naming the item, on
every backend and every text endpoint), batched answers of a decoder classifier equal to the
text alone, oversized bodies (a 413 that urllib and chunked clients can read, from a real
server process), and answers that can never be invalid JSON (NaN/Infinity)."""

import asyncio
import http.client
import json
import math
import socket
import time
import urllib.error
import urllib.request

import httpx
import pytest
import torch
from conftest import run_cli, sentiment_rows, write_csv
from fastapi.testclient import TestClient
from test_serve import server

from supremum.artifact import open_artifact, save_artifact
from supremum.models import load_model
from supremum.serve import ServeConfig
from supremum.serve.app import AsciiJSON, create_app, finite_or_none

BLANK = "empty or only whitespace; send some text"
LABELS = ["neg", "pos"]


def save_tiny(out, name: str, task: str, edit=None):
    kind = "classification" if task == "text-classification" else "causal-lm"
    model, tok = load_model(name, kind, label_names=LABELS if kind == "classification" else None)
    if edit:
        edit(model)
    return save_artifact(model, tok, out, task=task, label_names=LABELS if kind == "classification" else None,
                         base_model=name, config={}, artifact_id=out.name).path


@pytest.fixture(scope="module")
def decoder_clf(tmp_path_factory):
    """A decoder-based classifier (tiny-llama with a classification head), right-padded in batches."""
    return save_tiny(tmp_path_factory.mktemp("dec") / "llama-clf", "tiny-llama", "text-classification")


def client(path, **limits) -> TestClient:
    return TestClient(create_app(open_artifact(path), ServeConfig(**limits)))


def blank_errors(r) -> list:
    assert r.status_code == 422, r.text
    return [(e["loc"], e["msg"]) for e in r.json()["detail"]]


def test_decoder_classifier_refuses_blank_texts_and_batches_like_alone(decoder_clf):
    with client(decoder_clf) as c:
        post = lambda texts: c.post("/v1/classify", json={"texts": texts})  # noqa: E731
        assert blank_errors(post([""])) == [(["body", "texts", 0], BLANK)]
        assert blank_errors(post(["ok", ""])) == [(["body", "texts", 1], BLANK)]
        assert blank_errors(post([" \t\n", "ok", "\u3000"])) == [(["body", "texts", 0], BLANK),
                                                                 (["body", "texts", 2], BLANK)]
        texts = ["ok", "a much longer text here"]
        batched = post(texts).json()["predictions"]
        alone = [post([t]).json()["predictions"][0] for t in texts]
    # the served probabilities are the model's on the unpadded text
    model, tok = load_model("tiny-llama", "classification", label_names=LABELS)
    for t, b, a in zip(texts, batched, alone, strict=True):
        with torch.no_grad():
            want = torch.softmax(model(**tok(t, return_tensors="pt")).logits[0], -1).numpy()
        for k, name in enumerate(LABELS):
            assert b["probabilities"][name] == pytest.approx(a["probabilities"][name], abs=1e-5)
            assert b["probabilities"][name] == pytest.approx(float(want[k]), abs=1e-5)
    assert batched[0]["probabilities"] != batched[1]["probabilities"]  # not one row copied


def test_text_of_dropped_characters_is_refused_not_scored(tmp_path):
    """BERT's normalizer drops control characters: such a text is [CLS] [SEP] alone."""
    art = save_tiny(tmp_path / "bert-clf", "tiny-bert", "text-classification")
    with client(art) as c:
        r = c.post("/v1/classify", json={"texts": ["ok", "\x01\x02"]})
        assert r.status_code == 422
        assert r.json()["detail"] == ("texts[1] has no tokens the model reads (the tokenizer drops all its "
                                      "characters); send some text")
        assert blank_errors(c.post("/v1/classify", json={"texts": ["  "]})) == [(["body", "texts", 0], BLANK)]
        assert c.post("/v1/classify", json={"texts": ["ok"]}).status_code == 200


def test_blank_prompt_is_refused_by_generate(tmp_path):
    art = save_tiny(tmp_path / "lm", "tiny-llama", "text-generation")
    with client(art) as c:
        for prompt in ("", "   ", "\n\t"):
            assert blank_errors(c.post("/v1/generate", json={"prompt": prompt})) == [(["body", "prompt"], BLANK)]
        assert blank_errors(c.post("/v1/generate", json={"prompt": " ", "stream": True})) == [
            (["body", "prompt"], BLANK)]
        assert c.post("/v1/generate", json={"prompt": "hi", "max_new_tokens": 2}).json()["tokens"] == 2


@pytest.mark.slow
def test_blank_texts_are_refused_on_onnx_runtime_and_ensembles(decoder_clf, tmp_path):
    home = {"SUPREMUM_HOME": str(tmp_path / "home")}
    onnx, ens = tmp_path / "onnx", tmp_path / "ens"
    data = write_csv(tmp_path / "reviews.csv", sentiment_rows(80))  # the export's check texts
    run_cli("compress", str(decoder_clf), "--method", "onnx", "--data", str(data), "--output", str(onnx),
            env=home, check=True)
    run_cli("ensemble", str(decoder_clf), str(onnx), "--output", str(ens), env=home, check=True)
    texts = ["ok", "a much longer text here"]
    with client(decoder_clf) as c:
        want = [c.post("/v1/classify", json={"texts": [t]}).json()["predictions"][0] for t in texts]
    for art, backend in ((onnx, "onnxruntime"), (ens, "ensemble")):
        with client(art) as c:
            assert c.get("/v1/model").json()["backend"] == backend
            assert blank_errors(c.post("/v1/classify", json={"texts": ["ok", " "]})) == [
                (["body", "texts", 1], BLANK)]
            got = c.post("/v1/classify", json={"texts": texts}).json()["predictions"]
            for g, w in zip(got, want, strict=True):
                for name in LABELS:
                    assert g["probabilities"][name] == pytest.approx(w["probabilities"][name], abs=1e-5)


# --- oversized bodies, against a real server process ------------------------------------------

@pytest.fixture(scope="module")
def running(decoder_clf):
    with server(decoder_clf) as (url, _):
        yield url


def urllib_post(url: str, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(url + "/v1/classify", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


TOO_LARGE = {"detail": "request body over 1000000 bytes"}


@pytest.mark.parametrize("mb", [5, 20])
def test_oversized_body_from_urllib_gets_a_readable_413(running, mb):
    body = b'{"texts": ["' + b"x" * (mb * 10**6) + b'"]}'
    assert urllib_post(running, body) == (413, TOO_LARGE)
    assert httpx.post(running + "/v1/classify", json={"texts": ["ok"]}).status_code == 200  # still serving


def test_oversized_chunked_body_gets_a_readable_413(running):
    host, port = running.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    chunks = (b"x" * 65536 for _ in range(80))  # 5.2 MB, no Content-Length
    conn.request("POST", "/v1/classify", body=chunks, headers={"Content-Type": "application/json"},
                 encode_chunked=True)
    r = conn.getresponse()
    assert (r.status, json.loads(r.read())) == (413, TOO_LARGE)
    conn.close()
    # a chunked body within the limit is read and answered as usual
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.request("POST", "/v1/classify", body=iter([b'{"texts": ', b'["ok"]}']),
                 headers={"Content-Type": "application/json"}, encode_chunked=True)
    r = conn.getresponse()
    assert r.status == 200 and json.loads(r.read())["predictions"][0]["label"] in LABELS
    conn.close()


def headers_only(url: str, extra: bytes) -> tuple[bytes, bytes]:
    """Send a request's head and no body; return the reply's head and body."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + extra + b"\r\n")
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.endswith(b"}"):
            part = s.recv(4096)
            if not part:
                break
            reply += part
    head, _, body = reply.partition(b"\r\n\r\n")
    return head, body


def test_oversized_body_refused_before_it_is_sent_when_the_client_waits_or_it_is_huge(running):
    # curl's way: Expect: 100-continue, the body follows only if the server says so
    head, body = headers_only(running, b"Content-Length: 5000000\r\nExpect: 100-continue\r\n")
    assert head.startswith(b"HTTP/1.1 413") and json.loads(body) == TOO_LARGE
    # beyond the drain bound (64 MiB) the server does not read at all: answered before any byte
    head, body = headers_only(running, b"Content-Length: 1000000000\r\n")
    assert head.startswith(b"HTTP/1.1 413") and b"connection: close" in head.lower()
    assert json.loads(body) == TOO_LARGE


def run_limit(chunks, *, forever: bool, **bounds) -> tuple[list, int, list]:
    """BodyLimit(max_bytes=1000) over a client that sends `chunks` (then stalls if `forever`):
    (what was sent back, receive() calls made, bodies the application saw)."""
    from supremum.serve.limits import BodyLimit

    sent, calls, seen = [], [0], []

    async def receive():
        calls[0] += 1
        if calls[0] <= len(chunks):
            return {"type": "http.request", "body": chunks[calls[0] - 1], "more_body": True}
        if forever:
            await asyncio.sleep(3600)
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(msg):
        sent.append(msg)

    async def app(scope, receive, send):
        seen.append((await receive())["body"])

    scope = {"type": "http", "headers": [(b"content-type", b"application/json")]}
    asyncio.run(BodyLimit(app, 1000, **bounds)(scope, receive, send))
    return sent, calls[0], seen


def test_body_limit_bounds_the_drain_in_time_and_bytes():
    t0 = time.monotonic()
    sent, _, seen = run_limit([b"x" * 600] * 2, forever=True, drain_s=0.2)  # past the limit, then stalls
    assert time.monotonic() - t0 < 5 and seen == []
    assert sent[0]["status"] == 413 and (b"connection", b"close") in sent[0]["headers"]
    sent, calls, seen = run_limit([b"x" * 1000] * 100, forever=True, drain_bytes=5000)  # endless stream
    assert sent[0]["status"] == 413 and calls == 6 and seen == []
    sent, calls, seen = run_limit([b"x" * 1000] * 3, forever=False)  # drained whole: keep-alive is fine
    assert sent[0]["status"] == 413 and (b"connection", b"close") not in sent[0]["headers"]
    sent, calls, seen = run_limit([b'{"a":', b"1}"], forever=False)  # within the limit: passed on whole
    assert sent == [] and seen == [b'{"a":1}']


# --- never NaN/Infinity in a JSON answer -------------------------------------------------------

def test_non_finite_numbers_never_reach_a_json_answer():
    r = AsciiJSON({"predictions": [{"probabilities": {"neg": 0.5, "pos": math.nan}}]})
    assert r.status_code == 500
    assert json.loads(r.body)["detail"].startswith(
        "the answer holds a non-finite number (NaN or Infinity) at predictions[0].probabilities.pos")
    assert AsciiJSON([1.0, math.inf]).status_code == 500
    assert json.loads(AsciiJSON({"p": 0.25}).body) == {"p": 0.25}
    assert finite_or_none({"loss": [0.69, math.nan], "acc": -math.inf, "n": 3}) == {
        "loss": [0.69, None], "acc": None, "n": 3}


def test_a_model_that_overflows_answers_a_clear_500_not_nan(tmp_path):
    """Finite weights so large the logits overflow to Infinity (softmax: NaN)."""
    def blow_up(model):
        with torch.no_grad():
            model.score.weight.fill_(3e38)

    art = save_tiny(tmp_path / "overflow", "tiny-llama", "text-classification", edit=blow_up)
    with client(art) as c:
        r = c.post("/v1/classify", json={"texts": ["ok", "fine"]})
        assert r.status_code == 500
        assert r.json()["detail"] == ("the model gave non-finite probabilities (NaN or Infinity) for texts[0]: "
                                      "artifact overflow is not usable; re-train it (lower lr, clipping, fp32)")


def test_422_echoes_a_preview_of_the_input_not_the_whole_body(decoder_clf):
    with client(decoder_clf, max_texts=64, max_chars=2000) as c:
        many = c.post("/v1/classify", json={"texts": [f"a fine text number {i}" for i in range(5000)]})
        long = c.post("/v1/classify", json={"texts": ["ok", "x" * 3000]})
    assert many.status_code == 422 and len(many.content) < 1000, len(many.content)
    (err,) = many.json()["detail"]
    assert err["loc"] == ["body", "texts"] and err["input_length"] == 5000 and "input" not in err
    assert err["msg"] == "List should have at most 64 items after validation, not 5000"
    (err,) = long.json()["detail"]
    assert err["loc"] == ["body", "texts", 1] and err["msg"] == "String should have at most 2000 characters"
    assert err["input"] == "x" * 200 + "..."
