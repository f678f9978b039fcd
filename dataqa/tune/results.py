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
from dataqa.tune.trial import standard_error

STATE_NAMES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed",
               "RUNNING": "running", "WAITING": "waiting"}
CURVE_COLUMNS = ["trial", "round", "number", "state", "status", "epoch", "train_loss",
                 "train_acc", "val_loss", "val_acc", "lr", "seconds", "train_loss_std",
                 "batch_size"]


def trial_record(t: FrozenTrial, plan: RoundPlan, th: TuneDiagnose, *,
                 n_classes: int) -> dict[str, Any]:
    """One trial as the report sees it: identity, state, score (with its validation
    standard error), configuration, curves, diagnoses."""
    history = list(t.user_attrs.get("history", []))
    status = str(t.user_attrs.get("status", "running"))
    if t.state == TrialState.FAIL and status != "error":
        status = "failed"  # its worker died (or was killed) before it finished
    value = t.value if t.state == TrialState.COMPLETE else (
        max(t.intermediate_values.values()) if t.intermediate_values else None)
    diag = diagnose_trial(history, status, th, n_classes=n_classes,
                          message=str(t.user_attrs.get("message", "")))
    n_val = int(t.user_attrs.get("n_val", 0) or 0)
    value = None if value is None or not math.isfinite(value) else float(value)
    return {
        "key": f"{plan.name}-{t.number}",
        "round": plan.name,
        "round_index": plan.index,
        "number": t.number,
        "state": t.state.name,
        "status": status,
        "message": t.user_attrs.get("message", ""),
        "value": value,
        "se": standard_error(value, n_val),
        "n_val": n_val,
        "n_train": t.user_attrs.get("n_train"),
        "params": dict(t.params),
        "config": dict(t.user_attrs.get("config", {})),
        "seed": t.user_attrs.get("seed"),
        "worker": t.user_attrs.get("worker"),
        "seconds": t.user_attrs.get("seconds"),
        "images_per_s": t.user_attrs.get("images_per_s"),
        "fidelity_of": t.user_attrs.get("fidelity_of"),
        "start": bool(t.user_attrs.get("start")),
        "epochs_run": len(history),
        "history": history,
        "diagnoses": [d.to_json() for d in diag],
    }


def rank_key(value: float, history: Sequence[Mapping[str, Any]], number: int
             ) -> tuple[float, float, int]:
    """The one ranking of trials: higher score first; ties to the lower validation
    loss, then to the earlier trial (the start, enqueued first, wins a tie)."""
    losses = [float(h["val_loss"]) for h in history if h.get("val_loss") is not None
              and math.isfinite(float(h["val_loss"]))]
    return (value, -(min(losses) if losses else math.inf), -number)


def ranked_trials(study: optuna.Study | None) -> list[FrozenTrial]:
    """COMPLETE trials of ``study`` with a finite score, best first (:func:`rank_key`)."""
    if study is None:
        return []
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.value is not None and math.isfinite(t.value)]
    return sorted(done, key=lambda t: rank_key(float(t.value or 0.0),
                                               t.user_attrs.get("history") or [], t.number),
                  reverse=True)


def top_of(records: Sequence[Mapping[str, Any]], k: int) -> list[Mapping[str, Any]]:
    """The ``k`` best COMPLETE trial records, best first (:func:`rank_key`)."""
    done = [r for r in records if r["state"] == "COMPLETE" and r["value"] is not None]
    return sorted(done, key=lambda r: rank_key(r["value"], r.get("history") or [],
                                               r.get("number", 0)),
                  reverse=True)[:k]


def best_of(records: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The best trial: the first of :func:`top_of`."""
    top = top_of(records, 1)
    return top[0] if top else None


def round_summary(plan: RoundPlan, study: optuna.Study | None, space: Space | None,
                  records: Sequence[Mapping[str, Any]], *, n_train: int, n_val: int,
                  th: TuneDiagnose, sizing: Mapping[str, Any] | None = None,
                  batch: Mapping[str, Any] | None = None) -> dict[str, Any]:
    best = best_of(records)
    edges = [] if best is None or space is None else [
        d.to_json() for d in find_edges(space, best["config"], fraction=th.edge_fraction)
        # a batch size at the subset's cap is the cap's doing, reported as such
        if not (batch and d.param == "batch_size" and d.side == "high"
                and int(best["config"].get("batch_size", 0)) >= int(batch["cap"]))]
    return {
        "index": plan.index, "name": plan.name, "subset": plan.subset, "n_train": n_train,
        "n_val": n_val, "sizing": dict(sizing or {}), "batch_cap": dict(batch or {}) or None,
        "separation": separation(records),
        "epochs": plan.epochs, "trials_planned": plan.trials, "sampler": plan.sampler,
        "study": None if study is None else study.study_name,
        "space": None if space is None else space.to_json(),
        "counts": dict(Counter(r["state"] for r in records)),
        "statuses": dict(Counter(r["status"] for r in records)),
        "best": None if best is None else {"key": best["key"], "number": best["number"],
                                           "value": best["value"], "se": best.get("se"),
                                           "config": best["config"]},
        "edges": edges,
    }


def separation(records: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Are the round's best two trials told apart by its validation set? The difference
    of their scores against the standard error of a difference of two accuracies on
    ``n_val`` images each (sqrt(se1^2 + se2^2); conservative: the set is shared).
    Separated when the difference exceeds 2 such errors."""
    top = top_of(records, 2)
    if len(top) < 2 or top[0].get("se") is None or top[1].get("se") is None:
        return None
    diff = float(top[0]["value"]) - float(top[1]["value"])
    se = math.sqrt(top[0]["se"] ** 2 + top[1]["se"] ** 2)
    ok = diff > 2 * se
    n_val = top[0].get("n_val")
    msg = (f"best {top[0]['key']} {top[0]['value']:.4f} vs runner-up {top[1]['key']} "
           f"{top[1]['value']:.4f}: difference {diff:.4f} "
           + (f"> 2 x SE {se:.4f}: separated by the {n_val} validation images" if ok else
              f"<= 2 x SE {se:.4f}: the {n_val} validation images cannot tell them apart"))
    return {"best": top[0]["key"], "second": top[1]["key"], "difference": diff,
            "se": se, "separated": ok, "message": msg}


def fidelity_of_rounds(joint: Sequence[Mapping[str, Any]], fine: Sequence[Mapping[str, Any]],
                       *, min_spearman: float, small: str, large: str,
                       min_configs: int = 5) -> dict[str, Any]:
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
                       min_configs=min_configs, small_name=small, large_name=large)
    out["pairs"] = pairs
    return out


def study_diagnoses(rounds: Sequence[Mapping[str, Any]],
                    records: Sequence[Mapping[str, Any]],
                    best: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The search's diagnoses for the report: the best trial's own, every round's edge
    verdicts, and per round how many trials had their learning rate too high or too low
    (with the learning rates), or were undertrained."""
    out: list[dict[str, Any]] = []
    if best is not None:
        out += [dict(d, scope=f"best trial {best['key']}") for d in best["diagnoses"]]
    for rd in rounds:  # edges of the round that chose the best (earlier ones repeat them)
        if best is None or rd["name"] == best["round"]:
            out += [dict(d, scope=f"round {rd['index']} ({rd['name']})") for d in rd["edges"]]
    for rd in rounds:
        mine = [r for r in records if r["round"] == rd["name"]]
        for code in ("lr_too_high", "lr_too_low", "undertrained", "overfitting"):
            hit = [r for r in mine if any(d["code"] == code for d in r["diagnoses"])]
            if not hit:
                continue
            lrs = sorted(float(r["config"]["lr"]) for r in hit if "lr" in r["config"])
            where = f" at lr {lrs[0]:.2g}..{lrs[-1]:.2g}" if lrs else ""
            first = next(d for d in hit[0]["diagnoses"] if d["code"] == code)
            out.append({"code": code, "scope": f"round {rd['index']} ({rd['name']})",
                        "message": f"{len(hit)} of {len(mine)} trials{where}; e.g. "
                                   f"{hit[0]['key']}: {first['message']}",
                        "remedy": first["remedy"], "param": "lr", "side": None})
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


def same_config(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Equal configurations (floats compared to 9 significant digits)."""
    def norm(c: Mapping[str, Any]) -> dict[str, Any]:
        return {k: (float(f"{v:.9g}") if isinstance(v, float) else v) for k, v in c.items()}
    return norm(a) == norm(b)


def decide(start: Any, best: Mapping[str, Any] | None, baseline: Mapping[str, Any] | None,
           *, epochs: int | None, baseline_enabled: bool = True,
           others: int = 1) -> dict[str, Any]:
    """Which configuration to use, never the worse one: the tuned one only when it beat
    the start by more than the seed spread at equal budget (or, with the comparison
    switched off, unchecked); otherwise the start, with the reason. ``start``: a
    :class:`dataqa.tune.start.Start`; ``others``: completed trials of the final round
    other than the start. Returns ``choice`` (tuned | start), ``config``,
    ``epochs``, ``reason`` and ``headline``: one sentence, the report's first line."""
    use_start = {"choice": "start", "config": dict(start.config), "epochs": start.epochs,
                 "source": start.source}
    if best is None:
        reason = "no trial completed"
        return dict(use_start, reason=reason, gain=None, headline=(
            f"Tuning did not run to a result ({reason}): use the starting configuration "
            f"({start.source}), written to best_params.yaml."))
    if same_config(best["config"], start.config):
        if not others:
            reason = ("within tune.budget_seconds the final round ran only the start: no "
                      "other configuration was tried at the final epochs")
            return dict(use_start, reason=reason, gain=None, headline=(
                f"Tuning tried nothing but the start in its final round (the time budget "
                f"was spent; raise tune.budget_seconds): use the starting configuration "
                f"({start.source}), written to best_params.yaml."))
        reason = (f"the start was the best trial of the final round ({best['key']}, "
                  f"{best['value']:.4f}); none of the {others} other configuration(s) "
                  "beat it")
        return dict(use_start, reason=reason, gain=0.0, headline=(
            f"Tuning did not help: none of the {others} other configuration(s) of the "
            f"final round beat the start ({start.source}); use the starting "
            "configuration, written to best_params.yaml."))
    tuned = {"choice": "tuned", "config": dict(best["config"]), "epochs": best["epochs"],
             "source": f"trial {best['key']}"}
    if not baseline_enabled:
        return dict(tuned, reason="not compared with the start (tune.baseline.enabled is "
                                  "false)", gain=None, headline=(
            f"Tuning chose trial {best['key']} ({best['value']:.4f}) without comparing it "
            "with the start (tune.baseline.enabled: false): use it with care "
            "(best_params.yaml)."))
    if not baseline or baseline.get("difference") is None:
        reason = f"the comparison did not run ({(baseline or {}).get('verdict', '?')})"
        return dict(use_start, reason=reason, gain=None, headline=(
            f"Tuning is unproven ({reason}): use the starting configuration "
            f"({start.source}), written to best_params.yaml."))
    diff, spread = float(baseline["difference"]), float(baseline["spread"])
    a, b = baseline["a"], baseline["b"]
    nums = (f"tuned {b['mean']:.4f} ± {b['std']:.4f} vs start {a['mean']:.4f} ± "
            f"{a['std']:.4f}, {b['n']} seeds x {epochs} epochs each")
    if baseline.get("better"):
        return dict(tuned, gain=diff, reason=(
            f"it beats the start by {diff:+.4f}, more than the seed spread {spread:.4f}"),
            headline=(f"Tuning helped: +{diff:.4f} validation accuracy over the start "
                      f"({nums}), more than the seed spread ({spread:.4f}); use the tuned "
                      f"configuration (trial {best['key']}), written to best_params.yaml."))
    how = (f"{diff:+.4f}, within the seed spread ({spread:.4f})" if abs(diff) <= spread
           else f"{diff:+.4f}: the start is better by more than the seed spread "
                f"({spread:.4f})")
    return dict(use_start, gain=diff, reason=(
        f"the best tuned configuration (trial {best['key']}) did not beat it by more than "
        f"the seed spread: {how}"), headline=(
        f"Tuning did not help: the best tuned configuration scored {how} against the start "
        f"({nums}); use the starting configuration ({start.source}), written to "
        "best_params.yaml."))


def sizing_notices(sizing: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The rounds' sizing messages, each said once: rounds with the same subset and
    shortfall share one line naming them all."""
    groups: dict[tuple[str, bool, str], list[str]] = {}
    for name, note in sizing.items():
        if not note.get("message"):
            continue
        key = (str(note["subset"]), bool(note.get("below_minimum")),
               "; ".join(note["shortfall"]))
        groups.setdefault(key, []).append(name)
    out = []
    for (subset, _below, short), names in groups.items():
        note = sizing[names[0]]
        moved = any(sizing[n].get("moved") for n in names)
        rounds = ", ".join(f"'{n}'" for n in names)
        word = "round" if len(names) == 1 else "rounds"
        if note.get("below_minimum"):
            out.append(f"WARNING: {word} {rounds} {'runs' if len(names) == 1 else 'run'} below the per-class minimum on "
                       f"'{subset}': {short}; their scores are weak evidence (more images, "
                       "or a larger subsample.val_fraction, would help)")
        elif moved:
            out.append(f"{word} {rounds} moved from subset '{note['requested']}' to "
                       f"'{subset}': '{note['requested']}' has {short}")
    return out


def metrics_of(summary: Mapping[str, Any]) -> dict[str, Any]:
    """DVC metrics: the decision, best score and params, trial counts by state and by
    engine status, the comparisons' and fidelity's figures."""
    best = summary.get("best")
    records = summary["trials"]
    decision = summary.get("decision") or {}
    out: dict[str, Any] = {
        "choice": decision.get("choice"),
        "gain": decision.get("gain"),
        "best_score": None if best is None else best["value"],
        "best_trial": None if best is None else best["key"],
        "best_params": {} if best is None else best["config"],
        "trials": dict(Counter(STATE_NAMES.get(r["state"], r["state"].lower())
                               for r in records)),
        "statuses": dict(Counter(r["status"] for r in records)),
        "n_trials": len(records),
        "seconds": summary.get("seconds"),
        "budget_seconds": (summary.get("budget") or {}).get("seconds"),
        "device": summary.get("device"),
    }
    if best is not None:
        out["best_se"] = best.get("se")
    for key, (a, b) in (("baseline", ("start", "tuned")), ("cleaning", ("raw", "clean"))):
        cmp = summary.get(key)
        if cmp and cmp.get("a") and cmp["a"].get("mean") is not None:
            out[key] = {f"{a}_mean": cmp["a"]["mean"], f"{a}_std": cmp["a"]["std"],
                        f"{b}_mean": cmp["b"]["mean"], f"{b}_std": cmp["b"]["std"],
                        "seeds": cmp["b"]["n"], "epochs": cmp.get("epochs"),
                        "difference": cmp["difference"], "spread": cmp["spread"],
                        "better": cmp["better"], "verdict": cmp["verdict"]}
    fid = summary.get("fidelity")
    if fid:
        out["fidelity"] = {"spearman": fid.get("rho"), "interval": fid.get("interval"),
                           "n": fid.get("n"), "trustworthy": fid.get("trustworthy")}
    return out


def best_params_yaml(summary: Mapping[str, Any]) -> str:
    """The configuration to use (the decision: tuned only when it beat the start), the
    headline as its first comment line, and a note for every value the data forced."""
    decision = summary.get("decision")
    if not decision:
        return "# no decision: the tuning run did not finish\n{}\n"
    notes = best_notes(summary)
    best = summary.get("best")
    cmp = summary.get("baseline") or {}
    arm = cmp.get("b" if decision["choice"] == "tuned" else "a") or {}
    if not arm and best is not None and same_config(best["config"], decision["config"]):
        # no comparison ran: the configuration's own trial in the final round
        arm = {"mean": best["value"], "std": None, "n": 1}
    doc: dict[str, Any] = {
        "choice": decision["choice"], "source": decision.get("source"),
        "why": decision["reason"], "epochs": decision["epochs"],
        "score": arm.get("mean"), "score_std": arm.get("std"), "seeds": arm.get("n"),
        "scored_at_epochs": cmp.get("epochs") or (None if best is None else best["epochs"]),
        "metric": None if best is None else best.get("metric", "val_acc"),
        "trial": None if best is None or decision["choice"] != "tuned" else best["key"],
        "params": decision["config"]}
    if notes:
        doc["notes"] = notes
    head = f"# {summary.get('headline') or decision['headline']}\n"
    head += "".join(f"# NOTE: {n}\n" for n in notes)
    return head + yaml.safe_dump(doc, sort_keys=False)


def best_notes(summary: Mapping[str, Any]) -> list[str]:
    """What the data forced on the chosen configuration (a batch size capped by a
    small subset) and the search's sizing warnings, each once."""
    best = summary.get("best")
    decision = summary.get("decision") or {}
    notes = []
    if best is not None and decision.get("choice", "tuned") == "tuned":
        rd = next((r for r in summary.get("rounds", []) if r["name"] == best["round"]), None)
        cap = (rd or {}).get("batch_cap")
        bs = best["config"].get("batch_size")
        if cap and bs is not None and int(bs) == int(cap["cap"]):
            notes.append(f"batch_size {bs} was forced by the subset, not chosen: "
                         f"{cap['message']}; on more data try larger batches")
    notes += [n.removeprefix("WARNING: ") for n in summary.get("notices", [])
              if n.startswith("WARNING")]
    return notes


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
