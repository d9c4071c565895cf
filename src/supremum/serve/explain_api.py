"""`POST /v1/explain`: the words of each text with their attribution scores, the predicted label
and its probability, computed as `supremum explain` computes them (the same Explainer).

Limits are classify's: at most `max_texts` texts of at most `max_chars` characters, not blank
(422 naming the item), the body size (413, middleware). Explanations run one at a time on a
worker thread (occlusion is one forward pass per word, Integrated Gradients `steps` passes with
gradients), at most `max_queue` requests waiting (503), each within `timeout_s` (504)."""
# No `from __future__ import annotations`: FastAPI reads the request models at run time.

import asyncio
import threading
from typing import Literal

from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from supremum.errors import UserError
from supremum.tasks import CLASSIFICATION

#: Integrated Gradients' steps a request may ask for (each step is a forward and backward pass)
MAX_STEPS = 200
Method = Literal["occlusion", "integrated-gradients", "input-x-gradient", "attention-rollout"]


class Explanation(BaseModel):
    words: list[str]
    scores: list[float] = Field(description="one per word; positive supports the predicted label")
    label: str = Field(description="the predicted label, the class the scores explain")
    probability: float
    truncated_words: int = Field(description="words past the model's max length, not explained")
    convergence_delta: float | None = Field(None, description="integrated-gradients: sum of the scores minus "
                                                              "(logit(x) - logit(baseline)), in logits")


class ExplainResponse(BaseModel):
    model: str
    method: str
    explanations: list[Explanation]


def add_explain(app: FastAPI, art, model, tok, cfg, auth, text_type, check_tokens) -> None:
    """Register `POST /v1/explain` for artifact `art` (its loaded `model`, `tok`). `text_type`:
    the server's text with its limits; `check_tokens(texts)` raises the 422 that classify gives
    for texts the tokenizer cannot read."""
    from supremum.explain.explainer import Explainer

    classifier = art.task == CLASSIFICATION.pipeline_tag
    explainer = Explainer.load(art, cfg.max_batch, model, tok) if classifier else None
    lock, waiting = threading.Lock(), [0]

    class ExplainRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        texts: list[text_type] = Field(min_length=1, max_length=cfg.max_texts,
                                       description=f"1 to {cfg.max_texts} texts of 1 to {cfg.max_chars} "
                                                   "characters, not only whitespace")
        method: Method = Field("occlusion", description="occlusion runs on every backend; the gradient "
                                                        "methods and attention rollout on PyTorch")
        steps: int = Field(50, ge=1, le=MAX_STEPS, description="integrated-gradients: steps of the integral")

    def work(req: ExplainRequest) -> ExplainResponse:
        with lock:
            encs = []
            for i, t in enumerate(req.texts):
                try:
                    encs.append(explainer.encode(t))
                except UserError as e:
                    raise HTTPException(422, f"texts[{i}]: {e}") from None
            why = explainer.problems(encs[0].ids)[req.method]
            if why:
                raise HTTPException(422, f"{req.method} cannot explain artifact {art.id} "
                                         f"({art.manifest.backend}): {why}; use method occlusion")
            probs = explainer.predict([e.ids for e in encs])
            out = []
            for enc, p in zip(encs, probs, strict=True):
                target = int(p.argmax())
                a = explainer.attribute(req.method, enc, target, req.steps)
                out.append(Explanation(words=enc.words, scores=[float(s) for s in a.words],
                                       label=art.label_names[target], probability=float(p[target]),
                                       truncated_words=enc.truncated_words,
                                       convergence_delta=a.extra.get("convergence_delta")))
            return ExplainResponse(model=art.id, method=req.method, explanations=out)

    @app.post("/v1/explain", response_model=ExplainResponse, response_model_exclude_none=True,
              dependencies=[Depends(auth)],
              responses={413: {"description": "body too large"}, 503: {"description": "queue full"},
                         504: {"description": "timed out"}})
    async def explain(req: ExplainRequest) -> ExplainResponse:
        if not classifier:
            raise HTTPException(422, f"{art.id} is a {art.task} model; explain supports classifiers only")
        check_tokens(req.texts)
        if waiting[0] >= cfg.max_queue:
            raise HTTPException(503, "the queue is full; retry shortly", headers={"Retry-After": "1"})
        waiting[0] += 1
        try:
            # the thread runs on after a timeout (it holds the lock until done), so later requests wait
            return await asyncio.wait_for(asyncio.to_thread(work, req), cfg.timeout_s)
        except TimeoutError:
            raise HTTPException(504, f"not answered within {cfg.timeout_s:g} s") from None
        finally:
            waiting[0] -= 1
