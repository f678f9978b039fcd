"""The tune stage end to end on tiny synthetic subsets (journal storage): outputs,
progress lines, resuming, workers, and clear errors."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import optuna
import pandas as pd
import pytest
import yaml

from dataqa.cli import main
from dataqa.errors import ParamsError, StageInputError
from dataqa.params import Params
from dataqa.steps.tune import run_stage
from dataqa.steps.tuning_report import run_stage as tuning_report_step
from dataqa.tune.results import CURVE_COLUMNS


def test_stage_writes_every_output(tune_files: Callable[..., Params],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    params = tune_files(n_aug=10)
    assert run_stage(params) == 0
    err = capsys.readouterr().err
    assert re.search(r"tune \[lr\] trial 1/2 \(the start\): val_acc [\d.]+ .* best so far "
                     r"[\d.]+; budget left \d+ s", err)
    assert re.search(r"tune: budget 90 s \(tune.budget_seconds\); measured [\d.]+ s per "
                     r"1,000 training images per epoch", err)
    assert "tune: round 3/3 (fine)" in err and "tune cleaning:" in err
    # a line per epoch with the time the round and the budget have left
    assert re.search(r"tune \[fine\] trial 1/2 \(#\d+\) epoch 1/2: train loss [\d.]+ acc "
                     r"[\d.]+  val loss [\d.]+ acc [\d.]+  [\d.]+ s; round left <= \d+ s, "
                     r"budget left \d+ s", err)
    # 'small' has 12 images per class, under the default 20: its rounds move to 'large',
    # said once for both
    assert err.count("moved from subset 'small' to 'large'") == 1
    assert "rounds 'lr', 'joint' moved from subset 'small'" in err

    metrics = json.loads(params.path("tune_metrics").read_text())
    assert metrics["trials"] == {"complete": 6}  # 2 + 2 + 2 trials, nothing failed
    assert metrics["n_trials"] == 6
    assert 0.0 <= metrics["best_score"] <= 1.0
    assert metrics["best_trial"].startswith("fine-")  # the last round decides
    assert set(metrics["best_params"]) >= {"arch", "schedule", "lr", "batch_size",
                                           "weight_decay", "dropout", "optimizer",
                                           "momentum", "width"}
    summary = json.loads(params.path("tune_summary").read_text())
    start = summary["start"]["config"]
    assert start["arch"] == "small_cnn" and start["width"] == 8  # crossval's configuration
    # the start is the first trial of every round, ranked like any other
    for rd in ("lr", "joint", "fine"):
        first = next(t for t in summary["trials"] if t["round"] == rd and t["number"] == 0)
        assert first["start"] and {k: first["config"][k] for k in start} == start
    assert metrics["choice"] in ("start", "tuned")
    best = yaml.safe_load(params.path("best_params").read_text())
    text = params.path("best_params").read_text()
    assert text.splitlines()[0] == "# " + summary["headline"]
    if metrics["choice"] == "tuned":  # only when it beat the start beyond the seed spread
        bl = metrics["baseline"]
        assert bl["better"] and bl["difference"] > bl["spread"]
        assert best["params"] == metrics["best_params"]
    else:
        assert best["params"] == start and best["epochs"] == 4
    assert best["choice"] == metrics["choice"] and best["why"]
    cmp = summary["baseline"]
    if not cmp.get("same"):  # the start vs the best tuned, 2 fresh seeds each, 2 epochs
        assert cmp["a"]["name"] == "start" and cmp["b"]["name"] == "tuned"
        assert cmp["a"]["n"] == 2 and cmp["epochs"] == 2
    assert 0 < metrics["best_se"] < 0.1  # 60 validation images
    assert metrics["fidelity"]["n"] >= 1  # the start's own re-run in round 3 at least
    assert metrics["cleaning"]["seeds"] == 2

    curves = pd.read_csv(params.path("tune_curves"))
    assert list(curves.columns) == CURVE_COLUMNS
    last = curves.groupby("trial")["epoch"].max().to_dict()
    assert sorted(last) == ["fine-0", "fine-1", "joint-0", "joint-1", "lr-0", "lr-1"]
    assert {k: v for k, v in last.items() if not k.startswith("fine")} == {
        "lr-0": 1, "lr-1": 1, "joint-0": 1, "joint-1": 1}  # one-epoch rounds
    assert all(1 <= last[k] <= 2 for k in ("fine-0", "fine-1"))  # 2 epochs at most

    assert not params.path("tuning_html").exists()  # the tuning_report stage writes it
    assert [r["subset"] for r in summary["rounds"]] == ["large"] * 3
    assert summary["rounds"][0]["sizing"]["requested"] == "small"
    assert "not enough configurations to judge" in summary["fidelity"]["message"]
    assert summary["data"]["subsets"]["large"]["augmented"] == 10
    cl = summary["cleaning"]
    assert cl["n_train"] == {"clean": 168, "unfiltered": 180}  # 178 - 10 copies; 240 - 60 val
    assert cl["configs"]["clean"] == best["params"]  # the configuration to use
    fine = [t for t in summary["trials"] if t["round"] == "fine"]
    assert {t["fidelity_of"] for t in fine} <= {0, 1}  # round 2's trials re-run

    assert tuning_report_step(params) == 0
    html = params.path("tuning_html").read_text()
    assert not re.search(r"(src|href)=\"(https?:)?//", html)  # self-contained
    main_part = html[html.index("<main>"):]
    assert summary["headline"].split(":")[0] in main_part[:800]  # the answer comes first
    for title in ("What to use", "Comparisons", "Did tuning help?", "Does cleaning help?",
                  "Best trial", "Diagnoses", "Each hyperparameter", "Subsample fidelity",
                  "Data used", "Every trial"):
        assert title in html
    assert html.count("moved from subset") == 1 and " SE" in html
    assert html.count("<svg") >= 2 * 6  # loss + accuracy chart per trial, at least


def test_a_previous_best_params_is_the_start(tune_files: Callable[..., Params],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    params = tune_files(tune={"cleaning": {"enabled": False}, "baseline": {"enabled": False},
                              "rounds": {"joint": {"trials": 0}, "fine": {"trials": 0}}})
    prev = params.root / "previous.yaml"
    prev.write_text("# from an earlier run\nchoice: tuned\nepochs: 3\nparams:\n"
                    "  arch: small_resnet\n  width: 8\n  depth: 1\n  lr: 0.01\n"
                    "  optimizer: sgd\n  schedule: plateau\n")
    params = params.replace(tune=params.tune.replace(start="previous.yaml"))
    assert run_stage(params) == 0
    summary = json.loads(params.path("tune_summary").read_text())
    start = summary["start"]
    assert start["source"] == "previous.yaml (tune.start)" and start["epochs"] == 3
    assert start["config"]["arch"] == "small_resnet" and start["config"]["lr"] == 0.01
    assert start["config"]["batch_size"] == 16  # not in the file: crossval's
    lr0 = next(t for t in summary["trials"] if t["key"] == "lr-0")
    assert lr0["start"] and lr0["config"]["schedule"] == "plateau"
    bad = params.root / "bad.yaml"
    bad.write_text("params:\n  lr: fast\n")
    with pytest.raises(ParamsError, match=r"bad.yaml: lr: expected float, got 'fast'"):
        run_stage(params.replace(tune=params.tune.replace(start="bad.yaml")))
    with pytest.raises(ParamsError, match=r"tune.start: nothing.yaml: no such file"):
        run_stage(params.replace(tune=params.tune.replace(start="nothing.yaml")))


def test_a_tuned_configuration_replaces_a_bad_start_only_by_beating_it(
        tune_files: Callable[..., Params]) -> None:
    """A start that cannot learn in the budget (SGD at lr 1e-6, no momentum): the search
    finds better, the comparison confirms it beyond the seed spread, and only then does
    best_params.yaml hold the tuned configuration."""
    params = tune_files(tune={"cleaning": {"enabled": False}, "rounds": {
        "lr": {"trials": 3, "epochs": 4}, "joint": {"trials": 3, "epochs": 4},
        "fine": {"trials": 2, "epochs": 6}}})
    (params.root / "slow.yaml").write_text("lr: 1.0e-6\noptimizer: sgd\nmomentum: 0.0\n"
                                           "schedule: constant\n")
    params = params.replace(tune=params.tune.replace(start="slow.yaml"))
    assert run_stage(params) == 0
    summary = json.loads(params.path("tune_summary").read_text())
    cmp = summary["baseline"]
    assert cmp["a"]["name"] == "start" and cmp["better"] and cmp["difference"] > cmp["spread"]
    assert summary["decision"]["choice"] == "tuned"
    assert summary["headline"].startswith("Tuning helped: +")
    best = yaml.safe_load(params.path("best_params").read_text())
    assert best["choice"] == "tuned" and best["params"] == summary["best"]["config"]
    assert best["score"] == pytest.approx(cmp["b"]["mean"])


def test_rerun_resumes_the_finished_study(tune_files: Callable[..., Params]) -> None:
    params = tune_files(tune={"cleaning": {"enabled": False}})
    assert run_stage(params) == 0
    first = json.loads(params.path("tune_metrics").read_text())
    assert run_stage(params) == 0  # same params: the stored trials are reused, none added
    again = json.loads(params.path("tune_metrics").read_text())
    assert again["n_trials"] == first["n_trials"] == 6
    assert again["best_params"] == first["best_params"]


def test_other_params_on_the_same_study_are_refused(tune_files: Callable[..., Params]) -> None:
    params = tune_files(tune={"cleaning": {"enabled": False},
                              "rounds": {"lr": {"trials": 1, "epochs": 1, "subset": "small"},
                                         "joint": {"trials": 0}, "fine": {"trials": 0}}})
    run_stage(params)
    changed = params.replace(tune=params.tune.replace(space=params.tune.space.replace(lr_max=0.5)))
    with pytest.raises(ParamsError, match=r"study 'dataqa-lr' .* other tune/engine params "
                                          r"\(differing: tune.space.lr_max\)"):
        run_stage(changed)


def test_worker_runs_its_trials_only(tune_files: Callable[..., Params]) -> None:
    params = tune_files()
    assert main(["tune", "--worker", "--n-trials", "3", "--params",
                 str(params.root / "params.yaml")]) == 0
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(
        str(params.path("tune_dir") / "journal.log")))
    counts = {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(storage)}
    assert counts == {"dataqa-lr": 2, "dataqa-joint": 2}  # 3 ran; joint's 2 enqueued
    lr = optuna.load_study(study_name="dataqa-lr", storage=storage)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in lr.trials)
    assert not params.path("tune_metrics").exists()  # workers write no outputs


def test_missing_subset_names_the_available_ones(tune_files: Callable[..., Params]) -> None:
    params = tune_files(tune={"rounds": {"lr": {"subset": "p1"}}})
    with pytest.raises(StageInputError, match=r"subset\(s\) \['p1'\] not found .* available: "
                                              r"large, small"):
        run_stage(params)


def test_bad_storage_url_is_a_params_error(tune_files: Callable[..., Params]) -> None:
    params = tune_files(tune={"storage": "postgres-at-home"})
    with pytest.raises(ParamsError, match="tune.storage: 'postgres-at-home' is not a "
                                          "database URL"):
        run_stage(params)


def test_report_command_rerenders_from_the_summary(tune_files: Callable[..., Params]) -> None:
    params = tune_files(tune={"cleaning": {"enabled": False}})
    run_stage(params)
    assert not params.path("tuning_html").exists()
    for argv in (["report", "--kind", "tuning"], ["tuning_report"]):
        assert main([*argv, "--params", str(params.root / "params.yaml")]) == 0
        assert "dataqa tuning report" in params.path("tuning_html").read_text()
        params.path("tuning_html").unlink()


def test_a_batch_size_forced_by_a_small_subset_is_noted(tune_files: Callable[..., Params],
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    """Sizing switched off (1 image per class): the rounds stay on 'small' (48 images),
    which caps the batch at 8 while params allow 32; best_params.yaml says so."""
    params = tune_files(tune={"sizing": {"min_train_per_class": 1, "min_val_per_class": 1},
                              "rounds": {"fine": {"trials": 0}},
                              "cleaning": {"enabled": False}, "baseline": {"enabled": False}},
                        crossval={"batch_size": 8})  # the start's batch: the cap too
    assert run_stage(params) == 0
    assert "NOTE: batch size capped at 8 by 48 training images" in capsys.readouterr().err
    text = params.path("best_params").read_text()
    doc = yaml.safe_load(text)
    assert doc["choice"] == "tuned"  # unchecked (baseline off): the best trial
    assert "# NOTE: batch_size 8 was forced by the subset, not chosen" in text
    assert doc["params"]["batch_size"] == 8
    assert any("forced by the subset" in n for n in doc["notes"])
    assert tuning_report_step(params) == 0
    assert "forced by the subset" in params.path("tuning_html").read_text()
