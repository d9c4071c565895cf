"""`python -m supremum.studies.active_worker` < spec.json: one round of active learning in a fresh
process: fine-tune on the labelled rows, then score every text with the trained artifact. The
spec is JSON written by our own parent process (supremum.studies.learners): {"config": a
fine-tune config, "texts": a JSON list of texts, "out": the round's directory}. Writes
out/scores.safetensors with probs (texts, k) and emb (texts, d), float64, and the artifact's
label names (the order of the k columns) in its metadata."""

from __future__ import annotations

import json
import sys

import numpy as np


def score(model, ids: list[list[int]], pad_id: int, k: int, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(probs (n, k), emb (n, d)): softmax of the logits and the input of the last linear layer
    with k outputs (the classifier: for BERT the pooled output, for a sentence classifier the
    sentence embedding, for a PEFT model the trained copy inside modules_to_save)."""
    import torch

    from supremum.data.batching import collate, eval_order

    seen: list[torch.Tensor] = []
    heads = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m.out_features == k]
    hooks = [h.register_forward_hook(lambda _m, inp, _out: seen.append(inp[0])) for h in heads]
    probs, emb = [None] * len(ids), [None] * len(ids)
    model.eval()
    try:
        with torch.inference_mode():
            for b in eval_order([len(x) for x in ids], batch_size):
                seen.clear()
                logits = model(**collate([ids[i] for i in b], pad_id)).logits.double()
                h = seen[-1]  # the last k-output layer called is the one that made the logits
                h = h[:, 0] if h.dim() == 3 else h
                for row, i in enumerate(b):
                    probs[i] = torch.softmax(logits[row], -1).numpy()
                    emb[i] = h[row].double().numpy()
    finally:
        for hk in hooks:
            hk.remove()
    return np.stack(probs), np.stack(emb)


def main() -> None:
    from safetensors.numpy import save

    from supremum.backends import load
    from supremum.fsutil import write_bytes
    from supremum.preprocessing import preprocessing_for
    from supremum.train.config import FinetuneConfig
    from supremum.train.finetune import finetune

    spec = json.loads(sys.stdin.read())
    res = finetune(FinetuneConfig(**spec["config"]), progress=False, command="supremum label (round)")
    model, tok = load(res.artifact)
    with open(spec["texts"], encoding="utf-8") as f:
        texts = json.load(f)
    ids = preprocessing_for(res.artifact).tokenize(tok, texts)
    probs, emb = score(model, ids, tok.pad_token_id, len(res.artifact.label_names))
    # the artifact's class order is its training data's (sorted names), kept in the metadata
    write_bytes(f"{spec['out']}/scores.safetensors",
                save({"probs": probs, "emb": emb}, metadata={"label_names": json.dumps(res.artifact.label_names)}))
    sys.stdout.write(json.dumps({"artifact": str(res.artifact.path)}) + "\n")


if __name__ == "__main__":
    main()
