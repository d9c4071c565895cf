import json
import os
import subprocess
import sys

import pytest
from conftest import run_cli


def test_finetune_eval_runs_show_end_to_end(csv_data, tmp_path):
    out = tmp_path / "models" / "reviews"
    ft = run_cli("finetune", "--model", "tiny-bert", "--data", str(csv_data), "--text-column", "text",
                 "--label-column", "label", "--max-steps", "30", "--lr", "3e-3", "--batch-size", "8",
                 "--output", str(out), "--json", check=True)
    res = json.loads(ft.stdout)
    assert res["artifact"] == str(out) and (out / "manifest.json").exists()
    assert res["data"]["splits_made"]["test"].startswith("10% of the training file, stratified")

    ev = run_cli("eval", str(out), "--data", str(csv_data), "--split", "test", "--json", "--repeats", "3",
                 check=True)
    m = json.loads(ev.stdout)  # stdout is pure JSON
    assert m["examples"] == 24 and 0 <= m["accuracy"] <= 1
    assert set(m["per_class"]) == {"neg", "pos"} and len(m["confusion_matrix"]) == 2
    cost = m["cost"]
    for key in ("latency_b1", "latency_b32"):
        assert cost[key]["model_only"]["median_ms"] > 0 and cost[key]["with_tokenization"]["p95_ms"] > 0
    assert cost["params"] > 0 and cost["threads"] >= 1 and m["size_on_disk_mb"] > 0
    assert m["machine"]["cores"] >= 1 and "warm-up" in cost["method"]

    # by id, human output
    ev2 = run_cli("eval", res["artifact_id"][:8], "--split", "dev", "--no-speed", check=True)
    assert "accuracy" in ev2.stdout and "macro-F1" in ev2.stdout

    # a bad value in the data settings the library builds over the artifact's: the same one line
    bad = run_cli("eval", str(out), "--max-length", "4", "--no-speed")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr
    assert bad.stderr.strip() == ("error: --max-length 4: Input should be greater than or equal to 8 "
                                  "(see `supremum eval --help`)")

    runs = json.loads(run_cli("runs", "--json", check=True).stdout)
    assert [r["kind"] for r in runs] == ["finetune", "eval", "eval"]
    assert all(r["status"] == "finished" for r in runs)
    only = json.loads(run_cli("runs", "--json", "--kind", "eval", "--sort", "accuracy").stdout)
    assert len(only) == 2
    table = run_cli("runs", check=True).stdout
    assert res["run_id"][:6] in table

    shown = json.loads(run_cli("show", res["run_id"], check=True).stdout)
    assert shown["run"]["config"]["train"]["max_steps"] == 30
    art = json.loads(run_cli("show", res["artifact_id"], check=True).stdout)
    assert art["artifact"]["id"] == res["artifact_id"] and "test" in " ".join(art["metrics"])


def test_recipe_with_override(tmp_path, csv_data):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"model:\n  name: tiny-bert\ndata:\n  path: {csv_data}\ntrain:\n  max_steps: 3\n")
    ft = run_cli("finetune", "--recipe", str(recipe), "train.lr=5e-4", "method.name=full", "--json",
                 check=True)
    res = json.loads(ft.stdout)
    shown = json.loads(run_cli("show", res["run_id"], check=True).stdout)
    assert shown["run"]["config"]["train"]["lr"] == 5e-4 and res["metrics"]["steps"] == 3


def test_models_lists_aliases():
    out = run_cli("models", check=True).stdout
    assert "minilm-l6" in out and "tiny-bert" in out and "tiny-llama" in out


@pytest.mark.parametrize("args, message", [
    (["finetune", "--model", "tiny-bert", "--data", "missing.csv"], "missing.csv: no such file"),
    (["finetune", "--model", "tiny-bert", "--data", "{csv}", "--label-column", "stars"],
     "no label column 'stars'"),
    (["finetune", "--model", "no-such-org/no-such-model", "--data", "{csv}"], "nor reachable"),
    (["finetune", "--model", "tiny-bert", "--data", "{csv}", "train.lrr=1"], "unknown key 'train.lrr'"),
    (["finetune", "--model", "tiny-bert", "--data", "{csv}", "--method", "magic"], "unknown method 'magic'"),
    (["finetune", "--model", "tiny-bert", "--data", "{csv}", "method.r=4", "method.alpha=8"],
     "command line: method.r, method.alpha given without method.name (the keys of method depend on which one it "
     "is: set method.name; see `supremum finetune --help`)"),
    (["finetune", "--model", "tiny-bert"], "no training data given"),
    (["finetune", "--data", "$SUPREMUM_NOT_SET/sst2"], "unset environment variable"),
    (["eval", "{tmp}"], "not a supremum artifact"),
    (["eval", "abc123"], "neither an artifact directory nor an artifact or run id"),
    (["show", "abc123"], "no run or artifact with id 'abc123'"),
])
def test_user_errors_are_one_line_exit_2(args, message, csv_data, tmp_path):
    args = [a.replace("{csv}", str(csv_data)).replace("{tmp}", str(tmp_path)) for a in args]
    proc = run_cli(*args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_debug_shows_traceback(tmp_path):
    proc = run_cli("--debug", "finetune", "--model", "tiny-bert", "--data", str(tmp_path / "x.csv"))
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "UserError" in proc.stderr


@pytest.mark.parametrize("args, line", [
    (["finetune", "--epochs", "many"], "error: Invalid value for '--epochs': Input should be a valid number, "
     "unable to parse string as a number (see `supremum finetune --help`)"),
    (["finetune", "--lr", "abc"], "error: Invalid value for '--lr': Input should be a valid number, unable to "
     "parse string as a number (see `supremum finetune --help`)"),
    (["eval", "x", "--nosuch"], "error: No such option: --nosuch (see `supremum eval --help`)"),
    (["nosuchcmd"], "error: No such command 'nosuchcmd'. (see `supremum --help`)"),
])
def test_bad_flag_is_a_one_line_usage_error(args, line):
    proc = run_cli(*args)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [line], proc.stderr


PIPELINE = "name: p\ndata: {{path: {csv}}}\nstages:\n  - id: ft\n    finetune: {{}}\n"
COMPARE = "name: c\ndata: {{path: {csv}}}\nmethods: [full]\n"
GE = "Input should be greater than or equal to"


@pytest.mark.parametrize("args, message", [
    (["eval", "tiny-llama", "--data", "{txt}", "--repeats", "2"], f"--repeats 2: {GE} 3"),
    (["eval", "tiny-llama", "--data", "{txt}", "--window", "1"], f"--window 1: {GE} 2"),
    (["eval", "tiny-llama", "--data", "{txt}", "--max-length", "4"], f"--max-length 4: {GE} 8"),
    (["eval", "{tmp}", "--new-tokens", "1"], f"--new-tokens 1: {GE} 2"),
    (["finetune", "--data", "{csv}", "--epochs", "0"], "--epochs 0.0: Input should be greater than 0"),
    (["finetune", "--data", "{csv}", "--max-length", "4"], f"--max-length 4: {GE} 8"),
    (["finetune", "--data", "{csv}", "train.batch_size=0"], f"command line: 'train.batch_size': {GE} 1 (got 0"),
    (["compress", "{tmp}", "--method", "prune-magnitude", "sparsity=1.5"],
     "command line: 'sparsity': Input should be less than 1 (got 1.5"),
    (["serve", "{tmp}", "--port", "70000"], "--port 70000: Input should be less than or equal to 65535"),
    (["serve", "{tmp}", "--limit", "max_texts=0"], f"command line: 'max_texts': {GE} 1 (got 0"),
    (["scale", "--source", "markov:order=2,vocab=16", "--ctx", "4"], f"--ctx 4: {GE} 8"),
    (["curve", "--data", "{csv}", "--bootstrap", "-1"], f"--bootstrap -1: {GE} 0"),
    # a repeated seed would train the same cell twice and count as one more seed in every spread
    (["curve", "--data", "{csv}", "--seeds", "0,0,1"], "--seeds 0,0,1: seed 0 is given more than once: give "
     "each seed once"),
    (["ceiling", "--data", "{csv}", "--budget-minutes", "1", "--seeds", "1,2,1"], "--seeds 1,2,1: seed 1 is "
     "given more than once"),
    (["labels", "--data", "{csv}", "--seeds", "2,2"], "--seeds 2,2: seed 2 is given more than once"),
    (["run", "{pipeline}", "--jobs", "0"], f"--jobs 0: {GE} 1"),
    (["compare", "{compare}", "--jobs", "0"], f"--jobs 0: {GE} 1"),
    (["pick", "--max-latency-ms", "-5"], "--max-latency-ms -5.0: Input should be greater than 0"),
    (["pick", "--max-size-mb", "0"], "--max-size-mb 0.0: Input should be greater than 0"),
    (["pick", "--max-perplexity", "0"], "--max-perplexity 0.0: Input should be greater than 0"),
    (["pick", "--min-accuracy", "1.5"], "--min-accuracy 1.5: Input should be less than or equal to 1"),
], ids=lambda a: " ".join(a[:1] + a[-2:]) if isinstance(a, list) else "")
def test_option_values_out_of_range_are_one_line_exit_2(args, message, csv_data, tmp_path):
    """Every command builds its configs through one path (cli_config -> recipe.build); a value
    out of range names the flag and the allowed range, with no traceback."""
    txt = tmp_path / "corpus.txt"
    txt.write_text("a small corpus of plain text\n" * 20, encoding="utf-8")
    files = {"{csv}": str(csv_data), "{txt}": str(txt), "{tmp}": str(tmp_path)}
    for name, text in (("{pipeline}", PIPELINE), ("{compare}", COMPARE)):
        path = tmp_path / f"{name[1:-1]}.yaml"
        path.write_text(text.format(csv=csv_data), encoding="utf-8")
        files[name] = str(path)
    proc = run_cli(*[files.get(a, a) for a in args])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), proc.stderr
    assert lines[0].endswith(f"see `supremum {args[0]} --help`)"), proc.stderr


def test_flag_naming_a_key_that_the_method_lacks():
    proc = run_cli("compress", "x", "--method", "int8-weight", "--max-drop", "1")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("error: --max-drop: unknown key 'max_drop' (valid keys: "), proc.stderr


NO_HEAVY = """
import runpy, sys
sys.argv = ["supremum", *sys.argv[1:]]
try:
    runpy.run_module("supremum", run_name="__main__")
except SystemExit as e:
    code = e.code
heavy = sorted(m for m in ("torch", "pandas", "sklearn", "transformers") if m in sys.modules)
print("HEAVY", heavy, file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["--help"], ["runs"], ["runs", "--json"], ["models"], ["finetune", "--help"],
                                  ["eval", "--help"], ["zeroshot", "--help"]])
def test_help_and_runs_import_no_torch(args, tmp_path):
    """`supremum --help`, `supremum runs` and the help of finetune and eval stay fast: no torch,
    pandas, scikit-learn or transformers (help computed from the schema is filled in only when a
    command's help is shown; the method configs it lists import torch only when a method runs)."""
    proc = subprocess.run([sys.executable, "-c", NO_HEAVY, *args], capture_output=True, text=True,
                          env={**os.environ, "SUPREMUM_HOME": str(tmp_path / "home")})
    assert "HEAVY []" in proc.stderr, proc.stderr
    assert proc.stdout.strip(), proc.stderr


EVERY_HELP = """
import contextlib, io, sys
from supremum.cli import app, main
names = [c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands]
for name in names:
    sys.argv = ["supremum", name, "--help"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main()
    heavy = sorted(m for m in ("torch", "pandas", "sklearn", "transformers") if m in sys.modules)
    print(name, len(out.getvalue()), heavy)
"""


def test_every_command_help_imports_no_torch(tmp_path):
    """The help of every command (the list is read from the app, so a new command is covered)
    loads no torch, pandas, scikit-learn or transformers: shown one after another in one process,
    the first command whose help pulls one in is named."""
    proc = subprocess.run([sys.executable, "-c", EVERY_HELP], capture_output=True, text=True,
                          env={**os.environ, "SUPREMUM_HOME": str(tmp_path / "home")})
    assert proc.returncode == 0, proc.stderr
    shown = [line.split(" ", 2) for line in proc.stdout.splitlines()]
    names = {name for name, *_ in shown}
    assert len(shown) >= 24 and {"compress", "finetune", "eval", "serve", "runs", "report"} <= names
    for name, chars, heavy in shown:
        assert int(chars) > 200, f"{name} --help printed {chars} characters"
        assert heavy == "[]", f"supremum {name} --help imports {heavy}"


def test_import_time_library_noise_is_silenced_and_other_warnings_kept():
    """PEFT imports bitsandbytes (when installed) and torchao, which log at import about optional
    kernels they cannot load: nothing a user can act on, printed on every command that loads PEFT.
    The exact bitsandbytes message is emitted here too, so the check holds on machines without it;
    another warning of the same logger still reaches stderr."""
    code = ("import logging, supremum, peft\n"
            "log = logging.getLogger('bitsandbytes.backends.cpu.ops')\n"
            "log.warning('Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please make sure you "
            "already `pip install kernels` and the kernels >= 0.11.1', \"No module named 'kernels'\")\n"
            "log.warning('a real bitsandbytes warning')\n"
            "logging.getLogger('torchao').warning('Failed to load /x/torchao/_C_mxfp8.so: Could not load')\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0 and p.stderr.splitlines() == ["a real bitsandbytes warning"], p.stderr
    help_ = run_cli("--help")
    assert help_.returncode == 0 and help_.stderr == ""


def test_every_command_reading_labelled_data_takes_drop_empty_and_delimiter():
    """Their data errors suggest --drop-empty (data.drop_empty) and --delimiter: each must accept
    them (compress --data lacked both)."""
    import typer

    from supremum.cli import app

    commands = typer.main.get_command(app).commands
    readers = ["finetune", "eval", "zeroshot", "explain", "calibrate", "sensitivity", "curve", "label", "labels",
               "ceiling", "compress"]
    for flag in ("--drop-empty", "--delimiter"):
        missing = [c for c in readers if flag not in {o for p in commands[c].params for o in p.opts}]
        assert missing == [], flag
