"""Command line: one thin function per command; the logic lives in the library.

Flags become typed configs through `cli_config` (one path for every command: recipe < flags <
KEY=VALUE, every bad value one line naming the flag, exit 2); results are printed by `cli_render`;
fine-tune, compress, eval and frontier call the public API (`supremum.api`). Nothing heavy is
imported at module level, so `supremum --help` and `supremum runs` start without torch.
"""

from __future__ import annotations

import errno
import json
import os
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from supremum.cli_config import SchemaCommand, flag_keys, schema_epilog, schema_help
from supremum.errors import UserError


class _App(typer.Typer):
    """Every command gets help computed from the schema when it is shown (cli_config)."""

    def command(self, *args, **kwargs):
        return super().command(*args, cls=kwargs.pop("cls", SchemaCommand), **kwargs)


app = _App(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
           help="supremum: how good can this model get, and how cheaply?")


def _doc(section: str, field: str) -> str:
    """Help text comes from the config schema, written once; the option's value sets that key."""
    return schema_help(section, field)


#: --drop-empty, on every command that reads labelled data (its errors about empty rows suggest it)
DropEmpty = Annotated[bool | None, typer.Option("--drop-empty/--no-drop-empty", help=_doc("data", "drop_empty"))]


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False) -> None:
    # Declared here for --help and parsing; `main` reads sys.argv, so it also covers errors
    # raised before this callback runs.
    del debug


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import warnings

    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*")
    # PyTorch's eager int8 kernels are deprecated in favour of torchao, whose CPU path is slower
    # here (see README); the warnings would repeat on every int8 load.
    warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
    warnings.filterwarnings("ignore", message="torch.ao.quantization is deprecated")


def _echo_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


@app.command(epilog=schema_epilog("finetune"))
def finetune(
    model: Annotated[str | None, typer.Option(help=_doc("model", "name"))] = None,
    data: Annotated[str | None, typer.Option(help=_doc("data", "path"))] = None,
    method: Annotated[str | None, typer.Option(help=f"fine-tuning method: {schema_epilog('methods')} "
                                               "[default: full]")] = None,
    epochs: Annotated[float | None, typer.Option(help=_doc("train", "epochs"))] = None,
    max_steps: Annotated[int | None, typer.Option(help=_doc("train", "max_steps"))] = None,
    lr: Annotated[float | None, typer.Option(help=_doc("train", "lr"))] = None,
    batch_size: Annotated[int | None, typer.Option(help=_doc("train", "batch_size"))] = None,
    seed: Annotated[int | None, typer.Option(help=_doc("train", "seed"))] = None,
    text_column: Annotated[str | None, typer.Option(help=_doc("data", "text_column"))] = None,
    label_column: Annotated[str | None, typer.Option(help=_doc("data", "label_column"))] = None,
    encoding: Annotated[str | None, typer.Option(help=_doc("data", "encoding"))] = None,
    delimiter: Annotated[str | None, typer.Option(help=_doc("data", "delimiter"))] = None,
    dedup: Annotated[bool | None, typer.Option("--dedup/--no-dedup", help=_doc("data", "dedup"))] = None,
    drop_empty: DropEmpty = None,
    precision: Annotated[str | None, typer.Option(help=_doc("train", "precision"))] = None,
    bf16: Annotated[bool | None, typer.Option("--bf16/--no-bf16", help=_doc("train", "bf16"))] = None,
    compile: Annotated[bool | None, typer.Option("--compile/--no-compile", help=_doc("train", "compile"))] = None,
    device: Annotated[str | None, typer.Option(help=_doc("train", "device"))] = None,
    gradient_checkpointing: Annotated[bool | None, typer.Option(
        "--gradient-checkpointing/--no-gradient-checkpointing", help=_doc("train", "gradient_checkpointing"))
    ] = None,
    eval_every: Annotated[int | None, typer.Option(help=_doc("train", "eval_every"))] = None,
    early_stopping: Annotated[int | None, typer.Option(help=_doc("train", "early_stopping"))] = None,
    checkpoint_every: Annotated[int | None, typer.Option(help=_doc("train", "checkpoint_every"))] = None,
    replay: Annotated[float | None, typer.Option(help=_doc("train", "replay"))] = None,
    replay_data: Annotated[str | None, typer.Option(help=_doc("train", "replay_data"))] = None,
    max_length: Annotated[int | None, typer.Option(help=_doc("data", "max_length") + " (language "
                                                   "models: tokens per packed block)")] = None,
    task: Annotated[str | None, typer.Option(help=_doc("", "task"))] = None,
    unlabeled: Annotated[str | None, typer.Option(help=_doc("data", "unlabeled"))] = None,
    self_training_rounds: Annotated[int | None, typer.Option(help=_doc("self_training", "rounds"))] = None,
    pseudo_threshold: Annotated[float | None, typer.Option(help=_doc("self_training", "threshold"))] = None,
    domain_pretrain_steps: Annotated[int | None, typer.Option(help=_doc("domain_pretrain", "steps"))] = None,
    output: Annotated[str | None, typer.Option(help="artifact directory [default: "
                                               "$SUPREMUM_HOME/artifacts/<id>]")] = None,
    recipe: Annotated[Path | None, typer.Option(help="YAML recipe; flags and KEY=VALUE override it")] = None,
    resume: Annotated[bool, typer.Option(help="continue the same run from its last checkpoint")] = False,
    track: Annotated[str | None, typer.Option(help="mirror metrics to trackers: tensorboard,mlflow,wandb "
                                              "(files under $SUPREMUM_HOME/tracking)")] = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    nproc: Annotated[int, typer.Option(min=1, help="data-parallel processes on this machine (torchrun, gloo on "
                                       "CPU / NCCL on GPU); --batch-size is per process")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON on stdout")] = False,
    overrides: Annotated[list[str] | None, typer.Argument(
        help="KEY=VALUE overrides of any recipe key, e.g. train.lr=3e-4 method.r=16")] = None,
) -> None:
    """Fine-tune a classifier or a causal language model and save it as an artifact (recorded in the run store).

    Language models: plain text (.txt, JSONL with a text field) is packed into blocks of --max-length tokens; instruction data (JSONL with prompt/response or chat messages, rendered with the model's chat template) trains on the answers only; dev/test are contiguous ranges at the end of the file unless given.

    Defaults that work without tuning: full fine-tuning at lr 1e-4, LoRA (r=8 on every linear layer, alpha 16) at lr 1e-3; AdamW (fused), batch 32, 3 epochs, linear decay after 6% warm-up, weight decay 0.01, gradient clipping at 1.0, dev evaluation each epoch, the best dev checkpoint kept.

    Precedence: recipe < flags < KEY=VALUE overrides.
    """  # noqa: E501
    from supremum import cli_render
    from supremum.cli_config import finetune_config
    from supremum.train import distributed

    cfg = finetune_config(locals(), flag_keys(finetune))  # validated before any process is launched
    if nproc > 1 and not distributed.current().active:
        if cfg.self_training or cfg.domain_pretrain:
            raise UserError("self_training and domain_pretrain run in one process", "drop --nproc")
        if cfg.train.parallel == "fsdp":
            from supremum.train import sharding

            sharding.check(cfg.train, cfg.method.name)
        raise typer.Exit(distributed.launch(nproc, distributed.strip_nproc(sys.argv[1:]),
                                                     debug="--debug" in sys.argv))
    _quiet_libraries()
    from supremum.api import finetune as run

    dist = distributed.current()
    try:
        res = run(cfg, resume=resume, progress=progress and not as_json and dist.main, command=" ".join(sys.argv),
                  on_data=None if as_json or not dist.main else cli_render.print_finetune_data)
    finally:
        distributed.shutdown(dist)
    if res is None:  # a rank other than 0: rank 0 reports
        return
    if as_json:
        _echo_json({"run_id": res.run_id, "artifact": str(res.artifact.path), "artifact_id":
                    res.artifact.id, "metrics": res.metrics, "data": res.data_info})
    else:
        cli_render.print_finetune(res)


@app.command("eval")
def eval_(
    artifact: Annotated[str, typer.Argument(help="artifact directory, or an artifact/run id; or a base "
                                            "causal LM (alias, .gguf file, model directory) to measure as it is")],
    data: Annotated[str | None, typer.Option(help="data to evaluate on [default: the training data]")] = None,
    split: Annotated[str | None, typer.Option(help=_doc("eval", "split"))] = None,
    text_column: Annotated[str | None, typer.Option(help=_doc("data", "text_column"))] = None,
    label_column: Annotated[str | None, typer.Option(help=_doc("data", "label_column"))] = None,
    encoding: Annotated[str | None, typer.Option(help=_doc("data", "encoding"))] = None,
    delimiter: Annotated[str | None, typer.Option(help=_doc("data", "delimiter"))] = None,
    drop_empty: DropEmpty = None,
    speed: Annotated[bool | None, typer.Option("--speed/--no-speed", help=_doc("eval", "speed"))] = None,
    repeats: Annotated[int | None, typer.Option(help=_doc("eval", "repeats"))] = None,
    threads: Annotated[int | None, typer.Option(help=_doc("eval", "threads"))] = None,
    device: Annotated[str | None, typer.Option(help=_doc("eval", "device"))] = None,
    perturb: Annotated[str | None, typer.Option(help=_doc("eval", "perturb"))] = None,
    perturb_seed: Annotated[int | None, typer.Option(help=_doc("eval", "perturb_seed"))] = None,
    slice_column: Annotated[str | None, typer.Option(help=_doc("eval", "slice_column"))] = None,
    confident_errors: Annotated[int | None, typer.Option(help=_doc("eval", "confident_errors"))] = None,
    max_length: Annotated[int | None, typer.Option(help=_doc("eval", "max_length"))] = None,
    window: Annotated[int | None, typer.Option(help=_doc("eval", "window"))] = None,
    stride: Annotated[int | None, typer.Option(help=_doc("eval", "stride"))] = None,
    max_tokens: Annotated[int | None, typer.Option(help=_doc("eval", "max_tokens"))] = None,
    new_tokens: Annotated[int | None, typer.Option(help=_doc("eval", "new_tokens"))] = None,
    prompt_tokens: Annotated[int | None, typer.Option(help=_doc("eval", "prompt_tokens"))] = None,
    generate: Annotated[bool | None, typer.Option("--generate/--no-generate",
                                                  help=_doc("eval", "generate"))] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help=_doc("eval", "max_new_tokens"))] = None,
    temperature: Annotated[float | None, typer.Option(help=_doc("eval", "temperature"))] = None,
    top_p: Annotated[float | None, typer.Option(help=_doc("eval", "top_p"))] = None,
    seed: Annotated[int | None, typer.Option(help=_doc("eval", "seed"))] = None,
    generate_limit: Annotated[int | None, typer.Option(help=_doc("eval", "generate_limit"))] = None,
    reference_data: Annotated[str | None, typer.Option(help=_doc("eval", "reference_data"))] = None,
    reference_tokens: Annotated[int | None, typer.Option(help=_doc("eval", "reference_tokens"))] = None,
    backend: Annotated[str, typer.Option(help="base models only: pytorch, or llamacpp to run the model's "
                                         "own GGUF file (e.g. smollm2-135m's Q4_1) in llama.cpp")] = "pytorch",
    track: Annotated[str | None, typer.Option(help="mirror metrics to trackers: tensorboard,mlflow,wandb "
                                              "(files under $SUPREMUM_HOME/tracking)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print metrics as JSON on stdout")] = False,
) -> None:
    """Measure quality and cost of an artifact. Classifiers: accuracy, macro-F1, MCC, per class, confusion; params, size, memory, latency at batch 1 and 32. Causal LMs: perplexity and bits per byte (strided sliding window), batch-1 greedy generation (prefill and decode tokens/s, time to first token, peak memory) and sample generations."""  # noqa: E501
    from supremum import api, cli_config, cli_render
    from supremum.config import DataConfig, EvalConfig
    from supremum.evaluate.stage import data_config_for, resolve_artifact
    from supremum.tracking import parse_track

    if perturb:
        from supremum.augment import parse_perturb

        parse_perturb(perturb)  # bad specs fail before any model loads
    ecfg = cli_config.build(EvalConfig, locals(), flag_keys(eval_, "eval"), help_cmd="supremum eval --help")
    data_keys = flag_keys(eval_, "data")
    if api.is_base_model(artifact):
        if data is None:
            raise UserError(f"'{artifact}' is a model, not an artifact: it records no data", "pass --data")
        dcfg = cli_config.build(DataConfig, locals(), {**data_keys, "data": "path"},
                                help_cmd="supremum eval --help")
        _quiet_libraries()
        metrics = api.evaluate(artifact, dcfg, ecfg, command=" ".join(sys.argv), backend=backend)
        _echo_json(metrics) if as_json else cli_render.print_lm_eval(metrics, artifact)
        return
    art = resolve_artifact(artifact)
    dcfg = data_config_for(art, data, text_column=text_column, label_column=label_column,
                           encoding=encoding, max_length=max_length, drop_empty=drop_empty,
                           delimiter=delimiter)
    _quiet_libraries()
    metrics = api.evaluate(art, dcfg, ecfg, command=" ".join(sys.argv), tracking=parse_track(track))
    _echo_json(metrics) if as_json else cli_render.print_eval(metrics, art)


@app.command()
def zeroshot(
    model: Annotated[str | None, typer.Option(help=_doc("zeroshot", "model"))] = None,
    data: Annotated[str | None, typer.Option(help=_doc("data", "path"))] = None,
    split: Annotated[str | None, typer.Option(help=_doc("zeroshot", "split"))] = None,
    shots: Annotated[str | None, typer.Option(help=_doc("zeroshot", "shots"))] = None,
    seeds: Annotated[str | None, typer.Option(help=_doc("zeroshot", "seeds"))] = None,
    sampling: Annotated[str | None, typer.Option(help=_doc("zeroshot", "sampling"))] = None,
    template: Annotated[str | None, typer.Option(help=_doc("zeroshot", "template"))] = None,
    verbalizers: Annotated[str | None, typer.Option(help=_doc("zeroshot", "verbalizers"))] = None,
    target_delimiter: Annotated[str | None, typer.Option(help=_doc("zeroshot", "target_delimiter"))] = None,
    fewshot_delimiter: Annotated[str | None, typer.Option(help=_doc("zeroshot", "fewshot_delimiter"))] = None,
    limit: Annotated[int | None, typer.Option(help=_doc("zeroshot", "limit"))] = None,
    batch_size: Annotated[int | None, typer.Option(help=_doc("zeroshot", "batch_size"))] = None,
    backend: Annotated[str | None, typer.Option(help=_doc("zeroshot", "backend"))] = None,
    speed: Annotated[bool | None, typer.Option("--speed/--no-speed", help=_doc("zeroshot", "speed"))] = None,
    repeats: Annotated[int | None, typer.Option(help=_doc("zeroshot", "repeats"))] = None,
    threads: Annotated[int | None, typer.Option(help=_doc("zeroshot", "threads"))] = None,
    text_column: Annotated[str | None, typer.Option(help=_doc("data", "text_column"))] = None,
    label_column: Annotated[str | None, typer.Option(help=_doc("data", "label_column"))] = None,
    encoding: Annotated[str | None, typer.Option(help=_doc("data", "encoding"))] = None,
    delimiter: Annotated[str | None, typer.Option(help=_doc("data", "delimiter"))] = None,
    drop_empty: DropEmpty = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON on stdout")] = False,
) -> None:
    """Classify with a causal LM and no fine-tuning: each label's verbalizer scored by log-likelihood after a prompt (lm-evaluation-harness's multiple_choice), with k in-context examples drawn per seed from train. Accuracy, macro-F1 and acc_norm (mean ± s.d. over seeds), the majority class, and the cost; one store run per k, listed by `frontier`."""  # noqa: E501
    from supremum import cli_config, cli_render
    from supremum.evaluate.zeroshot import ZeroShotConfig

    if data is None:
        raise UserError("zeroshot needs data", "e.g. --data $SUPREMUM_DATA/sst2")
    keys = {**flag_keys(zeroshot, "zeroshot"), **{k: f"data.{v}" for k, v in flag_keys(zeroshot, "data").items()}}
    cfg = cli_config.build(ZeroShotConfig, locals(), keys, help_cmd="supremum zeroshot --help")
    _quiet_libraries()
    from supremum.evaluate.zeroshot import zeroshot as run

    res = run(cfg, command=" ".join(sys.argv))
    _echo_json(res) if as_json else cli_render.print_zeroshot(res)


@app.command("lm-eval")
def lm_eval(
    model: Annotated[str, typer.Argument(help=_doc("lm_eval", "model"))],
    tasks: Annotated[str, typer.Option(help=_doc("lm_eval", "tasks"))],
    include_path: Annotated[str | None, typer.Option(help=_doc("lm_eval", "include_path"))] = None,
    builtin_tasks: Annotated[bool | None, typer.Option("--builtin-tasks/--no-builtin-tasks",
                                                       help=_doc("lm_eval", "builtin_tasks"))] = None,
    limit: Annotated[int | None, typer.Option(help=_doc("lm_eval", "limit"))] = None,
    num_fewshot: Annotated[int | None, typer.Option(help=_doc("lm_eval", "num_fewshot"))] = None,
    batch_size: Annotated[int | None, typer.Option(help=_doc("lm_eval", "batch_size"))] = None,
    max_gen_toks: Annotated[int | None, typer.Option(help=_doc("lm_eval", "max_gen_toks"))] = None,
    backend: Annotated[str | None, typer.Option(help=_doc("lm_eval", "backend"))] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON on stdout")] = False,
) -> None:
    """Run lm-evaluation-harness tasks (loglikelihood, multiple choice, rolling loglikelihood, generate_until) on a causal-LM artifact or base model, GGUF included, through supremum's own loading; each task is stored as a run that `frontier` lists (accuracy, acc_norm, exact_match)."""  # noqa: E501
    from supremum import cli_config, cli_render
    from supremum.lmeval.run import LmEvalConfig

    cfg = cli_config.build(LmEvalConfig, locals(), flag_keys(lm_eval, "lm_eval"),
                           help_cmd="supremum lm-eval --help")
    _quiet_libraries()
    from supremum.lmeval.run import lm_eval as run

    res = run(cfg, command=" ".join(sys.argv))
    _echo_json(res) if as_json else cli_render.print_harness(res)


def _explain_lm(art, text, data, cfg, output, drift, as_json) -> None:
    """`explain` of a causal LM: prompt-token attributions of each --text's continuation."""
    from supremum import cli_render
    from supremum.explain import causal

    if data is not None or drift:
        raise UserError("a causal LM is explained on --text prompts (no --data, --against or --drift)",
                        'e.g. --text "Translate to German: a dog runs" [--target "ein Hund läuft"]')
    _quiet_libraries()
    res = causal.run(art, text, cfg.methods, target=cfg.target, max_new_tokens=cfg.max_new_tokens,
                     steps=cfg.steps, output=output, command=" ".join(sys.argv))
    _echo_json(res) if as_json else cli_render.print_explain_lm(res)


@app.command()
def explain(
    artifact: Annotated[str, typer.Argument(help="classifier or causal-LM artifact directory, or an "
                                            "artifact/run id")],
    text: Annotated[list[str] | None, typer.Option(help="a text to explain (repeat for several; causal LMs: "
                                                   "a prompt)")] = None,
    data: Annotated[str | None, typer.Option(help="data whose examples to explain (with their true "
                                             "labels)")] = None,
    split: Annotated[str | None, typer.Option(help=_doc("explain", "split"))] = None,
    limit: Annotated[int | None, typer.Option(help=_doc("explain", "limit"))] = None,
    methods: Annotated[str | None, typer.Option(help=_doc("explain", "methods"))] = None,
    steps: Annotated[int | None, typer.Option(help=_doc("explain", "steps"))] = None,
    seeds: Annotated[str | None, typer.Option(help=_doc("explain", "seeds"))] = None,
    batch_size: Annotated[int | None, typer.Option(help=_doc("explain", "batch_size"))] = None,
    target: Annotated[str | None, typer.Option(help=_doc("explain", "target"))] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help=_doc("explain", "max_new_tokens"))] = None,
    text_column: Annotated[str | None, typer.Option(help=_doc("data", "text_column"))] = None,
    label_column: Annotated[str | None, typer.Option(help=_doc("data", "label_column"))] = None,
    delimiter: Annotated[str | None, typer.Option(help=_doc("data", "delimiter"))] = None,
    drop_empty: DropEmpty = None,
    output: Annotated[str | None, typer.Option(help="directory for explanations.json and explanations.html "
                                               "[default: $SUPREMUM_HOME/explanations/<run id>]")] = None,
    against: Annotated[str | None, typer.Option(help="explanation drift: explain the same texts under this "
                                                "artifact too (the parent) and report how far the "
                                                "explanations agree")] = None,
    drift: Annotated[bool, typer.Option("--drift", help="explanation drift against the artifact's parent "
                                        "in its lineage (as --against <parent>)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON on stdout")] = False,
) -> None:
    """Why a classifier decided what it did: word attributions (Integrated Gradients, gradient x input, occlusion through the artifact's own runtime, attention rollout as a weaker baseline), their faithfulness (ERASER comprehensiveness and sufficiency against a random baseline over seeds), a JSON file and an HTML page with coloured words; recorded as a store run of kind explain. With --against or --drift, also how far the explanations agree with a parent artifact's (Spearman, top-k overlap, prediction agreement)."""  # noqa: E501
    from supremum import cli_config, cli_render
    from supremum.evaluate import data_config_for, resolve_artifact
    from supremum.explain.config import ExplainConfig
    from supremum.tasks import CAUSAL_LM

    if (text is None) == (data is None):
        raise UserError("explain needs --text or --data (one of them)",
                        'e.g. --text "a fine film" or --data reviews.csv --limit 20')
    cfg = cli_config.build(ExplainConfig, locals(), flag_keys(explain, "explain"),
                           help_cmd="supremum explain --help")
    art = resolve_artifact(artifact)
    if art.task == CAUSAL_LM.pipeline_tag:
        return _explain_lm(art, text, data, cfg, output, against or drift, as_json)
    from supremum.explain.run import check_task, examples_from_data

    check_task(art)
    parent = _drift_parent(art, against, drift)
    _quiet_libraries()
    from supremum.explain.run import explain as run

    if data is not None:
        dcfg = data_config_for(art, data, text_column=text_column, label_column=label_column,
                               delimiter=delimiter, drop_empty=drop_empty)
        texts, labels, source = examples_from_data(art, dcfg, cfg.split, cfg.limit)
    else:
        texts, labels, source = text, None, f"{len(text)} text(s) from --text"
    res = run(art, texts, labels, cfg, output=output, source=source, command=" ".join(sys.argv), against=parent)
    _echo_json(res) if as_json else cli_render.print_explain(res)


def _drift_parent(art, against: str | None, drift: bool):
    """The artifact to compare explanations with: --against, else with --drift the parent in the
    lineage; None when neither is given."""
    from supremum.evaluate import resolve_artifact
    from supremum.evaluate.stage import parent_of
    from supremum.explain.run import check_against

    if against is not None and drift:
        raise UserError("--against and --drift both name the artifact to compare with",
                        "give one: --drift for the parent in the lineage, or --against <artifact>")
    if against is not None:
        parent = resolve_artifact(against)
    elif drift:
        if not art.manifest.parents:
            raise UserError(f"artifact {art.id} has no parent in its lineage (it was not made by compressing "
                            "another)", "give the artifact to compare with: --against <artifact>")
        parent = parent_of(art)
    else:
        return None
    check_against(art, parent)
    return parent


@app.command(epilog=schema_epilog("compress"))
def compress(
    artifact: Annotated[str, typer.Argument(help="artifact directory, or an artifact/run id")],
    method: Annotated[str, typer.Option(help="compression method (listed below)")],
    output: Annotated[str | None, typer.Option(help="artifact directory [default: "
                                               "$SUPREMUM_HOME/artifacts/<id>]")] = None,
    data: Annotated[str | None, typer.Option(help="data for calibration, importance scores and "
                                             "recovery training [default: the parent's training data]")] = None,
    delimiter: Annotated[str | None, typer.Option(help=_doc("data", "delimiter"))] = None,
    drop_empty: DropEmpty = None,
    max_drop: Annotated[float | None, typer.Option(help="int8-dynamic: accuracy points the dev "
                                                   "metric may drop; sensitive layers stay fp32")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads [default: all cores]")] = None,
    checkpoint_every: Annotated[int | None, typer.Option(
        help="recovery training (distill, lowrank, prune-iterative): a resumable checkpoint every N "
             "steps")] = None,
    resume: Annotated[bool, typer.Option(help="continue a killed compression of the same parent, options and "
                                         "data from its last checkpoint")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON on stdout")] = False,
    options: Annotated[list[str] | None, typer.Argument(
        help="KEY=VALUE options of the method, e.g. sparsity=0.5 group_size=64")] = None,
) -> None:
    """Compress an artifact into a new one (quantize, prune, distill, factorize, export), recorded with its parent in the store. Methods chain: prune -> distill -> quantize -> export."""  # noqa: E501
    from supremum import cli_config, cli_render

    cfg = cli_config.compress_config(method, options, max_drop)
    if resume and not checkpoint_every:
        raise UserError("--resume continues from checkpoints, and this command writes none",
                        "pass the killed run's --checkpoint-every N with --resume")
    _quiet_libraries()
    if threads:
        import torch

        torch.set_num_threads(threads)
    from supremum.api import compress as run

    if data is not None and not Path(data).expanduser().exists():  # also for methods that read none
        raise UserError(f"--data {data}: no such file or directory",
                        "pass the data for calibration, importance scores or recovery training, or leave --data "
                        "out for the parent's training data")
    if delimiter is not None or drop_empty is not None:  # else the training data's settings, as recorded
        from supremum.compress.stage import data_config
        from supremum.evaluate.stage import resolve_artifact

        data = data_config(resolve_artifact(artifact), data, delimiter=delimiter, drop_empty=drop_empty)
    child = run(artifact, cfg, output=output, data=data, command=" ".join(sys.argv),
                checkpoint_every=checkpoint_every, resume=resume)
    if unused := child.manifest.compression[-1].report.get("data_unused"):
        cli_render.err.print(f"note: --data was not used: {unused}", markup=False)
    _echo_json({"artifact": str(child.path), "artifact_id": child.id, "parents": child.manifest.parents,
                "report": child.manifest.compression[-1].report}) if as_json \
        else cli_render.print_compress(child)


@app.command()
def calibrate(
    artifact: Annotated[str, typer.Argument(help="classifier artifact directory, or an artifact/run id")],
    data: Annotated[str | None, typer.Option(help="data whose labelled dev split the temperature is fitted on "
                                             "[default: the training data]")] = None,
    delimiter: Annotated[str | None, typer.Option(help=_doc("data", "delimiter"))] = None,
    drop_empty: DropEmpty = None,
    output: Annotated[str | None, typer.Option(help="artifact directory [default: "
                                               "$SUPREMUM_HOME/artifacts/<id>]")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON on stdout")] = False,
) -> None:
    """Fit temperature scaling (one scalar T dividing the logits, minimizing dev NLL; Guo et al. 2017) and write a new artifact holding T, a child of this one; eval, serve and ensembles apply it on every backend. Predictions never change, only their confidence."""  # noqa: E501
    from supremum import cli_render
    from supremum.api import calibrate as run
    from supremum.evaluate.stage import data_config_for, resolve_artifact

    art = resolve_artifact(artifact)
    _quiet_libraries()
    given = delimiter or drop_empty  # else the api's own default: the training data's settings
    dcfg = data_config_for(art, data, delimiter=delimiter, drop_empty=drop_empty) if given else data
    child = run(art, dcfg, output=output, command=" ".join(sys.argv))
    _echo_json({"artifact": str(child.path), "artifact_id": child.id, "parents": child.manifest.parents,
                "calibration": child.manifest.calibration}) if as_json else cli_render.print_calibrate(child)


@app.command("export")
def export_(
    artifact: Annotated[str, typer.Argument(help="artifact directory, or an artifact/run id")],
    format: Annotated[str, typer.Option("--format", help="hf (transformers), peft (adapter), onnx (ONNX "
                                        "Runtime), gguf (llama.cpp), ollama (GGUF + Modelfile)")],
    output: Annotated[str | None, typer.Option(help="directory to write, new or empty [default: "
                                               "<artifact>-<format>]")] = None,
    quant: Annotated[str, typer.Option(help="gguf/ollama from PyTorch weights: llama.cpp weight type "
                                       "(f32, f16, q8_0, q4_k_m, ...)")] = "q8_0",
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON on stdout")] = False,
) -> None:
    """Write an artifact in the layout another tool loads (transformers, PEFT, ONNX Runtime, llama.cpp, Ollama), with a model card (README.md, YAML front-matter with the measured results)."""  # noqa: E501
    from supremum.evaluate.stage import resolve_artifact
    from supremum.export import ExportConfig, export

    cfg = ExportConfig(format=format, output=output, quant=quant)
    art = resolve_artifact(artifact)
    _quiet_libraries()
    done = export(art, cfg)
    if as_json:
        _echo_json({"path": str(done.path), "format": done.format, "files": done.files, "artifact_id": art.id})
    else:
        typer.echo(f"exported artifact {art.id} as {done.format} to {done.path}: {', '.join(done.files)}")


@app.command()
def serve(
    artifact: Annotated[str, typer.Argument(help="artifact directory, or an artifact/run id")],
    host: Annotated[str | None, typer.Option(help=_doc("serve", "host"))] = None,
    port: Annotated[int | None, typer.Option(help=_doc("serve", "port"))] = None,
    max_batch: Annotated[int | None, typer.Option(help=_doc("serve", "max_batch"))] = None,
    max_wait_ms: Annotated[float | None, typer.Option(help=_doc("serve", "max_wait_ms"))] = None,
    max_queue: Annotated[int | None, typer.Option(help=_doc("serve", "max_queue"))] = None,
    timeout_s: Annotated[float | None, typer.Option(help=_doc("serve", "timeout_s"))] = None,
    threads: Annotated[int | None, typer.Option(help=_doc("serve", "threads"))] = None,
    device: Annotated[str | None, typer.Option(help=_doc("serve", "device"))] = None,
    api_key_file: Annotated[Path | None, typer.Option(help="file holding the API key "
                                                      "[default: $SUPREMUM_API_KEY]")] = None,
    limit: Annotated[list[str] | None, typer.Option(help="other limits as KEY=VALUE: max_texts, max_chars, "
                                                    "max_new_tokens, max_body_bytes, graceful_s")] = None,
) -> None:
    """Serve an artifact over HTTP (FastAPI): POST /v1/classify and /v1/generate, OpenAI-compatible POST /v1/chat/completions and /v1/completions and GET /v1/models, GET /healthz, /readyz, /v1/model, /metrics (Prometheus); micro-batching, continuous batching of generation, limits, bearer-token auth. OpenAPI at /openapi.json."""  # noqa: E501
    from supremum.cli_config import Assembly
    from supremum.evaluate.stage import resolve_artifact
    from supremum.serve import ServeConfig, check_binding
    from supremum.serve import serve as run

    key = os.environ.get("SUPREMUM_API_KEY") or None
    if api_key_file is not None:
        if not api_key_file.is_file():
            raise UserError(f"{api_key_file}: no such API key file", "give a file holding the key")
        key = api_key_file.read_text(encoding="utf-8").strip() or None
    cfg = Assembly().options({**locals(), "api_key": key}, {**flag_keys(serve, "serve"), "api_key": "api_key"})
    cfg = cfg.overrides(limit).build(ServeConfig, "supremum serve --help")

    check_binding(cfg)
    art = resolve_artifact(artifact)
    _quiet_libraries()
    run(art, cfg, on_ready=lambda: print(f"serving {art.id} ({art.lineage}) on http://{cfg.host}:{cfg.port}",
                                         flush=True))


@app.command()
def compare(
    recipe: Annotated[Path, typer.Argument(help="comparison recipe (YAML with methods:, seeds:, grid:)")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list the cells, run nothing")] = False,
    executor: Annotated[str | None, typer.Option(help="local or ray (cluster at $RAY_ADDRESS); overrides the "
                                                 "recipe's executor")] = None,
    jobs: Annotated[int | None, typer.Option(help="cells at once (default 1: parallel cells on one machine "
                                             "would distort each other's time and memory)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> None:
    """Compare fine-tuning methods: every variant x seed trained and evaluated in its own process; prints accuracy mean +- std per split, trainable parameters, training time and peak memory, and which differences are within noise. Finished cells are skipped on re-runs."""  # noqa: E501
    from supremum import cli_config, cli_render
    from supremum.compare import CompareConfig, cell_dir, cells, run
    from supremum.store import Store

    cfg = cli_config.build(CompareConfig, locals(), {"executor": "executor", "jobs": "jobs"}, recipe=recipe,
                           help_cmd="supremum compare --help")
    _quiet_libraries()
    if dry_run:
        rows = [{"variant": c["variant"], "seed": c["seed"], "hash": c["hash"],
                 "status": "done" if (cell_dir(Store(), cfg, c) / "result.json").exists() else "to run"}
                for c in cells(cfg)]
        _echo_json(rows) if as_json else cli_render.print_cells(rows)
        return
    summary = run(cfg, on_event=lambda m: cli_render.err.print(m, markup=False))
    _echo_json(summary) if as_json else cli_render.print_compare(summary)


def _list(value: str | None, cast, flag: str) -> list | None:
    if value is None:
        return None
    try:
        # "neg, pos": the space after a comma is a separator, never part of a name
        return [cast(float(x)) if cast is int else cast(x.strip()) for x in value.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{flag} '{value}' is not a comma-separated list", f"e.g. {flag} 1,2,3") from None


@app.command()
def scale(
    source: Annotated[str | None, typer.Option(help="markov:order=2,vocab=16,seed=0 | regime:regimes=4,"
                                               "switch=0.02 | text:path=FILE,level=char | a .txt path")] = None,
    budget_minutes: Annotated[float | None, typer.Option(help="plan sizes and budgets to fit this time")] = None,
    sizes: Annotated[str | None, typer.Option(help="model shapes, e.g. d16L2,d32L2,d64L3")] = None,
    tokens: Annotated[str | None, typer.Option(help="token budgets D, e.g. 131072,262144,524288")] = None,
    seeds: Annotated[str | None, typer.Option(help="seeds, e.g. 0,1 [default: 0]")] = None,
    ctx: Annotated[int | None, typer.Option(help="context length [default: 64]")] = None,
    batch_tokens: Annotated[int | None, typer.Option(help="tokens per step [default: 2048]")] = None,
    eval_tokens: Annotated[int | None, typer.Option(help="held-out tokens [default: 65536]")] = None,
    jobs: Annotated[int | None, typer.Option(help="runs in parallel [default: one per core]")] = None,
    nproc: Annotated[int | None, typer.Option(help="data-parallel processes per run (torchrun) "
                                               "[default: 1]")] = None,
    executor: Annotated[str | None, typer.Option(
        help="local or ray (cluster at $RAY_ADDRESS) [default: local]")] = None,
    bootstrap: Annotated[int | None, typer.Option(help="bootstrap resamples [default: 1000]")] = None,
    plateau: Annotated[float | None, typer.Option(help="leave out of the fit runs whose loss is within this share "
                                                  "of the unigram entropy [default: 0.05; 0 keeps all]")] = None,
    budget_flops: Annotated[float | None, typer.Option(help="compute budget for the compute-optimal N, D "
                                                       "[default: 10x the largest run]")] = None,
    name: Annotated[str | None, typer.Option(help="sweep name [default: from the source]")] = None,
    recipe: Annotated[Path | None, typer.Option(help="YAML with the same keys; flags override it")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the plan, train nothing")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the analysis as JSON")] = False,
) -> None:
    """Is there a limit? Train a grid of small transformers from scratch (sizes N x token budgets D), fit L(N, D) = E + A/N^alpha + B/D^beta with bootstrap intervals, and report the limit E, the gap to it, what 10x/100x compute buys, the compute-optimal N and D, and a held-out check of the predictions. On synthetic sources the true entropy rate is printed beside E. Finished runs are reused."""  # noqa: E501
    from supremum import cli_config, cli_render
    from supremum.limit.sweep import ScaleConfig

    flags = {**locals(), "sizes": _list(sizes, str, "--sizes"), "tokens": _list(tokens, int, "--tokens"),
             "seeds": _list(seeds, int, "--seeds")}
    keys = ["source", "budget_minutes", "sizes", "tokens", "seeds", "ctx", "batch_tokens", "eval_tokens", "jobs",
            "executor", "nproc", "bootstrap", "plateau", "budget_flops", "name"]
    cfg = cli_config.Assembly(recipe).options(flags, {k: k for k in keys})
    if cfg.get("source") is None:
        raise UserError("scale needs a source", "e.g. --source markov:order=2,vocab=16")
    cfg = cfg.build(ScaleConfig, "supremum scale --help")
    _quiet_libraries()
    if dry_run:
        from supremum.limit.sweep import dry_run as plan_only

        p = plan_only(cfg)
        _echo_json(p) if as_json else cli_render.print_scale_plan(p)
        return
    from supremum.limit.sweep import run_sweep

    res = run_sweep(cfg, on_event=None if as_json else lambda m: cli_render.err.print(m, markup=False))
    if as_json:
        _echo_json({k: v for k, v in res.items() if k != "bootstrap_params"})
    else:
        cli_render.print_scale(res)


@app.command()
def curve(
    model: Annotated[str | None, typer.Option(help=_doc("model", "name"))] = None,
    data: Annotated[str | None, typer.Option(help=_doc("data", "path"))] = None,
    method: Annotated[str | None, typer.Option(help="fine-tuning method [default: lora]")] = None,
    fractions: Annotated[str | None, typer.Option(
        help="training-set shares [default: 1/32,1/16,1/8,1/4,1/2,1]")] = None,
    seeds: Annotated[str | None, typer.Option(help="seeds [default: 0,1,2]")] = None,
    epochs: Annotated[float | None, typer.Option(help=_doc("train", "epochs"))] = None,
    split: Annotated[str | None, typer.Option(help="split the error is measured on [default: test]")] = None,
    target: Annotated[float | None, typer.Option(help="accuracy to ask the needed examples for, e.g. 0.9")] = None,
    bootstrap: Annotated[int | None, typer.Option(help="bootstrap resamples [default: 1000]")] = None,
    delimiter: Annotated[str | None, typer.Option(help=_doc("data", "delimiter"))] = None,
    drop_empty: DropEmpty = None,
    recipe: Annotated[Path | None, typer.Option(help="YAML with the same keys (model, data, method, train, "
                                                "fractions, seeds, ...); flags override it")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Learning curve: fine-tune on growing shares of the training set (nested subsets, several seeds, one process per run, cached), fit error(n) = E + B/n^beta with bootstrap intervals, and report the accuracy ceiling and how many labeled examples a target accuracy needs."""  # noqa: E501
    from supremum import cli_config, cli_render
    from supremum.limit.curve import CurveConfig, parse_fractions, run_curve

    flags = {**locals(), "model": {"name": model} if model else None,
             "method": {"name": method} if method else None,
             "fractions": parse_fractions(fractions) if fractions else None, "seeds": _list(seeds, int, "--seeds")}
    keys = {"model": "model", "method": "method", "fractions": "fractions", "seeds": "seeds", "split": "split",
            "target": "target", "bootstrap": "bootstrap", "data": "data.path", "epochs": "train.epochs",
            "delimiter": "data.delimiter", "drop_empty": "data.drop_empty"}
    cfg = cli_config.Assembly(recipe).options(flags, keys)
    if cfg.get("data") is None:
        raise UserError("curve needs data", "e.g. --data path/to/sst2")
    cfg = cfg.build(CurveConfig, "supremum curve --help")
    _quiet_libraries()
    res = run_curve(cfg, on_event=None if as_json else lambda m: cli_render.err.print(m, markup=False))
    if as_json:
        _echo_json(_without_band(res))
    else:
        cli_render.print_curve(res)


@app.command()
def label(
    out: Annotated[Path, typer.Argument(help="the loop's directory: state.json, batch-NNN.csv, rounds/")],
    pool: Annotated[str | None, typer.Option(help="start: unlabelled texts (CSV/TSV/JSONL, or .txt one per "
                                             "line)")] = None,
    labels: Annotated[str | None, typer.Option(help="start: the label set, comma-separated")] = None,
    text_column: Annotated[str | None, typer.Option(help="start: the pool's text column; with --simulate, the "
                                                    "data's text column [default: detected]")] = None,
    label_column: Annotated[str | None, typer.Option(help="--simulate: the data's label column [default: "
                                                     "detected]")] = None,
    delimiter: Annotated[str | None, typer.Option(help="separator of the pool's (or --simulate data's) "
                                                  "columns [default: detected]")] = None,
    drop_empty: Annotated[bool | None, typer.Option(
        "--drop-empty/--no-drop-empty", help="drop pool texts that are empty or whitespace, and rows with an "
        "empty text or label from --eval-data or --simulate data, and report them (default: refuse them)")] = None,
    ingest: Annotated[Path | None, typer.Option(help="the filled-in batch CSV [default: the exported one]")
                      ] = None,
    model: Annotated[str | None, typer.Option(help="model alias or path [default: minilm-l6]")] = None,
    method: Annotated[str | None, typer.Option(help="method trained each round [default: linear-probe]")] = None,
    strategy: Annotated[str | None, typer.Option(help="query strategy: random, entropy, margin, "
                                                 "least-confidence, kcenter, badge, or U+D such as "
                                                 "margin+kcenter [default: margin+kcenter]")] = None,
    batch_size: Annotated[int | None, typer.Option(help="texts per batch [default: 50]")] = None,
    seed_size: Annotated[int | None, typer.Option(help="random texts in the first batch [default: batch "
                                                  "size]")] = None,
    seed: Annotated[int | None, typer.Option(help="seed of the seed batch, random picks and training")] = None,
    eval_data: Annotated[str | None, typer.Option(help="labelled data scored each round (the learning-curve "
                                                  "stopping rule needs it)")] = None,
    eval_text_column: Annotated[str | None, typer.Option(help="start: --eval-data's text column [default: "
                                                         "detected]")] = None,
    eval_label_column: Annotated[str | None, typer.Option(help="start: --eval-data's label column [default: "
                                                          "detected]")] = None,
    max_changed: Annotated[float | None, typer.Option(help="stop: share of pool predictions changed per round "
                                                      "below this [default: 0.01]")] = None,
    patience: Annotated[int | None, typer.Option(help="stop: ... for this many rounds in a row [default: 2]")
                        ] = None,
    min_gain_pt: Annotated[float | None, typer.Option(help="stop: the learning curve predicts less than this "
                                                      "many points from the next batch [default: 0.5]")] = None,
    simulate: Annotated[str | None, typer.Option(help="simulation on this labelled data: labels hidden until "
                                                 "queried, each strategy against random sampling")] = None,
    strategies: Annotated[str | None, typer.Option(help="simulation: strategies [default: margin,"
                                                   "margin+kcenter,badge]")] = None,
    budget: Annotated[int | None, typer.Option(help="simulation: labels at the last round [default: 500]")
                      ] = None,
    seeds: Annotated[str | None, typer.Option(help="simulation: seeds [default: 0,1,2]")] = None,
    split: Annotated[str | None, typer.Option(help="simulation: evaluation split [default: test]")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the state (or the simulation) as JSON")] = False,
) -> None:
    """Active learning: each call trains on the labels so far, picks the next batch of pool texts by uncertainty and diversity and writes it as CSV to label; the next call ingests it. Stops when the pool's predictions stop changing or the learning curve says the next batch buys too little. --simulate runs the loop on labelled data to compare strategies."""  # noqa: E501
    from supremum import cli_render

    common = {"model": model, "method": method, "batch_size": batch_size, "seed_size": seed_size}
    common = {k: v for k, v in common.items() if v is not None}
    say = None if as_json else (lambda m: cli_render.err.print(m, markup=False))
    stop = {k: v for k, v in {"max_changed": max_changed, "patience": patience,
                              "min_gain_pt": min_gain_pt}.items() if v is not None}
    if simulate is not None:
        from supremum.studies.simulate import SimulateConfig
        from supremum.studies.simulate import simulate as run_simulation

        loop_only = {"--pool": pool, "--labels": labels, "--ingest": ingest, "--strategy": strategy,
                     "--seed": seed, "--eval-data": eval_data, "--eval-text-column": eval_text_column,
                     "--eval-label-column": eval_label_column}
        if given := [k for k, v in loop_only.items() if v is not None]:
            raise UserError(f"{', '.join(given)} belong(s) to the labelling loop, not to --simulate",
                            "with --simulate use --strategies, --seeds, --budget and --split")
        sim = {"strategies": _list(strategies, str, "--strategies"), "budget": budget,
               "seeds": _list(seeds, int, "--seeds"), "split": split, "stop": stop or None}
        given = {"delimiter": delimiter, "drop_empty": drop_empty, "text_column": text_column,
                 "label_column": label_column}
        sim_data = {"path": simulate, **{k: v for k, v in given.items() if v is not None}}
        cfg = SimulateConfig(data=sim_data, **common, **{k: v for k, v in sim.items() if v is not None})
        _quiet_libraries()
        res = run_simulation(cfg, out, on_event=say)
        if as_json:
            _echo_json(res)
        else:
            cli_render.print_simulation(res, out)
        return
    from supremum.studies.active import LabelConfig, step

    sim_only = {"--strategies": strategies, "--budget": budget, "--seeds": seeds, "--split": split}
    if given := [k for k, v in sim_only.items() if v is not None]:
        raise UserError(f"{', '.join(given)} belong(s) to --simulate", "add --simulate DATA, or drop them")
    if label_column is not None:
        raise UserError("--label-column names the label column of --simulate data",
                        "for --eval-data use --eval-label-column")
    start = {"pool": pool, "labels": _list(labels, str, "--labels"), "text_column": text_column,
             "strategy": strategy, "seed": seed, "eval_data": eval_data, "eval_text_column": eval_text_column,
             "eval_label_column": eval_label_column, "delimiter": delimiter, "drop_empty": drop_empty}
    start = {k: v for k, v in start.items() if v is not None}
    cfg = None
    if start or common or stop:
        if (Path(out) / "state.json").exists() and (pool is None or labels is None):
            raise UserError(f"{out}: a loop runs there; its options were fixed when it started",
                            f"run `supremum label {out}` (with --ingest FILE if the batch is elsewhere) "
                            "without loop options, or start a new loop in another directory")
        if pool is None or labels is None:
            raise UserError("starting a labelling loop needs --pool and --labels",
                            "e.g. --pool texts.csv --labels negative,positive; without options it continues "
                            f"the loop in {out}")
        cfg = LabelConfig(**start, **common, **({"stop": stop} if stop else {}))
    _quiet_libraries()
    state = step(out, cfg, ingest, on_event=say)
    if as_json:
        _echo_json(state.model_dump(mode="json", exclude={"predictions"}))
    else:
        cli_render.print_label(state, out)


@app.command()
def ceiling(
    model: Annotated[str | None, typer.Option(help=_doc("model", "name"))] = None,
    data: Annotated[str | None, typer.Option(help=_doc("data", "path"))] = None,
    budget_minutes: Annotated[float | None, typer.Option(help="wall-clock budget of the whole call, minutes")
                              ] = None,
    method: Annotated[str | None, typer.Option(help="your method, measured first as 'now' [default: full]")
                      ] = None,
    lr: Annotated[float | None, typer.Option(help="your peak learning rate [default: per method]")] = None,
    epochs: Annotated[float | None, typer.Option(help="your " + _doc("train", "epochs"))] = None,
    batch_size: Annotated[int | None, typer.Option(help="your " + _doc("train", "batch_size"))] = None,
    max_length: Annotated[int | None, typer.Option(help=_doc("data", "max_length"))] = None,
    text_column: Annotated[str | None, typer.Option(help=_doc("data", "text_column"))] = None,
    label_column: Annotated[str | None, typer.Option(help=_doc("data", "label_column"))] = None,
    encoding: Annotated[str | None, typer.Option(help=_doc("data", "encoding"))] = None,
    delimiter: Annotated[str | None, typer.Option(help=_doc("data", "delimiter"))] = None,
    drop_empty: DropEmpty = None,
    methods: Annotated[str | None, typer.Option(help="methods the search may choose [default: full,lora]")] = None,
    n_trials: Annotated[int | None, typer.Option(help="at most this many search trials [default: until the "
                                                 "search's share of the budget]")] = None,
    search_share: Annotated[float | None, typer.Option(help="share of the budget for the search [default: 0.5]")
                            ] = None,
    seeds: Annotated[str | None, typer.Option(help="seeds (at least 2) of the best configuration's re-run and of "
                                               "each curve point [default: the base seed and the next two]")
                     ] = None,
    fractions: Annotated[str | None, typer.Option(help="learning-curve shares, 3 or more distinct (1 is added) "
                                                  "[default: 1/8,1/4,1/2,1]")] = None,
    min_steps: Annotated[int | None, typer.Option(help="learning curve: optimizer steps at least per subset, "
                                                  "so small subsets train for more epochs [default: 60]")] = None,
    folds: Annotated[int | None, typer.Option(help="folds for label noise; 0 skips it [default: 5]")] = None,
    split: Annotated[str | None, typer.Option(help="split the best, the ceiling and label noise are measured on "
                                              "[default: test]")] = None,
    target: Annotated[float | None, typer.Option(help="accuracy to ask the needed labels for, e.g. 0.9")] = None,
    models: Annotated[str | None, typer.Option(help="model ladder for the model axis, e.g. tiny-bert,minilm-l6")
                      ] = None,
    output: Annotated[str | None, typer.Option(help="directory of the study, suspects and plots "
                                              "[default: $SUPREMUM_HOME/ceiling/<model>-<data>]")] = None,
    recipe: Annotated[Path | None, typer.Option(help="YAML with the same keys (base: {model, data, method, "
                                                "train}, budget_minutes, ...); flags override it")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the verdict as JSON")] = False,
) -> None:
    """How good can this model get on this task? Search the best configuration within the budget (Optuna TPE, successive-halving pruning; your configuration measured first), re-run it over seeds, fit its learning curve for the ceiling with unlimited labels and its interval, estimate label noise by confident learning, and say what caps it. Resumes from the same --output."""  # noqa: E501
    from supremum import cli_config, cli_render
    from supremum.limit.curve import parse_fractions
    from supremum.studies.ceiling import CeilingConfig, run_ceiling

    flags = {**locals(), "model": {"name": model} if model else None,
             "method": {"name": method} if method else None,
             "fractions": parse_fractions(fractions) if fractions else None, "seeds": _list(seeds, int, "--seeds"),
             "methods": _list(methods, str, "--methods"), "models": _list(models, str, "--models")}
    keys = {"model": "base.model", "data": "base.data.path", "method": "base.method", "lr": "base.train.lr",
            "epochs": "base.train.epochs", "batch_size": "base.train.batch_size",
            "max_length": "base.data.max_length", "text_column": "base.data.text_column",
            "label_column": "base.data.label_column", "encoding": "base.data.encoding",
            "delimiter": "base.data.delimiter", "drop_empty": "base.data.drop_empty", **{k: k for k in (
                "budget_minutes", "methods", "n_trials", "search_share", "seeds", "fractions", "min_steps",
                "folds", "split", "target", "models", "output")}}
    cfg = cli_config.Assembly(recipe).options(flags, keys)
    if cfg.get("base.data.path") is None:
        raise UserError("ceiling needs data", "e.g. --data $SUPREMUM_DATA/sst2")
    if cfg.get("budget_minutes") is None:
        raise UserError("ceiling needs a time budget", "e.g. --budget-minutes 90")
    cfg = cfg.build(CeilingConfig, "supremum ceiling --help")
    _quiet_libraries()
    res = run_ceiling(cfg, on_event=None if as_json else lambda m: cli_render.err.print(m, markup=False))
    if as_json:
        _echo_json({**res, "curve": _without_band(res["curve"]) if res.get("curve") else None})
    else:
        cli_render.print_ceiling(res)


@app.command()
def labels(
    model: Annotated[str | None, typer.Option(help="encoder of the fine-tuning approaches [default: minilm-l6]")
                     ] = None,
    data: Annotated[str | None, typer.Option(help=_doc("data", "path"))] = None,
    approaches: Annotated[str | None, typer.Option(help="approaches, comma-separated [default: zeroshot,"
                                                   "linear-probe,setfit,full,lora]; also active (active "
                                                   "learning, recipe key active) and self-training (recipe "
                                                   "key self_training), not in the default: a simulated "
                                                   "loop per seed / two fine-tunes per cell")] = None,
    budgets: Annotated[str | None, typer.Option(help="label budgets, comma-separated; 'all' is the whole training "
                                                "split [default: 0,8,32,128,512,2048,all]")] = None,
    seeds: Annotated[str | None, typer.Option(help="seeds: each draws its own labels [default: 0,1,2]")] = None,
    lm: Annotated[str | None, typer.Option(help="causal LM of the prompting approach [default: smollm2-135m]")
                  ] = None,
    max_shots: Annotated[int | None, typer.Option(help="prompting: in-context examples at most; larger budgets "
                                                  "are skipped [default: 8]")] = None,
    min_steps: Annotated[int | None, typer.Option(help="gradient fine-tunes: optimizer steps at least "
                                                  "[default: 60]")] = None,
    split: Annotated[str | None, typer.Option(help="split every point is scored on [default: test]")] = None,
    text_column: Annotated[str | None, typer.Option(help=_doc("data", "text_column"))] = None,
    label_column: Annotated[str | None, typer.Option(help=_doc("data", "label_column"))] = None,
    encoding: Annotated[str | None, typer.Option(help=_doc("data", "encoding"))] = None,
    max_length: Annotated[int | None, typer.Option(help=_doc("data", "max_length"))] = None,
    delimiter: Annotated[str | None, typer.Option(help=_doc("data", "delimiter"))] = None,
    drop_empty: DropEmpty = None,
    name: Annotated[str | None, typer.Option(help="study name [default: labels-<model>-<data>]")] = None,
    output: Annotated[str | None, typer.Option(help="directory of the plot [default: $SUPREMUM_HOME/labels/"
                                               "<name>]")] = None,
    recipe: Annotated[Path | None, typer.Option(help="YAML with the same keys (model, data, approaches, "
                                                "budgets, methods, incontext, train, ...); flags override it")
                      ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the cells and skips, run nothing")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Accuracy against the number of labels: prompting (zero- and few-shot), a linear probe, SetFit, full and LoRA fine-tuning (and, when asked, active learning and self-training) at each label budget x seeds (seeded class-stratified subsets, nested across budgets), all scored on the same test set; mean ± s.d. per point, plain fine-tuning's fitted curve and ceiling, and which approach to use at each budget. Cells are cached: a re-run resumes."""  # noqa: E501
    from supremum import cli_config, cli_render
    from supremum.studies.labels import LabelsConfig, plan, plan_line, run_labels

    flags = {**locals(), "model": {"name": model} if model else None, "seeds": _list(seeds, int, "--seeds"),
             "approaches": _list(approaches, str, "--approaches"), "budgets": _budgets(budgets)}
    keys = {"model": "model", "data": "data.path", "approaches": "approaches", "budgets": "budgets",
            "seeds": "seeds", "lm": "incontext.model", "max_shots": "incontext.max_shots",
            "min_steps": "min_steps", "split": "split", "name": "name", "output": "output",
            "text_column": "data.text_column", "label_column": "data.label_column", "encoding": "data.encoding",
            "max_length": "data.max_length", "delimiter": "data.delimiter", "drop_empty": "data.drop_empty"}
    cfg = cli_config.Assembly(recipe).options(flags, keys)
    if cfg.get("data.path") is None:
        raise UserError("labels needs data", "e.g. --data $SUPREMUM_DATA/sst2")
    cfg = cfg.build(LabelsConfig, "supremum labels --help")
    _quiet_libraries()
    if dry_run:
        p = plan(cfg)
        rows = [{"approach": c.approach, "budget": c.budget, "seed": c.seed, "cell": c.key,
                 "status": "cached" if c.cached else "to run"} for c in p["cells"]]
        res = {"cells": rows, "skipped": p["skipped"], "approaches": p["approaches"], "plan": plan_line(p)}
        if not as_json:
            cli_render.err.print(cli_render.data_line(p["study"].data.info), markup=False)
        _echo_json(res) if as_json else cli_render.print_labels_plan(res)
        return
    res = run_labels(cfg, on_event=None if as_json else lambda m: cli_render.err.print(m, markup=False),
                     on_data=None if as_json else lambda i: cli_render.err.print(cli_render.data_line(i),
                                                                                  markup=False))
    if as_json:
        _echo_json({**res, "curve": _without_band(res["curve"])})
    else:
        cli_render.print_labels(res)


def _budgets(value: str | None) -> list | None:
    if value is None:
        return None
    out = []
    for x in (x.strip() for x in value.split(",") if x.strip()):
        if x == "all":
            out.append(x)
            continue
        try:
            out.append(int(x))
        except ValueError:
            raise UserError(f"--budgets '{value}': '{x}' is neither a number of labels nor 'all'",
                            "e.g. --budgets 0,8,32,all") from None
    return out


def _without_band(curve: dict) -> dict:
    """A learning curve's record without its plotted band (60 points of plot data) for --json."""
    return {k: v for k, v in curve.items() if k not in ("band", "band_n")}


@app.command()
def ensemble(
    artifacts: Annotated[list[str], typer.Argument(help="two or more artifacts (paths or ids) of one task")],
    output: Annotated[str | None, typer.Option(help="artifact directory [default: under $SUPREMUM_HOME]")] = None,
    weights: Annotated[str | None, typer.Option(help="comma-separated member weights [default: equal]")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Combine fine-tuned artifacts of one task into one artifact that averages their class probabilities (members must share the tokenizer and labels); it evaluates and serves like any other."""  # noqa: E501
    from supremum.ensemble import make_ensemble
    from supremum.evaluate.stage import resolve_artifact

    try:
        w = [float(x) for x in weights.split(",")] if weights else None
    except ValueError:
        raise UserError(f"--weights '{weights}' is not a list of numbers", "e.g. --weights 1,1,2") from None
    _quiet_libraries()
    art = make_ensemble([resolve_artifact(a) for a in artifacts], output, w, command=" ".join(sys.argv))
    if as_json:
        _echo_json({"artifact": str(art.path), "artifact_id": art.id,
                    "members": [m.model_dump(mode="json") for m in art.manifest.members]})
    else:
        print(f"artifact {art.id}: {art.path}  ({art.lineage})")


@app.command()
def sensitivity(
    artifact: Annotated[str, typer.Argument(help="artifact directory, or an artifact/run id")],
    data: Annotated[str | None, typer.Option(help="data [default: the training data]")] = None,
    split: Annotated[str | None, typer.Option(help="split to score on [default: dev of the training data; "
                                              "any other file is scored whole]")] = None,
    schemes: Annotated[str, typer.Option(help="comma-separated: int8, int4, prune50")] = "int8,int4,prune50",
    delimiter: Annotated[str | None, typer.Option(help=_doc("data", "delimiter"))] = None,
    drop_empty: DropEmpty = None,
    limit: Annotated[int | None, typer.Option(help="score on the first N examples only (faster)")] = None,
    top: Annotated[int, typer.Option(help="rows to print")] = 15,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON on stdout")] = False,
) -> None:
    """Rank linear layers by how much the metric changes when only that layer is quantized (int8, int4) or 50%-pruned. Recorded in the artifact's metrics."""  # noqa: E501
    from supremum import cli_render
    from supremum.evaluate.stage import data_config_for, resolve_artifact

    art = resolve_artifact(artifact)
    chosen = [s.strip() for s in schemes.split(",") if s.strip()]
    _quiet_libraries()
    from supremum.compress.sensitivity import SCHEMES
    from supremum.compress.sensitivity import sensitivity as run

    bad = [s for s in chosen if s not in SCHEMES]
    if bad or not chosen:
        raise UserError(f"unknown scheme(s) {bad or chosen}", f"use some of: {', '.join(SCHEMES)}")
    res = run(art, data_config_for(art, data, delimiter=delimiter, drop_empty=drop_empty), split, chosen,
              limit)
    _echo_json(res) if as_json else cli_render.print_sensitivity(res, top)


@app.command("run")
def run_pipeline(
    recipe: Annotated[Path, typer.Argument(help="pipeline recipe (YAML with stages:)")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the plan, run nothing")] = False,
    executor: Annotated[str | None, typer.Option(help="local or ray (cluster at $RAY_ADDRESS); overrides the "
                                                 "recipe's executor")] = None,
    jobs: Annotated[int | None, typer.Option(help="independent stages at once, each in a worker process "
                                             "(default 1: one after another in this process)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> None:
    """Run a pipeline recipe: fine-tune and compression stages in dependency order, each artifact evaluated; finished stages (same config and parents) are skipped, a failed stage only skips its dependents."""  # noqa: E501
    from supremum import cli_config, cli_render
    from supremum.estimate import describe
    from supremum.pipeline import PipelineConfig, estimate_plan, plan, run
    from supremum.store import Store

    cfg = cli_config.build(PipelineConfig, locals(), {"executor": "executor", "jobs": "jobs"}, recipe=recipe,
                           help_cmd="supremum run --help")
    _quiet_libraries()
    if dry_run:
        rows = plan(cfg)
        cli_render.err.print(describe(estimate_plan(cfg, rows, Store())), markup=False)
    else:
        rows = run(cfg, on_event=lambda m: cli_render.err.print(m, markup=False))
    _echo_json(rows) if as_json else cli_render.print_pipeline(rows, dry_run)
    if any(r["status"] in ("failed", "skipped") for r in rows):
        raise typer.Exit(1)


@app.command()
def frontier(
    metric: Annotated[str | None, typer.Option(help="quality metric: accuracy, macro_f1, mcc, ece (expected "
                                               "calibration error, lower is better); perplexity, bits_per_byte; "
                                               "chrf, bleu, rouge_l, exact_match (eval --generate); forgetting "
                                               "(% reference-perplexity rise, eval --reference-data) "
                                               "[default: accuracy, or perplexity for causal LMs]")] = None,
    cost: Annotated[str | None, typer.Option(help="cost: latency_b1, latency_b1_model, latency_b32, size, "
                                             "memory, params; decode_ms, ttft (causal LMs) [default: "
                                             "latency_b1, or decode_ms for causal LMs]")] = None,
    data: Annotated[str | None, typer.Option(help="evaluation data [default: that of the latest eval]")] = None,
    split: Annotated[str | None, typer.Option(help="evaluation split [default: that of the latest eval]")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print as JSON")] = False,
) -> None:
    """The Pareto set of evaluated variants (best quality for each cost) from the store; variants measured on another machine or another evaluation set are listed apart, never mixed."""  # noqa: E501
    from supremum import cli_render
    from supremum.api import frontier as run

    res = run(metric, cost, data=data, split=split)
    _echo_json(res) if as_json else cli_render.print_frontier(res)


@app.command()
def pick(
    max_latency_ms: Annotated[float | None, typer.Option(help=schema_help("pick", "max_latency_ms"))] = None,
    max_size_mb: Annotated[float | None, typer.Option(help=schema_help("pick", "max_size_mb"))] = None,
    max_memory_mb: Annotated[float | None, typer.Option(help=schema_help("pick", "max_memory_mb"))] = None,
    max_params: Annotated[float | None, typer.Option(help=schema_help("pick", "max_params"))] = None,
    max_decode_ms: Annotated[float | None, typer.Option(help=schema_help("pick", "max_decode_ms"))] = None,
    min_accuracy: Annotated[float | None, typer.Option(help=schema_help("pick", "min_accuracy"))] = None,
    max_perplexity: Annotated[float | None, typer.Option(help=schema_help("pick", "max_perplexity"))] = None,
    min_score: Annotated[float | None, typer.Option(help=schema_help("pick", "min_score"))] = None,
    max_forgetting: Annotated[float | None, typer.Option(help=schema_help("pick", "max_forgetting"))] = None,
    metric: Annotated[str | None, typer.Option(help="quality metric: accuracy, macro_f1, mcc, perplexity; "
                                               "chrf, bleu, rouge_l, exact_match (eval --generate), forgetting "
                                               "[default: accuracy, or perplexity for causal LMs]")] = None,
    data: Annotated[str | None, typer.Option(help="evaluation data [default: that of the latest eval]")] = None,
    split: Annotated[str | None, typer.Option(help="evaluation split [default: that of the latest eval]")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print as JSON")] = False,
) -> None:
    """The best evaluated variant within a budget; when none fits, which constraint no variant meets and the closest ones (exit code 1)."""  # noqa: E501
    from supremum import cli_config, cli_render
    from supremum.frontier.pick import PickLimits
    from supremum.frontier.pick import pick as run

    budget = cli_config.build(PickLimits, locals(), flag_keys(pick, "pick"), help_cmd="supremum pick --help")
    floors = {k: v for k in ("min_accuracy", "max_perplexity", "min_score")
              if (v := getattr(budget, k)) is not None}
    if len(floors) > 1:
        raise UserError(f"--{' and --'.join(k.replace('_', '-') for k in floors)} each bound the one quality "
                        "metric", "give one of them (with --metric for --min-score)")
    if "min_score" in floors and metric is None:
        raise UserError("--min-score bounds a generation metric", "name it: --metric chrf (or bleu, rouge_l, "
                        "exact_match)")
    limits = budget.model_dump(exclude={"min_accuracy", "max_perplexity", "min_score"}, exclude_none=True)
    if "max_perplexity" in floors:
        metric = metric or "perplexity"
    res = run(limits, metric=metric, min_metric=next(iter(floors.values()), None), data=data, split=split)
    _echo_json(res) if as_json else cli_render.print_pick(res)
    if res["pick"] is None:
        raise typer.Exit(1)


@app.command()
def report(
    output: Annotated[Path, typer.Option(help="file to write")] = Path("supremum-report.html"),
    fmt: Annotated[str, typer.Option("--format", help="html (self-contained, inline SVG plots) or md")] = "html",
    metric: Annotated[str | None, typer.Option(help="quality metric: accuracy, macro_f1, mcc, ece (expected "
                                               "calibration error, lower is better); perplexity, bits_per_byte "
                                               "[default: accuracy, or perplexity for causal LMs]")] = None,
    data: Annotated[str | None, typer.Option(help="evaluation data [default: that of the latest eval]")] = None,
    split: Annotated[str | None, typer.Option(help="evaluation split [default: that of the latest eval]")] = None,
    max_latency_ms: Annotated[float | None, typer.Option(help="budget: batch-1 latency with tokenization (ms); "
                                                         "the summary recommends the best variant within the "
                                                         "budgets given")] = None,
    max_size_mb: Annotated[float | None, typer.Option(help="budget: size on disk (MB)")] = None,
    max_drop: Annotated[float | None, typer.Option(help="budget: points of the metric below the best variant "
                                                   "(percent of perplexity for causal LMs)")] = None,
    pipeline: Annotated[str | None, typer.Option(help="only the runs of this pipeline (its recipe's "
                                                 "name:)")] = None,
    experiment: Annotated[str | None, typer.Option(help="only the runs of this experiment (SUPREMUM_EXPERIMENT "
                                                   "when they ran, else their pipeline's name)")] = None,
    since: Annotated[str | None, typer.Option(help="only runs started on or after this date (YYYY-MM-DD or "
                                              "YYYY-MM-DDTHH:MM, local time)")] = None,
) -> None:
    """Write one report of the store: which variant to ship (under budgets when given), Pareto plots (quality vs latency, size, memory) with intervals, every variant by stage name and lineage, what each step bought, training curves, sensitivity, comparisons, studies; figures also as PNG/SVG beside it."""  # noqa: E501
    if fmt not in ("html", "md"):
        raise UserError(f"unknown report format '{fmt}'", "use --format html or --format md")
    from supremum.frontier.report import write_report

    budgets = {"max_latency_ms": max_latency_ms, "max_size_mb": max_size_mb, "max_drop": max_drop}
    path = write_report(output, fmt, metric=metric, data=data, split=split, budgets=budgets, pipeline=pipeline,
                        experiment=experiment, since=since)
    typer.echo(str(path.resolve()))


@app.command()
def runs(
    kind: Annotated[str | None, typer.Option(help="only this kind: finetune, eval, compress, calibrate, "
                                             "ensemble, explain, zeroshot, compare, curve, ceiling, "
                                             "labels, scale, scale-run")] = None,
    status: Annotated[str | None, typer.Option(help="only this status: running, finished, failed, "
                                               "pruned (a search trial stopped early), killed, "
                                               "resumable")] = None,
    sort: Annotated[str, typer.Option(help="sort by: started, accuracy, kind, status")] = "started",
    limit: Annotated[int | None, typer.Option(help="show at most N runs (the last ones)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print as JSON")] = False,
) -> None:
    """Table of every run in the store with its key metrics."""
    from supremum import cli_render

    rows = cli_render.select_runs(kind, status, sort, limit)
    _echo_json(rows) if as_json else cli_render.print_runs(rows)


@app.command()
def show(ref: Annotated[str, typer.Argument(help="run id, artifact id (a prefix is enough) or "
                                            "artifact directory")]) -> None:
    """Everything known about one run or artifact: config, metrics, lineage, machine."""
    from supremum import cli_render

    _echo_json(cli_render.describe(ref))


@app.command()
def models() -> None:
    """List the offline model aliases."""
    from supremum.models.loading import ALIASES

    for name, desc in ALIASES.items():
        typer.echo(f"{name:12s} {desc}")


_NO_SPACE = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def _no_space(e: BaseException) -> int | None:
    """The errno when `e` is a full disk or a file-size limit, also when a library (safetensors'
    Rust writer) reports the OS error only in its message."""
    if isinstance(e, OSError):
        return e.errno if e.errno in _NO_SPACE else None
    import re

    m = re.search(r"os error (\d+)", str(e))
    return int(m[1]) if m and int(m[1]) in _NO_SPACE else None


def _validation_error(e: Exception) -> UserError | None:
    """A config that the library built from command-line values (e.g. the evaluation data settings
    over an artifact's) and that pydantic refused: the same one line as configs built here, naming
    the flag when the command line holds it."""
    pydantic = sys.modules.get("pydantic")
    if pydantic is None or not isinstance(e, pydantic.ValidationError):
        return None
    from supremum.recipe import error_loc, user_error

    loc = error_loc(e.errors()[0])
    flag = "--" + loc[-1].replace("_", "-") if loc else ""
    given = any(a == flag or a.startswith(flag + "=") for a in sys.argv[1:]) if flag else False
    command = next((a for a in sys.argv[1:] if not a.startswith("-")), "")
    return user_error(e, names={".".join(loc): flag} if given else None, help_cmd=f"supremum {command} --help")


def _typed_flags() -> tuple[dict[str, str], dict[str, str]]:
    """({config key: the flag typed for it}, {config key: this command's flag for it, not typed})
    for this command's flags that set a config key (declared with schema_help), e.g.
    ({"train.precision": "--precision"}, {"train.replay_data": "--replay-data", ...}). Keys given
    as KEY=VALUE are in neither: they keep their own names."""
    args = sys.argv[1:]
    name = next((a for a in args if not a.startswith("-")), None)
    cmd = getattr(typer.main.get_command(app), "commands", {}).get(name)
    if cmd is None or cmd.callback is None:
        return {}, {}
    given = {a.split("=", 1)[0] for a in args if a.startswith("--")}
    overridden = {a.split("=", 1)[0] for a in args if not a.startswith("-") and "=" in a}
    typed, other = {}, {}
    for option, key in flag_keys(cmd.callback).items():
        param = next((p for p in cmd.params if p.name == option), None)
        if param is None or key in overridden:
            continue
        if said := [f for f in (*param.opts, *param.secondary_opts) if f in given]:
            typed[key] = said[0]
        elif flag := next((f for f in param.opts if f.startswith("--")), None):
            other[key] = flag
    return typed, other


def _as_typed(e: UserError) -> str:
    """The error's line with config keys the command line set by flag written as those flags; when
    it names such a key, the other keys it names (the other half of a pair) are written as this
    command's flags for them too."""
    from supremum.recipe import names_key, with_flags

    try:
        typed, other = _typed_flags()
    except Exception:  # naming flags is a courtesy: the error itself must always print
        typed, other = {}, {}
    text = str(e)
    # a validation error may already name the typed flag (cli_config renames the key it failed on)
    named = any(names_key(text, k) or re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", text)
                for k, f in typed.items())
    return with_flags(text, {**other, **typed} if named else typed)


def _usage_line(e: Exception) -> str:
    """Click's usage error as one line naming where help is: "Invalid value for '--lr': ... (see
    `supremum finetune --help`)"."""
    ctx = getattr(e, "ctx", None)
    sub = ctx.info_name if ctx is not None and ctx.parent is not None else None
    path = f"supremum {sub}" if sub else "supremum"  # as the docs name it, however it was started
    message = " ".join(e.format_message().split())
    return f"{message} (see `{path} --help`)"


def main() -> None:
    debug = "--debug" in sys.argv
    try:
        try:
            rc = app(standalone_mode=False)  # non-standalone click returns typer.Exit's code
        except Exception as e:
            user = _validation_error(e)
            if user is None:
                raise
            raise user from e
        if isinstance(rc, int) and rc:
            raise SystemExit(rc)
    except UserError as e:
        if debug:
            raise
        typer.echo(f"error: {_as_typed(e)}", err=True)
        raise SystemExit(2) from None
    except (typer.Exit, SystemExit) as e:
        raise SystemExit(getattr(e, "exit_code", getattr(e, "code", 0))) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise SystemExit(130) from None
    except Exception as e:
        code = _no_space(e)
        if code and not debug:
            # Every write goes to a temporary name renamed at the end: what existed before is intact.
            where = f" writing {e.filename}" if getattr(e, "filename", None) else ""
            typer.echo(f"error: no space left{where} ({os.strerror(code)}); earlier files and checkpoints "
                       "are intact: free space (or raise the file-size limit) and re-run, with --resume where "
                       "the command has it", err=True)
            raise SystemExit(1) from None
        # Usage errors (bad flag values, unknown flags): click's exception classes, vendored by typer;
        # one line like every other input error, not click's usage block
        if hasattr(e, "format_message") and isinstance(getattr(e, "exit_code", None), int):
            if debug:
                e.show()
            else:
                typer.echo(f"error: {_usage_line(e)}", err=True)
            raise SystemExit(e.exit_code) from None
        raise
