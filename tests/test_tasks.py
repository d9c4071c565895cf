"""The task vocabulary is one: `supremum.tasks` registers classification and causal-lm, each
under its canonical name and the Hugging Face pipeline tag manifests store, and every consumer
asks the task (model head, data, objective, scorers, evaluation, default metric) instead of
comparing names."""

import json
import random
import typing
from types import SimpleNamespace

import pytest
from conftest import run_cli

from supremum import tasks
from supremum.config import DataConfig
from supremum.errors import UserError
from supremum.tasks import CAUSAL_LM, CLASSIFICATION, CausalLM, Classification, Task, get_task, resolve_task
from supremum.tasks import base as registry
from supremum.train.config import FinetuneConfig

UNKNOWN = ("unknown task 'regression' (use one of: causal-lm (or text-generation), "
           "classification (or text-classification))")


@pytest.fixture
def corpus(tmp_path):
    rng = random.Random(0)
    words = "the king shall speak of love and war".split()
    p = tmp_path / "corpus.txt"
    p.write_text("\n".join(" ".join(rng.choice(words) for _ in range(6)) + "." for _ in range(200)) + "\n",
                 encoding="utf-8")
    return p


def test_both_vocabularies_name_one_task():
    for task, names in ((CLASSIFICATION, ("classification", "text-classification")),
                        (CAUSAL_LM, ("causal-lm", "text-generation"))):
        assert all(get_task(n) is task for n in names)
        assert get_task(task) is task
        assert task.names() == names
    assert isinstance(CLASSIFICATION, Classification) and isinstance(CAUSAL_LM, CausalLM)
    assert str(CAUSAL_LM) == "causal-lm"


def test_the_stored_strings_are_unchanged():
    """Manifests store the pipeline tag; fine-tune configs (and their hashes) the canonical name."""
    assert (CLASSIFICATION.name, CLASSIFICATION.pipeline_tag) == ("classification", "text-classification")
    assert (CAUSAL_LM.name, CAUSAL_LM.pipeline_tag) == ("causal-lm", "text-generation")
    literal = typing.get_args(FinetuneConfig.model_fields["task"].annotation)
    assert set(literal) == {"auto", *(t.name for t in tasks.registered())}


def test_default_metric_cost_and_direction():
    assert (CLASSIFICATION.metric, CLASSIFICATION.higher_is_better, CLASSIFICATION.cost) == (
        "accuracy", True, "latency_b1")
    assert (CAUSAL_LM.metric, CAUSAL_LM.higher_is_better, CAUSAL_LM.cost) == ("perplexity", False, "decode_ms")
    from supremum.frontier import DEFAULTS

    assert DEFAULTS == {"text-classification": ("accuracy", "latency_b1"),
                        "text-generation": ("perplexity", "decode_ms"), "lm-eval": (None, "params")}


def test_dev_result_names_the_metric_and_sign():
    assert CLASSIFICATION.dev_result(0.75) == {"dev_accuracy": 0.75}
    assert CAUSAL_LM.dev_result(-2.5) == {"dev_loss": 2.5}  # the loop's score is minus the loss
    assert CAUSAL_LM.dev_result(None) == {"dev_accuracy": None}  # no dev split: as recorded before


def test_unknown_task_is_one_user_error():
    with pytest.raises(UserError) as e:
        get_task("regression")
    assert str(e.value) == UNKNOWN
    from supremum.backends.pytorch import model_task

    with pytest.raises(UserError, match="unknown task 'fill-mask'"):
        model_task(SimpleNamespace(task="fill-mask"))  # an artifact whose manifest names another task


def test_a_manifest_with_an_unknown_task_fails_in_one_line(tmp_path, csv_data):
    art = tmp_path / "a"
    run_cli("finetune", "--model", "tiny-bert", "--data", str(csv_data), "--max-steps", "2", "--output", str(art),
            check=True)
    manifest = json.loads((art / "manifest.json").read_text())
    assert manifest["task"] == "text-classification"
    manifest["task"] = "regression"
    (art / "manifest.json").write_text(json.dumps(manifest))
    r = run_cli("eval", str(art), "--no-speed")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == f"error: {UNKNOWN}"


def test_resolve_task(csv_data, corpus):
    bert = FinetuneConfig(model={"name": "tiny-bert"}, data={"path": str(csv_data)})
    assert resolve_task(bert) is CLASSIFICATION
    assert resolve_task(FinetuneConfig(model={"name": "tiny-llama"}, data={"path": str(corpus)})) is CAUSAL_LM
    explicit = FinetuneConfig(model={"name": "tiny-llama"}, data={"path": str(csv_data)}, task="causal-lm")
    assert resolve_task(explicit) is CAUSAL_LM
    from supremum.estimate import task_of

    # a pipeline config has no `task`: its data decides, as for "auto"
    assert task_of(SimpleNamespace(data=DataConfig(path=str(corpus)))) == "causal-lm"
    assert task_of(SimpleNamespace(data=DataConfig(path=str(csv_data)))) == "classification"


@pytest.mark.parametrize("name", ["classification", "text-classification", CLASSIFICATION])
def test_load_model_takes_any_name_of_the_task(name):
    from supremum.models import load_model

    model, _ = load_model("tiny-bert", name, label_names=["a", "b", "c"])
    assert type(model).__name__ == "BertForSequenceClassification"
    assert model.config.num_labels == 3 and model.config.id2label == {0: "a", 1: "b", 2: "c"}


def test_load_model_causal_lm_head():
    from supremum.models import load_model

    model, _ = load_model("tiny-llama", "text-generation", label_names=["ignored"])
    assert type(model).__name__ == "LlamaForCausalLM"
    assert CAUSAL_LM.model_class().__name__ == "AutoModelForCausalLM"


def test_finetunes_store_the_task_pipeline_tag(csv_data, corpus, tmp_path):
    from supremum.train.finetune import finetune

    for task, data, model in ((CLASSIFICATION, csv_data, "tiny-bert"), (CAUSAL_LM, corpus, "tiny-llama")):
        cfg = FinetuneConfig(model={"name": model}, data={"path": str(data), "max_length": 32},
                             train={"max_steps": 2, "batch_size": 8}, output=str(tmp_path / task.name))
        art = finetune(cfg, progress=False).artifact
        assert json.loads((art.path / "manifest.json").read_text())["task"] == task.pipeline_tag
    assert json.loads((tmp_path / "classification" / "manifest.json").read_text())["label_names"] == ["neg", "pos"]


def test_every_task_has_an_evaluation():
    from supremum.evaluate.stage import EVALUATORS

    assert set(EVALUATORS) == {t.name for t in tasks.registered()}


class Regression(Task):
    name = "regression"
    pipeline_tag = "text-regression"
    aliases = ("scalar",)
    auto_model = "AutoModelForSequenceClassification"
    metric, higher_is_better, cost = "rmse", False, "latency_b1"


def test_a_task_is_one_class_and_its_registration(monkeypatch):
    """The registry is the only list of tasks: registering a class makes every name of it parse."""
    for attr in ("_TASKS", "_NAMES"):
        monkeypatch.setattr(registry, attr, dict(getattr(registry, attr)))
    registry.register(Regression)
    task = get_task("scalar")
    assert isinstance(task, Regression) and get_task("regression") is task is get_task("text-regression")
    assert [t.name for t in tasks.registered()][-1] == "regression"
    with pytest.raises(ValueError, match="task name 'text-generation' is taken by causal-lm"):
        registry.register(type("Clash", (Regression,), {"name": "clash", "pipeline_tag": "text-generation"}))
    with pytest.raises(UserError):
        get_task("clash")  # nothing of the refused task was registered
