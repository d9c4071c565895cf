"""How long will a pipeline take? An estimate from the plan, printed before it starts and set
against the actual time when the pipeline ends.

Every number is measured on this machine. From this store's finished runs on this CPU when there
are some (the training rate of past fine-tunes of the same model and method, the median duration
of past runs of a compression method, of past evaluations); otherwise from a probe: the model is
loaded and trained for a few updates on the first batches of the real run (the same
length-grouped order, batch size, precision and loss: classification or causal LM), after untimed
warm-up updates, then the same batches are run forward for the inference rate; a worker
process's start-up is timed too. From these:

- training = load + examples / training rate (x1.33 for distillation's teacher) + the dev
  evaluations the schedule makes + save;
- a compression without training = load + save;
- an evaluation = worker start-up + load + the split's examples / inference rate + the latency
  calls of the speed measurement.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import dataclass

from supremum.machine import fingerprint
from supremum.store import Store
from supremum.tasks import CAUSAL_LM, CLASSIFICATION, get_task, resolve_task

TRAINING_COMPRESSIONS = {"distill": "epochs", "lowrank": "recover_epochs"}
# A distillation step adds the teacher's forward pass (about a third of a training step of the
# same model, as backward costs about twice forward) to the student's, which is no larger.
DISTILL_COST = 1.33
PROBE_WARMUP = 2  # untimed updates: first-call allocations and kernel choices
PROBE_TIMED = 6
PROBE_UPDATES = PROBE_WARMUP + PROBE_TIMED  # optimizer updates a probe makes (tests count them)
B1_CALLS = 5


@dataclass
class Probe:
    """Measurements of one model on this machine's data (examples: rows, or LM blocks)."""

    train_per_s: float  # training examples per second (forward, backward, update)
    forward_per_s: float  # examples per second of inference on the same batches
    b1_s: float  # one batch-1 forward (a latency call, a decoded token)
    load_s: float  # loading the model in a fresh process (the libraries' imports included)
    reload_s: float  # loading it again in a process that has loaded one
    start_s: float  # a worker process's start-up before it loads anything
    sizes: dict  # examples per split
    task: str
    basis: str


def task_of(cfg) -> str:
    """The name of the task the pipeline's fine-tunes train ("causal-lm" for text corpora and
    instruction data): `supremum.tasks.resolve_task`."""
    return resolve_task(cfg).name


def estimate(cfg, rows: list[dict], store: Store, *, probe: bool = True) -> dict:
    """{"seconds": known total, "unknown": [stage ids], "stages": {id: {"seconds", "basis"}},
    "per_evaluation": seconds of one evaluation (when known)}."""
    cpu = fingerprint()["cpu"]
    runs = [r for r in store.runs() if r["status"] == "finished" and (r["machine"] or {}).get("cpu") == cpu]
    todo = [r for r in rows if r["status"] == "to run"]
    by_id = {s.id: s for s in cfg.stages}
    measured: list[Probe | None] = []

    def measure() -> Probe | None:  # at most once, and only when something needs it
        if not measured:
            measured.append(_probe(cfg) if probe else None)
        return measured[0]

    out: dict = {"seconds": 0.0, "unknown": [], "stages": {}}
    for row in todo:
        s = by_id[row["stage"]]
        est = _stage(cfg, s, _method(s), runs, measure)
        if est is None:
            out["unknown"].append(s.id)
            continue
        out["stages"][s.id] = est
        out["seconds"] += est["seconds"]
    n_evals = len(todo) * len(cfg.evaluate.splits)
    ev = _eval_estimate(cfg, runs, measure) if n_evals else None
    if n_evals and ev:
        out["stages"]["evaluations"] = {"seconds": ev[0] * n_evals, "basis": f"{n_evals} x {ev[1]}"}
        out["per_evaluation"] = ev[0]
        out["seconds"] += ev[0] * n_evals
    elif n_evals:
        out["unknown"].append("evaluations")
    if measured and measured[0] and cfg.jobs == 1 and cfg.executor == "local":
        p = measured[0]  # this process imports the libraries once, with its first stage
        out["stages"]["start-up"] = {"seconds": p.load_s - p.reload_s,
                                     "basis": "the libraries' first import in this process (measured)"}
        out["seconds"] += p.load_s - p.reload_s
    return out


def _method(s) -> str:
    method = (s.finetune or s.compress or {}).get("method")
    return method.get("name", "full") if isinstance(method, dict) else (method or "full")


def _stage(cfg, s, method: str, runs: list[dict], measure) -> dict | None:
    if s.finetune is not None:
        train = cfg.train.model_copy(update=s.finetune.get("train", {}))
        return _training(cfg, train, None, runs, method, measure, 1.0)
    past = [r["finished"] - r["started"] for r in runs
            if r["kind"] == "compress" and (r["config"] or {}).get("compress", {}).get("method") == method]
    if past:
        return {"seconds": statistics.median(past), "basis": f"median of {len(past)} past {method} runs here"}
    opts = s.compress
    if method in TRAINING_COMPRESSIONS:
        epochs = opts.get(TRAINING_COMPRESSIONS[method], 3.0 if method == "distill" else 1.0)
        train = cfg.train.model_copy(update={"epochs": epochs, "batch_size": opts.get("batch_size", 32),
                                             "max_steps": opts.get("max_steps") or opts.get("recover_max_steps"),
                                             "eval_every": opts.get("eval_every")})
        return _training(cfg, train, opts, runs, "full", measure, DISTILL_COST)
    p = measure()
    if p is None:
        return None
    return {"seconds": _overhead(cfg, p), "basis": f"load and save of the model ({_overhead(cfg, p):.1f} s, "
            "measured)"}


def _overhead(cfg, p: Probe) -> float:
    """Loading and saving around a stage: in this process (libraries loaded once), or in a worker
    process of its own when stages run in parallel."""
    if cfg.jobs > 1 or cfg.executor != "local":
        return p.start_s + p.load_s + p.reload_s
    return 2 * p.reload_s


def _training(cfg, train, opts, runs, method: str, measure, factor: float) -> dict | None:
    """Load + updates + the schedule's dev evaluations + save."""
    from supremum.train.loop import plan_steps

    p = measure()
    past = _past_rate(cfg, runs, method)
    if p is None and past is None:
        return None
    n_train = p.sizes.get("train", 0) if p else None
    if not train.max_steps and not n_train:
        return None
    per_epoch, steps = plan_steps(n_train or 1, train)
    n = steps * train.batch_size * train.grad_accum
    per_s, basis = past or (p.train_per_s, p.basis)
    seconds = factor * n / per_s
    text = f"{n} examples at {per_s:.1f}/s ({basis})" + (f", x{factor} for the teacher" if factor != 1.0 else "")
    if p:
        evals = math.ceil(steps / train.eval_every) if train.eval_every else max(1, math.ceil(steps / per_epoch))
        dev = evals * p.sizes.get("dev", 0) / p.forward_per_s
        seconds += dev + _overhead(cfg, p)
        text += f"; {evals} dev evaluations {dev:.0f} s; load and save {_overhead(cfg, p):.0f} s"
    return {"seconds": seconds, "basis": text}


def expected_precision(train, where: str = "cpu") -> str:
    """The precision a run of TrainConfig `train` on device type `where` will train in, as
    `train.precision.choose` resolves it here (auto: bf16 where this hardware has it natively; the
    run's dev probe may still fall back to fp32, which an estimate does not foresee)."""
    from supremum.train.precision import choose

    return choose(train.request, fingerprint(), where).resolved


def run_precision(run: dict) -> str:
    """The precision a finished fine-tune (a store row) trained in: recorded since train.precision,
    before that its config's train.bf16."""
    recorded = ((run["metrics"] or {}).get("precision") or {}).get("resolved")
    return recorded or ("bf16" if ((run["config"] or {}).get("train") or {}).get("bf16") else "fp32")


def _past_rate(cfg, runs: list[dict], method: str) -> tuple[float, str] | None:
    # bf16 trains about twice as fast as fp32 on CPUs with native bf16: only runs in the same one count
    want = expected_precision(cfg.train)
    same_model = [r for r in runs if r["kind"] == "finetune"
                  and (r["config"] or {}).get("model", {}).get("name") == cfg.model.name
                  and (r["metrics"] or {}).get("train_samples_per_s") and run_precision(r) == want]
    same = [r for r in same_model if r["config"].get("method", {}).get("name") == method]
    if not same_model:
        return None
    rates = [r["metrics"]["train_samples_per_s"] for r in same or same_model]
    which = method if same else "other-method"  # said: another method's rate is a guess for this one
    return (statistics.median(rates),
            f"median of {len(rates)} past {want} {which} fine-tunes of {cfg.model.name} here")


def training_rate(cfg, runs: list[dict], method: str) -> tuple[float, str] | None:
    """(training examples per second, how found): the median over `runs` (finished store rows of this
    machine) of past fine-tunes of cfg.model.name with `method` (else any method of that model);
    None when there are none."""
    return _past_rate(cfg, runs, method)


def finetune_seconds(cfg, runs: list[dict], method: str, n_train: int) -> tuple[float, str]:
    """Training seconds of one fine-tune (`cfg`: a FinetuneConfig) and how they were found: the
    examples its schedule sees over the median rate of past fine-tunes of this model and method on
    this machine (`runs`: finished store rows), else over a probe made now in this process
    (PROBE_WARMUP + PROBE_TIMED updates on the run's first batches). Loading and dev evaluations
    are not counted: a lower bound."""
    from supremum.train.loop import plan_steps

    rate = _past_rate(cfg, runs, method)
    if rate is None:
        import torch

        p = measure_now(cfg, torch.get_num_threads())
        rate = (p["train_per_s"], p["basis"])
    _, steps = plan_steps(max(n_train, 1), cfg.train)
    n = steps * cfg.train.batch_size * cfg.train.grad_accum
    return n / rate[0], f"{n} examples at {rate[0]:.1f}/s ({rate[1]})"


def _eval_estimate(cfg, runs: list[dict], measure) -> tuple[float, str] | None:
    """Seconds of one evaluation (one artifact, one split) and how that was found."""
    past = [r["finished"] - r["started"] for r in runs if r["kind"] == "eval"]
    if past:
        return statistics.median(past), f"median of {statistics.median(past):.0f} s per past evaluation here"
    p = measure()
    if p is None:
        return None
    n = statistics.mean(p.sizes.get(s, 0) for s in cfg.evaluate.splits)
    ev = cfg.evaluate
    if p.task == CAUSAL_LM.name:
        # windows at half-window strides score each block about twice; 3 greedy samples of 64 tokens
        quality = 2 * n / p.forward_per_s + 3 * 64 * p.b1_s
        speed = 4 * 64 * p.b1_s if ev.speed else 0.0
    else:
        quality = n / p.forward_per_s
        b1_calls = 2 * (5 + ev.repeats)  # warm-up + timed, model-only and with tokenization
        b32_calls = 2 * (2 + max(3, ev.repeats // 3))
        speed = b1_calls * p.b1_s + b32_calls * 32 / p.forward_per_s if ev.speed else 0.0
    total = p.start_s + p.load_s + quality + speed
    calls = f", latency calls {speed:.0f} s" if speed else ""
    return total, (f"{total:.1f} s per evaluation: worker start {p.start_s:.1f} s, load {p.load_s:.1f} s, "
                   f"{n:.0f} examples at {p.forward_per_s:.0f}/s{calls} (measured now)")


def _probe(cfg) -> Probe | None:
    """The measurements, made in a fresh worker process (`python -m supremum.estimate_worker`): its
    loading costs what a stage's or an evaluation's worker pays, and this process stays small.
    None when the probe fails (the stage that loads the same data will then say why)."""
    import torch

    from supremum.jobs.worker import WorkerFailed, run_worker

    # Stages train with the recipe's threads, or this process's (one after another here), or
    # cpus_per_stage (in workers); evaluation workers with torch's default.
    parallel = cfg.jobs > 1 or cfg.executor != "local"
    threads = cfg.train.threads or (cfg.cpus_per_stage if parallel else torch.get_num_threads())
    t0 = time.perf_counter()
    try:
        stdout = run_worker("supremum.estimate_worker", {"recipe": cfg.model_dump(mode="json", by_alias=True),
                                                  "threads": threads})
    except WorkerFailed:
        return None
    out = json.loads(stdout.strip().splitlines()[-1])
    wall = time.perf_counter() - t0
    start_s = wall - out.pop("worked_s")
    return Probe(**out, start_s=start_s)


def measure_now(cfg, threads: int) -> dict:
    """Times loading (twice), PROBE_TIMED training updates (on `threads` threads) after
    PROBE_WARMUP untimed ones on the first batches of the real run's order, and inference on
    those batches (on torch's default threads, as an evaluation worker runs)."""
    import torch

    from supremum import device
    from supremum.data.batching import batch_order, iterate
    from supremum.models import load_model
    from supremum.train.loop import optimizer_step

    task = task_of(cfg)
    t0 = time.perf_counter()
    model, tok, split, sizes, loss_fn = _probe_data(cfg, task)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    load_model(cfg.model.name, task, gguf_file=cfg.model.gguf_file)
    reload_s = time.perf_counter() - t0
    resolved = expected_precision(cfg.train)
    train = cfg.train.model_copy(update={"precision": resolved, "bf16": None})
    bs = train.batch_size
    batches = batch_order([len(x) for x in split.ids], bs, train.seed, 0, train.group_by_length)[:PROBE_UPDATES]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)
    default_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    model.train()
    seen, t0 = 0, 0.0
    for k, b in enumerate(batches):
        if k == PROBE_WARMUP:
            seen, t0 = 0, time.perf_counter()
        seen += optimizer_step(model, opt, split, [b], tok.pad_token_id, train, loss_fn)[1]
    train_per_s = seen / max(time.perf_counter() - t0, 1e-9)
    torch.set_num_threads(default_threads)
    model.eval()
    timed = batches[PROBE_WARMUP:] or batches
    with torch.inference_mode(), device.autocast(torch.device("cpu"), resolved):
        t0 = time.perf_counter()
        for batch in iterate(split.ids, timed, tok.pad_token_id):
            model(**batch)
        forward_per_s = sum(len(b) for b in timed) / max(time.perf_counter() - t0, 1e-9)
        one = next(iterate(split.ids, [[timed[0][0]]], tok.pad_token_id))
        model(**one)
        t0 = time.perf_counter()
        for _ in range(B1_CALLS):
            model(**one)
        b1_s = (time.perf_counter() - t0) / B1_CALLS
    what = get_task(task).unit
    return {"train_per_s": train_per_s, "forward_per_s": forward_per_s, "b1_s": b1_s, "load_s": load_s,
            "reload_s": reload_s, "sizes": sizes, "task": task,
            "basis": f"probe: {PROBE_TIMED} timed {resolved} updates of {cfg.model.name} on {what} of the run's "
                     f"batches, after {PROBE_WARMUP} warm-up updates, now"}


def _probe_data(cfg, task: str):
    """(model, tokenizer, training split, examples per split, loss) as the real run builds them."""
    from supremum.data.batching import Split, tokenize
    from supremum.models import load_model
    from supremum.preprocessing import preprocessing_for_model

    if task == CAUSAL_LM.name:
        from supremum.lm.data import load_lm_data, training_split
        from supremum.lm.metrics import lm_loss

        data = load_lm_data(cfg.data)
        model, tok = load_model(cfg.model.name, CAUSAL_LM, gguf_file=cfg.model.gguf_file)
        preprocessing_for_model(model, tok, cfg.model.name, cfg.data.max_length)  # before a forward pass fails
        split = training_split(tok, data, "train", cfg.data.max_length)
        sizes = {"train": len(split.ids)}
        for s in ("dev", "test"):
            sizes[s] = len(training_split(tok, data, s, cfg.data.max_length).ids) if data.records.get(s) else 0
        return model, tok, split, sizes, lm_loss
    from supremum.data import load_data

    data = load_data(cfg.data)
    model, tok = load_model(cfg.model.name, CLASSIFICATION, gguf_file=cfg.model.gguf_file,
                            label_names=data.label_names)
    preprocessing_for_model(model, tok, cfg.model.name, cfg.data.max_length)  # before a forward pass fails
    split = Split(tokenize(tok, data.texts("train"), cfg.data.max_length), data.labels("train"))
    return model, tok, split, {k: len(v) for k, v in data.splits.items()}, None


def describe(est: dict) -> str:
    text = "estimated " + duration(est["seconds"])
    if est["unknown"]:
        text = "at least " + text + f" (no basis yet for: {', '.join(est['unknown'])})"
    return text


def duration(seconds: float) -> str:
    """"42 s", "11 min", "1 h 05 min"."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
