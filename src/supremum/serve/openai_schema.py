"""Request and response bodies of the OpenAI-compatible endpoints, following OpenAI's API
reference (chat completions, legacy completions, models). Parameters OpenAI defines that this
server does not implement are declared, so a value other than their neutral one is refused
with 400 naming the parameter, and an unknown parameter is refused too (as OpenAI does:
"Unrecognized request argument supplied")."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

Seed = Annotated[int, Field(ge=0, le=2**63 - 1)]
#: OpenAI allows 4 stop strings; lm-evaluation-harness's generate_until may send more
Stop = str | Annotated[list[str], Field(max_length=32)] | None
TokenIds = Annotated[list[StrictInt], Field(min_length=1)]


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool = Field(False, description="a last chunk with the usage and no choices")


class _Sampling(BaseModel):
    """What both completion endpoints share."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(description="the served artifact's id (GET /v1/models)")
    temperature: float | None = Field(None, ge=0, le=2, description="0: greedy; default 1")
    top_p: float | None = Field(None, ge=0, le=1, description="nucleus sampling mass; default 1")
    n: int | None = Field(None, ge=1, description="choices per prompt; only 1 is supported")
    stop: Stop = Field(None, description="up to 32 strings; the answer ends before the first one")
    seed: Seed | None = Field(None, description="seed of the sampling: the same seed repeats an answer")
    stream: bool | None = Field(None, description="server-sent events ending in `data: [DONE]`")
    stream_options: StreamOptions | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2, description="only 0 is supported")
    frequency_penalty: float | None = Field(None, ge=-2, le=2, description="only 0 is supported")
    logit_bias: dict[str, float] | None = Field(None, description="not supported (empty or absent)")
    user: str | None = Field(None, description="ignored")


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | Annotated[list[TextPart], Field(min_length=1)]
    name: str | None = None

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1, description="new tokens at most (default: the server's limit)")
    max_completion_tokens: int | None = Field(None, ge=1, description="the newer name of max_tokens")
    logprobs: bool | None = Field(None, description="log-probability of each answer token (not with stream)")
    top_logprobs: int | None = Field(None, ge=0, le=20, description="and of the N most likely alternatives "
                                     "(needs logprobs)")
    response_format: dict | None = Field(None, description='only {"type": "text"}')
    tools: list | None = Field(None, description="not supported")
    tool_choice: str | dict | None = Field(None, description="not supported")


class CompletionRequest(_Sampling):
    prompt: str | Annotated[list[str], Field(min_length=1)] | TokenIds | Annotated[list[TokenIds], Field(
        min_length=1)] = Field(description="a text, texts, token ids, or lists of token ids")
    max_tokens: int | None = Field(16, ge=0, description="new tokens at most (OpenAI's default 16); 0 "
                                   "with echo scores the prompt alone")
    logprobs: int | None = Field(None, ge=0, le=20, description="log-probabilities of each token and of "
                                 "the N most likely alternatives")
    echo: bool | None = Field(None, description="the prompt is part of the answer (and of its logprobs)")
    best_of: int | None = Field(None, ge=1, description="only 1 is supported")
    suffix: str | None = Field(None, description="not supported")


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int]


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChatLogprobs(BaseModel):
    content: list[TokenLogprob]


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]
    logprobs: ChatLogprobs | None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int
    delta: Delta
    finish_reason: Literal["stop", "length"] | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


class Logprobs(BaseModel):
    """OpenAI's legacy completion logprobs: per token its text, its log-probability (None for
    the first token of the prompt, which has no context), the `logprobs` most likely
    alternatives, and its character offset in the answer's text."""

    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float] | None] | None
    text_offset: list[int]


class CompletionChoice(BaseModel):
    index: int
    text: str
    finish_reason: Literal["stop", "length"]
    logprobs: Logprobs | None = None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "supremum"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody
