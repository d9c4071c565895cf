"""The search for the best configuration: budget, pruning, resume, a budget too small."""

import statistics

import pytest

from supremum.errors import UserError
from supremum.studies.search import SearchConfig, run_search

BASE = {"model": {"name": "tiny-bert"}, "train": {"max_steps": 10, "eval_every": 2, "batch_size": 16}}


def config(data, out, train=None, **kw) -> SearchConfig:
    base = {**BASE, "train": train or BASE["train"], "data": {"path": str(data)}}
    opts = {"methods": ["full"], "space": {"lr": {"full": (1e-9, 1e-2)}, "batch_size": [16]},
            "budget_minutes": 2.0, "output": str(out), "min_resource": 1, "reduction_factor": 2, **kw}
    return SearchConfig(base=base, **opts)


def test_budget_stops_starting_trials(csv_data, tmp_path):
    budget = 0.4  # 24 s: a few 1-2 s trials after the first model load (about 10 s cold)
    r = run_search(config(csv_data, tmp_path / "s", budget_minutes=budget, pruner="none"))
    secs = [t.seconds for t in r.trials]
    assert r.stopped == "budget" and len(r.trials) >= 2
    assert all(t.state == "COMPLETE" for t in r.trials)
    assert r.elapsed_seconds <= budget * 60 + max(secs)
    # it stopped because one more median trial would not have fit
    assert r.elapsed_seconds + statistics.median(secs) > budget * 60
    # only the best trial's artifact is kept
    kept = sorted(p.name for p in (tmp_path / "s").glob("trial-*"))
    best = max((t for t in r.trials), key=lambda t: t.value)
    assert kept == [f"trial-{best.number}"] and r.best_value == best.value


def test_clearly_bad_trials_are_pruned(csv_data, tmp_path):
    cfg = config(csv_data, tmp_path / "s", n_trials=2,
                 enqueue=[{"method": "full", "lr_full": 5e-3}, {"method": "full", "lr_full": 1e-9}])
    r = run_search(cfg)
    assert [t.state for t in r.trials] == ["COMPLETE", "PRUNED"] and r.pruned == 1
    assert r.best_config["train"]["lr"] == 5e-3
    from supremum.store import Store
    from supremum.studies.search import open_study

    run = next(x for x in Store().runs() if x["id"] == r.trials[1].run_id)  # an ordinary run, ended early
    # the pruner's resource is the dev evaluation's number (evaluations at steps 2, 4, ...), not the
    # step: the first rung is min_resource = 1 evaluation, reached at step 2
    assert run["status"] == "pruned" and run["error"] == "pruned at step 2 (dev evaluation 1)"
    assert [sorted(t.intermediate_values) for t in open_study(cfg).trials] == [[1, 2, 3, 4, 5], [1]]
    assert r.stopped == "n_trials"


def test_second_call_resumes_without_redoing(csv_data, tmp_path):
    cfg = config(csv_data, tmp_path / "s", n_trials=2, pruner="none")
    first = run_search(cfg)
    second = run_search(cfg.model_copy(update={"n_trials": 3}))
    assert [t.state for t in first.trials] == ["COMPLETE", "COMPLETE"]
    assert [t.state for t in second.trials] == ["COMPLETE"] * 3
    assert [t.run_id for t in second.trials[:2]] == [t.run_id for t in first.trials]
    assert second.trials[2].run_id not in {t.run_id for t in first.trials}
    again = run_search(cfg.model_copy(update={"n_trials": 3}))  # nothing left to do
    assert [t.run_id for t in again.trials] == [t.run_id for t in second.trials]
    # the trials of every call count, though this call ran none
    assert again.trial_seconds == pytest.approx(sum(t.seconds for t in second.trials), abs=1e-2)
    assert again.trial_seconds > again.elapsed_seconds


def test_budget_below_one_trial_is_one_line_user_error(csv_data, tmp_path):
    cfg = config(csv_data, tmp_path / "s", budget_minutes=1e-4, train={"batch_size": 16})
    with pytest.raises(UserError) as e:
        run_search(cfg)
    msg = str(e.value.message)
    assert "\n" not in msg
    assert msg.startswith("the search budget of 0.0001 min cannot hold one trial (one needs at least ")
    assert msg.endswith(" s of training)") and e.value.hint.startswith("give budget_minutes ")
    assert not (tmp_path / "s" / "trial-0").exists()


def test_on_eval_hook_sees_every_dev_score_after_on_data(csv_data):
    from supremum.train.config import FinetuneConfig
    from supremum.train.finetune import finetune

    seen, data = [], []
    cfg = FinetuneConfig.model_validate({**BASE, "data": {"path": str(csv_data)}})
    res = finetune(cfg, progress=False, on_eval=lambda step, score: seen.append((step, score)),
                   on_data=lambda info: data.append((len(seen), info)))
    assert seen == [(e["step"], e["dev_accuracy"]) for e in res.metrics["evals"]]
    assert [s for s, _ in seen] == [2, 4, 6, 8, 10]
    # the data summary comes once, before the first evaluation (the CLI prints it before training)
    assert data == [(0, res.data_info)] and res.data_info["sizes"]["train"] > 0


def test_diverged_trial_fails_and_the_search_goes_on(csv_data, tmp_path):
    r = run_search(config(csv_data, tmp_path / "s", n_trials=2, pruner="none", space={"lr": {"full": (1e-3, 1e6)}},
                          enqueue=[{"method": "full", "lr_full": 1e6}, {"method": "full", "lr_full": 5e-3}]))
    assert [t.state for t in r.trials] == ["FAIL", "COMPLETE"]
    assert r.trials[0].error.startswith("training diverged at step ") and r.trials[0].run_id is not None
    assert r.best_value == r.trials[1].value and not (tmp_path / "s" / "trial-0").exists()


def test_trial_config_keeps_the_base_settings_it_does_not_tune(csv_data, tmp_path):
    import optuna

    from supremum.studies.search import suggest

    cfg = config(csv_data, tmp_path / "s", methods=["lora"], space={"lr": {"lora": (1e-4, 1e-2)}},
                 train={"max_steps": 10, "max_grad_norm": None, "layer_decay": None})
    ft = suggest(optuna.trial.FixedTrial({"method": "lora", "lora_rank": 16, "lr_lora": 2e-3, "batch_size": 32,
                                          "warmup_ratio": 0.05, "weight_decay": 0.02}), cfg, tmp_path / "s")
    assert ft.train.max_grad_norm is None and ft.train.layer_decay is None and ft.train.max_steps == 10
    assert (ft.method.name, ft.method.r, ft.train.lr, ft.train.batch_size) == ("lora", 16, 2e-3, 32)
    assert ft.output == str(tmp_path / "s" / "trial-0")


def test_trial_left_running_by_a_dead_process_is_failed_on_resume(csv_data, tmp_path):
    from supremum.studies.search import open_study

    cfg = config(csv_data, tmp_path / "s", n_trials=2, pruner="none")
    open_study(cfg).ask()  # as if the process was killed mid-trial
    r = run_search(cfg)
    # the dead trial is failed and does not count toward n_trials: two trials still run
    assert [t.state for t in r.trials] == ["FAIL", "COMPLETE", "COMPLETE"]


def test_an_enqueued_trial_killed_mid_run_is_enqueued_again_on_resume(csv_data, tmp_path):
    from supremum.studies.search import open_study

    mine = {"method": "full", "lr_full": 5e-3}
    cfg = config(csv_data, tmp_path / "s", n_trials=1, pruner="none", enqueue=[mine])
    study = open_study(cfg)
    study.enqueue_trial(mine)
    study.ask()  # the user's configuration started, then the process died
    r = run_search(cfg)
    assert [t.state for t in r.trials] == ["FAIL", "COMPLETE"]
    assert r.trials[1].params.items() >= mine.items(), "the killed configuration is measured, not lost"
    again = run_search(cfg.model_copy(update={"n_trials": 2}))
    assert len(again.trials) == 3
    assert sum(t.params.items() >= mine.items() for t in again.trials) == 1, "a finished one is not enqueued again"


def test_a_study_pruned_by_step_is_not_resumed_with_the_evaluation_pruner(csv_data, tmp_path):
    import optuna

    from supremum.studies.search import open_study

    cfg = config(csv_data, tmp_path / "s")
    (tmp_path / "s").mkdir()
    old = optuna.create_study(study_name=cfg.study_name, storage=f"sqlite:///{tmp_path / 's' / 'study.db'}",
                              direction="maximize")
    t = old.ask()
    t.report(0.8, 217)  # an older version's report: the optimizer step
    old.tell(t, 0.8)
    with pytest.raises(UserError) as e:
        open_study(cfg)
    assert "was pruned by optimizer step" in e.value.message and e.value.hint.startswith("delete ")
    fresh = open_study(config(csv_data, tmp_path / "new"))  # a new study is marked, and opens again
    assert fresh.user_attrs["pruner_resource"] == "dev_evaluation"
    assert open_study(config(csv_data, tmp_path / "new")).user_attrs["pruner_resource"] == "dev_evaluation"
