"""DVC stage ``tuning_report``: ``paths.tune_summary`` (and the augmentation grid) ->
``paths.tuning_html``.

Its own stage, not part of ``tune``: the search's outputs depend only on the search, so
editing a report template, a chart or the grid reruns this stage and never the Optuna
study (``dvc.yaml`` lists the report code here, not under ``tune``). Same as
``dataqa report --kind tuning``.
"""

from __future__ import annotations

from dataqa.params import Params
from dataqa.steps import report


def run_stage(params: Params) -> int:
    return report.run_stage(params, kind="tuning")
