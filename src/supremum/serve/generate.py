"""/v1/generate for causal LMs: sampling or greedy decoding through the generation engine
(continuous batching on PyTorch, supremum.serve.engine), optionally streamed as server-sent
events. A timed-out request leaves the batch at the next token."""


import json

from fastapi import Depends, HTTPException
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from supremum.serve.batcher import Saturated
from supremum.serve.engine import Sampling
from supremum.serve.stream import Deltas


class GenerateResponse(BaseModel):
    model: str
    text: str
    tokens: int


def add_generate(app, engine, tok, cfg, auth, *, enabled: bool, art, text_type) -> None:
    chat = art.manifest.instruction_tuned

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
              responses={503: {"description": "queue full"}, 504: {"description": "timed out"}})
    async def generate(req: GenerateRequest):
        if not enabled:
            raise HTTPException(422, f"{art.id} is a {art.task} model; use /v1/classify")
        try:
            req.prompt.encode("utf-8")
        except UnicodeEncodeError:
            raise HTTPException(422, "prompt is not valid Unicode (lone surrogate)") from None
        ids = prompt_ids(tok, req.prompt, chat and not req.raw)
        if not ids:
            raise HTTPException(422, "the prompt tokenizes to nothing")
        if len(ids) >= engine.context:
            raise HTTPException(422, f"the prompt is {len(ids)} tokens; the model's context is {engine.context}")
        sampling = Sampling(max_tokens=req.max_new_tokens, temperature=req.temperature, top_p=req.top_p,
                            seed=req.seed)
        try:
            seq = engine.submit(ids, sampling)
        except Saturated:
            raise HTTPException(503, "the queue is full; retry shortly", headers={"Retry-After": "1"}) from None
        if req.stream:
            return StreamingResponse(_events(seq, cfg.timeout_s), media_type="text/event-stream")
        try:
            await seq.wait(cfg.timeout_s)
        except TimeoutError:
            raise HTTPException(504, f"not answered within {cfg.timeout_s:g} s") from None
        return GenerateResponse(model=art.id, text=seq.text(), tokens=len(seq.tokens))


def prompt_ids(tok, prompt: str, chat: bool) -> list[int]:
    """The prompt's token ids: as sent, or (chat) as the first user turn in the prompt format the
    artifact was trained with."""
    if not chat:
        return list(tok(prompt)["input_ids"])
    from supremum.lm.data import render_prompt

    return render_prompt(tok, prompt)


async def _events(seq, timeout: float):
    deltas = Deltas(seq)
    try:
        async for _ in seq.updates(timeout):
            if piece := deltas.next():
                yield f"data: {json.dumps({'text': piece})}\n\n"
    except TimeoutError:
        yield f"data: {json.dumps({'error': 'timed out'})}\n\n"
        return
    except Exception as e:  # noqa: BLE001 - the headers are sent: the error goes in the stream
        yield f"data: {json.dumps({'error': f'{type(e).__name__}: {e}'})}\n\n"
        return
    finally:
        seq.cancelled = seq.cancelled or seq.finish_reason is None  # a client gone mid-stream frees its row
    if piece := deltas.next():
        yield f"data: {json.dumps({'text': piece})}\n\n"
    yield f"data: {json.dumps({'done': True, 'tokens': len(seq.tokens)})}\n\n"
