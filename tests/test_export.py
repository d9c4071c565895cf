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
    # a local file is no Hub dataset: its name goes into the supremum block
    assert front["datasets"] == [] and front["supremum"]["data"] == "reviews.csv"
    assert front["library_name"] == "transformers"
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


LONG = " ".join(["great good fine awful dull lovely"] * 200)  # 1,200 words: past tiny-bert's 512 positions


def _supremum_logits(art, texts):
    """Logits as `supremum eval` computes them: the artifact's preprocessing, then its model."""
    from supremum.infer import predict_logits
    from supremum.preprocessing import preprocessing_for

    model, tok = load(art)
    ids = preprocessing_for(art).tokenize(tok, texts)
    return ids, torch.from_numpy(predict_logits(model, ids, tok.pad_token_id))


def test_hf_export_tokenizer_cuts_where_supremum_cuts(bert, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    art = bert["full"]
    out = export(art, ExportConfig(format="hf", output=str(tmp_path / "hf"))).path
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.model_max_length == 32 and tok.truncation_side == "right"
    enc = tok([LONG, TEXTS[0]], truncation=True, padding=True, return_tensors="pt")
    assert enc["input_ids"].shape == (2, 32)
    want_ids, want = _supremum_logits(art, [LONG, TEXTS[0]])
    assert enc["input_ids"][0].tolist() == want_ids[0]
    hf = AutoModelForSequenceClassification.from_pretrained(out).eval()
    assert torch.allclose(_logits(hf, enc), want, atol=1e-5)
    got = pipeline("text-classification", model=str(out), device="cpu")(LONG * 3, truncation=True)[0]
    _, long_logits = _supremum_logits(art, [LONG * 3])
    probs = long_logits.softmax(-1)[0]
    assert got["label"] == art.label_names[int(probs.argmax())]
    assert got["score"] == pytest.approx(float(probs.max()), abs=1e-5)
    front = front_matter(out)
    assert front["supremum"]["inputs"] == {"max_length": 32, "truncation_side": "right"}
    card = (out / "README.md").read_text()
    assert "**Max length 32 tokens**: trained and evaluated on texts cut to 32 tokens" in card


def test_exported_tokenizers_keep_a_left_truncation_side(bert, tmp_path):
    import shutil

    from transformers import AutoTokenizer

    from supremum.artifact import sha256_file

    src = tmp_path / "left"
    shutil.copytree(bert["full"].path, src)
    cfg = json.loads((src / "tokenizer_config.json").read_text())
    (src / "tokenizer_config.json").write_text(json.dumps({**cfg, "truncation_side": "left"}))
    manifest = json.loads((src / "manifest.json").read_text())  # a base whose tokenizer cuts on the left
    manifest["files"]["tokenizer_config.json"] = sha256_file(src / "tokenizer_config.json")
    (src / "manifest.json").write_text(json.dumps(manifest))
    art = open_artifact(src)
    for fmt in ("hf", "onnx"):
        out = export(art, ExportConfig(format=fmt, output=str(tmp_path / fmt))).path
        tok = AutoTokenizer.from_pretrained(out)
        assert (tok.model_max_length, tok.truncation_side) == (32, "left"), fmt
        want_ids, _ = _supremum_logits(art, [LONG])
        assert tok(LONG, truncation=True)["input_ids"] == want_ids[0]


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
    front = front_matter(out)
    assert front["library_name"] == "peft"
    adapter = open_artifact(main.manifest.adapter_artifact)
    assert front["supremum"]["export"]["adapter_artifact"] == adapter.id
    assert str(adapter.path) not in (out / "README.md").read_text()
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(out).model_max_length == 32


def test_peft_export_refuses_prefix_tuning_in_one_line(bert, home, tmp_path):
    prefix = _train(home / "prefix", "tiny-bert", bert["data"], "prefix", steps=2, lr=1e-2)
    adapter = open_artifact(prefix.manifest.adapter_artifact) if prefix.manifest.adapter_artifact else prefix
    proc = run_cli("export", str(prefix.path), "--format", "peft", "--output", str(tmp_path / "p"))
    # the last line: importing PEFT may print a third-party notice (kernels-community) first
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == (
        f"error: --format peft does not apply to artifact {prefix.id}: its prefix-tuning adapter needs a model "
        "whose forward takes past_key_values, which transformers 5 models no longer name: PEFT loads it "
        "but refuses to run it (no export format applies to it; it runs in supremum (predict, "
        "serve); prompt-tuning and LoRA adapters export)"), proc.stderr
    assert not (tmp_path / "p").exists()
    from peft import PeftModel

    from supremum.models import load_model

    base, tok = load_model("tiny-bert", "classification", label_names=prefix.label_names)
    plain = PeftModel.from_pretrained(base, str(adapter.path))
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    with pytest.raises(ValueError, match="does not support past key values"):  # why it is refused
        plain(**enc)

    prompt = _train(home / "prompt", "tiny-bert", bert["data"], "prompt", steps=2, lr=1e-2)  # what the hint offers
    out = export(prompt, ExportConfig(format="peft", output=str(tmp_path / "prompt"))).path
    base, _ = load_model("tiny-bert", "classification", label_names=prompt.label_names)
    ours, _ = load(prompt)
    loaded = PeftModel.from_pretrained(base, str(out)).eval()
    assert torch.allclose(_logits(loaded, enc), _logits(ours, enc), atol=1e-5)


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
    assert (tok.model_max_length, tok.truncation_side) == (32, "right")

    graph = api.compress(art.path, {"method": "onnx", "optimize": False}, output=tmp_path / "graph")
    copied = export(graph, ExportConfig(format="onnx", output=str(tmp_path / "copied"))).path
    assert (copied / "model.onnx").read_bytes() == (graph.path / "model.onnx").read_bytes()
    assert AutoTokenizer.from_pretrained(copied).model_max_length == 32


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
        "gguf": "GGUF covers causal LMs (llama.cpp runs decoders), not classifiers",
        "ollama": "GGUF covers causal LMs (llama.cpp runs decoders), not classifiers",
        "peft": "it holds no PEFT adapter (method full; fine-tune with lora, ia3, adalora, ...)"}
    for fmt, why in refused.items():
        with pytest.raises(UserError) as e:
            export(art, ExportConfig(format=fmt, output=str(tmp_path / fmt)))
        assert str(e.value) == f"--format {fmt} does not apply to artifact {art.id}: {why} (formats that apply " \
                               "to it: hf, onnx)"
        assert not (tmp_path / fmt).exists()


def test_quantized_artifacts_name_exactly_the_formats_that_work(bert, tmp_path):
    q = api.compress(bert["full"].path, "int8-dynamic", output=tmp_path / "q")
    none = (f"(no export format applies to it; export the artifact it was made from ({bert['full'].id}), "
            "or compress the parent with onnx-int8-dynamic for an int8 ONNX graph)")
    why = {"hf": "its int8 dynamically quantized layers have no plain transformers form",
           "onnx": "its int8 dynamically quantized layers have no ONNX form (torch.onnx cannot export "
                   "PyTorch's quantized::linear_dynamic)"}
    for fmt, reason in why.items():
        proc = run_cli("export", str(q.path), "--format", fmt, "--output", str(tmp_path / fmt))
        assert proc.returncode == 2, proc.stderr
        line = f"error: --format {fmt} does not apply to artifact {q.id}: {reason} {none}"
        assert proc.stderr.strip().splitlines()[-1] == line
        assert not (tmp_path / fmt).exists()

    half = api.compress(bert["full"].path, "fp16", output=tmp_path / "half")
    with pytest.raises(UserError) as e:
        export(half, ExportConfig(format="onnx", output=str(tmp_path / "half-onnx")))
    assert str(e.value) == (f"--format onnx does not apply to artifact {half.id}: its float16/bfloat16 weights "
                            "have no ONNX form here (the exporter writes fp32 graphs: float16 mixes types ONNX "
                            "Runtime refuses, bfloat16 does not export) (formats that apply to it: hf)")
    assert not (tmp_path / "half-onnx").exists()


def test_every_compression_kind_names_only_formats_that_export(bert, tmp_path):
    """The applicability table against the exporters: each format named for a compressed
    artifact writes; each refused one is refused before anything is written."""
    from supremum.export import applicable

    specs = {"int8-weight": "int8-weight", "int4-weight": "int4-weight",
             "lowrank": {"method": "lowrank", "energy": 0.9}, "bf16": "bf16"}
    want = {"int8-weight": ["onnx"], "int4-weight": [], "lowrank": ["onnx"], "bf16": ["hf"]}
    for name, spec in specs.items():
        art = api.compress(bert["full"].path, spec, output=tmp_path / name)
        assert applicable(art) == want[name], name
        for fmt in applicable(art):
            export(art, ExportConfig(format=fmt, output=str(tmp_path / f"{name}-{fmt}")))


def test_cli_export_writes_the_default_directory(bert):
    full = bert["full"]
    proc = run_cli("export", str(full.path), "--format", "hf", "--json", check=True)
    got = json.loads(proc.stdout)
    assert got["path"] == str(full.path.with_name(full.path.name + "-hf"))
    assert {"config.json", "model.safetensors", "README.md", "tokenizer.json"} <= set(got["files"])
