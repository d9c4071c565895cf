"""The server's typed options and the binding rule (no non-loopback address without an API key)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from supremum.device import check_spec
from supremum.errors import UserError


class ServeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str = Field("127.0.0.1", description="bind address; anything but loopback needs an API key")
    port: int = Field(8000, ge=0, le=65535, description="TCP port (0: any free port)")
    max_batch: int = Field(32, ge=1, description="texts per forward pass, and generations decoded "
                                                 "together (1: no batching)")
    max_wait_ms: float = Field(5.0, ge=0, description="how long the first queued text waits for others")
    max_queue: int = Field(512, ge=1, description="queued texts (and queued or running generations) "
                                                  "before requests get 503 + Retry-After")
    max_texts: int = Field(64, ge=1, description="texts per /v1/classify and /v1/explain request")
    max_chars: int = Field(2000, ge=1, description="characters per text (and per prompt)")
    max_new_tokens: int = Field(256, ge=1, description="upper limit of max_new_tokens in /v1/generate "
                                "(and of max_tokens in the OpenAI endpoints)")
    max_body_bytes: int = Field(1_000_000, ge=1, description="request body limit (413 above it)")
    timeout_s: float = Field(30.0, gt=0, description="per-request time limit (504 after it)")
    threads: int | None = Field(None, ge=1, description="inference threads (default: torch's choice)")
    device: str = Field("auto", description="where a PyTorch classifier runs: auto (CUDA when visible), cpu, "
                        "cuda, cuda:N, mps; causal LMs, ONNX Runtime and llama.cpp serve on the CPU")
    api_key: str | None = Field(None, description="required bearer token (from $SUPREMUM_API_KEY or a file)",
                                repr=False)
    graceful_s: float = Field(30.0, ge=0, description="on SIGTERM, how long in-flight requests may finish")

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        return check_spec(v)


LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def check_binding(cfg: ServeConfig) -> None:
    if cfg.host not in LOOPBACK and not cfg.api_key:
        raise UserError(f"binding {cfg.host} exposes the model beyond this machine without an API key",
                        "set SUPREMUM_API_KEY (or --api-key-file), or bind 127.0.0.1")
