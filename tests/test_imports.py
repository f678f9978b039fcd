"""Each stage imports only what its configured checks and modes use (issue 25).

Every case runs one real CLI command in a fresh interpreter, in a small project on
disk, and then looks at ``sys.modules``: the heavy modules listed for that stage and
configuration must not be there. Start-up costs are what a small input pays for (torch
alone is 1.3-3 s and ~500 MB), so these are the guards of the README's claims: the
audit without a model imports no torch, the crossval stage in external mode trains
nothing, checking params imports no tuning code, ``dataqa --help`` imports no pandas.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]

TORCH = ("torch", "torchvision")
TUNING = ("optuna", "scipy.stats", "dataqa.tune")
TRAINING = (*TORCH, "sklearn", "dataqa.engine.crossval", "dataqa.engine.fit")
IMAGE_CHECKS = ["integrity", "exact_duplicate", "near_duplicate", "dark", "light", "blurry",
                "low_information", "grayscale", "odd_aspect_ratio", "odd_size", "complexity"]

RUN = """
import json, sys
from dataqa.cli import main
code = 0 if sys.argv[1] == "--help-only" else main(sys.argv[1:])
if sys.argv[1] == "--help-only":
    from dataqa.cli import build_parser
    build_parser().format_help()
print("MODULES=" + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def run_cli(ws: Path, *args: str) -> set[str]:
    """Run ``dataqa ARGS`` in a fresh interpreter in ``ws``; its loaded module names."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", RUN, *args], cwd=ws, env=env,
                         capture_output=True, text=True, timeout=300)
    line = next((x for x in out.stdout.splitlines() if x.startswith("MODULES=")), None)
    log = (out.stdout.split("MODULES=")[0] + out.stderr)[-3000:]
    assert line is not None and out.returncode == 0, log
    result = json.loads(line[len("MODULES="):])
    assert result["code"] == 0, log
    return set(result["modules"])


def loaded(modules: set[str], heavy: tuple[str, ...]) -> list[str]:
    """The names of ``heavy`` (a package counts with its submodules) found loaded."""
    return sorted(h for h in heavy if any(m == h or m.startswith(h + ".") for m in modules))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project over 2 classes x 8 small digit-like images, with out-of-sample
    predictions and embeddings of them for ``crossval.mode: external``."""
    ws = tmp_path_factory.mktemp("imports")
    rng = np.random.default_rng(0)
    paths = []
    for label in ("a", "b"):
        (ws / "src" / label).mkdir(parents=True)
        for i in range(8):
            pixels = rng.integers(0, 256, (16, 16), dtype=np.uint8)
            Image.fromarray(pixels).save(ws / "src" / label / f"{i}.png")
            paths.append(f"{label}/{i}.png")
    (ws / "predictions").mkdir()
    probs = rng.dirichlet([1, 1], size=len(paths))
    frame = pd.DataFrame(probs, columns=["a", "b"])
    frame.insert(0, "path", paths)
    frame.to_parquet(ws / "predictions" / "pred_probs.parquet", index=False)
    emb = pd.DataFrame(rng.normal(size=(len(paths), 8)), columns=[f"f{i}" for i in range(8)])
    emb.insert(0, "path", paths)
    emb.to_parquet(ws / "predictions" / "embeddings.parquet", index=False)
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    base["data"]["source"] = "src"
    base["scan"]["workers"] = 0
    base["tensors"]["workers"] = 0
    base["engine"]["image_size"] = 16
    base["crossval"]["mode"] = "external"
    base["crossval"]["external"].update(pred_probs="predictions/pred_probs.parquet",
                                        embeddings="predictions/embeddings.parquet")
    base["audit"]["checks"] = IMAGE_CHECKS
    base["audit"]["min_per_class"] = 2
    base["gate"]["min_images_per_class"] = 2
    (ws / "params.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    with_model = {**base, "audit": {**base["audit"], "checks": [*IMAGE_CHECKS, "label",
                                                                "outlier"]}}
    (ws / "params_model.yaml").write_text(yaml.safe_dump(with_model, sort_keys=False))
    for stage in ("scan", "tensors"):
        run_cli(ws, stage)
    return ws


def test_help_imports_neither_params_nor_pandas(project: Path) -> None:
    modules = run_cli(project, "--help-only")
    assert loaded(modules, ("pandas", "numpy", "dataqa.params", *TORCH, *TUNING)) == []


@pytest.mark.parametrize("stage, heavy", [
    # params loading and checking (every stage) and the listing: no tuning code, no torch
    ("fingerprint", (*TRAINING, *TUNING, "scipy", "faiss")),
    ("scan", (*TRAINING, *TUNING, "scipy")),
    ("tensors", (*TRAINING, *TUNING)),
    # external predictions are read and aligned, nothing is trained
    ("crossval", (*TRAINING, *TUNING)),
    # the image-level checks: no model, so no torch (1.3-3 s, ~500 MB) and no cleanlab
    ("audit", (*TRAINING, *TUNING, "cleanlab", "scipy")),
    ("report", (*TRAINING, *TUNING)),
    ("gate", (*TRAINING, *TUNING, "jinja2", "cleanlab")),
])
def test_stage_imports_only_what_its_configuration_uses(project: Path, stage: str,
                                                        heavy: tuple[str, ...]) -> None:
    assert loaded(run_cli(project, stage), heavy) == []


def test_audit_of_given_predictions_imports_no_training_code(project: Path) -> None:
    """The label and outlier checks read the given predictions and embeddings: cleanlab
    runs (with the scikit-learn and SciPy it imports), the training engine does not."""
    run_cli(project, "crossval", "--params", "params_model.yaml")
    modules = run_cli(project, "audit", "--params", "params_model.yaml")
    assert loaded(modules, (*TORCH, "dataqa.engine", "optuna", "dataqa.tune")) == []
    assert loaded(modules, ("cleanlab",)) == ["cleanlab"]  # the guard sees real imports
