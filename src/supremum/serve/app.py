"""The FastAPI application: endpoints, limits, auth and metrics around one artifact."""
# No `from __future__ import annotations` here: FastAPI reads the request models and
# dependencies defined inside create_app from their annotations at run time.


import asyncio
import hmac
import json
from contextlib import asynccontextmanager
from typing import Annotated

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.exceptions import HTTPException as StarletteHTTPException

from supremum.artifact import Artifact, load_artifact_model
from supremum.serve import ServeConfig
from supremum.serve.batcher import Batcher, Saturated
from supremum.serve.limits import BodyLimit
from supremum.serve.telemetry import Telemetry


class AsciiJSON(JSONResponse):
    """JSON with non-ASCII escaped: a lone surrogate echoed back in an error message stays
    valid JSON instead of failing to encode (which would turn a 422 into a 500).

    NaN and Infinity are not JSON: a body that would hold one becomes a 500 with a readable
    error instead (no endpoint ever answers a non-finite number as if it were a result)."""

    def render(self, content) -> bytes:
        try:
            return _dumps(content)
        except ValueError:  # allow_nan=False: a NaN or Infinity somewhere in the body
            self.status_code = 500  # render runs inside __init__, after the status is set
            return _dumps({"detail": "the answer would hold NaN or Infinity, which is no result and "
                           "not JSON (the model overflows: re-create the artifact, e.g. in fp32)"})


def _dumps(content) -> bytes:
    return json.dumps(jsonable_encoder(content), ensure_ascii=True, allow_nan=False,
                      separators=(",", ":")).encode()


def _errors(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(_request, exc: RequestValidationError):
        return AsciiJSON({"detail": exc.errors()}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request, exc: StarletteHTTPException):
        return AsciiJSON({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


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
    model, tok = load_artifact_model(art)  # llama.cpp artifacts answer /v1/generate through llama.cpp
    classifier = art.task == "text-classification"
    max_length = preprocessing_for(art).max_length  # as trained, like eval and every other consumer
    tel = Telemetry()
    batcher = Batcher(_predictor(model, tok, cfg.max_batch), cfg.max_batch, cfg.max_wait_ms, cfg.max_queue,
                      on_batch=tel.batch_size.observe)
    tel.queue_depth.set_function(lambda: batcher.depth)
    state = {"ready": False}

    @asynccontextmanager
    async def lifespan(_app):
        batcher.start()
        state["ready"] = True
        yield
        state["ready"] = False
        await batcher.stop()

    app = FastAPI(title="supremum", version="1", lifespan=lifespan, default_response_class=AsciiJSON,
                  description=f"Inference for artifact {art.id} ({art.lineage}, {art.task}).")
    _errors(app)
    app.add_middleware(BodyLimit, max_bytes=cfg.max_body_bytes)
    tel.install(app)
    auth = _auth(cfg.api_key)
    Text = Annotated[str, StringConstraints(max_length=cfg.max_chars)]

    class ClassifyRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        texts: list[Text] = Field(min_length=1, max_length=cfg.max_texts,
                                  description=f"1 to {cfg.max_texts} texts of at most {cfg.max_chars} characters")

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", responses={503: {"description": "loading, shutting down, or saturated"}})
    async def readyz(response: Response) -> dict:
        ok = state["ready"] and batcher.depth < cfg.max_queue
        response.status_code = 200 if ok else 503
        return {"ready": ok, "queue_depth": batcher.depth}

    @app.get("/v1/model", dependencies=[Depends(auth)])
    async def model_info() -> dict:
        return {"id": art.id, "task": art.task, "lineage": art.lineage, "labels": art.label_names,
                "backend": art.manifest.get("backend", "pytorch"), "manifest": art.manifest,
                "metrics": art.metrics}

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
        return ClassifyResponse(model=art.id, predictions=[
            Prediction(label=names[int(np.argmax(p))], probabilities=dict(zip(names, map(float, p), strict=True)))
            for p in rows])

    from supremum.serve.generate import add_generate

    add_generate(app, model, tok, cfg, batcher, auth, enabled=not classifier, art=art, text_type=Text)

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
    return tokenize(tok, texts, max_length)


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
