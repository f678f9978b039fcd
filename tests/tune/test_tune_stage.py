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
    assert re.search(r"tune \[lr\] trial 2/2: val_acc [\d.]+ .* best so far [\d.]+", err)
    assert "tune: round 3/3 (fine)" in err and "tune cleaning:" in err
    # a line per epoch with the time the round has left
    assert re.search(r"tune \[fine\] trial 1/2 \(#\d+\) epoch 1/2: train loss [\d.]+ acc "
                     r"[\d.]+  val loss [\d.]+ acc [\d.]+  [\d.]+ s; round left <= \d+ s", err)
    # 'small' has 12 images per class, under the default 20: its rounds move to 'large'
    assert "round 'lr' moved from subset 'small' to 'large'" in err
    assert "tune baseline: no better than the baseline" in err or \
        "tune baseline: tuning helps" in err

    metrics = json.loads(params.path("tune_metrics").read_text())
    assert metrics["trials"] == {"complete": 6}  # 2 + 2 + 2 trials, nothing failed
    assert metrics["n_trials"] == 6
    assert 0.0 <= metrics["best_score"] <= 1.0
    assert metrics["best_trial"].startswith("fine-")  # the last round decides
    assert set(metrics["best_params"]) >= {"lr", "batch_size", "weight_decay", "dropout",
                                           "optimizer", "momentum", "plateau_factor",
                                           "width", "depth"}
    assert set(metrics["cleaning"]) == {"clean_mean", "clean_std", "raw_mean", "raw_std",
                                        "difference", "exceeds_spread"}
    bl = metrics["baseline"]  # best against crossval's configuration, mean ± std over 2 seeds
    assert bl["seeds"] == 2 and 0 <= bl["baseline_mean"] <= 1 and bl["baseline_std"] >= 0
    assert bl["difference"] == pytest.approx(bl["tuned_mean"] - bl["baseline_mean"])
    assert ("no better than the baseline" in bl["verdict"]) is (not bl["better"])
    assert 0 < metrics["best_se"] < 0.1  # 60 validation images
    assert metrics["fidelity"]["trustworthy"] is None  # 2 re-runs: not enough to judge

    curves = pd.read_csv(params.path("tune_curves"))
    assert list(curves.columns) == CURVE_COLUMNS
    last = curves.groupby("trial")["epoch"].max().to_dict()
    assert sorted(last) == ["fine-0", "fine-1", "joint-0", "joint-1", "lr-0", "lr-1"]
    assert {k: v for k, v in last.items() if not k.startswith("fine")} == {
        "lr-0": 1, "lr-1": 1, "joint-0": 1, "joint-1": 1}  # one-epoch rounds
    assert all(1 <= last[k] <= 2 for k in ("fine-0", "fine-1"))  # 2 epochs at most

    best = yaml.safe_load(params.path("best_params").read_text())
    assert best["params"] == metrics["best_params"]
    assert best["trial"] == metrics["best_trial"] and best["subset"] == "large"

    assert not params.path("tuning_html").exists()  # the tuning_report stage writes it
    summary = json.loads(params.path("tune_summary").read_text())
    assert [r["subset"] for r in summary["rounds"]] == ["large"] * 3
    assert summary["rounds"][0]["sizing"]["requested"] == "small"
    assert "not enough configurations to judge" in summary["fidelity"]["message"]
    assert summary["data"]["subsets"]["large"]["augmented"] == 10
    assert summary["cleaning"]["n_clean"] == 168  # 178 minus the 10 augmented copies
    assert summary["cleaning"]["n_raw"] == 180  # 240 minus 60 val, quarantined included
    fine = [t for t in summary["trials"] if t["round"] == "fine"]
    assert sorted(t["fidelity_of"] for t in fine) == [0, 1]  # round 2's top 2 re-run

    assert tuning_report_step(params) == 0
    html = params.path("tuning_html").read_text()
    assert not re.search(r"(src|href)=\"(https?:)?//", html)  # self-contained
    for title in ("Best configuration", "Best against the baseline", "Diagnoses",
                  "Each hyperparameter", "Subsample fidelity", "Does cleaning help?",
                  "Data used", "Every trial"):
        assert title in html
    assert "moved from subset" in html and " SE" in html
    assert html.count("<svg") >= 2 * 6  # loss + accuracy chart per trial, at least


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
                              "cleaning": {"enabled": False}, "baseline": {"enabled": False}})
    assert run_stage(params) == 0
    assert "NOTE: batch size capped at 8 by 48 training images" in capsys.readouterr().err
    text = params.path("best_params").read_text()
    assert "# NOTE: batch_size 8 was forced by the subset, not chosen" in text
    doc = yaml.safe_load(text)
    assert doc["params"]["batch_size"] == 8 and doc["subset"] == "small"
    assert any("forced by the subset" in n for n in doc["notes"])
    assert tuning_report_step(params) == 0
    assert "forced by the subset" in params.path("tuning_html").read_text()
