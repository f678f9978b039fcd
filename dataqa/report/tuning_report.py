"""The tuning report: ``reports/tuning.html`` from the tune stage's summary.

:func:`load` reads ``paths.tune_summary`` (written by :mod:`dataqa.tune.results`);
the sections below (kind ``"tuning"``) only lay it out: first what to use and why
(whether tuning helped), then the comparisons, the best trial and the
rounds, the diagnoses with their remedies, the best trials' curves together, each
hyperparameter against the metric, subsample fidelity, the comparisons, the
data used, and one train/val loss and accuracy chart per trial. Self-contained: inline
SVG (:mod:`dataqa.report.charts`), no URL.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape

from dataqa.errors import DataQAError, StageInputError
from dataqa.io import write_text
from dataqa.params import Params
from dataqa.report import charts
from dataqa.report.page import Section, build_sections, render_page, section

TOP_TRIALS = 5  # best trials drawn together
MAX_CLASSES = 200  # rows of the per-class table (and bars)
LOG_PARAMS = ("lr", "weight_decay")
ROUND_LABEL = {"lr": "1 lr", "joint": "2 joint", "fine": "3 fine"}


@dataclass
class TuningData:
    params: Params
    summary: dict[str, Any]
    extras: dict[str, Any]  # optional inputs from the preparation stages (data used)


def load(params: Params) -> TuningData:
    path = params.path("tune_summary")
    if not path.is_file():
        raise StageInputError(f"{path}: not found; run the 'tune' stage first")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise StageInputError(f"{path}: not valid JSON ({exc}); rerun 'tune'") from None
    return TuningData(params, summary, _prep_extras(params))


def _prep_extras(params: Params) -> dict[str, Any]:
    """What the preparation stages leave for the 'data used' section, when present:
    the before/after augmentation grid (base64 PNG thumbnails per class)."""
    if not params.path("augmented_manifest").is_file():
        return {}
    from dataqa.report.augment_grid import get_augmentation_grid

    try:
        return {"augmentation_grid": get_augmentation_grid(params)}
    except DataQAError as exc:  # a missing source image must not sink the tuning report
        return {"augmentation_note": f"augmentation grid unavailable: {exc}"}


def render(params: Params) -> str:
    data = load(params)
    s = data.summary
    best = s.get("best")
    decision = s.get("decision") or {}
    facts = [
        ("use", decision.get("choice")),
        ("device", s.get("device")),
        ("trials", len(s.get("trials", []))),
        ("best validation accuracy", None if best is None else acc_text(best["value"],
                                                                        best.get("se"))),
        ("best trial", None if best is None else best["key"]),
        ("classes", len(s.get("classes", []))),
        ("time", f"{s.get('seconds', 0):.1f} s"),
    ]
    return render_page(title="dataqa tuning report", facts=facts,
                       sections=build_sections("tuning", data))


def write_report(params: Params) -> None:
    """Render and write ``paths.tuning_html`` atomically."""
    write_text(params.path("tuning_html"), render(params))


# --------------------------------------------------------------------------- helpers
def acc_text(value: float | None, se: float | None) -> str:
    """``0.7200 ± 0.045 SE``: an accuracy always with its standard error."""
    if value is None:
        return "-"
    return f"{value:.4f}" + (f" ± {se:.3f} SE" if se is not None else "")


def _xy(history: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for h in history:
        v = h.get(key)
        if v is not None and math.isfinite(float(v)):
            xs.append(float(h["epoch"]))
            ys.append(float(v))
    return xs, ys


def _loss_range(series: Mapping[str, tuple[list[float], list[float]]]
                ) -> tuple[float, float] | None:
    """A y range that a diverged trial's 1e6 loss does not flatten: up to 3x the
    median of the values."""
    vals = sorted(v for _, ys in series.values() for v in ys)
    if not vals:
        return None
    cap = 3 * vals[len(vals) // 2]
    return (0.0, max(min(vals[-1], cap), 1e-3))


def trial_charts(trial: Mapping[str, Any]) -> tuple[Markup, Markup]:
    """Loss and accuracy against epoch, train and val, for one trial."""
    h = trial["history"]
    loss = {"train loss": _xy(h, "train_loss"), "val loss": _xy(h, "val_loss")}
    acc = {"train acc": _xy(h, "train_acc"), "val acc": _xy(h, "val_acc")}
    title = f"{trial['key']} ({trial['status']})"
    return (charts.line_chart(loss, title=f"{title}: loss", xlabel="epoch", ylabel="loss",
                              y_range=_loss_range(loss), width=330, height=210),
            charts.line_chart(acc, title=f"{title}: accuracy", xlabel="epoch",
                              ylabel="accuracy", y_range=(0.0, 1.0), width=330, height=210))


def points_chart(points: Sequence[tuple[Any, float, str, str]], *, title: str, xlabel: str,
                 ylabel: str, choices: Sequence[Any] | None = None, log_x: bool = False,
                 width: int = 380, height: int = 240) -> Markup:
    """One dot per point ``(x value, y value, group, tooltip)``, one colour per group.
    Categorical x values (``choices``) sit at evenly spaced, labelled positions.
    (charts.scatter bins points on log-log axes for 100k images; here every trial is
    its own dot and only x may be logarithmic, with ticks at powers of ten.)"""
    pts = [p for p in points if p[1] is not None and math.isfinite(p[1])
           and (choices is None or p[0] in choices)]
    if not pts:
        return Markup("")
    groups = list(dict.fromkeys(g for _, _, g, _ in pts))
    legend_w = 12 + 7 * max(len(g) for g in groups) if len(groups) > 1 else 0
    left, right = charts._LEFT + 8, width - charts._RIGHT - legend_w - 8
    if choices is not None:
        x = charts.Scale(-0.5, len(choices) - 0.5, left, right)
    else:
        xs = [float(v) for v, _, _, _ in pts]
        lo, hi = min(xs), max(xs)
        log_x = log_x and lo > 0
        if lo == hi:
            lo, hi = (lo / 2, hi * 2) if log_x else (lo - 0.5, hi + 0.5)
        x = charts.Scale(lo, hi, left, right, log=log_x)
    ys = [float(p[1]) for p in pts]
    pad = max(0.02, 0.05 * (max(ys) - min(ys)))
    y = charts.Scale(min(ys) - pad, max(ys) + pad, height - 40, charts._TOP + 8)
    body = charts._axes(None, y, xlabel=xlabel, ylabel=ylabel, width=width - legend_w,
                        height=height)
    if choices is not None:
        ticks = [(x(i), str(c)) for i, c in enumerate(choices)]
    elif x.log:
        ticks = [(x(10.0 ** k), f"1e{k}") for k in range(math.floor(math.log10(x.lo)),
                                                          math.ceil(math.log10(x.hi)) + 1)
                 if x.lo <= 10.0 ** k <= x.hi] or [(x(x.lo), charts.fmt(x.lo))]
    else:
        ticks = [(x(t), charts.fmt(t)) for t in x.ticks()]
    for px, label in ticks:
        body.append(f'<line x1="{px:.1f}" y1="{y.p0:.1f}" x2="{px:.1f}" y2="{y.p0 + 4:.1f}" '
                    f'stroke="#888"/><text x="{px:.1f}" y="{y.p0 + 15:.1f}" '
                    f'text-anchor="middle">{escape(label)}</text>')
    for j, (v, val, g, tip) in enumerate(pts):
        if choices is not None:  # spread equal choices a little so dots stay visible
            px = x(list(choices).index(v)) + ((j * 7) % 11 - 5) * 1.5
        else:
            px = x(float(v))
        body.append(f'<circle cx="{px:.1f}" cy="{y(float(val)):.1f}" r="4" '
                    f'fill="{charts.color(groups.index(g))}" fill-opacity="0.75">'
                    f"<title>{escape(tip)}</title></circle>")
    if len(groups) > 1:
        body += charts._legend(groups, width - legend_w, charts._TOP + 12)
    return charts._svg(width, height, body, title)


def param_chart(trials: Sequence[Mapping[str, Any]], name: str, *,
                choices: Sequence[Any] | None = None, suffix: str = "") -> Markup:
    """Hyperparameter ``name`` (x) against each trial's score (y), for trials of one
    subset and epoch budget (``suffix`` says which), coloured by round."""
    pts = []
    for t in trials:
        v = t["config"].get(name)
        if v is None or t["value"] is None:
            continue
        shown = charts.fmt(v) if isinstance(v, float) else str(v)
        pts.append((v, t["value"], ROUND_LABEL.get(t["round"], t["round"]),
                    f"{t['key']}: {name} = {shown} -> {acc_text(t['value'], t.get('se'))}"))
    return points_chart(pts, title=f"{name}{suffix}", xlabel=name,
                        ylabel="val accuracy", choices=choices, log_x=name in LOG_PARAMS)


# --------------------------------------------------------------------------- sections
@section("tuning", order=5)
def decision_section(data: TuningData) -> Section:
    """The answer first: whether tuning helped, by how much, which configuration to use
    (the one in best_params.yaml) and why; the run's warnings, each once."""
    s = data.summary
    d = s.get("decision") or {}
    start = s.get("start") or {}
    config, begin = d.get("config") or {}, start.get("config") or {}
    rows = [(k, config.get(k), begin.get(k)) for k in sorted(set(config) | set(begin))]
    b = s.get("budget") or {}
    budget = None if not b else (
        f"Time budget {b['seconds']:.0f} s (tune.budget_seconds), {b['used']:.0f} s used"
        + (" (overrun: the budget was too small for this machine; only the start may have "
           "run in each round)" if b["used"] > 1.2 * b["seconds"] else "")
        + f"; measured {b['seconds_per_1000_image_epochs']:.2f} s per 1,000 training images "
          f"per epoch; the final round and the comparisons train {b['final_epochs']} "
          f"epochs, the earlier rounds {b['coarse_epochs']}.")
    return Section("decision", "What to use", "tuning_decision.html.j2", {
        "headline": s.get("headline") or d.get("headline", ""), "d": d, "start": start,
        "rows": rows, "notices": s.get("notices") or [], "budget": budget},
        summary=str(d.get("choice", "?")))


@section("tuning", order=10)
def best_section(data: TuningData) -> Section:
    s = data.summary
    best = s.get("best")
    rounds = [{
        "label": ROUND_LABEL.get(r["name"], r["name"]), "subset": r["subset"],
        "widened": r.get("widened") or [],
        "n_train": r["n_train"], "n_val": r.get("n_val"), "sizing": r.get("sizing") or {},
        "batch_cap": r.get("batch_cap"), "separation": r.get("separation"),
        "best_text": None if not r["best"] else acc_text(r["best"]["value"],
                                                         r["best"].get("se")),
        "epochs": r["epochs"], "planned": r["trials_planned"],
        "sampler": r["sampler"], "counts": r["counts"], "statuses": r["statuses"],
        "best": r["best"], "searched": sorted((r.get("space") or {}).get("dims", {})),
        "ranges": _ranges((r.get("space") or {}).get("dims", {})),
    } for r in s.get("rounds", [])]
    from dataqa.tune.results import best_notes

    return Section("best", "Best trial and rounds", "tuning_best.html.j2", {
        "best": best, "rounds": rounds,
        "best_text": None if best is None else acc_text(best["value"], best.get("se")),
        "notes": [n for n in best_notes(s)  # the warnings are said once, at the top
                  if "forced by the subset" in n],
        "selection": s.get("selection") or {},
        "config": [] if best is None else sorted(best["config"].items()),
    }, summary="none" if best is None else f"val acc {best['value']:.4f}")


def _ranges(dims: Mapping[str, Any]) -> list[tuple[str, str]]:
    out = []
    for name, d in sorted(dims.items()):
        if "choices" in d:
            out.append((name, ", ".join(str(c) for c in d["choices"])))
        else:
            scale = " (log)" if d.get("log") else ""
            out.append((name, f"{charts.fmt(d['low'])} .. {charts.fmt(d['high'])}{scale}"))
    return out


COMPARISONS = (("baseline", "Did tuning help? The start against the best tuned configuration",
                "The tuned configuration replaces the start only when its mean beats the "
                "start's by more than the seed spread."),
               ("cleaning", "Does cleaning help? The chosen configuration on clean and "
                "unfiltered training sets",
                "The same configuration (the one to use) trained on the clean training set "
                "and on the unfiltered one."))


@section("tuning", order=15)
def compare_section(data: TuningData) -> Section | None:
    """Every A/B comparison of the run (dataqa/tune/compare.py), one layout."""
    shown = []
    for key, title, note in COMPARISONS:
        r = data.summary.get(key)
        if not r:
            continue
        chart = Markup("")
        if r.get("runs") and r.get("a"):
            names = [r["a"]["name"], r["b"]["name"]]
            pts = [(run["arm"], run["value"], f"seed {run['seed']}",
                    f"{run['arm']}, seed {run['seed']}: {run['value']:.4f} ({run['status']})")
                   for run in r["runs"]]
            chart = points_chart(pts, title="validation accuracy per seed", xlabel="arm",
                                 ylabel="val accuracy", choices=names)
        shown.append({"title": title, "r": r, "chart": chart, "note": note})
    if not shown:
        return None
    return Section("compare", "Comparisons", "tuning_compare.html.j2", {"comparisons": shown},
                   summary=f"{len(shown)}")


@section("tuning", order=20)
def diagnoses_section(data: TuningData) -> Section:
    diags = data.summary.get("diagnoses", [])
    return Section("diagnoses", "Diagnoses", "tuning_diagnoses.html.j2",
                   {"diagnoses": diags}, summary=f"{len(diags)}")


@section("tuning", order=30)
def top_section(data: TuningData) -> Section | None:
    s = data.summary
    last = next((r for r in reversed(s.get("rounds", [])) if r.get("best")), None)
    if last is None:
        return None
    trials = sorted((t for t in s["trials"] if t["round"] == last["name"]
                     and t["value"] is not None and t["history"]),
                    key=lambda t: -t["value"])[:TOP_TRIALS]
    return Section("top", f"Best {len(trials)} trials of round {last['index']} together",
                   "tuning_top.html.j2", {"charts": together_charts(trials),
                                          "round": last["name"]})


def together_charts(trials: Sequence[Mapping[str, Any]]) -> list[Markup]:
    """Accuracy (train dashed, val solid) and loss (the same) of several trials, one
    colour per trial."""
    out = []
    for key, label, rng in (("acc", "accuracy", (0.0, 1.0)), ("loss", "loss", None)):
        series: dict[str, tuple[list[float], list[float]]] = {}
        colors: dict[str, int] = {}
        dashed = []
        for i, t in enumerate(trials):
            for part in ("train", "val"):
                name = f"{t['key']} {part}"
                series[name] = _xy(t["history"], f"{part}_{key}")
                colors[name] = i
                if part == "train":
                    dashed.append(name)
        out.append(charts.line_chart(
            series, title=f"training (dashed) and validation {label}", xlabel="epoch",
            ylabel=label, y_range=rng or _loss_range(series), colors=colors, dashed=dashed,
            width=560, height=300))
    return out


@section("tuning", order=40)
def params_section(data: TuningData) -> Section | None:
    s = data.summary
    names: dict[str, None] = {}
    choices: dict[str, list[Any]] = {}
    for r in s.get("rounds", []):
        for name, d in ((r.get("space") or {}).get("dims") or {}).items():
            names[name] = None
            if "choices" in d:  # categorical axis, numbers in order (batch, width, depth)
                seen = choices.setdefault(name, [])
                seen += [c for c in d["choices"] if c not in seen]
                if all(isinstance(c, int | float) for c in seen):
                    seen.sort()
    if not names:
        return None
    # like with like: one chart per (subset, epochs), coloured by round
    where = {r["name"]: (r["subset"], r["epochs"]) for r in s.get("rounds", [])}
    groups: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
    for t in s["trials"]:
        if t["round"] in where:
            groups.setdefault(where[t["round"]], []).append(t)
    blocks = []
    for (subset, epochs), trials in groups.items():
        drawn = [param_chart(trials, name, choices=choices.get(name),
                             suffix=f" on '{subset}', {epochs} epochs") for name in names
                 if any(name in t["params"] for t in trials)]
        rounds = sorted({ROUND_LABEL.get(t["round"], t["round"]) for t in trials})
        blocks.append({"subset": subset, "epochs": epochs, "rounds": rounds,
                       "charts": [c for c in drawn if c]})
    return Section("params", "Each hyperparameter against the metric", "tuning_params.html.j2",
                   {"blocks": blocks}, summary=f"{len(names)} searched")


@section("tuning", order=50)
def fidelity_section(data: TuningData) -> Section | None:
    fid = data.summary.get("fidelity")
    if not fid:
        return None
    pts = [(p["small"], p["large"], "configuration",
            f"{p['joint']} -> {p['fine']}: {p['small']:.4f} / {p['large']:.4f}")
           for p in fid.get("pairs", [])]
    chart = points_chart(pts, title="same configurations on both subsets",
                         xlabel=f"val acc on {fid['small']}",
                         ylabel=f"val acc on {fid['large']}")
    return Section("fidelity", "Subsample fidelity", "tuning_fidelity.html.j2",
                   {"fid": fid, "chart": chart},
                   summary="?" if fid.get("rho") is None else f"rho {fid['rho']:.2f}")


@section("tuning", order=70)
def data_section(data: TuningData) -> Section | None:
    info = data.summary.get("data")
    if not info:
        return None
    subsets = dict(info.get("subsets", {}))
    rows = [("validation", info["val"])] + list(subsets.items())
    if info.get("raw"):
        rows.append(("unfiltered (cleaning comparison)", info["raw"]))
    classes = data.summary.get("classes", [])
    chart: Markup | str = ""
    if subsets and classes:  # the largest training subset stacked on the validation split
        name, largest = max(subsets.items(), key=lambda kv: kv[1]["n"])
        chart = charts.bar_chart(classes[:MAX_CLASSES], {
            f"train '{name}'": [largest["class_counts"].get(c, 0) for c in classes],
            "validation": [info["val"]["class_counts"].get(c, 0) for c in classes]},
            title="images per class", ylabel="images")
    counts = [{"label": c, "counts": [r["class_counts"].get(c, 0) for _, r in rows]}
              for c in classes[:MAX_CLASSES]]
    return Section("data", "Data used", "tuning_data.html.j2",
                   {"rows": rows, "chart": chart, "shape": info.get("image_shape"),
                    "counts": counts, "more": max(len(classes) - MAX_CLASSES, 0),
                    "extras": data.extras}, summary=f"{len(subsets)} subsets")


@section("tuning", order=80)
def trials_section(data: TuningData) -> Section:
    by_round: dict[str, list[dict[str, Any]]] = {}
    for t in data.summary.get("trials", []):
        loss, acc = trial_charts(t) if t["history"] else (Markup(""), Markup(""))
        by_round.setdefault(t["round"], []).append(dict(t, loss_chart=loss, acc_chart=acc))
    groups = [(ROUND_LABEL.get(k, k), v) for k, v in by_round.items()]
    return Section("trials", "Every trial", "tuning_trials.html.j2", {"groups": groups},
                   summary=f"{sum(len(v) for _, v in groups)}")
