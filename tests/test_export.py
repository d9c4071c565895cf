"""supremum export: every format loads back with its target library (transformers, PEFT, ONNX
Runtime, llama-cpp-python + gguf, an Ollama Modelfile read as values) and predicts what
supremum's own load predicts; model cards parse as YAML front-matter with the measured values."""

import json
import os
import random
import re

import numpy as np
import pytest
import torch
import yaml
from conftest import run_cli, sentiment_rows, write_csv

from supremum import api
from supremum.artifact import open_artifact
from supremum.backends import load
from supremum.errors import UserError
from supremum.export import ExportConfig, export

TEXTS = ["great good fine 1", "awful dull poor 2", "lovely", "bad weak boring superb 77"]
WORDS = "the king queen shall speak of love war and peace in time".split()


def _train(tmp, model, data, method="full", steps=8, lr=3e-3, **extra):
    return api.finetune({"model": {"name": model}, "data": {"path": str(data), "max_length": 32},
                         "method": {"name": method}, "output": str(tmp),
                         "train": {"max_steps": steps, "batch_size": 8, "lr": lr, "seed": 0}, **extra}).artifact


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    d = tmp_path_factory.mktemp("export")
    old = os.environ.get("SUPREMUM_HOME")
    os.environ["SUPREMUM_HOME"] = str(d / "home")
    yield d
    os.environ.pop("SUPREMUM_HOME") if old is None else os.environ.__setitem__("SUPREMUM_HOME", old)


@pytest.fixture(scope="module")
def bert(home):
    """A tiny-bert full fine-tune evaluated on its dev split, its LoRA fine-tune (merged, with
    the adapter next to it) and its calibrated child."""
    data = write_csv(home / "reviews.csv", sentiment_rows(240))
    full = _train(home / "full", "tiny-bert", data)
    api.evaluate(full.path, str(data), {"split": "dev", "speed": False})
    lora = _train(home / "lora", "tiny-bert", data, "lora", lr=1e-2)
    cal = api.calibrate(str(full.path), output=home / "cal")
    return {"data": data, "full": open_artifact(full.path), "lora": lora, "cal": cal}


@pytest.fixture(scope="module")
def llama(home):
    rng = random.Random(0)
    corpus = home / "corpus.txt"
    corpus.write_text("\n".join(" ".join(rng.choice(WORDS) for _ in range(6)) + "." for _ in range(200)) + "\n")
    return {"data": corpus, "full": _train(home / "lm", "tiny-llama", corpus, steps=6)}


def _ids(tok, texts=TEXTS):
    return tok(texts, padding=True, return_tensors="pt")


def _logits(model, enc):
    with torch.no_grad():
        return model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits


def front_matter(path):
    text = (path / "README.md").read_text()
    m = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    assert m, "README.md has no YAML front-matter"
    return yaml.safe_load(m[1])


# ---- hf ---------------------------------------------------------------------------------------

def test_hf_export_loads_in_transformers_with_the_same_logits_and_a_card(bert, home, tmp_path, monkeypatch):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    monkeypatch.setenv("SUPREMUM_HOME", str(home / "home"))  # the store that recorded the training run
    art = bert["full"]
    out = export(art, ExportConfig(format="hf", output=str(tmp_path / "hf"))).path
    hf = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    ours, ours_tok = load(art)
    assert torch.allclose(_logits(hf, _ids(tok)), _logits(ours, _ids(ours_tok)), atol=1e-5)
    assert hf.config.id2label == {0: "neg", 1: "pos"} or hf.config.id2label == {0: "pos", 1: "neg"}
    front = front_matter(out)
    assert front["base_model"] == "tiny-bert" and front["pipeline_tag"] == "text-classification"
    assert front["datasets"] == ["reviews.csv"] and front["library_name"] == "transformers"
    assert "license" not in front  # not known for a tiny test model
    results = {r["source"]["name"]: r for r in front["model-index"][0]["results"]}
    dev = art.metrics["reviews.csv:dev"]
    got = [m["value"] for m in results["supremum reviews.csv:dev"]["metrics"]]
    assert got == [dev["accuracy"], dev["macro_f1"]]
    assert results["supremum training"]["metrics"][0]["value"] == art.metrics["training"]["dev_accuracy"]
    assert front["supremum"]["lineage"] == "full" and front["supremum"]["artifact_id"] == art.id
    from supremum.machine import fingerprint, short

    assert front["supremum"]["measured_on"] == {"training": short(fingerprint()),
                                                "reviews.csv:dev": short(fingerprint())}


def test_hf_export_merges_lora_and_keeps_the_temperature_out_of_the_weights(bert, tmp_path):
    from transformers import AutoModelForSequenceClassification

    adapter = open_artifact(bert["lora"].manifest.adapter_artifact)
    assert adapter.manifest.storage == "peft"
    out = export(adapter, ExportConfig(format="hf", output=str(tmp_path / "hf"))).path
    hf = AutoModelForSequenceClassification.from_pretrained(out).eval()
    ours, tok = load(adapter)  # the PeftModel over the base
    assert torch.allclose(_logits(hf, _ids(tok)), _logits(ours, _ids(tok)), atol=1e-5)
    assert not any("lora" in k for k in hf.state_dict())

    cal = bert["cal"]
    out = export(cal, ExportConfig(format="hf", output=str(tmp_path / "cal"))).path
    raw = _logits(AutoModelForSequenceClassification.from_pretrained(out).eval(), _ids(tok))
    calibrated, tok = load(cal)
    t = cal.manifest.temperature
    assert t != 1 and torch.allclose(raw / t, _logits(calibrated, _ids(tok)), atol=1e-5)
    front = front_matter(out)
    assert front["supremum"]["temperature"] == t and f"divide them by {t:.4g}" in (out / "README.md").read_text()
    assert "model-index" not in front  # nothing measured on the calibrated child: no empty results list


def test_hf_export_of_pruned_models(bert, tmp_path):
    from transformers import AutoModelForSequenceClassification

    ffn = api.compress(bert["full"].path, {"method": "prune-ffn", "amount": 0.3, "score": "magnitude"},
                       output=tmp_path / "ffn")
    out = export(ffn, ExportConfig(format="hf", output=str(tmp_path / "hf"))).path
    hf = AutoModelForSequenceClassification.from_pretrained(out).eval()
    assert hf.config.intermediate_size == 45 == round(64 * 0.7)
    ours, tok = load(ffn)
    assert torch.allclose(_logits(hf, _ids(tok)), _logits(ours, _ids(tok)), atol=1e-5)

    heads = api.compress(bert["full"].path, {"method": "prune-heads", "amount": 0.25, "score": "magnitude"},
                         output=tmp_path / "heads")
    with pytest.raises(UserError) as e:
        export(heads, ExportConfig(format="hf", output=str(tmp_path / "hf2")))
    assert str(e.value).startswith(f"--format hf does not apply to artifact {heads.id}: ")
    assert str(e.value).endswith("(formats that apply to it: onnx)")
    assert not (tmp_path / "hf2").exists()


def test_hf_export_merges_bitfit_and_refuses_bottleneck_adapters(bert, home, tmp_path):
    from transformers import AutoModelForSequenceClassification

    bitfit = _train(home / "bitfit", "tiny-bert", bert["data"], "bitfit", lr=5e-3)
    delta = open_artifact(bitfit.manifest.adapter_artifact)
    assert delta.manifest.storage == "delta"
    out = export(delta, ExportConfig(format="hf", output=str(tmp_path / "bitfit"))).path
    hf = AutoModelForSequenceClassification.from_pretrained(out).eval()
    ours, tok = load(delta)
    assert torch.allclose(_logits(hf, _ids(tok)), _logits(ours, _ids(tok)), atol=1e-5)

    houlsby = _train(home / "houlsby", "tiny-bert", bert["data"], "adapter", lr=1e-3)
    with pytest.raises(UserError) as e:
        export(houlsby, ExportConfig(format="hf", output=str(tmp_path / "houlsby")))
    assert str(e.value).startswith(f"--format hf does not apply to artifact {houlsby.id}: it holds tensors "
                                   "BertForSequenceClassification does not have (['bert.encoder.layer.0.")
    assert str(e.value).endswith("e.g. modules a method added (formats that apply to it: onnx)")
    assert not (tmp_path / "houlsby").exists()


# ---- peft -------------------------------------------------------------------------------------

def test_peft_export_loads_with_peft_over_the_base(bert, tmp_path):
    from peft import PeftModel

    from supremum.models import load_model

    main = bert["lora"]  # the merged artifact: its adapter is found next to it
    out = export(main, ExportConfig(format="peft", output=str(tmp_path / "peft"))).path
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md"} <= {p.name for p in out.iterdir()}
    base, tok = load_model("tiny-bert", "classification", label_names=main.label_names)
    peft = PeftModel.from_pretrained(base, str(out)).eval()
    ours, _ = load(main)
    assert torch.allclose(_logits(peft, _ids(tok)), _logits(ours, _ids(tok)), atol=1e-5)
    assert front_matter(out)["library_name"] == "peft"


# ---- onnx -------------------------------------------------------------------------------------

def test_onnx_export_runs_in_onnxruntime_with_the_same_logits(bert, tmp_path):
    import onnxruntime as ort
    from transformers import AutoConfig, AutoTokenizer

    art = bert["full"]
    out = export(art, ExportConfig(format="onnx", output=str(tmp_path / "onnx"))).path
    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    tok = AutoTokenizer.from_pretrained(out)
    enc = tok(TEXTS, padding=True, return_tensors="np")
    (got,) = sess.run(["logits"], {"input_ids": enc["input_ids"].astype(np.int64),
                                   "attention_mask": enc["attention_mask"].astype(np.int64)})
    ours, ours_tok = load(art)
    assert np.allclose(got, _logits(ours, _ids(ours_tok)).numpy(), atol=1e-4)
    assert AutoConfig.from_pretrained(out).id2label == art_labels(art)
    assert front_matter(out)["supremum"]["export"]["max_abs_logit_diff_vs_pytorch"] < 1e-3


def art_labels(art):
    return dict(enumerate(art.label_names))


# ---- gguf and ollama --------------------------------------------------------------------------

def test_gguf_and_ollama_export_carry_template_and_stops(llama, tmp_path):
    import gguf
    from llama_cpp import Llama

    from supremum.lm.data import ROLE_LINES_TEMPLATE

    art = llama["full"]
    out = export(art, ExportConfig(format="ollama", output=str(tmp_path / "ol"), quant="f32")).path
    reader = gguf.GGUFReader(str(out / "model.gguf"))
    assert reader.fields["tokenizer.chat_template"].contents() == ROLE_LINES_TEMPLATE
    assert reader.fields["tokenizer.ggml.eot_token_id"].contents() == 2 == reader.fields[
        "tokenizer.ggml.eos_token_id"].contents()
    ours, tok = load(art)
    ids = tok(["the king shall speak of love"], return_tensors="pt")["input_ids"]
    llm = Llama(str(out / "model.gguf"), n_ctx=64, logits_all=True, verbose=False)
    try:
        llm.eval(ids[0].tolist())
        got = np.asarray(llm.scores[: ids.shape[1]])
    finally:
        llm.close()
    with torch.no_grad():
        want = ours(input_ids=ids).logits[0].numpy()
    assert np.abs(got - want).max() < 1e-3
    mf = parse_modelfile(out / "Modelfile")
    assert mf["FROM"] == ["./model.gguf"] and mf["PARAMETER"] == ["stop </s>"]
    assert mf["TEMPLATE"] == ['{{- if .System }}system: {{ .System }}\n{{ end }}\n{{- range .Messages }}'
                              '{{ if ne .Role "system" }}{{ .Role }}: {{ .Content }}{{ if eq .Role "assistant" }}'
                              '</s>{{ else }}\n{{ end }}{{ end }}{{ end }}assistant: ']
    assert "SYSTEM" not in mf
    assert front_matter(out)["pipeline_tag"] == "text-generation"


def test_gguf_artifacts_are_copied_with_chat_metadata_and_their_lora_adapter(llama, home, tmp_path):
    import gguf

    from supremum.lm.data import ROLE_LINES_TEMPLATE

    lora = _train(home / "lm-lora", "tiny-llama", llama["data"], "lora", steps=4, lr=3e-2)
    gl = api.compress(lora.path, {"method": "gguf-lora", "base_quant": "f32"}, output=tmp_path / "gl")
    out = export(gl, ExportConfig(format="ollama", output=str(tmp_path / "ol"))).path
    assert (out / "adapter.gguf").read_bytes() == (gl.path / "adapter.gguf").read_bytes()
    src, got = gguf.GGUFReader(str(gl.path / "model.gguf")), gguf.GGUFReader(str(out / "model.gguf"))
    assert "tokenizer.chat_template" not in src.fields
    assert got.fields["tokenizer.chat_template"].contents() == ROLE_LINES_TEMPLATE
    assert [(t.name, t.tensor_type, t.data.tobytes()) for t in got.tensors] == \
        [(t.name, t.tensor_type, t.data.tobytes()) for t in src.tensors]
    mf = parse_modelfile(out / "Modelfile")
    assert mf["FROM"] == ["./model.gguf"] and mf["ADAPTER"] == ["./adapter.gguf"]
    assert front_matter(out)["supremum"]["export"]["quant"] == "f32"


def test_hf_export_of_a_causal_lm(llama, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    art = llama["full"]
    out = export(art, ExportConfig(format="hf", output=str(tmp_path / "hf"))).path
    hf = AutoModelForCausalLM.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    ours, _ = load(art)
    enc = _ids(tok, ["the king shall speak", "of love and war in time"])
    assert torch.allclose(_logits(hf, enc), _logits(ours, enc), atol=1e-5)
    front = front_matter(out)
    assert front["pipeline_tag"] == "text-generation"
    assert front["model-index"][0]["results"][0]["metrics"] == [
        {"type": "perplexity", "value": art.metrics["training"]["dev_perplexity"], "name": "dev perplexity"}]


def test_role_lines_template_renders_what_training_rendered(llama):
    from supremum.lm.data import ROLE_LINES_TEMPLATE, render

    _, tok = load(llama["full"])
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "add 1 and 2"},
            {"role": "assistant", "content": "3"}, {"role": "user", "content": "and 4?"}]
    for gen in (True, False):
        got = tok.apply_chat_template(msgs, chat_template=ROLE_LINES_TEMPLATE, tokenize=False,
                                      add_generation_prompt=gen)
        assert tok(got, add_special_tokens=False)["input_ids"] == render(tok, msgs, generation_prompt=gen)


SMOLLM2 = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
           "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
           "<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
           "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
           "{{ '<|im_start|>assistant\n' }}{% endif %}")


def test_chatml_template_translates_to_ollama_with_default_system():
    from supremum.export import Refusal
    from supremum.export.chat import CHATML_GO, chat, modelfile
    from supremum.models.tiny import llama_tokenizer

    tok = llama_tokenizer()
    tok.chat_template = SMOLLM2
    mf = modelfile(tok)
    assert chat(tok).layout == "chatml" and chat(tok).end_of_turn == "<|im_end|>"
    assert mf.template == CHATML_GO and mf.stops == ["<|im_end|>", "<|im_start|>"]
    assert mf.system == "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    tok.chat_template = SMOLLM2.replace("{% if loop.first and messages[0]['role'] != 'system' %}",
                                        "{% if false %}")
    assert modelfile(tok).system is None
    tok.chat_template = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}{% endfor %}"
    with pytest.raises(Refusal, match="not ChatML"):
        modelfile(tok)
    assert chat(tok).layout == "own"


def parse_modelfile(path):
    """Instruction -> values, with triple-quoted and quoted arguments (Ollama's syntax)."""
    out = {}
    for m in re.finditer(r'^(\w+) (?:"""(.*?)"""|([^\n]*))$', path.read_text(), re.S | re.M):
        value = m[2] if m[2] is not None else m[3]
        if m[1] == "PARAMETER":
            name, _, arg = value.partition(" ")
            value = f"{name} {json.loads(arg)}"
        out.setdefault(m[1], []).append(value)
    return out


# ---- bad input --------------------------------------------------------------------------------

def test_bad_input_is_one_line_exit_2(bert, tmp_path):
    art = bert["full"]
    full = str(art.path)
    cases = [
        (["export", full, "--format", "tflite"], "error: unknown export format 'tflite' (use one of: hf, peft, "
                                                 "onnx, gguf, ollama)"),
        (["export", full, "--format", "hf", "--output", full], f"error: --output {full} exists and is not empty "
         "(give a new or empty directory; an export never overwrites files)"),
    ]
    for args, line in cases:
        proc = run_cli(*args)
        assert proc.returncode == 2 and proc.stderr.strip() == line, proc.stderr
    refused = {  # what the CLI prints after "error: "
        "gguf": "GGUF covers causal LMs (llama.cpp runs decoders); classifiers export as hf, peft or onnx",
        "ollama": "GGUF covers causal LMs (llama.cpp runs decoders); classifiers export as hf, peft or onnx",
        "peft": "it holds no PEFT adapter (method full; fine-tune with lora, ia3, adalora, ...)"}
    for fmt, why in refused.items():
        with pytest.raises(UserError) as e:
            export(art, ExportConfig(format=fmt, output=str(tmp_path / fmt)))
        assert str(e.value) == f"--format {fmt} does not apply to artifact {art.id}: {why} (formats that apply " \
                               "to it: hf, onnx)"
        assert not (tmp_path / fmt).exists()


def test_quantized_artifact_names_the_formats_that_apply(bert, tmp_path):
    q = api.compress(bert["full"].path, "int8-dynamic", output=tmp_path / "q")
    with pytest.raises(UserError) as e:
        export(q, ExportConfig(format="hf"))
    assert str(e.value) == (f"--format hf does not apply to artifact {q.id}: its int8 dynamically quantized "
                            "layers have no plain transformers form (formats that apply to it: onnx)")


def test_cli_export_writes_the_default_directory(bert):
    full = bert["full"]
    proc = run_cli("export", str(full.path), "--format", "hf", "--json", check=True)
    got = json.loads(proc.stdout)
    assert got["path"] == str(full.path.with_name(full.path.name + "-hf"))
    assert {"config.json", "model.safetensors", "README.md", "tokenizer.json"} <= set(got["files"])
