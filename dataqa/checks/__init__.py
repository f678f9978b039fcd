"""Check plugins and their registry. ``REGISTRY`` maps a check's name to its class;
the audit stage runs the checks that ``params.yaml: audit.checks`` lists, in order."""

from __future__ import annotations

from pydantic import BaseModel

from dataqa.checks.base import AuditContext, Check, CheckResult
from dataqa.errors import ParamsError

REGISTRY: dict[str, type[Check]] = {}


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
    """Import every module of this package; each registers its check class."""
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")


__all__ = ["REGISTRY", "AuditContext", "Check", "CheckResult", "register", "get_check",
           "settings_models"]
