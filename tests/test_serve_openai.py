"""The OpenAI-compatible endpoints and the continuous-batching generation engine, on tiny-llama:
chat rendering equals `apply_chat_template`; greedy chat equals /v1/generate and transformers'
greedy `generate`; streams concatenate to the plain answer; `logprobs` + `echo` equal the
log-probabilities computed here; batched generation equals one-at-a-time token for token;
bad requests get OpenAI-shaped 4xx. The server is a real process driven by the `openai` client."""

import asyncio
import concurrent.futures as cf
import importlib.util

import httpx
import pytest
import torch
from test_serve import server

openai = pytest.importorskip("openai")

TEMPLATE = ("{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}</s>\n{% endfor %}"
            "{% if add_generation_prompt %}<s>assistant\n{% endif %}")
ID = "tinyllama-chat"


def tiny():
    from supremum.models import load_model

    return load_model("tiny-llama", "causal-lm")


def greedy_reference(model, ids: list[int], n: int) -> list[int]:
    """transformers' own greedy decoding, end-of-sequence dropped (the server does not return it)."""
    out = model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                         max_new_tokens=n, do_sample=False, pad_token_id=0)[0, len(ids):].tolist()
    return out[: out.index(2)] if 2 in out else out


@pytest.fixture(scope="module")
def chat_artifact(tmp_path_factory):
    from supremum.artifact import save_artifact

    model, tok = tiny()
    tok.chat_template = TEMPLATE
    out = tmp_path_factory.mktemp("oai") / "lm"
    # recorded as fine-tuned on instruction data: /v1/generate renders a prompt as a user turn
    save_artifact(model, tok, out, task="text-generation", label_names=None, base_model="tiny-llama", config={},
                  artifact_id=ID, extra={"data": {"kind": "instruction",
                                                  "prompt": {"records": "openai", "template": "chat template"}}})
    return out


def test_chat_rendering_is_the_chat_template_or_the_role_lines():
    from supremum.serve.openai_api import chat_ids
    from supremum.serve.openai_schema import ChatMessage

    _, tok = tiny()
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi there"},
            {"role": "assistant", "content": "hello"}, {"role": "user", "content": "and?"}]
    typed = [ChatMessage(**m) for m in msgs]
    # no template (tiny-llama as built): the "role: content" lines the artifact was trained with
    assert chat_ids(tok, typed) == tok("system: be brief\nuser: hi there\nassistant: hello</s>user: and?\n"
                                       "assistant: ", add_special_tokens=False)["input_ids"]
    tok.chat_template = TEMPLATE
    want = tok.apply_chat_template(msgs, tokenize=True, add_generation_prompt=True)["input_ids"]
    assert chat_ids(tok, typed) == list(want)
    two = [{"type": "text", "text": "hi "}, {"type": "text", "text": "there"}]
    parts = [ChatMessage(role="user", content=two)]
    joined = tok.apply_chat_template([{"role": "user", "content": "hi there"}], tokenize=True,
                                     add_generation_prompt=True)["input_ids"]
    assert chat_ids(tok, parts) == list(joined)


PROMPTS = ["hello there", "a", "the king shall speak of love", "to be or not to be, that is the question", "xy"]
LIMITS = [20, 7, 15, 25, 10]


def staggered(engine_model, tok, reference_model, kind: str) -> None:
    """Five prompts of 1 to 41 tokens, each arriving after the previous one has decoded 3 tokens,
    with different max_tokens so rows leave mid-batch and later ones join a smaller batch: the
    batched tokens equal transformers' greedy generation one prompt at a time; then three
    concurrent seeded samples of one prompt are equal."""
    from supremum.serve.batcher import Batcher
    from supremum.serve.engine import Sampling, make_engine

    ids = [tok(p)["input_ids"] for p in PROMPTS]
    want = [greedy_reference(reference_model, i, n) for i, n in zip(ids, LIMITS, strict=True)]

    async def run():
        batcher = Batcher(lambda x: None, 1, 0, 10)
        batcher.start()
        steps: list[int] = []
        engine = make_engine(engine_model, tok, batcher, 8, 64, on_step=steps.append)
        assert type(engine).__name__ == kind
        engine.start()
        seqs = []
        for i, n in zip(ids, LIMITS, strict=True):
            seqs.append(engine.submit(i, Sampling(max_tokens=n, temperature=0)))
            while len(seqs[-1].tokens) < 3 and not seqs[-1].done:
                await asyncio.sleep(0.001)
        for s in seqs:
            await s.wait(60)
        sampled = [engine.submit(ids[0], Sampling(max_tokens=10, temperature=1.0, top_p=0.9, seed=7))
                   for _ in range(3)]
        for s in sampled:
            await s.wait(60)
        await engine.stop()
        return seqs, steps, sampled

    seqs, steps, sampled = asyncio.run(run())
    assert [s.tokens for s in seqs] == want
    assert all(len(w) == n for w, n in zip(want, LIMITS, strict=True))  # no early end: every row ran its length
    assert max(steps) >= 3 and len(steps) < sum(LIMITS) - len(LIMITS)  # forward passes were shared
    assert sampled[0].tokens == sampled[1].tokens == sampled[2].tokens and len(sampled[0].tokens) > 0


def test_batched_generation_equals_sequential_token_for_token():
    model, tok = tiny()
    staggered(model, tok, model, "BatchEngine")


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                    reason="llama-cpp-python is not installed (the `llama` extra)")
def test_llama_cpp_batched_generation_equals_pytorch_sequential(tmp_path):
    """The f32 GGUF export through llama.cpp's multi-sequence batch API decodes the PyTorch
    parent's greedy tokens, one prompt at a time, token for token."""
    from conftest import run_cli

    from supremum.artifact import open_artifact, save_artifact
    from supremum.backends import load

    model, tok = tiny()
    save_artifact(model, tok, tmp_path / "lm", task="text-generation", label_names=None, base_model="tiny-llama",
                  config={}, artifact_id="tl")
    run_cli("compress", str(tmp_path / "lm"), "--method", "gguf", "quant=f32", "--output", str(tmp_path / "g"),
            check=True)
    gguf, gtok = load(open_artifact(tmp_path / "g"))
    staggered(gguf, gtok, model, "LlamaCppBatchEngine")


def test_openai_client_chat_completions_logprobs_and_errors(chat_artifact):
    from supremum.artifact import open_artifact
    from supremum.backends import load

    model, tok = load(open_artifact(chat_artifact))
    with server(chat_artifact, "--limit", "max_new_tokens=24") as (url, _):
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60)
        assert [m.id for m in client.models.list().data] == [ID]

        # greedy chat = /v1/generate on the same user turn = transformers' greedy generate
        msgs = [{"role": "user", "content": "hello"}]
        chat = client.chat.completions.create(model=ID, messages=msgs, max_tokens=12, temperature=0)
        gen = httpx.post(url + "/v1/generate", json={"prompt": "hello", "max_new_tokens": 12, "temperature": 0},
                         timeout=60).json()
        prompt = list(tok.apply_chat_template(msgs, tokenize=True, add_generation_prompt=True)["input_ids"])
        ref = greedy_reference(model, prompt, 12)
        answer = chat.choices[0].message.content
        assert answer == gen["text"] == tok.decode(ref, skip_special_tokens=True)
        assert (chat.usage.prompt_tokens, chat.usage.completion_tokens) == (len(prompt), len(ref))
        assert chat.choices[0].finish_reason == ("length" if len(ref) == 12 else "stop")

        # the stream concatenates to the plain answer; the usage comes last, then [DONE]
        chunks = list(client.chat.completions.create(model=ID, messages=msgs, max_tokens=12, temperature=0,
                                                     stream=True, stream_options={"include_usage": True}))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == answer
        assert chunks[-1].usage.completion_tokens == len(ref) and chunks[-1].choices == []
        with httpx.stream("POST", url + "/v1/chat/completions", timeout=60,
                          json={"model": ID, "messages": msgs, "max_tokens": 4, "stream": True}) as r:
            lines = [x for x in r.iter_lines() if x]
        assert lines[-1] == "data: [DONE]"

        # a stop string cuts the answer before it, plain and streamed (a seeded sample: varied text,
        # where the random model's greedy answer repeats one character)
        seeded = {"model": ID, "messages": msgs, "max_tokens": 16, "temperature": 1.0, "seed": 3}
        sampled = client.chat.completions.create(**seeded).choices[0].message.content
        assert sampled == client.chat.completions.create(**seeded).choices[0].message.content
        stop = sampled[5:7]
        assert len(stop) == 2 and 0 < sampled.find(stop) <= 5
        cut = client.chat.completions.create(**seeded, stop=[stop])
        assert cut.choices[0].message.content == sampled[: sampled.find(stop)]
        assert cut.choices[0].finish_reason == "stop"
        streamed = client.chat.completions.create(**seeded, stop=[stop], stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in streamed) == sampled[: sampled.find(stop)]

        # chat logprobs: each answer token's log-probability given the prompt and the answer before it
        with_lp = client.chat.completions.create(model=ID, messages=msgs, max_tokens=4, temperature=0,
                                                 logprobs=True, top_logprobs=2)
        with torch.inference_mode():
            full = torch.tensor([prompt + ref[:4]])
            lp_chat = torch.log_softmax(model(input_ids=full).logits[0].float(), -1)
        content = with_lp.choices[0].logprobs.content
        assert [c.logprob for c in content] == pytest.approx(
            [lp_chat[len(prompt) + i - 1, t].item() for i, t in enumerate(ref[:4])], abs=1e-5)
        greedy_top = [c.top_logprobs[0].logprob for c in content]  # greedy: the answer token is the likeliest
        assert greedy_top == pytest.approx([c.logprob for c in content], abs=1e-6)

        # logprobs + echo with max_tokens 0: the prompt's token log-probabilities, computed here
        text = "the king shall speak"
        ids = tok(text)["input_ids"]
        with torch.inference_mode():
            lp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
        want = [lp[i - 1, ids[i]].item() for i in range(1, len(ids))]
        got = client.completions.create(model=ID, prompt=text, max_tokens=0, echo=True, logprobs=2)
        c = got.choices[0]
        assert c.text == text and c.logprobs.token_logprobs[0] is None and len(c.logprobs.tokens) == len(ids)
        assert c.logprobs.token_logprobs[1:] == pytest.approx(want, abs=1e-5)
        top = torch.topk(lp[0], 2).values.tolist()
        assert sorted(c.logprobs.top_logprobs[1].values(), reverse=True) == pytest.approx(top, abs=1e-5)
        # token ids with one greedy token, as lm-evaluation-harness's local-completions asks
        lm = client.completions.create(model=ID, prompt=ids, max_tokens=1, echo=True, logprobs=1, temperature=0)
        lps = lm.choices[0].logprobs.token_logprobs
        assert lps[1:len(ids)] == pytest.approx(want, abs=1e-5)
        assert lps[len(ids)] == pytest.approx(lp[-1].max().item(), abs=1e-5)  # the greedy token's own

        # concurrent requests share forward passes and answer as they do alone
        prompts = ["a", "the king", "to be or not to be", "my lord"]
        alone = [client.completions.create(model=ID, prompt=p, max_tokens=16, temperature=0).choices[0].text
                 for p in prompts]
        with cf.ThreadPoolExecutor(len(prompts)) as ex:
            together = list(ex.map(lambda p: client.completions.create(model=ID, prompt=p, max_tokens=16,
                                                                       temperature=0).choices[0].text, prompts))
        assert together == alone
        metrics = httpx.get(url + "/metrics").text
        sums = {ln.split()[0]: float(ln.split()[-1]) for ln in metrics.splitlines()
                if ln.startswith("supremum_decode_batch_size_")}
        assert sums["supremum_decode_batch_size_sum"] > sums["supremum_decode_batch_size_count"]  # some batch > 1

        # bad requests: OpenAI-shaped 4xx, raised by the client as its own error classes
        def refused(kind, code, **body):
            with pytest.raises(kind) as e:
                client.chat.completions.create(**{"model": ID, "messages": msgs, **body})
            assert e.value.body["code"] == code and e.value.status_code < 500
            return e.value.body

        assert refused(openai.NotFoundError, "model_not_found", model="gpt-4")["param"] == "model"
        assert refused(openai.BadRequestError, "invalid_value", max_tokens=25)["param"] == "max_tokens"
        assert refused(openai.BadRequestError, "context_length_exceeded",
                       messages=[{"role": "user", "content": "x" * 600}])["message"].startswith(
            "This model's maximum context length is 512 tokens. However, you requested")
        assert refused(openai.BadRequestError, "invalid_value", messages=[])["param"] == "messages"
        assert refused(openai.BadRequestError, "invalid_value",
                       messages=[{"role": "robot", "content": "hi"}])["param"] == "messages[0].role"
        assert refused(openai.BadRequestError, "unsupported_value", n=2)["param"] == "n"
        assert refused(openai.BadRequestError, "unknown_parameter", extra_body={"top_k": 5})["param"] == "top_k"
        bad = httpx.post(url + "/v1/completions", json={"model": ID, "prompt": [10**6]})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "prompt"
        raw = httpx.post(url + "/v1/chat/completions", content=b"{nope",
                         headers={"content-type": "application/json"})
        assert raw.status_code == 400 and set(raw.json()["error"]) == {"message", "type", "param", "code"}
