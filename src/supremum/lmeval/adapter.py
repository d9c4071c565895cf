"""lm-eval model type `supremum`: a causal LM loaded by supremum, scored as lm-eval's HFLM scores.

Source of each convention: EleutherAI/lm-evaluation-harness 0.4.13, lm_eval/models/huggingface.py
(HFLM) and lm_eval/api/model.py (TemplateLM):
- tokenization: `tok_encode` uses the tokenizer's own special tokens (a BOS where it adds one),
  none when the text already starts with the prefix token; `TemplateLM._encode_pair` moves a
  context's trailing spaces onto the continuation and splits the encoding of context +
  continuation at the context's length; an empty context becomes the prefix token (BOS, else EOS);
- `loglikelihood`: summed log-probs of the continuation's tokens and whether each is the argmax
  (`supremum.evaluate.loglik.score_tokens`, the same code `zeroshot` scores with);
- `loglikelihood_rolling`: lm-eval's own disjoint windows of the model's context
  (`get_rolling_token_windows(context_len=1)` + `make_disjoint_window`), every token scored once,
  the first after the prefix token;
- `generate_until`: the context cut at the left to max_length - max_gen_toks, greedy decoding
  (seeded sampling when a task asks for do_sample with a temperature) through the step interface
  of `supremum.lm.generation` (PyTorch KV cache, or llama.cpp), stopped at end-of-sequence, a
  stop string or max_gen_toks, and the text cut before the first stop string.
"""

from __future__ import annotations

from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs, postprocess_generated_text
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

from supremum.evaluate.causal import load_causal_lm
from supremum.evaluate.loglik import max_context, score_tokens
from supremum.lm.generation import sampler, stepper

DEFAULT_BATCH = 8
DEFAULT_GEN_TOKS = 256


@register_model("supremum")
class SupremumLM(TemplateLM):
    """model_args: `artifact` (artifact directory or id, or a base model: alias, model directory,
    .gguf file), `backend` (pytorch, or llamacpp for a base model's GGUF file), `max_length`
    (tokens of context; default the model's), `batch_size` (sequences per forward pass when
    scoring), `max_gen_toks` (default 256), `seed` (for sampled generation). Or pass a loaded
    `model` and `tokenizer` (as `supremum.load` returns them; `loaded_artifact`: their artifact)."""

    def __init__(self, artifact: str | None = None, backend: str = "pytorch", max_length: int | str | None = None,
                 batch_size: int | str | None = DEFAULT_BATCH, max_gen_toks: int | str = DEFAULT_GEN_TOKS,
                 seed: int | str = 1234, model=None, tokenizer=None, loaded_artifact=None, **_harness) -> None:
        # `_harness`: max_batch_size and device, which lm-eval passes to every model type.
        super().__init__()
        if model is None:
            if artifact is None:
                from supremum.errors import UserError

                raise UserError("model type supremum needs artifact=PATH", "e.g. --model_args artifact=models/x")
            model, tokenizer, self.art = load_causal_lm(str(artifact), str(backend))
        else:
            self.art = loaded_artifact
        self.model, self.tokenizer, self.name = model, tokenizer, str(artifact or type(model).__name__)
        self._max_length = int(max_length) if max_length else max_context(model)
        auto = batch_size in (None, "auto") or str(batch_size).startswith("auto")
        self.batch_size = DEFAULT_BATCH if auto else int(batch_size)
        self.max_gen_toks, self.seed = int(max_gen_toks), int(seed)

    # --- tokens ---------------------------------------------------------------------------------

    @property
    def eot_token_id(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def prefix_token_id(self) -> int:
        bos = self.tokenizer.bos_token_id
        return bos if bos is not None else self.eot_token_id

    @property
    def max_length(self) -> int:
        return self._max_length

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **_) -> list[int]:
        if add_special_tokens is None:  # the tokenizer's default, but never a second prefix token
            prefix = self.tokenizer.decode(self.prefix_token_id)
            kw = {"add_special_tokens": False} if prefix and string.startswith(prefix) else {}
        else:
            kw = {"add_special_tokens": add_special_tokens}
        return self.tokenizer.encode(string, **kw)

    def tok_decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)

    @property
    def tokenizer_name(self) -> str:
        return self.tokenizer.name_or_path.replace("/", "__")

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        return getattr(self.tokenizer, "chat_template", None) or ""

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        return self.tokenizer.apply_chat_template(chat_history, tokenize=False,
                                                  add_generation_prompt=add_generation_prompt,
                                                  continue_final_message=not add_generation_prompt)

    # --- the three request types ----------------------------------------------------------------

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **_) -> list[tuple[float, bool]]:
        """requests: ((context, continuation), context ids, continuation ids) as TemplateLM makes them."""
        out = score_tokens(self.model, [(ctx, cont) for _, ctx, cont in requests], self.batch_size,
                           self.max_length, self.tokenizer.pad_token_id)
        for (key, _, _), res in zip(requests, out, strict=True):
            if key is not None:
                self.cache_hook.add_partial("loglikelihood", key, res)
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        """Total log-likelihood (nats) of each whole text, every token scored once."""
        out = []
        for (text,) in (r.args for r in requests):
            windows = [make_disjoint_window(w) for w in get_rolling_token_windows(
                token_list=self.tok_encode(text), prefix_token=self.prefix_token_id,
                max_seq_len=self.max_length, context_len=1)]
            total = sum(s for s, _ in score_tokens(self.model, windows, self.batch_size, self.max_length,
                                                   self.tokenizer.pad_token_id))
            self.cache_hook.add_partial("loglikelihood_rolling", (text,), total)
            out.append(total)
        return out

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        eos = self.tok_decode([self.eot_token_id], skip_special_tokens=False)
        out = []
        for context, gen_kwargs in (r.args for r in requests):
            kw = normalize_gen_kwargs(dict(gen_kwargs or {}), self.max_gen_toks)
            until = handle_stop_sequences(kw.pop("until", None), eos=eos)
            limit = kw["max_gen_toks"]
            ids = self.tok_encode(context)[-max(self.max_length - limit, 1):]
            pick = sampler(float(kw.get("temperature") or 0), float(kw.get("top_p") or 1.0), self.seed) \
                if kw.get("do_sample") else None
            text = postprocess_generated_text(self._generate(ids, limit, until, pick), until, None)
            self.cache_hook.add_partial("generate_until", (context, gen_kwargs), text)
            out.append(text)
        return out

    def _generate(self, ids: list[int], limit: int, until: list[str], pick) -> str:
        """Text of up to `limit` new tokens after `ids`; stops early at end-of-sequence or once a
        stop string appears (the caller cuts the text there)."""
        step = stepper(self.model, pick)
        new = [step.prefill(ids)]
        while new[-1] != self.eot_token_id and len(new) < limit:
            if any(s and s in self.tok_decode(new) for s in until):
                break
            new.append(step.step(new[-1]))
        return self.tok_decode(new)

    def get_model_info(self) -> dict:
        info = {"model": self.name, "max_length": self.max_length}
        if self.art is not None:
            info.update(artifact=self.art.id, lineage=self.art.lineage, backend=self.art.manifest.backend)
        return info
