"""The tuning report lays out the tune stage's summary: self-contained, escaped, every
section present when its data is, the 'data used' grid when the preparation stages
provide one."""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from dataqa.errors import StageInputError
from dataqa.params import Params
from dataqa.report.page import build_sections
from dataqa.report.tuning_report import TuningData, load, points_chart, render
from dataqa.steps.tune import run_stage

HOSTILE = "<script>alert(1)</script>"


@pytest.fixture
def tuned(tune_files: Callable[..., Params]) -> Params:
    """One small tune run whose class c0 is renamed to a script tag everywhere."""
    params = tune_files(tune={"rounds": {"fine": {"trials": 3, "top_k": 3}}})
    for p in [params.path("manifest"), *params.path("subsets_dir").glob("*.parquet")]:
        f = pd.read_parquet(p)
        f["label"] = f["label"].replace({"c0": HOSTILE})
        f.to_parquet(p)
    run_stage(params)
    return params


def test_report_is_self_contained_and_escaped(tuned: Params) -> None:
    html = render(tuned)
    assert not re.search(r"(src|href)\s*=\s*\"(https?:)?//", html)
    assert "<link" not in html and "@import" not in html
    assert HOSTILE not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    summary = json.loads(tuned.path("tune_summary").read_text())
    for t in summary["trials"]:
        assert f'id="trial-{t["key"]}"' in html  # one chart pair per trial


def test_sections_follow_the_summary_and_show_the_grid(tuned: Params) -> None:
    data = load(tuned)
    ids = [s.id for s in build_sections("tuning", data)]
    assert ids == ["decision", "best", "compare", "diagnoses", "top", "params", "fidelity",
                   "data", "trials"]  # the answer first; both comparisons in one section
    data.summary["fidelity"] = None
    data.summary["cleaning"] = None
    data.summary["baseline"] = None
    ids = [s.id for s in build_sections("tuning", data)]
    assert not {"fidelity", "compare"} & set(ids)  # absent data: no empty section

    # the preparation stages' before/after grid, when they provide one
    buf = io.BytesIO()
    Image.new("L", (8, 8), 255).save(buf, format="PNG")
    b64 = base64.b64encode(buf.getvalue()).decode()
    data.extras = {"augmentation_grid": [{"label": "c1", "copies": 3, "items": [
        {"before": b64, "after": b64, "caption": "copy 0 of image 5: 90% kept"}]}]}
    section = next(s for s in build_sections("tuning", data) if s.id == "data")
    from dataqa.report.page import environment

    html = environment().get_template(section.template).render(ctx=section.context)
    assert html.count(f"data:image/png;base64,{b64}") == 2  # before and after
    assert "copy 0 of image 5: 90% kept" in html and "(3 copies)" in html


def test_points_chart_log_axis_and_choices() -> None:
    svg = str(points_chart([(1e-4, 0.5, "r1", "a"), (1e-2, 0.9, "r2", "b")], title="lr",
                           xlabel="lr", ylabel="acc", log_x=True))
    assert ">1e-4<" in svg and ">1e-2<" in svg and svg.count("<circle") == 2
    svg = str(points_chart([("sgd", 0.5, "r1", "a"), ("adamw", 0.6, "r1", "b"),
                            ("lion", 0.7, "r1", "c")], title="opt", xlabel="optimizer",
                           ylabel="acc", choices=["sgd", "adamw"]))
    assert svg.count("<circle") == 2  # a value outside the choices is not drawn


def test_missing_summary_says_run_tune(tmp_path: Path) -> None:

    with pytest.raises(StageInputError, match="run the 'tune' stage first"):
        load(Params().replace(root=tmp_path))
    assert TuningData  # the data class sections receive
