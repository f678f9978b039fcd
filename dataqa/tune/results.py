"""Read the rounds' studies back into one JSON-able summary, and write the outputs.

The summary (``paths.tune_summary``) is what the tuning report renders; the report
never recomputes anything. Outputs: DVC metrics (``paths.tune_metrics``), per-epoch
curves as long CSV for ``dvc plots`` (``paths.tune_curves``), the best configuration
(``paths.best_params``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
import pandas as pd
import yaml
from optuna.trial import FrozenTrial, TrialState

from dataqa.io import write_json, write_text
from dataqa.params import Params, TuneDiagnose
from dataqa.tune.diagnose import diagnose_trial, find_edges
from dataqa.tune.fidelity import get_fidelity
from dataqa.tune.space import RoundPlan, Space

STATE_NAMES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed",
               "RUNNING": "running", "WAITING": "waiting"}
CURVE_COLUMNS = ["trial", "round", "number", "state", "status", "epoch", "train_loss",
                 "train_acc", "val_loss", "val_acc", "lr", "seconds", "train_loss_std",
                 "batch_size"]


def trial_record(t: FrozenTrial, plan: RoundPlan, th: TuneDiagnose) -> dict[str, Any]:
    """One trial as the report sees it: identity, state, score, configuration, curves,
    diagnoses."""
    history = list(t.user_attrs.get("history", []))
    status = str(t.user_attrs.get("status", "running"))
    if t.state == TrialState.FAIL and status != "error":
        status = "failed"  # its worker died (or was killed) before it finished
    value = t.value if t.state == TrialState.COMPLETE else (
        max(t.intermediate_values.values()) if t.intermediate_values else None)
    diag = diagnose_trial(history, status, th, message=str(t.user_attrs.get("message", "")))
    return {
        "key": f"{plan.name}-{t.number}",
        "round": plan.name,
        "round_index": plan.index,
        "number": t.number,
        "state": t.state.name,
        "status": status,
        "message": t.user_attrs.get("message", ""),
        "value": None if value is None or not math.isfinite(value) else float(value),
        "params": dict(t.params),
        "config": dict(t.user_attrs.get("config", {})),
        "seed": t.user_attrs.get("seed"),
        "worker": t.user_attrs.get("worker"),
        "seconds": t.user_attrs.get("seconds"),
        "images_per_s": t.user_attrs.get("images_per_s"),
        "fidelity_of": t.user_attrs.get("fidelity_of"),
        "epochs_run": len(history),
        "history": history,
        "diagnoses": [d.to_json() for d in diag],
    }


def best_of(records: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """Highest value among COMPLETE trials; ties go to the lower final val loss."""
    done = [r for r in records if r["state"] == "COMPLETE" and r["value"] is not None]
    if not done:
        return None

    def key(r: Mapping[str, Any]) -> tuple[float, float]:
        losses = [h["val_loss"] for h in r["history"] if h.get("val_loss") is not None]
        return (r["value"], -(min(losses) if losses else math.inf))

    return max(done, key=key)


def top_of(records: Sequence[Mapping[str, Any]], k: int) -> list[Mapping[str, Any]]:
    done = [r for r in records if r["state"] == "COMPLETE" and r["value"] is not None]
    return sorted(done, key=lambda r: -r["value"])[:k]


def round_summary(plan: RoundPlan, study: optuna.Study | None, space: Space | None,
                  records: Sequence[Mapping[str, Any]], *, n_train: int,
                  th: TuneDiagnose) -> dict[str, Any]:
    best = best_of(records)
    edges = [] if best is None or space is None else [
        d.to_json() for d in find_edges(space, best["config"], fraction=th.edge_fraction)]
    return {
        "index": plan.index, "name": plan.name, "subset": plan.subset, "n_train": n_train,
        "epochs": plan.epochs, "trials_planned": plan.trials, "sampler": plan.sampler,
        "study": None if study is None else study.study_name,
        "space": None if space is None else space.to_json(),
        "counts": dict(Counter(r["state"] for r in records)),
        "statuses": dict(Counter(r["status"] for r in records)),
        "best": None if best is None else {"key": best["key"], "number": best["number"],
                                           "value": best["value"], "config": best["config"]},
        "edges": edges,
    }


def fidelity_of_rounds(joint: Sequence[Mapping[str, Any]], fine: Sequence[Mapping[str, Any]],
                       *, min_spearman: float, small: str, large: str) -> dict[str, Any]:
    """Pairs (round-2 score, round-3 score) of the configurations re-run in round 3."""
    by_number = {r["number"]: r for r in joint}
    small_scores, large_scores, pairs = [], [], []
    for r in fine:
        src = r.get("fidelity_of")
        if src is None or src not in by_number or r["state"] != "COMPLETE":
            continue
        a, b = by_number[src]["value"], r["value"]
        if a is None or b is None:
            continue
        small_scores.append(a)
        large_scores.append(b)
        pairs.append({"joint": by_number[src]["key"], "fine": r["key"], "small": a, "large": b})
    out = get_fidelity(small_scores, large_scores, min_spearman=min_spearman,
                       small_name=small, large_name=large)
    out["pairs"] = pairs
    return out


def study_diagnoses(rounds: Sequence[Mapping[str, Any]],
                    records: Sequence[Mapping[str, Any]],
                    best: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The search's diagnoses for the report: the best trial's own, every round's edge
    verdicts, and how many trials diverged or stalled in each round."""
    out: list[dict[str, Any]] = []
    if best is not None:
        out += [dict(d, scope=f"best trial {best['key']}") for d in best["diagnoses"]]
    for rd in rounds:
        out += [dict(d, scope=f"round {rd['index']} ({rd['name']})") for d in rd["edges"]]
    for rd in rounds:
        mine = [r for r in records if r["round"] == rd["name"]]
        for status in ("diverged", "stalled"):
            hit = [r for r in mine if r["status"] == status]
            if not hit:
                continue
            lrs = sorted(float(r["config"]["lr"]) for r in hit if "lr" in r["config"])
            where = f" at lr {lrs[0]:.2g}..{lrs[-1]:.2g}" if lrs else ""
            first = next(d for d in hit[0]["diagnoses"] if d["code"] == status) \
                if any(d["code"] == status for d in hit[0]["diagnoses"]) else None
            out.append({"code": status, "scope": f"round {rd['index']} ({rd['name']})",
                        "message": f"{len(hit)} of {len(mine)} trials {status}{where}",
                        "remedy": first["remedy"] if first else "", "param": "lr",
                        "side": None})
    return out


def curves_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Long table: one row per (trial, epoch)."""
    rows = []
    for r in records:
        for h in r["history"]:
            rows.append({"trial": r["key"], "round": r["round"], "number": r["number"],
                         "state": r["state"], "status": r["status"],
                         **{k: h.get(k) for k in CURVE_COLUMNS[5:]}})
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def metrics_of(summary: Mapping[str, Any]) -> dict[str, Any]:
    """DVC metrics: best score and params, trial counts by state and by engine status,
    fidelity and cleaning figures."""
    best = summary.get("best")
    records = summary["trials"]
    out: dict[str, Any] = {
        "best_score": None if best is None else best["value"],
        "best_trial": None if best is None else best["key"],
        "best_params": {} if best is None else best["config"],
        "trials": dict(Counter(STATE_NAMES.get(r["state"], r["state"].lower())
                               for r in records)),
        "statuses": dict(Counter(r["status"] for r in records)),
        "n_trials": len(records),
        "seconds": summary.get("seconds"),
        "device": summary.get("device"),
    }
    fid = summary.get("fidelity")
    if fid:
        out["fidelity"] = {"spearman": fid.get("rho"), "n": fid.get("n"),
                           "trustworthy": fid.get("trustworthy")}
    cl = summary.get("cleaning")
    if cl and cl.get("clean"):
        out["cleaning"] = {"clean_mean": cl["clean"]["mean"], "clean_std": cl["clean"]["std"],
                           "raw_mean": cl["raw"]["mean"], "raw_std": cl["raw"]["std"],
                           "difference": cl["difference"], "exceeds_spread": cl["exceeds_spread"]}
    return out


def best_params_yaml(summary: Mapping[str, Any]) -> str:
    best = summary.get("best")
    if best is None:
        return "# no trial completed: no best configuration\n{}\n"
    doc = {"score": best["value"], "metric": "val_acc", "trial": best["key"],
           "round": best["round"], "subset": best["subset"], "epochs": best["epochs"],
           "seed": best["seed"], "params": best["config"]}
    head = (f"# best configuration of the tuning run: trial {best['key']}, validation "
            f"accuracy {best['value']:.4f} on subset '{best['subset']}'\n")
    return head + yaml.safe_dump(doc, sort_keys=False)


def write_outputs(params: Params, summary: Mapping[str, Any]) -> None:
    """Summary JSON, metrics JSON, curves CSV and best-params YAML, atomically."""
    from dataqa.io import atomic_path

    write_json(params.path("tune_summary"), summary)
    from dataqa.headline import write_tune_headline

    metrics = metrics_of(summary)
    write_json(params.path("tune_metrics"), metrics)
    write_tune_headline(params, metrics)
    with atomic_path(params.path("tune_curves"), suffix=".csv") as tmp:
        curves_frame(summary["trials"]).to_csv(tmp, index=False, float_format="%.6g")
    write_text(params.path("best_params"), best_params_yaml(summary))
