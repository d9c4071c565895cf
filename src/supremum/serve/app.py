"""The FastAPI application: endpoints, limits, auth and metrics around one artifact."""
# No `from __future__ import annotations` here: FastAPI reads the request models and
# dependencies defined inside create_app from their annotations at run time.


import asyncio
import hmac
import json
import math
from contextlib import asynccontextmanager
from typing import Annotated

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException as StarletteHTTPException

from supremum import backends
from supremum.artifact import Artifact
from supremum.serve.batcher import Batcher, Saturated
from supremum.serve.config import ServeConfig
from supremum.serve.limits import BodyLimit
from supremum.serve.telemetry import Telemetry
from supremum.tasks import CLASSIFICATION


class AsciiJSON(JSONResponse):
    """JSON with non-ASCII escaped: a lone surrogate echoed back in an error message stays
    valid JSON instead of failing to encode (which would turn a 422 into a 500). NaN and
    Infinity are not JSON: a body holding one becomes a 500 that names where it was, never
    an invalid document answered with 200."""

    def __init__(self, content, status_code: int = 200, headers=None, media_type=None, background=None):
        try:
            super().__init__(content, status_code, headers, media_type, background)
        except ValueError:  # json.dumps(allow_nan=False)
            where = _non_finite_at(jsonable_encoder(content))
            super().__init__({"detail": f"the answer holds a non-finite number (NaN or Infinity) at {where}; "
                                        "the model's weights or outputs are not finite"}, 500)

    def render(self, content) -> bytes:
        return json.dumps(jsonable_encoder(content), ensure_ascii=True, allow_nan=False,
                          separators=(",", ":")).encode()


def _non_finite_at(value, path: str = "") -> str | None:
    """The JSON path of the first NaN/Infinity in `value`, e.g. "predictions[0].probabilities.pos"."""
    if isinstance(value, float) and not math.isfinite(value):
        return path or "the top level"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        found = _non_finite_at(v, f"{path}[{k}]" if isinstance(k, int) else f"{path}.{k}" if path else str(k))
        if found:
            return found
    return None


def finite_or_none(value):
    """Metadata (manifest, recorded metrics) with NaN/Infinity as null: a diverged run's recorded
    loss is still shown, as "no number", and the rest of the record stays readable."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(v) for v in value]
    return value


def not_blank(text: str) -> str:
    """The one rule for text inputs (classified texts, prompts), on every backend: an empty or
    whitespace-only text has nothing to classify or continue (a decoder classifier would score an
    all-padding row), so the request is refused with 422; the error's `loc` names the item."""
    if not text.strip():
        raise PydanticCustomError("blank_text", "empty or only whitespace; send some text")
    return text


#: characters of a rejected input echoed back in a 422
PREVIEW_CHARS = 200


def error_preview(err: dict) -> dict:
    """One validation error as answered: `loc`, `msg`, `type` (and `ctx`) as pydantic gives them,
    the offending `input` cut to a preview. Pydantic echoes the whole input (a 5000-text body
    that is one text too long comes back as the full body); a string keeps its first
    PREVIEW_CHARS characters, a list or object only its length (`input_length`)."""
    out = {k: v for k, v in err.items() if k != "input"}
    value = err.get("input")
    if isinstance(value, str):
        out["input"] = value if len(value) <= PREVIEW_CHARS else value[:PREVIEW_CHARS] + "..."
    elif isinstance(value, list | tuple | dict | set | bytes):
        out["input_length"] = len(value)
    elif "input" in err:
        out["input"] = value
    return out


def _errors(app: FastAPI) -> None:
    """Errors as {"detail": ...}, except on the OpenAI-compatible paths, which answer in OpenAI's
    shape (and 400 where FastAPI says 422), so OpenAI clients raise their own error classes."""
    from supremum.serve import openai_api as oa

    def openai(e: oa.OpenAIError):
        return AsciiJSON(oa.error_body(e), status_code=e.status, headers=e.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc: RequestValidationError):
        if oa.is_openai(request):
            return openai(oa.from_validation([error_preview(e) for e in exc.errors()]))
        return AsciiJSON({"detail": [error_preview(e) for e in exc.errors()]}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc: StarletteHTTPException):
        if oa.is_openai(request):
            return openai(oa.OpenAIError(exc.status_code, str(exc.detail), headers=exc.headers))
        return AsciiJSON({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(oa.OpenAIError)
    async def openai_error(_request, exc: oa.OpenAIError):
        return openai(exc)


class Prediction(BaseModel):
    label: str
    probabilities: dict[str, float]


class ClassifyResponse(BaseModel):
    model: str
    predictions: list[Prediction]


def create_app(art: Artifact, cfg: ServeConfig) -> FastAPI:
    import torch

    from supremum.preprocessing import preprocessing_for

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    model, tok = backends.load(art)  # llama.cpp artifacts answer /v1/generate through llama.cpp
    classifier = art.task == CLASSIFICATION.pipeline_tag
    model = _placed(model, classifier, cfg.device)
    max_length = preprocessing_for(art).max_length  # as trained, like eval and every other consumer
    tel = Telemetry()
    batcher = Batcher(_predictor(model, tok, cfg.max_batch), cfg.max_batch, cfg.max_wait_ms, cfg.max_queue,
                      on_batch=tel.batch_size.observe)
    from supremum.serve.engine import make_engine

    engine = None if classifier else make_engine(model, tok, batcher, cfg.max_batch, cfg.max_queue,
                                                 on_step=tel.decode_batch.observe)
    tel.queue_depth.set_function(lambda: batcher.depth + (engine.depth if engine else 0))
    state = {"ready": False}

    @asynccontextmanager
    async def lifespan(_app):
        batcher.start()
        if engine:
            engine.start()
        state["ready"] = True
        yield
        state["ready"] = False
        if engine:
            await engine.stop()
        await batcher.stop()

    app = FastAPI(title="supremum", version="1", lifespan=lifespan, default_response_class=AsciiJSON,
                  description=f"Inference for artifact {art.id} ({art.lineage}, {art.task}).")
    _errors(app)
    app.add_middleware(BodyLimit, max_bytes=cfg.max_body_bytes)
    tel.install(app)
    auth = _auth(cfg.api_key)
    Text = Annotated[str, StringConstraints(max_length=cfg.max_chars), AfterValidator(not_blank)]

    class ClassifyRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        texts: list[Text] = Field(min_length=1, max_length=cfg.max_texts,
                                  description=f"1 to {cfg.max_texts} texts of 1 to {cfg.max_chars} characters, "
                                              "not only whitespace")

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", responses={503: {"description": "loading, shutting down, or saturated"}})
    async def readyz(response: Response) -> dict:
        depth = batcher.depth + (engine.depth if engine else 0)
        ok = state["ready"] and depth < cfg.max_queue
        response.status_code = 200 if ok else 503
        return {"ready": ok, "queue_depth": depth}

    @app.get("/v1/model", dependencies=[Depends(auth)])
    async def model_info() -> dict:
        return {"id": art.id, "task": art.task, "lineage": art.lineage, "labels": art.label_names,
                "backend": art.manifest.backend, "manifest": finite_or_none(art.manifest.as_dict()),
                "metrics": finite_or_none(art.metrics)}

    @app.post("/v1/classify", response_model=ClassifyResponse, dependencies=[Depends(auth)],
              responses={413: {"description": "body too large"}, 503: {"description": "queue full"},
                         504: {"description": "timed out"}})
    async def classify(req: ClassifyRequest) -> ClassifyResponse:
        if not classifier:
            raise HTTPException(422, f"{art.id} is a {art.task} model; use /v1/generate")
        ids = _tokenize(tok, req.texts, max_length)
        try:
            rows = await asyncio.wait_for(batcher.submit(ids), cfg.timeout_s)
        except Saturated:
            raise HTTPException(503, "the queue is full; retry shortly", headers={"Retry-After": "1"}) from None
        except TimeoutError:
            raise HTTPException(504, f"not answered within {cfg.timeout_s:g} s") from None
        names = art.label_names
        bad = next((i for i, p in enumerate(rows) if not np.isfinite(p).all()), None)
        if bad is not None:
            raise HTTPException(500, "the model gave non-finite probabilities (NaN or Infinity) for "
                                     f"texts[{bad}]: artifact {art.id} is not usable; re-train it "
                                     "(lower lr, clipping, fp32)")
        return ClassifyResponse(model=art.id, predictions=[
            Prediction(label=names[int(np.argmax(p))], probabilities=dict(zip(names, map(float, p), strict=True)))
            for p in rows])

    from supremum.serve.generate import add_generate
    from supremum.serve.openai_api import add_openai

    add_generate(app, engine, tok, cfg, auth, enabled=not classifier, art=art, text_type=Text)
    add_openai(app, engine, model, tok, cfg, batcher, auth, enabled=not classifier, art=art)
    from supremum.serve.explain_api import add_explain

    add_explain(app, art, model, tok, cfg, auth, Text, lambda texts: _tokenize(tok, texts, max_length))

    @app.get("/metrics", dependencies=[Depends(auth)])
    async def metrics() -> Response:
        body, ctype = tel.render()
        return Response(body, media_type=ctype)

    return app


def _predictor(model, tok, max_batch: int):
    from supremum.evaluate.quality import softmax
    from supremum.infer import predict_logits

    def predict(ids: list[list[int]]) -> np.ndarray:
        return softmax(predict_logits(model, ids, tok.pad_token_id, batch_size=max_batch))

    return predict


def _tokenize(tok, texts: list[str], max_length: int) -> list[list[int]]:
    from supremum.data.batching import tokenize

    for i, t in enumerate(texts):
        try:
            t.encode("utf-8")
        except UnicodeEncodeError:
            raise HTTPException(422, f"texts[{i}] is not valid Unicode (lone surrogate)") from None
    ids = tokenize(tok, texts, max_length)
    special = set(tok.all_special_ids)
    for i, row in enumerate(ids):
        # a text of characters the tokenizer drops leaves only special tokens (or none): a decoder
        # classifier would read padding, an encoder an empty sentence
        if all(t in special for t in row):
            raise HTTPException(422, f"texts[{i}] has no tokens the model reads (the tokenizer drops all its "
                                     "characters); send some text")
    return ids


def _auth(key: str | None):
    bearer = HTTPBearer(auto_error=False)

    def check(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        if key is None:
            return
        given = (creds.credentials if creds else "").encode("utf-8", "surrogatepass")
        # constant time: the comparison does not reveal how much of the key matched
        if not hmac.compare_digest(given, key.encode()):
            raise HTTPException(401, "missing or wrong API key", headers={"WWW-Authenticate": "Bearer"})

    return check


def _placed(model, classifier: bool, spec: str):
    """A PyTorch classifier on the device asked for; the generation engine's KV cache is kept on
    the CPU in this version, so a causal LM given an explicit GPU is refused rather than served
    on the CPU unannounced."""
    from supremum import device

    if classifier:
        return device.place(model, spec)
    device.cpu_only(spec, "causal LMs are served on the CPU in this version")
    return model
