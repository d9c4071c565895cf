"""The chat layout of a causal-LM artifact for tools that render conversations themselves:
the Jinja template and end-of-turn token for GGUF metadata (llama.cpp), and the Go template,
default system prompt and stop strings of an Ollama Modelfile.

Two layouts translate to Go: ChatML (`<|im_start|>role\\ncontent<|im_end|>\\n`, SmolLM2's and
Qwen's), recognised by rendering the tokenizer's own template on probe conversations, and
supremum's role lines (`role: content`, an assistant turn ending with end-of-sequence), what
models without a chat template were fine-tuned on (supremum.lm.data.render)."""

from __future__ import annotations

from dataclasses import dataclass

from supremum.export import Refusal

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
CHATML_GO = (
    '{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}\n'
    '{{- range .Messages }}{{ if ne .Role "system" }}<|im_start|>{{ .Role }}\n'
    '{{ .Content }}<|im_end|>\n{{ end }}{{ end }}<|im_start|>assistant\n')
ROLE_LINES_GO = (
    '{{- if .System }}system: {{ .System }}\n{{ end }}\n'
    '{{- range .Messages }}{{ if ne .Role "system" }}{{ .Role }}: {{ .Content }}'
    '{{ if eq .Role "assistant" }}EOS{{ else }}\n{{ end }}{{ end }}{{ end }}assistant: ')
# Markers no real conversation contains: a probe's rendering shows the template's layout.
_U, _S, _A = "\u2063user-probe", "\u2063system-probe", "\u2063answer-probe"


@dataclass(frozen=True)
class Chat:
    #: chatml, role lines, or the tokenizer's own (untranslated) template
    layout: str
    jinja: str
    #: the token that ends an assistant turn
    end_of_turn: str


@dataclass(frozen=True)
class Modelfile:
    template: str
    system: str | None
    stops: list[str]


def chat(tok) -> Chat:
    """The artifact's chat layout: its tokenizer's template, else supremum's role lines."""
    from supremum.lm.data import ROLE_LINES_TEMPLATE

    if not getattr(tok, "chat_template", None):
        if tok.eos_token is None:
            raise Refusal("its tokenizer has neither a chat template nor an end-of-sequence token")
        return Chat("role lines", ROLE_LINES_TEMPLATE, tok.eos_token)
    if _chatml_system(tok) is not False:
        return Chat("chatml", tok.chat_template, IM_END)
    return Chat("own", tok.chat_template, tok.eos_token)


def modelfile(tok) -> Modelfile:
    """The Ollama TEMPLATE (Go), default SYSTEM and stop strings for the artifact's layout;
    Refusal for a chat template that is not ChatML."""
    c = chat(tok)
    if c.layout == "role lines":
        return Modelfile(ROLE_LINES_GO.replace("EOS", c.end_of_turn), None, [c.end_of_turn])
    if c.layout == "chatml":
        return Modelfile(CHATML_GO, _chatml_system(tok), [IM_END, IM_START])
    raise Refusal("its chat template is not ChatML (<|im_start|>role ... <|im_end|>), the one layout "
                  "translated to Ollama's Go template; the gguf export carries the template as it is")


def _render(tok, msgs: list[dict]) -> str:
    return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)


def _chatml_system(tok) -> str | None | bool:
    """False when the template is not ChatML; else the system prompt it adds when a
    conversation has none (None: it adds none)."""
    def turn(role: str, text: str) -> str:
        return f"{IM_START}{role}\n{text}{IM_END}\n"

    try:
        alone = _render(tok, [{"role": "user", "content": _U}])
        given = _render(tok, [{"role": "system", "content": _S}, {"role": "user", "content": _U}])
        multi = _render(tok, [{"role": "user", "content": _U}, {"role": "assistant", "content": _A},
                              {"role": "user", "content": _U}])
    except Exception:  # noqa: BLE001 - a template may refuse any probe (e.g. no system role): not ChatML
        return False
    tail = turn("user", _U) + f"{IM_START}assistant\n"
    if given != turn("system", _S) + tail or not alone.endswith(tail):
        return False
    prefix = alone[: -len(tail)]
    if multi != prefix + turn("user", _U) + turn("assistant", _A) + tail:
        return False
    if not prefix:
        return None
    if not (prefix.startswith(f"{IM_START}system\n") and prefix.endswith(f"{IM_END}\n")):
        return False
    return prefix[len(f"{IM_START}system\n"): -len(f"{IM_END}\n")]
