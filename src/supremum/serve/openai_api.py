"""OpenAI-compatible endpoints for causal-LM artifacts: `POST /v1/chat/completions`, `POST
/v1/completions` (with `logprobs` and `echo`, what lm-evaluation-harness's `local-completions`
model needs to score log-likelihoods), `GET /v1/models`. Generation goes through the same engine
as /v1/generate (continuous batching on PyTorch). Every error on these paths has OpenAI's shape,
{"error": {"message", "type", "param", "code"}}; bad requests are 400 (404 for an unknown model)."""


import asyncio
import dataclasses
import json
import time
import uuid
from datetime import datetime

from fastapi import Depends
from fastapi.responses import StreamingResponse

from supremum.serve.batcher import Saturated
from supremum.serve.engine import Sampling
from supremum.serve.openai_schema import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionRequest,
    ChatLogprobs,
    Completion,
    CompletionChoice,
    CompletionRequest,
    ErrorResponse,
    Logprobs,
    ModelCard,
    ModelList,
    TokenLogprob,
    TopLogprob,
    Usage,
)
from supremum.serve.stream import Deltas

PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/models")
ERRORS = {400: {"model": ErrorResponse, "description": "bad request"},
          401: {"model": ErrorResponse, "description": "missing or wrong API key"},
          404: {"model": ErrorResponse, "description": "unknown model"},
          503: {"model": ErrorResponse, "description": "queue full"},
          504: {"model": ErrorResponse, "description": "timed out"}}
#: OpenAI's error `type` by status
TYPES = {401: "invalid_request_error", 404: "invalid_request_error", 503: "server_error", 504: "timeout"}
CODES = {401: "invalid_api_key", 404: "model_not_found", 503: "overloaded", 504: "timeout"}


class OpenAIError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.headers = status, message, param, headers
        self.code = code or CODES.get(status)


def is_openai(request) -> bool:
    return request.url.path.rstrip("/") in PATHS


def error_body(e: OpenAIError) -> dict:
    return {"error": {"message": e.message, "type": TYPES.get(e.status, "invalid_request_error"),
                      "param": e.param, "code": e.code}}


def from_validation(errors: list[dict]) -> OpenAIError:
    """A request the schema refuses, as OpenAI answers it: 400 naming the first bad parameter."""
    err = errors[0]
    loc = [str(x) for x in err.get("loc", ()) if x != "body"]
    if err.get("type") == "json_invalid" or not loc:
        return OpenAIError(400, "We could not parse the JSON body of your request: " + err.get("msg", ""))
    param = loc[0] + "".join(f"[{x}]" if x.isdigit() else f".{x}" for x in loc[1:])
    if err.get("type") == "extra_forbidden":
        return OpenAIError(400, f"Unrecognized request argument supplied: {param}", param, "unknown_parameter")
    return OpenAIError(400, f"{param}: {err.get('msg')}", param, "invalid_value")


def add_openai(app, engine, model, tok, cfg, batcher, auth, *, enabled: bool, art) -> None:
    created = int(datetime.fromisoformat(art.manifest.created or "1970-01-01T00:00:00+00:00")
                  .timestamp())
    vocab = getattr(getattr(model, "config", None), "vocab_size", None) or len(tok)

    @app.get("/v1/models", response_model=ModelList, dependencies=[Depends(auth)], responses=ERRORS)
    async def models() -> ModelList:
        return ModelList(data=[ModelCard(id=art.id, created=created)])

    def check(req) -> None:
        if req.model != art.id:
            raise OpenAIError(404, f"The model '{req.model}' does not exist; this server serves '{art.id}' "
                                   "(GET /v1/models)", "model")
        if not enabled:
            raise OpenAIError(400, f"{art.id} is a {art.task} model and writes no text; use /v1/classify",
                              "model", "model_not_supported")
        for name, neutral in (("n", 1), ("presence_penalty", 0), ("frequency_penalty", 0), ("best_of", 1)):
            value = getattr(req, name, None)
            if value is not None and value != neutral:
                raise OpenAIError(400, f"{name}={value} is not supported by this server (only {neutral})", name,
                                  "unsupported_value")
        for name in ("logit_bias", "suffix", "tools"):
            if getattr(req, name, None):
                raise OpenAIError(400, f"{name} is not supported by this server", name, "unsupported_parameter")
        if req.stream_options is not None and not req.stream:
            raise OpenAIError(400, "stream_options is only allowed when stream is true", "stream_options")

    def budget(ids: list[int], asked: int | None, param: str, where: str) -> int:
        """New tokens to allow: asked (at most the server's max_new_tokens), or that limit cut to
        the context; 400 when the prompt and what was asked do not fit the context."""
        if asked is not None and asked > cfg.max_new_tokens:
            raise OpenAIError(400, f"{param}={asked} is above this server's limit of {cfg.max_new_tokens} new "
                                   "tokens (supremum serve --limit max_new_tokens=N)", param, "invalid_value")
        want = asked if asked is not None else min(cfg.max_new_tokens, engine.context - len(ids))
        if len(ids) + want > engine.context or (asked is None and want < 1):
            total = len(ids) + (asked or 0)
            raise OpenAIError(400, f"This model's maximum context length is {engine.context} tokens. However, "
                                   f"you requested {total} tokens ({len(ids)} in the {where}, {asked or 0} in the "
                                   f"completion). Please reduce the length of the {where} or the completion.",
                              where, "context_length_exceeded")
        return want

    def sampling(req, max_tokens: int) -> Sampling:
        stop = req.stop if isinstance(req.stop, list) else [req.stop] if req.stop else []
        return Sampling(max_tokens=max_tokens, temperature=1.0 if req.temperature is None else req.temperature,
                        top_p=1.0 if req.top_p is None else req.top_p, seed=req.seed,
                        stop=tuple(s for s in stop if s))

    def submit(ids: list[int], s: Sampling):
        try:
            return engine.submit(ids, s)
        except Saturated:
            raise OpenAIError(503, "The server is busy (its generation queue is full); retry shortly",
                              headers={"Retry-After": "1"}) from None

    async def finish(seqs) -> None:
        try:
            await asyncio.gather(*(s.wait(cfg.timeout_s) for s in seqs))
        except TimeoutError:
            for s in seqs:
                s.cancelled = True
            raise OpenAIError(504, f"The request was not answered within {cfg.timeout_s:g} s") from None

    @app.post("/v1/chat/completions", response_model=ChatCompletion, dependencies=[Depends(auth)],
              responses={**ERRORS, 200: {"content": {"text/event-stream": {}}}})
    async def chat(req: ChatCompletionRequest):
        check(req)
        if req.top_logprobs is not None and not req.logprobs:
            raise OpenAIError(400, "top_logprobs needs logprobs: true", "top_logprobs", "invalid_value")
        if req.logprobs and req.stream:
            raise OpenAIError(400, "logprobs is supported without stream", "logprobs", "unsupported_value")
        if req.tool_choice not in (None, "none"):
            raise OpenAIError(400, "tool_choice is not supported by this server", "tool_choice",
                              "unsupported_parameter")
        if req.response_format and req.response_format.get("type") != "text":
            raise OpenAIError(400, "only response_format {\"type\": \"text\"} is supported", "response_format",
                              "unsupported_value")
        ids = chat_ids(tok, req.messages)
        asked = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
        seq = submit(ids, sampling(req, budget(ids, asked, "max_tokens", "messages")))
        rid = f"chatcmpl-{uuid.uuid4().hex}"
        if req.stream:
            usage = bool(req.stream_options and req.stream_options.include_usage)
            return StreamingResponse(_chat_events(seq, rid, art.id, cfg.timeout_s, usage),
                                     media_type="text/event-stream")
        await finish([seq])
        lp = None
        if req.logprobs:
            lp = await _chat_logprobs(batcher, model, tok, ids, list(seq.tokens), req.top_logprobs or 0)
        return ChatCompletion(id=rid, created=int(time.time()), model=art.id, usage=_usage(seq), choices=[
            ChatChoice(index=0, message=AssistantMessage(content=seq.text()), finish_reason=seq.finish_reason,
                       logprobs=lp)])

    @app.post("/v1/completions", response_model=Completion, dependencies=[Depends(auth)],
              responses={**ERRORS, 200: {"content": {"text/event-stream": {}}}})
    async def completions(req: CompletionRequest):
        check(req)
        prompts = _prompts(req.prompt)
        if req.stream and (len(prompts) > 1 or req.echo or req.logprobs is not None):
            raise OpenAIError(400, "stream is supported for one prompt without echo or logprobs", "stream",
                              "unsupported_value")
        encoded = [_encode(tok, p, vocab, i) for i, p in enumerate(prompts)]
        s = sampling(req, 0)
        seqs = []
        for ids in encoded:
            n = budget(ids, req.max_tokens, "max_tokens", "prompt")
            seqs.append(submit(ids, dataclasses.replace(s, max_tokens=n)) if n else None)
        rid = f"cmpl-{uuid.uuid4().hex}"
        if req.stream:
            usage = bool(req.stream_options and req.stream_options.include_usage)
            events = _completion_events(seqs[0], rid, art.id, cfg.timeout_s, usage, len(encoded[0]))
            return StreamingResponse(events, media_type="text/event-stream")
        await finish([x for x in seqs if x is not None])
        choices = []
        for i, (p, ids, seq) in enumerate(zip(prompts, encoded, seqs, strict=True)):
            new = list(seq.tokens) if seq else []
            answer = seq.text() if seq else ""
            given = p if isinstance(p, str) else tok.decode(ids)
            lp = None
            if req.logprobs is not None:
                lp = await _logprobs(batcher, model, tok, ids, new, req.logprobs, bool(req.echo), given)
            choices.append(CompletionChoice(index=i, text=(given if req.echo else "") + answer, logprobs=lp,
                                            finish_reason=seq.finish_reason if seq else "length"))
        n_prompt = sum(map(len, encoded))
        n_new = sum(len(x.tokens) for x in seqs if x)
        return Completion(id=rid, created=int(time.time()), model=art.id, choices=choices,
                          usage=Usage(prompt_tokens=n_prompt, completion_tokens=n_new,
                                      total_tokens=n_prompt + n_new))


def chat_ids(tok, messages) -> list[int]:
    """The conversation rendered for the answer: the tokenizer's chat template
    (`apply_chat_template` with the generation prompt) where it has one, else the "role: content"
    lines the artifact was trained with (supremum.lm.data.render)."""
    import jinja2

    from supremum.lm.data import render

    msgs = []
    for i, m in enumerate(messages):
        text = m.text()
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise OpenAIError(400, f"messages[{i}].content is not valid Unicode (lone surrogate)",
                              f"messages[{i}].content", "invalid_value") from None
        msgs.append({"role": "system" if m.role == "developer" else m.role, "content": text})
    try:
        ids = render(tok, msgs, generation_prompt=True)
    except jinja2.TemplateError as e:  # the template refuses this conversation (e.g. roles must alternate)
        raise OpenAIError(400, f"the model's chat template refuses these messages: {e}", "messages",
                          "invalid_value") from None
    if not ids:
        raise OpenAIError(400, "the messages render to no tokens", "messages", "invalid_value")
    return ids


def _prompts(prompt) -> list:
    """A prompt field as a list of prompts, each a text or a list of token ids."""
    if isinstance(prompt, str) or (prompt and isinstance(prompt[0], int)):
        return [prompt]
    return list(prompt)


def _encode(tok, prompt, vocab: int, i: int) -> list[int]:
    param = "prompt" if i == 0 else f"prompt[{i}]"
    if isinstance(prompt, str):
        try:
            prompt.encode("utf-8")
        except UnicodeEncodeError:
            raise OpenAIError(400, f"{param} is not valid Unicode (lone surrogate)", param,
                              "invalid_value") from None
        ids = list(tok(prompt)["input_ids"])
        if not ids:
            raise OpenAIError(400, f"{param} tokenizes to nothing; send some text", param, "invalid_value")
        return ids
    bad = next((t for t in prompt if not 0 <= t < vocab), None)
    if bad is not None:
        raise OpenAIError(400, f"{param} holds token id {bad}; the model's ids are 0 to {vocab - 1}", param,
                          "invalid_value")
    return list(prompt)


def _usage(seq) -> Usage:
    return Usage(prompt_tokens=len(seq.prompt), completion_tokens=len(seq.tokens),
                 total_tokens=len(seq.prompt) + len(seq.tokens))


def token_logprobs(model, ids: list[int], k: int) -> tuple[list[float | None], list[dict[int, float] | None]]:
    """Log-probability of each token of `ids` given the ones before it (None for the first), and
    the `k` most likely tokens at each position ({id: logprob}; None for the first), from one
    forward pass: log_softmax of the logits, natural log."""
    import torch

    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([ids])).logits[0, :-1].float()
        lp = torch.log_softmax(logits, dim=-1)
        chosen = lp.gather(1, torch.tensor(ids[1:])[:, None])[:, 0].tolist()
        tops = [None] * len(chosen)
        if k:
            values, index = torch.topk(lp, k, dim=-1)
            tops = [dict(zip(i, v, strict=True)) for i, v in zip(index.tolist(), values.tolist(), strict=True)]
    return [None, *chosen], [None, *tops]


async def _logprobs(batcher, model, tok, prompt: list[int], new: list[int], k: int, echo: bool,
                    prompt_text: str) -> Logprobs:
    lps, tops = await batcher.run_exclusive(token_logprobs, model, [*prompt, *new], k)
    start = 0 if echo else len(prompt)
    ids = [*prompt, *new][start:]
    pieces = [tok.decode([t]) for t in ids]
    offsets, at = [], 0 if echo else len(prompt_text)
    for p in pieces:
        offsets.append(at)
        at += len(p)
    top = [None if t is None else {tok.decode([i]): v for i, v in t.items()} for t in tops[start:]]
    return Logprobs(tokens=pieces, token_logprobs=lps[start:], top_logprobs=top if k else None,
                    text_offset=offsets)


async def _chat_logprobs(batcher, model, tok, prompt: list[int], new: list[int], k: int) -> ChatLogprobs:
    """Chat's logprobs: per answer token its text, UTF-8 bytes, log-probability and the `k` most
    likely alternatives, from one scoring pass over the prompt and the answer."""
    if not new:
        return ChatLogprobs(content=[])
    lps, tops = await batcher.run_exclusive(token_logprobs, model, [*prompt, *new], k)

    def entry(t: int, v: float) -> dict:
        piece = tok.decode([t])
        return {"token": piece, "logprob": v, "bytes": list(piece.encode("utf-8"))}

    return ChatLogprobs(content=[
        TokenLogprob(**entry(t, lps[len(prompt) + i]),
                     top_logprobs=[TopLogprob(**entry(a, v)) for a, v in (tops[len(prompt) + i] or {}).items()])
        for i, t in enumerate(new)])


def _sse(obj) -> str:
    return f"data: {json.dumps(obj)}\n\n"


async def _stream(seq, timeout: float, chunk, usage: bool):
    """Chunks of one sequence's text, the finish, the usage (if asked) and [DONE]; an error
    after the headers went out is an error event."""
    deltas = Deltas(seq)
    try:
        async for _ in seq.updates(timeout):
            if piece := deltas.next():
                yield _sse(chunk(piece, None))
    except TimeoutError:
        yield _sse(error_body(OpenAIError(504, f"The answer stalled for {timeout:g} s")))
        return
    except Exception as e:  # noqa: BLE001 - the status line is sent: the error goes in the stream
        yield _sse(error_body(OpenAIError(500, f"{type(e).__name__}: {e}")))
        return
    finally:
        seq.cancelled = seq.cancelled or seq.finish_reason is None  # a client gone mid-stream frees its row
    if piece := deltas.next():
        yield _sse(chunk(piece, None))
    yield _sse(chunk(None, seq.finish_reason))
    if usage:
        yield _sse(chunk(None, None, _usage(seq).model_dump()))
    yield "data: [DONE]\n\n"


def _chat_events(seq, rid: str, model: str, timeout: float, usage: bool):
    created, first = int(time.time()), [True]

    def chunk(piece, finish, use=None):
        head = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model}
        if use is not None:
            return {**head, "choices": [], "usage": use}
        delta = {} if piece is None else {"content": piece}
        if first[0]:
            delta, first[0] = {"role": "assistant", **delta}, False
        return {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}

    return _stream(seq, timeout, chunk, usage)


def _completion_events(seq, rid: str, model: str, timeout: float, usage: bool, prompt_tokens: int):
    created = int(time.time())

    def chunk(piece, finish, use=None):
        head = {"id": rid, "object": "text_completion", "created": created, "model": model}
        if use is not None:
            return {**head, "choices": [], "usage": use}
        return {**head, "choices": [{"index": 0, "text": piece or "", "finish_reason": finish, "logprobs": None}]}

    if seq is None:  # max_tokens 0: nothing to generate
        async def empty():
            yield _sse(chunk(None, "length"))
            if usage:
                yield _sse(chunk(None, None, {"prompt_tokens": prompt_tokens, "completion_tokens": 0,
                                              "total_tokens": prompt_tokens}))
            yield "data: [DONE]\n\n"
        return empty()
    return _stream(seq, timeout, chunk, usage)
