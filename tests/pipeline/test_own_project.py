"""dataqa in a user's own repository, the way a new user gets there: build the wheel,
install it into a fresh virtualenv, `dataqa init --source <train/val tree>` in a new git
repository, `dvc repro`, `dvc repro` again, `dvc metrics show`.

Why the fresh virtualenv borrows third-party packages: installing torch, DVC and the
rest into a new venv takes minutes and ~4 GB per run. So the venv gets only the wheel
(``pip install --no-deps``), and a ``.pth`` file puts the site-packages of the
interpreter running the tests on its path, without processing the ``.pth`` files there
(so no editable dataqa install comes along). What is under test is *dataqa*: the test
asserts that ``dataqa`` is imported from the fresh venv's site-packages (the wheel), not
from this repository or an editable install, and every command runs with its cwd outside
the repository and without PYTHONPATH. The wheel is built from a copy of the tracked
package files, so it must ship the presets, templates and everything init writes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.pipeline.workspace import TINY, deep_merge, draw_digit_folder

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _run(cmd: list[str], cwd: Path, env: dict[str, str], *, check: bool = True,
         timeout: float = 600) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout\n"
                             f"{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-6000:]}")
    return proc


def _build_wheel(tmp: Path) -> Path:
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "dataqa", src / "dataqa",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "--disable-pip-version-check", "-q", "-w", str(dist), str(src)], tmp, dict(os.environ))
    (wheel,) = dist.glob("dataqa-*.whl")
    return wheel


def _fresh_venv(tmp: Path, wheel: Path) -> tuple[Path, dict[str, str]]:
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    # without PYTHONPATH: a checkout on it (with its dataqa.egg-info) made pip answer
    # "already satisfied" and install nothing into the fresh venv
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q",
          "--disable-pip-version-check", str(wheel)], tmp,
         {k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig."
                                "get_paths()['purelib'])"], capture_output=True, text=True,
                               check=True).stdout.strip())
    # third-party packages of this interpreter, minus anything that holds dataqa itself
    borrowed = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()
                and not (Path(p) / "dataqa").exists()]
    borrowed.append(sysconfig.get_paths()["purelib"])
    (site / "zz_borrowed.pth").write_text("\n".join(dict.fromkeys(borrowed)) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")
    env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = "test"
    env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = "test@example.com"
    return venv, env


def _tree_digest(root: Path) -> dict[str, tuple[int, bytes]]:
    return {p.relative_to(root).as_posix(): (p.stat().st_mode, p.read_bytes())
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_wheel_init_repro_in_a_new_repository(tmp_path: Path) -> None:
    import yaml

    wheel = _build_wheel(tmp_path)
    venv, env = _fresh_venv(tmp_path, wheel)
    py = str(venv / "bin" / "python")
    proj = tmp_path / "project"
    images = proj / "images"
    draw_digit_folder(images / "train", classes=3, per_class=12, seed=0)
    draw_digit_folder(images / "val", classes=3, per_class=4, seed=1)
    # a training image copied into val: leakage the folder splits must reveal
    shutil.copy2(images / "train" / "1" / "d000.png", images / "val" / "1" / "copy.png")
    before = _tree_digest(images)

    where = _run([py, "-c", "import dataqa, sys; print(dataqa.__file__)"], proj, env)
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout  # the wheel's copy
    assert not Path(where.stdout.strip()).is_relative_to(REPO)

    _run(["git", "init", "-q"], proj, env)
    # outside a project: a hint, not a traceback
    hint = _run(["dataqa", "scan"], proj, env, check=False)
    assert hint.returncode == 2 and "dataqa init --source" in hint.stderr

    init = _run(["dataqa", "init", "--source", "images", "--dvc-init"], proj, env)
    assert "layout: split/class" in init.stdout
    assert "split train: 36 files in 3 classes" in init.stdout
    assert "split val: 13 files in 3 classes" in init.stdout
    assert (proj / ".dvc").is_dir()
    for rel in ("params.yaml", "dvc.yaml", "stages/scan.py", "stages/tune.py"):
        assert (proj / rel).is_file(), rel
    params = yaml.safe_load((proj / "params.yaml").read_text())
    assert params["split"]["val_split"] == "val"
    assert "/dataqa-out/" in (proj / ".gitignore").read_text()
    # tiny budgets so the run takes about a minute (the mechanics are under test)
    params = deep_merge(params, TINY)
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    # the folder splits feed the leakage check: the gate fails and names both files
    failed = _run([py, "-m", "dvc", "repro"], proj, env, check=False, timeout=900)
    assert failed.returncode != 0
    assert ("FAILED max_cross_split_duplicates.exact_duplicate: see reports/audit.html"
            in failed.stdout), failed.stdout[-3000:]
    assert "train/1/d000.png (train) <-> val/1/copy.png (val)" in failed.stdout
    params["gate"]["max_cross_split_duplicates"] = None  # accepted: go on
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run([py, "-m", "dvc", "repro"], proj, env, timeout=900)
    manifest = _run([py, "-c", "import pandas as pd; m = pd.read_parquet("
                     "'dataqa-out/interim/manifest.parquet'); print(sorted(set(m.split))); "
                     "print(sorted(set(m.label)))"], proj, env).stdout.splitlines()
    assert manifest == ["['train', 'val']", "['0', '1', '2']"]
    assert _tree_digest(images) == before  # the source is byte-identical
    outputs = [p for p in proj.rglob("*") if p.is_file() and ".git" not in p.parts
               and ".dvc" not in p.parts]
    assert not [p for p in outputs if p.is_relative_to(images) and
                p.relative_to(images).as_posix() not in before]  # nothing written inside
    assert (proj / "dataqa-out" / "interim" / "tensors.npy").is_file()
    assert (proj / "reports" / "audit.html").is_file()

    again = _run([py, "-m", "dvc", "repro"], proj, env)
    # only the always-run source listing runs; its output is unchanged, so nothing else
    assert re.findall(r"Running stage '([\w-]+)'", again.stdout) == ["fingerprint"], \
        again.stdout

    shown = _run([py, "-m", "dvc", "metrics", "show", "--json"], proj, env)
    doc = json.loads(shown.stdout)
    values = _leaves(doc)
    assert 5 <= len(values) <= 30, values
    table = _run([py, "-m", "dvc", "metrics", "show"], proj, env)
    assert "reports/metrics.json" in table.stdout


def _leaves(node: object, prefix: str = "") -> dict[str, object]:
    """Metric values of `dvc metrics show --json` ({"": {"data": {file: {"data": {...}}}}})."""
    out: dict[str, object] = {}
    if isinstance(node, dict):
        for k, v in node.items():
            out.update(_leaves(v, f"{prefix}.{k}" if prefix else str(k)))
    else:
        out[prefix] = node
    return out
