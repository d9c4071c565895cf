"""How long will a pipeline take? An estimate from the plan, printed before it starts.

Training time = examples to process / examples per second. The rate comes from this store's
finished runs of the same model (and method when there are some) on this CPU; without history
it is measured by a short probe (a few full fine-tuning steps on real batches). Stages with
neither (a compression method never run here) are listed as unknown rather than guessed.
"""

from __future__ import annotations

import statistics
import time

from supremum.machine import fingerprint
from supremum.store import Store

TRAINING_COMPRESSIONS = {"distill": "epochs", "lowrank": "recover_epochs"}
# A distillation step adds the teacher's forward pass (about a third of a training step of the
# same model, as backward costs about twice forward) to the student's, which is no larger.
DISTILL_COST = 1.33


def estimate(cfg, rows: list[dict], store: Store, *, n_train: int | None = None,
             probe: bool = True) -> dict:
    """{"seconds": known total, "unknown": [stage ids], "stages": {id: {"seconds", "basis"}}}."""
    cpu = fingerprint()["cpu"]
    runs = [r for r in store.runs() if r["status"] == "finished" and (r["machine"] or {}).get("cpu") == cpu]
    todo = [r for r in rows if r["status"] == "to run"]
    by_id = {s.id: s for s in cfg.stages}
    rate: tuple[float, str] | None = None
    out: dict = {"seconds": 0.0, "unknown": [], "stages": {}}
    for row in todo:
        s = by_id[row["stage"]]
        method = (s.finetune or s.compress or {}).get("method")
        method = method.get("name", "full") if isinstance(method, dict) else (method or "full")
        if s.finetune is not None or method in TRAINING_COMPRESSIONS:
            rate = rate or _train_rate(cfg, runs, method, probe)
        est = _stage(cfg, s, method, runs, rate, n_train)
        if est is None:
            out["unknown"].append(s.id)
            continue
        out["stages"][s.id] = est
        out["seconds"] += est["seconds"]
    ev = _eval_seconds(runs)
    n_evals = len(todo) * len(cfg.evaluate.splits)
    if n_evals and ev:
        out["stages"]["evaluations"] = {"seconds": ev * n_evals,
                                        "basis": f"{n_evals} x median of {ev:.0f} s per past evaluation here"}
        out["seconds"] += ev * n_evals
    elif n_evals:
        out["unknown"].append("evaluations")
    return out


def _stage(cfg, s, method: str, runs: list[dict], rate, n_train: int | None) -> dict | None:
    if s.finetune is not None:
        train = {**cfg.train.model_dump(), **s.finetune.get("train", {})}
        n = _examples(train.get("epochs", 3.0), train.get("max_steps"), train.get("batch_size", 32), n_train)
        return _by_rate(n, rate, 1.0)
    past = [r["finished"] - r["started"] for r in runs
            if r["kind"] == "compress" and (r["config"] or {}).get("compress", {}).get("method") == method]
    if past:
        return {"seconds": statistics.median(past), "basis": f"median of {len(past)} past {method} runs here"}
    if method in TRAINING_COMPRESSIONS:
        opts = s.compress
        n = _examples(opts.get(TRAINING_COMPRESSIONS[method], 3.0 if method == "distill" else 1.0),
                      opts.get("max_steps") or opts.get("recover_max_steps"), opts.get("batch_size", 32), n_train)
        return _by_rate(n, rate, DISTILL_COST)
    return None


def _examples(epochs: float, max_steps: int | None, batch: int, n_train: int | None) -> int | None:
    if max_steps:
        return max_steps * batch
    return int(epochs * n_train) if n_train else None


def _by_rate(n: int | None, rate, factor: float) -> dict | None:
    if n is None or rate is None:
        return None
    per_s, basis = rate
    return {"seconds": factor * n / per_s, "basis": f"{n} examples at {per_s:.0f}/s ({basis})"
            + (f", x{factor} for the teacher" if factor != 1.0 else "")}


def _train_rate(cfg, runs: list[dict], method: str, probe: bool) -> tuple[float, str] | None:
    same_model = [r for r in runs if r["kind"] == "finetune"
                  and (r["config"] or {}).get("model", {}).get("name") == cfg.model.name
                  and (r["metrics"] or {}).get("train_samples_per_s")]
    same = [r for r in same_model if r["config"].get("method", {}).get("name") == method] or same_model
    if same:
        rates = [r["metrics"]["train_samples_per_s"] for r in same]
        return statistics.median(rates), f"median of {len(rates)} past fine-tunes of {cfg.model.name} here"
    return _probe(cfg) if probe else None


def _probe(cfg, steps: int = 3) -> tuple[float, str]:
    """Examples/s of full fine-tuning, timed over `steps` steps after one warm-up step."""
    import torch
    import torch.nn.functional as F

    from supremum.data import load_data
    from supremum.data.batching import iterate, tokenize
    from supremum.models import load_model
    from supremum.preprocessing import preprocessing_for_model

    data = load_data(cfg.data)
    model, tok = load_model(cfg.model.name, "classification", gguf_file=cfg.model.gguf_file,
                            label_names=data.label_names)
    preprocessing_for_model(model, tok, cfg.model.name, cfg.data.max_length)  # before a forward pass fails
    bs = cfg.train.batch_size
    texts = data.texts("train")[: bs * (steps + 1)]
    ids = tokenize(tok, texts, cfg.data.max_length)
    labels = data.labels("train")[: len(ids)]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    model.train()
    batches = [list(range(i, min(i + bs, len(ids)))) for i in range(0, len(ids), bs)]
    t0, seen = 0.0, 0
    for k, batch in enumerate(iterate(ids, batches, tok.pad_token_id, labels)):
        if k == 1:
            t0, seen = time.perf_counter(), 0
        y = batch.pop("labels")
        F.cross_entropy(model(**batch).logits, y).backward()
        opt.step()
        opt.zero_grad()
        seen += len(y)
    per_s = seen / max(time.perf_counter() - t0, 1e-9)
    return per_s, f"probe: {steps} full fine-tuning steps of {cfg.model.name} timed now"


def _eval_seconds(runs: list[dict]) -> float | None:
    past = [r["finished"] - r["started"] for r in runs if r["kind"] == "eval"]
    return statistics.median(past) if past else None


def describe(est: dict) -> str:
    mins = est["seconds"] / 60
    text = f"estimated {mins:.0f} min" if mins >= 1 else f"estimated {est['seconds']:.0f} s"
    if est["unknown"]:
        text = "at least " + text + f" (no basis yet for: {', '.join(est['unknown'])})"
    return text
