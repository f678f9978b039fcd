"""Check plugins and their registry. ``REGISTRY`` maps a check's name to its class;
the audit stage runs the checks that ``params.yaml: audit.checks`` lists, in order."""

from __future__ import annotations

from pydantic import BaseModel

from dataqa.checks.base import AuditContext, Check, CheckResult
from dataqa.errors import ParamsError

REGISTRY: dict[str, type[Check]] = {}
# the modules that hold a check (each registers its class); the others of this package
# are the checks' helpers (base, runner, quality, robust, neighbors, confidence) and are
# imported only by what uses them. A new check: its module, and its name here.
BUILTIN = ("blurry", "complexity", "dark", "exact_duplicate", "grayscale", "integrity",
           "label", "light", "low_information", "near_duplicate", "odd_aspect_ratio",
           "odd_size", "outlier")


def register(cls: type[Check]) -> type[Check]:
    if cls.name in REGISTRY:
        raise ValueError(f"check '{cls.name}' registered twice")
    REGISTRY[cls.name] = cls
    return cls


def get_check(name: str) -> type[Check]:
    _load_builtin()
    if name not in REGISTRY:
        raise ParamsError(f"params.yaml: audit.checks: unknown check '{name}'. "
                          f"Known checks: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def settings_models() -> dict[str, type[BaseModel]]:
    """Check name -> its ``Settings`` model, for :func:`dataqa.params.load_params`."""
    _load_builtin()
    return {name: cls.Settings for name, cls in REGISTRY.items()}


def _load_builtin() -> None:
    """Import the check modules (:data:`BUILTIN`); each registers its check class."""
    import importlib

    for name in BUILTIN:
        importlib.import_module(f"{__name__}.{name}")


__all__ = ["BUILTIN", "REGISTRY", "AuditContext", "Check", "CheckResult", "register", "get_check",
           "settings_models"]
