"""The fine-tuning stage: data + model + method -> trained artifact, recorded in the store."""

from __future__ import annotations

import random
import shutil
import sys
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from supremum import device
from supremum.artifact import Artifact, new_id, save_artifact
from supremum.config import identity
from supremum.data import TaskData
from supremum.data.batching import tokenize
from supremum.hashing import content_hash, drop_unset
from supremum.machine import fingerprint
from supremum.models import is_decoder, load_model
from supremum.preprocessing import preprocessing_for_model, source_digest
from supremum.progress import TrainProgress
from supremum.store import Store
from supremum.tasks import CAUSAL_LM, CLASSIFICATION, Task, resolve_task
from supremum.tracking import Tracker
from supremum.train import checkpoint as ckpt
from supremum.train import distributed, precision, sharding
from supremum.train.config import FinetuneConfig
from supremum.train.loop import plan_steps, train
from supremum.train.methods import FitContext, method_for, trainable_parameters
from supremum.train.state import TrainResult, TrainState


@dataclass
class FinetuneResult:
    run_id: str
    artifact: Artifact
    metrics: dict
    data_info: dict


def config_hash(cfg: FinetuneConfig) -> str:
    """Identity of a run for resuming: everything that changes the result."""
    d = identity(cfg)  # paths as typed: the hash runs had before paths were recorded absolute
    d["train"] = drop_unset(d["train"], {"parallel": "ddp"})  # added later: the default keeps older hashes
    d["train"].pop("checkpoint_every", None)
    d["train"].pop("threads", None)
    d.pop("tracking", None)
    d = drop_unset(d, {"task": "auto"})  # added later, as below
    if d["data"].get("train_limit") is None:  # keys added later: absent = the hash runs had before them
        d["data"].pop("train_limit", None)
        d["data"].pop("train_limit_seed", None)
    d["data"] = drop_unset(d["data"], {"drop_empty": False, "delimiter": None})
    return content_hash(d)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def finetune(cfg: FinetuneConfig, *, store: Store | None = None, resume: bool = False,
             progress: bool = True, command: str = "",
             on_eval: Callable[[int, float], None] | None = None,
             on_data: Callable[[dict], None] | None = None) -> FinetuneResult | None:
    """Train and save; under torchrun every rank trains, rank 0 alone saves and returns the
    result (the others return None). `on_eval(step, dev score)` runs after each dev evaluation
    (higher is better); an exception it raises fails the run and propagates. `on_data(data_info)`
    runs once the data is read, before training (the CLI prints the columns and sizes there)."""
    dist = distributed.current()
    if dist.active and (cfg.self_training or cfg.domain_pretrain):
        from supremum.errors import UserError

        raise UserError("self_training and domain_pretrain run in one process", "drop --nproc / torchrun")
    where = device.resolve(cfg.train.device)  # a device that is not there fails before any work
    precision.check(cfg.train.request, where.type)  # as does a precision it cannot train in
    if cfg.method.name == "qlora" and where.type != "cuda":
        from supremum.errors import UserError

        raise UserError(f"method qlora trains on a CUDA GPU (bitsandbytes' 4-bit kernels), and this run is on "
                        f"{where}", "use --method lora here, or --device cuda on a machine with an NVIDIA GPU")
    if dist.active:
        distributed.init(dist, cfg.train.threads, cfg.train.device)
        if not dist.main:
            return _follow(cfg, dist, resume)
    if cfg.output:  # before any training: the artifact (and a PEFT run's adapter) replaces only artifacts
        from supremum.artifact import check_output

        out = Path(cfg.output)
        check_output(out)
        check_output(_sibling(out, "adapter"))
        if cfg.domain_pretrain:
            from supremum.train.domain import RECORD

            check_output(_sibling(out, "domain"), RECORD)
    store = store or Store()
    if cfg.train.threads and not dist.active:
        torch.set_num_threads(cfg.train.threads)
    art_id = new_id()
    unlabeled, base, recorded = _unlabeled(cfg, _main_dir(cfg, store.root, art_id))
    data, model, tok, method, train_split, dev, objective = _prepare(cfg, dist, base)
    if on_data is not None:
        on_data(data.info)
    trainable, total = trainable_parameters(model)
    run_dir = _run_dir(store.root, cfg, dist)
    run_id = ckpt.persistent_run_id(run_dir, resume, new_id)
    ckpt_dir = run_dir / "last"
    if resume and not ckpt.exists(ckpt_dir):
        sys.stderr.write(_nothing_to_resume(cfg, run_dir) + "\n")
    with store.run(run_id, "finetune", command, cfg.model_dump(mode="json"), fingerprint(),
                   checkpoint=str(ckpt_dir) if cfg.train.checkpoint_every else None) as run:
        with Tracker(cfg.tracking, store.root, f"finetune-{run_id}", cfg.model_dump(mode="json")) as tr:
            def fit(model, data, train_split, dev, ckpt_dir, on_eval=None, run_cfg=cfg):
                if method.fit is not None:  # a method that trains without the gradient loop
                    return method.fit(model, cfg.method, FitContext(tok, data, train_split, dev, run_cfg.train,
                                                                    cfg.data.max_length, progress))
                return _train(model, train_split, dev, run_cfg, tok.pad_token_id, ckpt_dir, resume, progress,
                              tr, method.after_step, {**objective, "on_eval": on_eval})

            result = fit(model, data, train_split, dev, ckpt_dir, on_eval)
            if cfg.self_training:
                model, result, recorded["self_training"] = _self_train(cfg, data, unlabeled, base, tok, dist,
                                                                       (model, result), fit, run_dir)
            if _sharded(cfg, dist):
                model = _unsharded(model, cfg, data, len(train_split.ids), dist)
            tr.log({"trainable_params": trainable, "train_seconds": result.train_seconds})
        metrics = {**_metrics(result, trainable, total, data), **recorded}
        if "self_training" in recorded:  # the cost of the run is every round's, not the kept one's
            from supremum.train.selftrain import total_seconds

            metrics["train_seconds"] = round(total_seconds(recorded["self_training"]), 3)
        adapter = _save_adapter(method, model, tok, cfg, data, metrics, run_id, store, base, recorded)
        model, storage = method.finalize(model, cfg.method)
        if getattr(model, "merge_check", None):  # QLoRA: merged float model vs the trained 4-bit one
            metrics["merge_check"] = model.merge_check
        art = _save(model, tok, cfg, data, storage, metrics, run_id, store.root, art_id=art_id, base=base,
                    extra={**recorded, **({"adapter_artifact": str(adapter.path.resolve())} if adapter else {})})
        store.add_artifact(art.id, str(art.path), run_id, art.task, cfg.model.name, cfg.method.name)
        run.finish(metrics, art)
    shutil.rmtree(run_dir, ignore_errors=True)
    return FinetuneResult(run_id, art, metrics, data.info)


def _sibling(main: Path, kind: str) -> Path:
    """`<output>-adapter` (the adapter-only artifact) or `<output>-domain` (the domain-adapted base)."""
    return main.with_name(f"{main.name}-{kind}")


def _main_dir(cfg: FinetuneConfig, root: Path, art_id: str) -> Path:
    return Path(cfg.output) if cfg.output else root / "artifacts" / art_id


def _unlabeled(cfg: FinetuneConfig, main: Path) -> tuple[list[str], str, dict]:
    """(unlabelled texts, the base model to fine-tune, what to record) for self_training and
    domain_pretrain: the texts read, and the base adapted to them (`<artifact>-domain`) when asked."""
    if cfg.data.unlabeled is None:
        return [], cfg.model.name, {}
    from supremum.data.unlabeled import read_unlabeled
    from supremum.errors import UserError

    if resolve_task(cfg) is not CLASSIFICATION:
        raise UserError("self_training and domain_pretrain apply to classifiers, and this data is a "
                        "language-model corpus", "train a classifier on labelled data, or drop them")
    texts, info = read_unlabeled(cfg.data)
    recorded: dict = {"unlabeled": {**info, **source_digest(cfg.data.unlabeled)}}
    if cfg.domain_pretrain is None:
        return texts, cfg.model.name, recorded
    from supremum.train.domain import adapt

    seed_everything(cfg.train.seed)
    recorded["domain_pretrain"] = adapt(cfg.model.name, cfg.model.gguf_file, texts, cfg.domain_pretrain,
                                        cfg.data.max_length, cfg.train.seed, None,
                                        _sibling(main, "domain"))
    return texts, recorded["domain_pretrain"]["dir"], recorded


def _self_train(cfg: FinetuneConfig, data: TaskData, texts: list[str], base: str, tok, dist, first, fit,
                run_dir: Path):
    """The self-training rounds around `fit`: each round a fresh model from `base` with the method
    applied, trained on labelled + pseudo-labelled rows (its own checkpoint directory)."""
    from supremum.infer import predict_logits
    from supremum.train.selftrain import round_train, self_train, softmax

    ids = tokenize(tok, texts, cfg.data.max_length)

    def retrain(d: TaskData, r: int):
        model = _base(cfg, CLASSIFICATION, d, base)[0]
        train_split, dev = CLASSIFICATION.training_splits(tok, d, cfg)
        train = round_train(cfg.train, cfg.self_training.round_steps, len(train_split.ids), dist.world)
        round_cfg = cfg.model_copy(update={"train": train})
        # the method sees the round's step count too (AdaLoRA's rank schedule spans the training)
        model = _with_method(model, round_cfg, len(train_split.ids), dist)
        return model, fit(model, d, train_split, dev, run_dir / f"last-round{r}", run_cfg=round_cfg)

    def probabilities(model):
        return softmax(predict_logits(model, ids, tok.pad_token_id, bf16=_resolved(first[1])))

    return self_train(cfg.self_training, data, texts, first, retrain, probabilities)


def _resolved(result) -> str:
    """The precision a trained result ran in (fp32 for methods that fit without the loop)."""
    return getattr(getattr(result, "state", None), "precision", {}).get("resolved", "fp32")


def _follow(cfg: FinetuneConfig, dist: distributed.Dist, resume: bool) -> None:
    """A rank other than 0: the same model, data and steps, no files and no store rows (rank 0
    writes them). Resuming reads rank 0's checkpoint, which every rank can reach on one node."""
    _, model, tok, method, train_split, dev, objective = _prepare(cfg, dist)
    ckpt_dir = _run_dir(Store().root, cfg, dist) / "last"
    train(model, train_split, dev, cfg.train, tok.pad_token_id, ckpt_dir=ckpt_dir, resume=resume,
          after_step=method.after_step, **objective)
    if _sharded(cfg, dist):
        sharding.full_state(model)  # the gather to rank 0 needs every rank
    return None


def _sharded(cfg: FinetuneConfig, dist: distributed.Dist) -> bool:
    return dist.active and cfg.train.parallel == "fsdp"


def _unsharded(model, cfg: FinetuneConfig, data, n_train: int, dist: distributed.Dist):
    """Rank 0: the trained weights gathered into a fresh, unsharded copy of the model, which is
    what the method's finalize and the artifact writer expect (FSDP2 has no unwrap)."""
    full = sharding.full_state(model)
    fresh = _with_method(_base(cfg, resolve_task(cfg), data)[0], cfg, n_train, dist)
    fresh.load_state_dict(full)
    return fresh.eval()


def _nothing_to_resume(cfg: FinetuneConfig, run_dir: Path) -> str:
    """The line a --resume with no checkpoint prints: the run trains from the start, and says so."""
    if not cfg.train.checkpoint_every:
        return ("resume: nothing to resume, this run writes no checkpoints (set --checkpoint-every N); "
                "training from the start")
    return (f"resume: no checkpoint of this configuration under {run_dir} (a first run, or a changed "
            "setting); training from the start")


def _run_dir(root: Path, cfg: FinetuneConfig, dist: distributed.Dist) -> Path:
    """Checkpoints of one run; the process count is part of its identity (it sets the global batch)."""
    return root / "checkpoints" / (config_hash(cfg) + (f"-w{dist.world}" if dist.active else ""))


def _prepare(cfg: FinetuneConfig, dist: distributed.Dist, base: str | None = None):
    """Data, the model with its method applied (from `base`, default the configured model), the
    encoded splits and the training objective (loss and dev score; empty = the classifier's): the
    same on every rank. Each step is the task's (`supremum.tasks.Task`)."""
    task = resolve_task(cfg)
    task.refuse(cfg.train)
    data = task.load_data(cfg.data)
    model, tok = _base(cfg, task, data, base)
    train_split, dev = task.training_splits(tok, data, cfg)
    model = _with_method(model, cfg, len(train_split.ids), dist)
    return data, model, tok, method_for(cfg.method), train_split, dev, task.objective()  # in the loop's precision


def _base(cfg: FinetuneConfig, task: Task, data, name: str | None = None):
    """(model, tokenizer) before the method, seeded: the same on every rank and every call. `name`:
    the model to load instead of the configured one (its domain-adapted copy)."""
    seed_everything(cfg.train.seed)
    adapted = name is not None and name != cfg.model.name
    model, tok = load_model(name or cfg.model.name, task, gguf_file=None if adapted else cfg.model.gguf_file,
                            dropout=cfg.train.dropout, label_names=getattr(data, "label_names", None))
    if task is CAUSAL_LM and not is_decoder(model.config):
        _refuse_encoder_as_lm(cfg, model.config.model_type)
    # refuses a length the model cannot embed
    preprocessing_for_model(model, tok, name or cfg.model.name, cfg.data.max_length)
    return model, tok


def _refuse_encoder_as_lm(cfg: FinetuneConfig, model_type: str) -> None:
    """An encoder under a causal-LM head trains, but as a next-token model it is noise (its
    perplexity stays near the vocabulary size): the data was read as a corpus, and most often it
    is a labelled table the file type hid."""
    from supremum.errors import UserError

    looks = ""
    path = Path(cfg.data.path)
    if path.is_file() and path.suffix in (".txt", ".text"):
        looks = " (a .txt file is read as a corpus; a tab-separated table with a header: name it .tsv)"
    raise UserError(f"model '{cfg.model.name}' is an encoder ({model_type}), and {cfg.data.path} was read as text "
                    "for a causal language model, which an encoder cannot be trained as",
                    "give a causal LM (e.g. --model smollm2-135m), or labelled data (.csv, .tsv, .jsonl with a "
                    f"label column) to train a classifier{looks}")


def _with_method(model, cfg: FinetuneConfig, n_train: int, dist: distributed.Dist):
    if method_for(cfg.method).fit is not None and (dist.active or resolve_task(cfg) is not CLASSIFICATION):
        from supremum.errors import UserError

        raise UserError(f"method {cfg.method.name} fits a classifier in one process",
                        "run it without torchrun, on classification data")
    if cfg.train.parallel == "fsdp":
        sharding.check(cfg.train, cfg.method.name)
    return method_for(cfg.method).apply(model, cfg.method, plan_steps(n_train, cfg.train, dist.world)[1])


def _train(model, train_split, dev, cfg, pad_id, ckpt_dir, resume, progress, tracker,
           after_step, objective: dict) -> TrainResult:
    _, total = plan_steps(len(train_split.ids), cfg.train, distributed.current().world)
    bar = TrainProgress(total, enabled=progress)

    def on_step(info: dict) -> None:
        bar.update(info)
        keys = ("loss", "lr", "samples_per_s", "dev_accuracy", "dev_loss")
        tracker.log({"train/" + k: info[k] for k in keys if k in info}, step=info["step"])

    with bar if progress else nullcontext():
        result, _ = train(model, train_split, dev, cfg.train, pad_id, ckpt_dir=ckpt_dir,
                          resume=resume, on_step=on_step, after_step=after_step, **objective)
    return result


def _dev_metrics(st: TrainState) -> dict:
    if st.evals and "dev_loss" in st.evals[-1]:  # language model: score = -dev loss
        best = -st.best_score
        return {"dev_loss": best, "dev_perplexity": float(np.exp(min(best, 50.0))),
                "dev_loss_last": st.evals[-1]["dev_loss"]}
    last = st.evals[-1]["dev_accuracy"] if st.evals else None
    return {"dev_accuracy": st.best_score, "dev_accuracy_last": last}


def _metrics(result: TrainResult, trainable: int, total: int, data) -> dict:
    st = result.state
    return {
        "steps": st.step,
        "final_train_loss": float(np.mean([x["loss"] for x in st.log[-20:]])) if st.log else None,
        **_dev_metrics(st), "best_step": st.best_step,
        "stopped_early": st.stopped_early, "train_seconds": round(result.train_seconds, 3),
        "train_samples_per_s": round(result.samples_per_s, 2),
        "trainable_params": trainable, "total_params": total,
        "trainable_fraction": trainable / total,
        "train_size": data.info.get("blocks", {}).get("train", len(data.splits["train"])),
        "evals": st.evals, "loss_curve": st.log[:: max(1, len(st.log) // 200)],
        "devices": st.devices, **_device_note(st.devices),
        **({"precision": st.precision} if st.precision else {}),
        **({"compile": st.compile} if st.compile else {}),
    }


def _device_note(devices: list[str]) -> dict:
    """A run resumed on another device than its checkpoint's says so: the same weights and
    optimizer state continue, but its numbers are not bit-identical to one uninterrupted run
    (other kernels; CUDA's random state is not checkpointed)."""
    if len(devices) < 2:
        return {}
    return {"device_note": f"resumed on {devices[-1]}; its checkpoint was written on {devices[-2]} (same weights "
                           "and optimizer state; not bit-identical to an uninterrupted run)"}


def _save_adapter(method, model, tok, cfg: FinetuneConfig, data, metrics: dict,
                  run_id: str, store: Store, base: str, recorded: dict) -> Artifact | None:
    """The small adapter-only artifact, next to the merged main one (`<output>-adapter`)."""
    got = method.adapter_only(model, cfg.method)
    if got is None:
        return None
    art_id = new_id()
    out = _sibling(_main_dir(cfg, store.root, art_id), "adapter")
    art = _save(got[0], tok, cfg, data, got[1], metrics, run_id, store.root, out=out, art_id=art_id,
                base=base, extra=recorded)
    store.add_artifact(art.id, str(art.path), run_id, art.task, cfg.model.name, f"{cfg.method.name} (adapter)")
    return art


def _save(model, tok, cfg: FinetuneConfig, data, storage: str, metrics: dict,
          run_id: str, root: Path, out: Path | None = None, art_id: str | None = None,
          extra: dict | None = None, base: str | None = None) -> Artifact:
    from supremum.backends.weights import write_weights
    from supremum.models.sentence import transform_spec
    from supremum.train.methods import delta

    pooling = transform_spec(model)  # linear-probe and setfit pool as sentence-transformers do
    writer = delta.writer if storage == "delta" else write_weights([pooling]) if pooling else None
    art_id = art_id or new_id()
    out = out or _main_dir(cfg, root, art_id)
    art = save_artifact(model, tok, out, task=resolve_task(cfg).pipeline_tag,
                        label_names=getattr(data, "label_names", None),
                        base_model=base or cfg.model.name, config=cfg.model_dump(mode="json"),
                        storage=storage, artifact_id=art_id,
                        write_weights=writer,
                        extra={"run_id": run_id, "data": {**data.info, **source_digest(cfg.data.path)},
                               "method": cfg.method.name, **(extra or {})})
    art.record_metrics("training", {k: v for k, v in metrics.items() if k not in ("loss_curve",)})
    return art
