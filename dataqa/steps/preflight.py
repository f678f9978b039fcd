"""Rules on params that need a registry but no data, run by the CLI right after
``load_params`` and before any stage does work (exit 2 naming the key): the check names
and their settings (``audit.checks``, ``audit.settings``, check names in
``filter.policy``/``filter.min_score``), every gate threshold against its rule table
(both gates, whichever stage runs), and the tuning search space.

The ranges of single keys are the params schema's (:mod:`dataqa.params.rules`); this
module exists because those registries live above :mod:`dataqa.params`.
"""

from __future__ import annotations

from dataqa import gate
from dataqa.checks import REGISTRY, get_check
from dataqa.checks.model_strength import ModelStrengthSettings
from dataqa.checks.runner import build_checks
from dataqa.errors import ParamsError
from dataqa.params import Params, check_settings
from dataqa.params.tune import check_space


def check_params(params: Params) -> None:
    """Raise :class:`ParamsError` for the first registry-level rule ``params`` breaks."""
    build_checks(params.audit)  # known names, valid settings (listed or not)
    check_settings(ModelStrengthSettings, params.audit.model_strength,
                   "params.yaml: audit.model_strength")
    for key, mapping in (("policy", params.filter.policy),
                         ("min_score", params.filter.min_score)):
        for check in mapping:
            try:
                get_check(check)
            except ParamsError:
                raise ParamsError(f"params.yaml: filter.{key}.{check}: unknown check "
                                  f"'{check}'. Known checks: {', '.join(sorted(REGISTRY))}"
                                  ) from None
    for spec in gate.GATES.values():
        gate.evaluate(params.gate, {}, rules=spec.rules)  # thresholds in range, names known
    check_space(params.tune)  # dataqa.params.tune: no tuning code imported
