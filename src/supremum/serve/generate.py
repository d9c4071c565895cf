"""/v1/generate for causal LMs: sampling or greedy decoding on the inference thread, optionally
streamed as server-sent events. A timed-out request stops its generation at the next token."""


import asyncio
import json
import threading

from fastapi import Depends, HTTPException
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field


class GenerateResponse(BaseModel):
    model: str
    text: str
    tokens: int


def add_generate(app, model, tok, cfg, batcher, auth, *, enabled: bool, art, text_type) -> None:
    data = art.manifest.data or {}
    chat = bool(data.get("prompt")) or data.get("kind") == "instruction"  # trained on instruction data

    class GenerateRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        prompt: text_type  # not empty, not only whitespace: the one rule for every text input
        max_new_tokens: int = Field(32, ge=1, le=cfg.max_new_tokens)
        temperature: float = Field(1.0, ge=0, le=10, description="0: greedy decoding")
        top_p: float = Field(1.0, gt=0, le=1)
        seed: int | None = Field(None, ge=0, le=2**32 - 1, description="seed of the sampling")
        stream: bool = Field(False, description="server-sent events, one per decoded piece")
        raw: bool = Field(False, description="send the prompt as it is; by default a model fine-tuned on "
                          "instruction data gets it as a user turn in the prompt format it was trained with")

    @app.post("/v1/generate", response_model=GenerateResponse, dependencies=[Depends(auth)],
              responses={504: {"description": "timed out"}})
    async def generate(req: GenerateRequest):
        if not enabled:
            raise HTTPException(422, f"{art.id} is a {art.task} model; use /v1/classify")
        try:
            req.prompt.encode("utf-8")
        except UnicodeEncodeError:
            raise HTTPException(422, "prompt is not valid Unicode (lone surrogate)") from None
        stop = threading.Event()
        if req.stream:
            return StreamingResponse(_events(model, tok, req, batcher, stop, cfg.timeout_s, chat),
                                     media_type="text/event-stream")
        job = batcher.run_exclusive(_run, model, tok, req, None, stop, chat)
        try:
            text, n = await asyncio.wait_for(job, cfg.timeout_s)
        except TimeoutError:
            stop.set()
            raise HTTPException(504, f"not answered within {cfg.timeout_s:g} s") from None
        return GenerateResponse(model=art.id, text=text, tokens=n)


def _prompt_ids(tok, req, chat: bool) -> dict:
    """The prompt's token ids: as sent, or (chat, not raw) rendered as the model was trained."""
    import torch

    if not chat or req.raw:
        return tok(req.prompt, return_tensors="pt")
    from supremum.lm.data import render_prompt

    ids = torch.tensor([render_prompt(tok, req.prompt)], dtype=torch.long)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def _run(model, tok, req, streamer, stop: threading.Event, chat: bool) -> tuple[str, int]:
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class Stop(StoppingCriteria):
        def __call__(self, input_ids, scores, **kw):
            return stop.is_set()

    ids = _prompt_ids(tok, req, chat)
    if ids["input_ids"].shape[1] == 0:
        raise HTTPException(422, "the prompt tokenizes to nothing")
    if hasattr(model, "generator"):  # a llama.cpp artifact
        return _run_llamacpp(model, tok, req, ids["input_ids"], streamer, stop)
    if req.seed is not None:
        torch.manual_seed(req.seed)  # the inference thread runs one job at a time
    sample = req.temperature > 0
    out = model.generate(**ids, max_new_tokens=req.max_new_tokens, do_sample=sample,
                         temperature=req.temperature if sample else None, top_p=req.top_p if sample else None,
                         pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
                         streamer=streamer, stopping_criteria=StoppingCriteriaList([Stop()]))
    new = out[0, ids["input_ids"].shape[1]:]
    return tok.decode(new, skip_special_tokens=True), int(new.shape[0])


def _run_llamacpp(model, tok, req, prompt, streamer, stop: threading.Event) -> tuple[str, int]:
    """The same request on llama.cpp: prompt tokens from the artifact's tokenizer, llama.cpp's own
    sampler (greedy at temperature 0; else top-k 50 as transformers' default, top-p, temperature),
    the tokens decoded by the same tokenizer, so both backends answer alike."""
    import random

    import torch

    room = model.n_ctx - prompt.shape[1]
    if room <= 0:  # before the streamer sees anything, so a stream is not left waiting
        raise HTTPException(422, f"the prompt is {prompt.shape[1]} tokens; the model's context is {model.n_ctx}")
    llm = model.generator()
    llm.set_seed(req.seed if req.seed is not None else random.getrandbits(32))
    if streamer is not None:
        streamer.put(prompt[0])  # skipped by skip_prompt, as transformers' generate does
    new: list[int] = []
    eos = tok.eos_token_id
    for t in llm.generate(prompt[0].tolist(), top_k=50, top_p=req.top_p, min_p=0.0, temp=req.temperature):
        if stop.is_set() or t == eos:
            break
        new.append(int(t))
        if streamer is not None:
            streamer.put(torch.tensor([t]))
        if len(new) >= min(req.max_new_tokens, room):
            break
    if streamer is not None:
        streamer.end()
    return tok.decode(new, skip_special_tokens=True), len(new)


async def _events(model, tok, req, batcher, stop: threading.Event, timeout: float, chat: bool):
    from transformers import TextIteratorStreamer

    streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True, timeout=timeout)
    job = asyncio.ensure_future(batcher.run_exclusive(_run, model, tok, req, streamer, stop, chat))
    pieces = iter(streamer)
    try:
        while True:
            try:
                piece = await asyncio.to_thread(next, pieces, None)
            except Exception:  # noqa: BLE001 - the streamer's queue timed out
                stop.set()
                yield f"data: {json.dumps({'error': 'timed out'})}\n\n"
                return
            if piece is None:
                break
            if piece:
                yield f"data: {json.dumps({'text': piece})}\n\n"
        _, n = await job
        yield f"data: {json.dumps({'done': True, 'tokens': n})}\n\n"
    finally:
        stop.set()
