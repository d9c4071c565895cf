"""Ensembles average member probabilities, reload in a fresh process, and refuse bad members."""

import json

import numpy as np
import pytest
from conftest import logits, logits_fresh_process, run_cli
from test_methods import tune

from supremum.ensemble import make_ensemble
from supremum.errors import UserError
from supremum.store import Store


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_ensemble_averages_probabilities_and_reloads(csv_data, tmp_path):
    a = tune(csv_data, tmp_path / "a", {"name": "full"}, seed=1, lr=3e-3).artifact
    b = tune(csv_data, tmp_path / "b", {"name": "lora"}, seed=2).artifact
    ens = make_ensemble([a, b], tmp_path / "e", weights=[1, 3])
    expected = 0.25 * softmax(logits(a)) + 0.75 * softmax(logits(b))
    np.testing.assert_allclose(softmax(logits(ens)), expected, atol=1e-6)
    np.testing.assert_allclose(logits_fresh_process(ens.path), logits(ens), atol=1e-6)
    assert ens.lineage == "ensemble(full,lora)" and ens.manifest.parents == [a.id, b.id]
    assert {x["method"] for x in Store().artifacts()} >= {"ensemble(full,lora)"}

    m = json.loads(run_cli("eval", str(ens.path), "--repeats", "3", "--json", check=True).stdout)
    assert "ensemble of 2 members" in m["runtime"]["kernels"]
    sizes = [json.loads(run_cli("eval", str(p), "--repeats", "3", "--json", check=True).stdout)["cost"]["params"]
             for p in (a.path, b.path)]
    assert m["cost"]["params"] == sum(sizes)  # the cost is the members' together


def test_ensemble_refuses_mismatched_members(csv_data, tmp_path):
    a = tune(csv_data, tmp_path / "a", {"name": "full"}).artifact
    llama = tune(csv_data, tmp_path / "l", {"name": "full"}, model="tiny-llama").artifact
    with pytest.raises(UserError, match="different tokenizers"):
        make_ensemble([a, llama])
    with pytest.raises(UserError, match="at least two"):
        make_ensemble([a])
    with pytest.raises(UserError, match="one positive weight per member"):
        make_ensemble([a, a], weights=[1])
    bad = run_cli("ensemble", str(a.path), str(a.path), "--weights", "1,x")
    assert bad.returncode == 2 and "--weights '1,x'" in bad.stderr
    done = run_cli("ensemble", str(a.path), str(a.path), "--output", str(tmp_path / "e2"), check=True)
    assert "ensemble(full,full)" in done.stdout
