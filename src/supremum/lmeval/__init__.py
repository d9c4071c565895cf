"""lm-evaluation-harness (EleutherAI's `lm_eval`) over supremum's models.

`adapter.SupremumLM` is lm-eval model type `supremum` (registered when `supremum.lmeval.adapter`
is imported): any causal-LM artifact or base model, on the backend supremum loads it with
(PyTorch, or llama.cpp for GGUF), answering `loglikelihood`, `loglikelihood_rolling` and
`generate_until`. `run.lm_eval` runs tasks through `lm_eval.simple_evaluate` and stores one run
per task (kind "lm-eval") that `supremum frontier` lists. lm-eval 0.4 finds models through its
registry only (no entry points), so its own CLI sees `supremum` when started as
`python -m supremum.lmeval ...` (this package's launcher: registers, then runs lm-eval's CLI).
"""
