"""Hostile and odd data, round two (issue 15): files that decode into wrong pixels or
too slowly, files swapped after the scan, the worst data (no model can be trained),
sources mixed with the outputs, and the listing's counts and warnings. Every case ends
in a flagged row, a not-evaluated verdict with a report, or exit code 2 naming the
file; each test runs under a timeout (a hang fails it)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dataqa.dataset.imageio import decode_image
from tests.corpus.make_corpus import (
    encoded,
    float_tiff_with,
    oversized_header_jpeg,
    photo,
    repeated_scan_jpeg,
)
from tests.corpus.test_corpus import stage, write_params
from tests.corpus.test_hostile import cli, digits
from tests.pipeline.workspace import draw_digit_folder

# --------------------------------------------------------------- files that decode wrong
DECODER_KINDS: dict[str, tuple[Callable[[], bytes], str, str]] = {
    # name -> (bytes, decode_error prefix, integrity_kind)
    "0/slow_2000_scans.jpg": (lambda: repeated_scan_jpeg(2000, 64), "over the time budget",
                              "over_time_budget"),
    "0/header_claims_6000x6000.jpg": (oversized_header_jpeg, "truncated", "truncated"),
    "1/float_nan.tif": (lambda: float_tiff_with(float("nan")), "cannot decode", "corrupt"),
    "1/float_inf.tif": (lambda: float_tiff_with(float("inf")), "cannot decode", "corrupt"),
}


@pytest.mark.timeout(120)
def test_files_that_decode_wrong_are_flagged_by_integrity(tmp_path: Path) -> None:
    src = tmp_path / "src"
    draw_digit_folder(src, classes=2, per_class=8)
    for rel, (make, _, _) in DECODER_KINDS.items():
        (src / rel).write_bytes(make())
    params = write_params(tmp_path, "src", scan={"workers": 2})  # across processes too
    for name in ("scan", "tensors", "crossval", "audit"):
        code, log = stage(name, params)
        assert code == 0, log
    manifest = pd.read_parquet(tmp_path / "dataqa-out/interim/manifest.parquet")
    issues = pd.read_parquet(tmp_path / "dataqa-out/audit/issues.parquet")
    for rel, (_, error, kind) in DECODER_KINDS.items():
        row = int(manifest.index[manifest["path"] == rel][0])
        assert str(manifest.at[row, "decode_error"]).startswith(error), rel
        assert issues.at[row, "integrity_kind"] == kind, rel


def test_a_decode_over_the_time_budget_is_stopped() -> None:
    data = repeated_scan_jpeg(60, 1024)  # 60 scans: allowed, but ~1 s to decode
    decoded = decode_image(data, 40_000_000, budget=0.05)
    assert decoded.image is None
    assert str(decoded.error).startswith("over the time budget: decoding stopped after 0.05 s")


# --------------------------------------------------------------- reopen after the scan
def swap_for_fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def swap_for_dev_zero(path: Path) -> None:
    path.unlink()
    path.symlink_to("/dev/zero")


def swap_for_outside_image(path: Path) -> None:
    outside = path.parents[2] / "outside.png"
    outside.write_bytes(path.read_bytes())
    path.unlink()
    path.symlink_to(outside)


def swap_for_other_image(path: Path) -> None:
    path.write_bytes(encoded(photo(28, 28, seed=5).convert("L"), "PNG"))


SWAPS: dict[str, tuple[Callable[[Path], None], str]] = {
    "fifo": (swap_for_fifo, "not a regular file (a FIFO)"),
    "dev_zero_symlink": (swap_for_dev_zero, "outside the source root"),
    "symlink_to_image_outside_root": (swap_for_outside_image, "outside the source root"),
    "replaced_image": (swap_for_other_image, "bytes, the scan read"),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("swap", list(SWAPS))
def test_a_file_swapped_after_the_scan_is_refused_by_every_reader(tmp_path: Path,
                                                                  swap: str) -> None:
    make, says = SWAPS[swap]
    digits(tmp_path / "src")
    params = write_params(tmp_path, "src", gate={"max_undecodable_rate": None})
    for name in ("scan", "tensors", "crossval", "audit"):
        assert stage(name, params)[0] == 0
    target = tmp_path / "src" / "1" / "d002.png"
    make(target)
    # tensors: an error naming the file (a subprocess: a hang would be the timeout)
    proc = cli(params, "tensors", timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "1/d002.png: changed since the scan" in proc.stderr and says in proc.stderr
    assert "Traceback" not in proc.stderr
    # the report is still written; the file's thumbnail says why it is missing
    from dataqa.params import load_params
    from dataqa.report.audit_report import load
    data = load(load_params(params))
    row = int(data.manifest.index[data.manifest["path"] == "1/d002.png"][0])
    data.thumbs.want([row])
    data.thumbs.load()
    assert data.thumbs.get(row).uri is None
    assert "changed since the scan" in str(data.thumbs.get(row).note)


# --------------------------------------------------------------- the worst data
def nothing_decodable(src: Path) -> str:
    for c in ("cat", "dog"):
        (src / c).mkdir(parents=True)
        for i in range(4):
            (src / c / f"broken{i}.png").write_bytes(b"not a picture")
    return "src"


def single_class(src: Path) -> str:
    draw_digit_folder(src, classes=1, per_class=8)
    return "src"


def classes_of_one(src: Path) -> str:
    draw_digit_folder(src, classes=3, per_class=6)
    for name in ("x", "y", "z"):  # three classes with one image each
        (src / name).mkdir()
        (src / name / "only.png").write_bytes((src / "0" / "d000.png").read_bytes())
    return "src"


def typo_label(src: Path) -> str:
    from tests.corpus.test_corpus import typo_label_csv
    return typo_label_csv(src)


WORST: dict[str, tuple[Callable[[Path], str], str, int]] = {
    # name -> (source, words of the not-evaluated reason, gate exit code)
    "nothing_decodable": (nothing_decodable, "no decodable image has a label", 1),
    "single_class": (single_class, "every labelled image is '0'", 0),
    "classes_of_one_image": (classes_of_one, "has 1 image", 1),
    "mistyped_label_one_image": (typo_label, "class 'cta' has 1 image", 1),
}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", list(WORST))
def test_worst_data_still_gets_a_report(tmp_path: Path, kind: str) -> None:
    make, reason, gate_code = WORST[kind]
    (tmp_path / "src").mkdir()
    params = write_params(tmp_path, make(tmp_path / "src"),
                          gate={"min_images_per_class": 2, "max_rates": {"label": 0.1}})
    codes, logs = {}, {}
    for name in ("scan", "tensors", "crossval", "learning_curve", "audit", "report", "gate"):
        codes[name], logs[name] = stage(name, params)
        assert "Traceback" not in logs[name], logs[name]
    assert codes == {**dict.fromkeys(codes, 0), "gate": gate_code}, logs
    crossval = yaml.safe_load((tmp_path / "dataqa-out/metrics/crossval.json").read_text())
    assert crossval["evaluated"] is False and reason in crossval["not_evaluated_reason"]
    audit = yaml.safe_load((tmp_path / "dataqa-out/metrics/audit.json").read_text())
    assert set(audit["not_evaluated"]) == {"label", "outlier"}
    assert "integrity" in audit["checks"] and "exact_duplicate" in audit["checks"]
    html = (tmp_path / "reports/audit.html").read_text(encoding="utf-8")
    assert "The label check was not evaluated: no model could be trained" in html
    gate = yaml.safe_load((tmp_path / "reports/gate.json").read_text())
    label_rule = gate["rules"]["max_rates.label"]
    assert label_rule["passed"] is None and "not evaluated: no model" in label_rule["message"]


@pytest.mark.timeout(300)
def test_a_diverging_learning_rate_is_an_error_not_completed(tmp_path: Path) -> None:
    draw_digit_folder(tmp_path / "src", classes=2, per_class=16)
    params = write_params(tmp_path, "src", crossval={"lr": 10.0, "epochs": 2})
    for name in ("scan", "tensors"):
        assert stage(name, params)[0] == 0
    code, log = stage("crossval", params)
    assert code == 2, log
    assert "diverged" in log and "lower crossval.lr" in log and "Traceback" not in log
    assert not (tmp_path / "dataqa-out/metrics/crossval.json").exists()


def test_saturated_held_out_predictions_count_as_diverged() -> None:
    import numpy as np

    from dataqa.engine.crossval import held_out_loss
    saturated = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    assert held_out_loss(saturated, np.array([1, 1])) == float("inf")  # a 0 for a true class
    assert held_out_loss(saturated, np.array([0, 1])) == 0.0


# --------------------------------------------------------------- odd source layouts
def csv_symlinked_from_elsewhere(ws: Path) -> str:
    # the real CSV and its images live in 'elsewhere'; the project links to the CSV
    elsewhere = ws / "elsewhere"
    draw_digit_folder(elsewhere / "imgs", classes=2, per_class=6)
    rows = ["path,label"] + [f"imgs/{c}/d{i:03d}.png,{'ab'[c]}" for c in range(2)
                             for i in range(6)]
    (elsewhere / "list.csv").write_text("\n".join(rows) + "\n")
    # a decoy next to the link with the same relative paths but other pixels
    draw_digit_folder(ws / "src" / "imgs", classes=2, per_class=6, seed=9)
    (ws / "src" / "list.csv").symlink_to(elsewhere / "list.csv")
    return "src/list.csv"


def test_a_symlinked_csv_source_resolves_one_root_for_every_stage(tmp_path: Path) -> None:
    import numpy as np

    from dataqa.dataset.imageio import letterbox, open_image
    params = write_params(tmp_path, csv_symlinked_from_elsewhere(tmp_path))
    for name in ("scan", "tensors"):
        assert stage(name, params)[0] == 0
    manifest = pd.read_parquet(tmp_path / "dataqa-out/interim/manifest.parquet")
    tensors = np.load(tmp_path / "dataqa-out/interim/tensors.npy")
    real = tmp_path / "elsewhere"
    for i, rel in enumerate(manifest["path"]):  # the tensors are of the hashed files
        import hashlib
        assert manifest.at[i, "sha256"] == hashlib.sha256((real / rel).read_bytes()).hexdigest()
        pixels = np.asarray(open_image(real / rel, 10**7).convert("L"))
        assert (tensors[i, ..., 0] == letterbox(pixels, 16)[0]).all()


LAYOUTS: dict[str, tuple[str, str]] = {
    "dot": (".", "contains the pipeline's outputs"),
    "empty": ("", "data.source is empty"),
    # outputs moved under data/ (paths.out): the source 'data' is their parent
    "parent_of_outputs": ("data", "contains the pipeline's outputs paths.augmented_dir"),
    "inside_an_output": ("data/out/augmented", "lies inside the output paths.augmented_dir"),
}
OUT_UNDER_DATA = {"paths": {"out": "data/out", "augmented_dir": "data/out/augmented"}}


@pytest.mark.parametrize("kind", list(LAYOUTS))
def test_a_source_mixed_with_the_outputs_is_refused(tmp_path: Path, kind: str) -> None:
    source, says = LAYOUTS[kind]
    draw_digit_folder(tmp_path / "data" / "out" / "augmented", classes=2, per_class=3)
    params = write_params(tmp_path, source, **OUT_UNDER_DATA)
    for name in ("fingerprint", "scan"):
        code, log = stage(name, params)
        assert code == 2, log
        assert says in log and "Traceback" not in log


def test_a_csv_row_naming_an_output_is_refused(tmp_path: Path) -> None:
    draw_digit_folder(tmp_path / "imgs", classes=2, per_class=3)
    (tmp_path / "dataqa-out/augmented/images").mkdir(parents=True)
    (tmp_path / "dataqa-out/augmented/images/0000001.png").write_bytes(
        (tmp_path / "imgs/0/d000.png").read_bytes())
    (tmp_path / "list.csv").write_text("path,label\nimgs/0/d000.png,a\nimgs/1/d000.png,b\n"
                                       "dataqa-out/augmented/images/0000001.png,a\n")
    code, log = stage("scan", write_params(tmp_path, "list.csv"))
    assert code == 2
    assert "'dataqa-out/augmented/images/0000001.png' (paths.augmented_dir)" in log


# --------------------------------------------------------------- listing: once, counted
def test_listing_counts_skipped_extensions_and_warns_on_look_alikes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    draw_digit_folder(src, classes=2, per_class=4)
    png = (src / "0" / "d000.png").read_bytes()
    for name in ("a.jfif", "b.JPE", "c.heic", "d.HEIC"):
        (src / "0" / name).write_bytes(png)
    (src / "Cat").mkdir()
    (src / "cat").mkdir()
    for folder in ("Cat", "cat"):
        (src / folder / "x.png").write_bytes(png)
    nfc, nfd = "caf\u00e9", "cafe\u0301"
    for folder in (nfc, nfd):
        (src / folder).mkdir()
        (src / folder / "y.png").write_bytes(png)
    (src / "all").symlink_to(src, target_is_directory=True)  # a class folder -> the root
    params = write_params(tmp_path, "src")
    code, log = stage("scan", params)
    assert code == 0, log
    manifest = pd.read_parquet(tmp_path / "dataqa-out/interim/manifest.parquet")
    assert manifest["path"].is_unique and not manifest["path"].str.startswith("all/").any()
    assert len(manifest) == 2 * 4 + 4  # each file once, through the link too
    assert ("4 file(s) with an image extension not in scan.extensions were skipped "
            "(2 .heic, 1 .jfif, 1 .jpe)") in log
    assert "look-alike class names" in log and "'Cat' vs 'cat'" in log
    assert "'cafe\\u0301' vs 'caf\\xe9'" in log  # shown escaped: they look the same
    assert manifest.attrs["skipped_extensions"] == {".heic": 2, ".jfif": 1, ".jpe": 1}
    for name in ("tensors", "crossval", "audit", "report"):
        assert stage(name, params)[0] == 0
    html = (tmp_path / "reports/audit.html").read_text(encoding="utf-8")
    assert "look-alike class names" in html and "<code>.heic</code> 2" in html


def test_csv_labels_01_and_1_are_warned_about(tmp_path: Path) -> None:
    draw_digit_folder(tmp_path / "imgs", classes=2, per_class=3)
    (tmp_path / "list.csv").write_text("path,label\nimgs/0/d000.png,01\nimgs/0/d001.png,1\n"
                                       "imgs/1/d000.png,2\n")
    code, log = stage("scan", write_params(tmp_path, "list.csv"))
    assert code == 0 and "'01' vs '1'" in log
