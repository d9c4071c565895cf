"""Tiny randomly initialized models built in code, for tests (no download, seconds to train)."""

from __future__ import annotations

import string

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import BertConfig, LlamaConfig, PreTrainedTokenizerFast

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _char_vocab() -> dict[str, int]:
    # WordPiece over single characters: any lower-cased ASCII text tokenizes, nothing is unknown.
    chars = string.ascii_lowercase + string.digits + string.punctuation
    pieces = SPECIAL + list(chars) + [f"##{c}" for c in chars]
    return {p: i for i, p in enumerate(pieces)}


def bert_tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.WordPiece(_char_vocab(), unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tok.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def llama_tokenizer() -> PreTrainedTokenizerFast:
    # Byte-level BPE with no merges: one token per byte, so every string round-trips.
    specials = ["<pad>", "<s>", "</s>"]
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {t: i for i, t in enumerate(specials + sorted(alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>")


def tiny_config(name: str, vocab_size: int):
    if name == "tiny-bert":
        return BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2,
                          num_attention_heads=2, intermediate_size=64, max_position_embeddings=512,
                          pad_token_id=0)
    return LlamaConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, intermediate_size=64,
                       max_position_embeddings=512, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                       tie_word_embeddings=True)


def build_tiny(name: str, model_cls, **config_overrides):
    """(model, tokenizer) with weights fixed by seed 0, whatever the caller's RNG state."""
    tokenizer = bert_tokenizer() if name == "tiny-bert" else llama_tokenizer()
    config = tiny_config(name, len(tokenizer))
    for k, v in config_overrides.items():
        setattr(config, k, v)
    state = torch.random.get_rng_state()
    torch.manual_seed(0)
    try:
        model = model_cls.from_config(config)
    finally:
        torch.random.set_rng_state(state)
    return model, tokenizer
