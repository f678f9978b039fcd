"""crossval.mode: external: the user's own predictions keyed by image path (Parquet, CSV,
NPY + path list) are aligned with the manifest and written as the crossval stage's
outputs; every misalignment is a named error (exit 2 through the CLI)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dataqa.cli import main as cli_main
from dataqa.dataset.manifest import COLUMNS
from dataqa.errors import PredictionsError
from dataqa.io import write_parquet
from dataqa.params import Params
from dataqa.steps.crossval import run_stage as crossval_stage

CLASSES = ["cat", "dog", "fox"]
N = 12  # 4 per class; row 11 is undecodable, row 10 unlabelled


def _manifest() -> pd.DataFrame:
    frame = pd.DataFrame({c: np.zeros(N, np.int64) if t == "int64" else
                          pd.Series([None] * N, dtype=t) for c, t in COLUMNS.items()})
    labels = [CLASSES[i % 3] for i in range(N)]
    frame["id"] = np.arange(N)
    frame["path"] = pd.Series([f"{lab}/{i:02d}.png" for i, lab in enumerate(labels)],
                              dtype="string")
    labels[10] = None  # type: ignore[call-overload]
    frame["label"] = pd.Series(labels, dtype="string")
    frame["split"] = pd.Series(["train"] * N, dtype="string")
    frame.loc[11, "decode_error"] = "cannot decode: planted"
    return frame


@pytest.fixture
def setup(tmp_path: Path, params_for: Callable[..., Params]
          ) -> Callable[..., tuple[Params, pd.DataFrame]]:
    """``setup(file_name, **external)``: a manifest, a source folder and params in
    external mode; returns the params and the good predictions frame (path + classes)."""
    (tmp_path / "images").mkdir()
    manifest = _manifest()
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(3), size=N)
    good = pd.DataFrame(p, columns=CLASSES)
    good.insert(0, "path", manifest["path"].astype(str))

    def make(name: str = "preds.parquet", **external: Any) -> tuple[Params, pd.DataFrame]:
        params = params_for(data={"source": "images"},
                            crossval={"mode": "external",
                                      "external": {"pred_probs": f"ext/{name}", **external}})
        write_parquet(params.path("manifest"), manifest)
        (tmp_path / "ext").mkdir(exist_ok=True)
        return params, good
    return make


def _write(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)


@pytest.mark.parametrize("name", ["preds.parquet", "preds.csv"])
def test_table_aligned_with_manifest(setup: Any, name: str) -> None:
    params, good = setup(name)
    shuffled = good.sample(frac=1.0, random_state=1)[["path", "fox", "cat", "dog"]]
    _write(shuffled, params.resolve(f"ext/{name}"))
    assert crossval_stage(params) == 0
    probs = np.load(params.path("pred_probs"))
    emb = np.load(params.path("embeddings"))
    assert probs.shape == (N, 3) and emb.shape == (N, 1) and np.isnan(emb).all()
    np.testing.assert_allclose(probs[:10], good[CLASSES].to_numpy()[:10], rtol=1e-5)
    assert np.isnan(probs[10:]).all()  # unlabelled and undecodable rows: ignored
    metrics = json.loads(params.path("crossval_metrics").read_text())
    assert metrics["classes"] == CLASSES and metrics["mode"] == "external"
    assert metrics["n_used"] == 10 and "embeddings" in metrics["warnings"][0]


def test_npy_with_path_list_and_embeddings(setup: Any, tmp_path: Path) -> None:
    params, good = setup("preds.npy", paths="ext/paths.txt", classes=["dog", "cat", "fox"],
                         embeddings="ext/emb.npy")
    order = np.arange(10)[::-1]  # only the rows that need a prediction, reversed
    np.save(tmp_path / "ext/preds.npy", good[["dog", "cat", "fox"]].to_numpy()[order])
    emb = np.arange(40, dtype=np.float32).reshape(10, 4)
    np.save(tmp_path / "ext/emb.npy", emb)
    absolute = [str((tmp_path / "images" / p).resolve()) for p in good["path"][order]]
    (tmp_path / "ext/paths.txt").write_text("\n".join(absolute) + "\n")
    assert crossval_stage(params) == 0
    probs = np.load(params.path("pred_probs"))
    np.testing.assert_allclose(probs[:10], good[CLASSES].to_numpy()[:10], rtol=1e-5)
    np.testing.assert_array_equal(np.load(params.path("embeddings"))[order], emb)


def _bad(good: pd.DataFrame, how: str) -> pd.DataFrame:
    bad = good.copy()
    if how == "missing":
        bad = bad.drop(index=[4])
    elif how == "extra":
        bad = pd.concat([bad, bad.iloc[[0]].assign(path="cat/99.png")])
    elif how == "twice":
        bad = pd.concat([bad, bad.iloc[[2]]])
    elif how == "no_class":
        bad = bad.drop(columns=["dog"])
    elif how == "unknown_class":
        bad = bad.assign(wolf=0.0)
    elif how == "nan":
        bad.loc[3, "dog"] = np.nan
    elif how == "sum":
        bad.loc[5, "cat"] = bad.loc[5, "cat"] + 0.2
    elif how == "negative":
        bad.loc[6, ["cat", "dog", "fox"]] = [1.5, -0.5, 0.0]
    elif how == "no_path":
        bad = bad.rename(columns={"path": "file"})
    elif how == "text":
        bad["fox"] = "high"
    return bad


@pytest.mark.parametrize("how,match", [
    ("missing", r"1 decodable, labelled image\(s\) have no row \(missing rows\): 'dog/04.png'"),
    ("extra", r"1 path\(s\) not in the manifest \(extra rows\): row 12 'cat/99.png'"),
    ("twice", r"listed twice: 'fox/02.png' \(rows 2 and 12\)"),
    ("no_class", r"no column for class\(es\) 'dog'"),
    ("unknown_class", r"column\(s\) 'wolf' are not classes of the manifest"),
    ("nan", r"row\(s\) with NaN or inf; first: row 3 \('cat/03.png'\), column 'dog'"),
    ("sum", r"do not sum to 1 .*first: row 5 \('fox/05.png'\) sums to 1.2"),
    ("negative", r"negative probability; first: row 6 \('cat/06.png'\), column 'dog'"),
    ("no_path", r"no 'path' column"),
    ("text", r"column\(s\) 'fox' are not numeric"),
])
def test_misaligned_predictions_are_named_errors(setup: Any, how: str, match: str) -> None:
    params, good = setup("preds.parquet")
    _write(_bad(good, how), params.resolve("ext/preds.parquet"))
    with pytest.raises(PredictionsError, match=match):
        crossval_stage(params)
    assert not params.path("pred_probs").exists()  # nothing half-written


def test_npy_errors(setup: Any, tmp_path: Path) -> None:
    params, good = setup("preds.npy", paths="ext/paths.txt")
    np.save(tmp_path / "ext/preds.npy", good[CLASSES].to_numpy())
    (tmp_path / "ext/paths.txt").write_text("\n".join(good["path"]))
    with pytest.raises(PredictionsError, match="list the class of each column"):
        crossval_stage(params)
    params, _ = setup("preds.npy", paths="ext/paths.txt", classes=CLASSES + ["wolf"])
    with pytest.raises(PredictionsError, match=r"shape \(12, 3\), expected \(12, 4\)"):
        crossval_stage(params)
    params, _ = setup("preds.npy", classes=CLASSES)
    with pytest.raises(PredictionsError, match="needs crossval.external.paths"):
        crossval_stage(params)
    params, _ = setup("preds.json")
    (tmp_path / "ext/preds.json").write_text("{}")
    with pytest.raises(PredictionsError, match="unsupported file type '.json'"):
        crossval_stage(params)
    params, _ = setup("gone.parquet")
    with pytest.raises(PredictionsError, match="gone.parquet: not found"):
        crossval_stage(params)


def test_embedding_rows_checked(setup: Any, tmp_path: Path) -> None:
    params, good = setup("preds.parquet", embeddings="ext/emb.parquet")
    _write(good, tmp_path / "ext/preds.parquet")
    emb = pd.DataFrame({"path": good["path"], "e0": 1.0, "e1": 2.0})
    emb.loc[7, "e1"] = np.inf
    _write(emb, tmp_path / "ext/emb.parquet")
    with pytest.raises(PredictionsError, match=r"emb.parquet: 1 row\(s\) with NaN or inf: "
                                               r"'dog/07.png'"):
        crossval_stage(params)


def test_cli_exit_2_names_the_row(setup: Any, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    params, good = setup("preds.csv")
    _write(_bad(good, "missing"), tmp_path / "ext/preds.csv")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({
        "data": {"source": "images"},
        "crossval": {"mode": "external", "external": {"pred_probs": "ext/preds.csv"}}}))
    code = cli_main(["crossval", "--params", str(tmp_path / "params.yaml")])
    assert code == 2
    assert "dog/04.png" in capsys.readouterr().err
