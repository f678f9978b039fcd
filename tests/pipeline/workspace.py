"""A throw-away dataqa workspace for end-to-end tests: a git + DVC repo in a temp folder
with the project's dvc.yaml and stage scripts (what `dataqa init` writes; the stages run
the installed dataqa), a tiny ImageFolder of drawn digits, and params.yaml = the project's params with
tiny budgets, so `dvc repro` runs every stage in about a minute on 2 cores."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[2]

# Tiny budgets: every stage runs, none trains for long.
TINY: dict[str, Any] = {
    "engine": {"image_size": 16},
    "crossval": {"folds": 2, "epochs": 1, "batch_size": 16},
    "audit": {"learning_curve": [0.5, 1.0], "learning_curve_epochs": 1},
    "tune": {"rounds": {"lr": {"trials": 2, "epochs": 1},
                        "joint": {"trials": 2, "epochs": 1},
                        "fine": {"trials": 1, "epochs": 1}},
             "cleaning": {"seeds": 1}},
    # a 1-epoch model disagrees with many labels: review them instead of dropping them,
    # so the prepared data keeps every class (the mechanics are under test, not the model)
    "filter": {"policy": {"label": "review", "outlier": "review"}},
    "gate": {"max_rates": {}, "max_balanced_imbalance_ratio": None,
             "max_quarantined_share": None, "min_images_per_class": 5,
             "min_clean_per_class": 2},
}


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and value:
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def draw_digit_folder(root: Path, *, classes: int = 3, per_class: int = 14,
                      seed: int = 0) -> None:
    """Drawn digits '0'..'<classes-1>' (PIL's default font, jittered), 28x28 PNG."""
    rng = np.random.default_rng(seed)
    for c in range(classes):
        (root / str(c)).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = Image.new("L", (28, 28), 0)
            d = ImageDraw.Draw(img)
            x, y = rng.integers(6, 14, size=2)
            d.text((int(x), int(y)), str(c), fill=int(rng.integers(180, 256)))
            img = img.resize((28, 28)).rotate(float(rng.uniform(-15, 15)))
            img.save(root / str(c) / f"d{i:03d}.png")


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{e.get('PATH', '')}"
    e["DVC_NO_ANALYTICS"] = "1"
    e.setdefault("OMP_NUM_THREADS", "1")
    return e


def run(cmd: list[str], cwd: Path, *, check: bool = True,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n"
                             f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n"
                             f"{proc.stderr[-6000:]}")
    return proc


def make_workspace(root: Path, *, overrides: dict[str, Any] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "dvc.yaml", root / "dvc.yaml")
    shutil.copytree(REPO / "stages", root / "stages",
                    ignore=shutil.ignore_patterns("__pycache__"))
    draw_digit_folder(root / "data" / "sample")
    (root / "predictions").mkdir(parents=True, exist_ok=True)  # a crossval dep
    (root / "reviews.csv").write_text(  # the audit's dep, as `dataqa init` writes it
        "sha256,path,decision,label,note,by,at,checks\n")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params = deep_merge(deep_merge(params, TINY), overrides or {})
    write_params(root, params)
    run(["git", "init", "-q"], root)
    run(["dvc", "init", "-q"], root)
    return root


def write_params(root: Path, params: dict[str, Any]) -> None:
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def read_params(root: Path) -> dict[str, Any]:
    return yaml.safe_load((root / "params.yaml").read_text())


def stages_run(output: str) -> list[str]:
    """Names of the stages `dvc repro` ran, from its "Running stage 'x':" lines."""
    import re

    return re.findall(r"Running stage '([\w-]+)'", output)
