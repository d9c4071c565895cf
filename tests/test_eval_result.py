"""One flat view of an evaluation's costs (`EvalResult.cost`): built once from the stored record
(old records, missing keys, read as not measured) and read by the CLI printers and the frontier.
The printers' lines are pinned here as they were before the view existed."""

from supremum import cli_render
from supremum.evaluate.result import EvalResult

LAT = lambda b, m, m95, t, t95: {"batch_size": b, "model_only": {"median_ms": m, "p95_ms": m95},  # noqa: E731
                                 "with_tokenization": {"median_ms": t, "p95_ms": t95},
                                 "throughput_per_s": b / (t / 1000)}
CLASSIFIER = {
    "task": "text-classification", "size_on_disk_mb": 17.25, "device": "cpu",
    "cost": {"params": 4_386_178, "trainable_params": 1_234, "weights_mb": 16.73, "threads": 2,
             "latency_b1": LAT(1, 1.234, 1.5, 2.5, 3.25), "latency_b32": LAT(32, 20.5, 22.75, 40.0, 45.5),
             "peak_rss_mb": 612.4, "device": "cpu", "method": "perf_counter; interleaved"},
    "runtime": {"kernels": "PyTorch fp32 (oneDNN)", "isa": ["avx2", "avx512f"]},
    "vs_parent": {"parent": "p1", "speedup_b1": 1.5, "speedup_b32": 2.25, "accuracy_delta_pt": -0.4,
                  "why_b1": None, "why_b32": "per-call overhead dominates"},
}
GENERATION = {"threads": 4, "decode_tokens_per_s": 51.25, "decode_ms_per_token": 19.51, "decode_ms_p95": 22.4,
              "prefill_tokens_per_s": 812.0, "ttft_ms": 61.7, "method": "greedy, 3 repeats", "peak_rss_mb": 900.5}
LM = {"task": "text-generation", "perplexity": 18.2, "loss": 2.9014, "bits_per_byte": 1.1234,
      "perplexity_detail": {"tokens": 4096, "window": 256, "stride": 128, "method": "sliding window"},
      "size_on_disk_mb": 270.5,
      "cost": {"params": 134_515_008, "weights_mb": 256.6, "generation": GENERATION, "peak_rss_mb": 900.5}}


def _printed(fn, *args) -> list[str]:
    with cli_render.out.capture() as cap:
        fn(*args)
    return cap.get().splitlines()


def test_eval_cost_lines():
    assert _printed(cli_render._print_cost, CLASSIFIER) == [
        "params 4,386,178 (1,234 trained)   weights 16.7 MB   on disk 17.2 MB   peak RSS 612 MB   threads 2",
        "batch  1: model 1.23 ms (p95 1.50), with tokenization 2.50 ms (p95 3.25); 400.0 sentences/s",
        "batch 32: model 20.50 ms (p95 22.75), with tokenization 40.00 ms (p95 45.50); 800.0 sentences/s",
        "method: perf_counter; interleaved",
        "runs with: PyTorch fp32 (oneDNN); CPU ISA: avx2, avx512f",
        "vs parent p1: 1.50x at batch 1, 2.25x at batch 32, accuracy -0.40 pt",
        "  no speed-up at b32: per-call overhead dominates"]


def test_lm_eval_cost_lines():
    assert _printed(cli_render.print_lm_eval, LM, "a1") == [
        "a1 scored 4096 tokens",
        "perplexity 18.200   loss 2.9014 nats/token   1.1234 bits/byte",
        "method: sliding window",
        "params 134,515,008   weights 256.6 MB   on disk 270.5 MB   peak RSS 900 MB   threads 4",
        "decode 51.2 tokens/s (19.5 ms/token, p95 22.4)   prefill 812 tokens/s   time to first token 62 ms",
        "method: greedy, 3 repeats"]


def test_zeroshot_cost_cells():
    acc = {"mean": 0.75, "sd": None, "n": 1}
    k = {"shots": 0, "accuracy": acc, "macro_f1": acc, "acc_norm": acc,
         "cost": {"latency_b1": {"batch_size": 1, "with_tokenization": {"median_ms": 12.34, "p95_ms": 13.0}},
                  "examples_per_s": 88.25}}
    r = {"model": "tiny", "backend": "pytorch", "data": "d.csv", "split": "test", "examples": 8,
         "verbalizers": {"neg": "bad"}, "results": [k, {**k, "shots": 1, "cost": None}],
         "majority": {"label": "neg", "accuracy": 0.5, "macro_f1": 0.33}}
    rows = [line for line in _printed(cli_render.print_zeroshot, r) if line.strip().startswith(("│ 0", "│ 1"))]
    assert [[c.strip() for c in row.strip("│ ").split("│")] for row in rows] == [
        ["0", "1", "75.0", "75.0", "75.0", "88.2", "12.3"], ["1", "1", "75.0", "75.0", "75.0", "-", "-"]]


def _costs(record: dict) -> dict:
    return EvalResult(record).cost.comparable()


def test_frontier_costs_of_new_and_old_records():
    assert _costs(CLASSIFIER) == {"latency_b1": 2.5, "latency_b1_model": 1.234, "latency_b32": 40.0,
                                  "size": 17.25, "memory": 612.4, "params": 4_386_178, "decode_ms": None,
                                  "ttft": None}
    assert _costs(LM) == {"latency_b1": None, "latency_b1_model": None, "latency_b32": None, "size": 270.5,
                          "memory": 900.5, "params": 134_515_008, "decode_ms": 19.51, "ttft": 61.7}
    none = dict.fromkeys(("latency_b1", "latency_b1_model", "latency_b32", "size", "memory", "params",
                          "decode_ms", "ttft"))
    assert _costs({"accuracy": 0.9}) == none  # measured without --speed, or an old record
    assert _costs({"cost": {"latency_b1": {"batch_size": 1}}, "size_on_disk_mb": 3.0}) == {**none, "size": 3.0}


def test_device_and_machine_of_old_records():
    assert EvalResult({"device": "cuda:0", "cost": {"device": "cpu"}}).device == "cuda:0"
    assert EvalResult({"cost": {"device": "cuda:1"}}).device == "cuda:1"  # older: in the cost block only
    assert EvalResult({}).device == "cpu"
    assert EvalResult({"cost": {"machine": {"cpu": "x"}}}).machine == {"cpu": "x"}
    assert EvalResult({"machine": {"cpu": "y"}, "cost": {"machine": {"cpu": "x"}}}).machine == {"cpu": "y"}
    assert EvalResult({}).machine is None
