"""The bundled sample ``data/sample/``, the one sample regression suite: its planted
truth is real and complete, its class counts are as designed, it is small,
``scripts/make_sample.py`` regenerates it byte for byte, and (slow) the pipeline
through scan -> tensors -> crossval -> learning_curve -> audit with the repository's own
params flags every file-level problem planted in data/sample/PLANTED.csv with the check
meant for it, calls the planted rare class insufficient, and passes the default gate."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import imagehash
import numpy as np
import pandas as pd
import PIL
import pytest
import yaml
from PIL import Image
from scipy import ndimage

from dataqa.cli import main
from dataqa.dataset.imageio import ImageDecodeError, open_image
from dataqa.gate import evaluate
from dataqa.params import load_params

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"
SCRIPT = REPO / "scripts" / "make_sample.py"
MNIST = REPO.parent / "shared" / "datasets" / "mnist-test"
MAX_PIXELS = 40_000_000
Row = dict[str, str]


@pytest.fixture(scope="module")
def planted() -> dict[str, Row]:
    with open(SAMPLE / "PLANTED.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and list(rows[0]) == ["path", "kind", "check", "detail"]
    by_path = {r["path"]: r for r in rows}
    assert len(by_path) == len(rows), "a path is listed twice in PLANTED.csv"
    return by_path


@pytest.fixture(scope="module")
def decoded() -> dict[str, Image.Image | str]:
    """Every file of the sample, decoded once: path -> image, or the decode error."""
    out: dict[str, Image.Image | str] = {}
    for p in sorted(SAMPLE.glob("*/*")):
        try:
            out[p.relative_to(SAMPLE).as_posix()] = open_image(p, MAX_PIXELS)
        except ImageDecodeError as exc:
            out[p.relative_to(SAMPLE).as_posix()] = str(exc)
    return out


# kind -> (check meant to find it, number of rows)
KINDS = [
    ("exact_duplicate", "exact_duplicate", 4),  # byte-identical copies
    ("near_duplicate", "near_duplicate", 4),  # re-encoded / resized / cropped copies
    ("zero_byte", "integrity", 1),  # empty file
    ("truncated", "integrity", 1),  # 60% of a PNG
    ("not_an_image", "integrity", 1),  # text under .png
    ("wrong_extension", "integrity", 1),  # PNG under .jpg
    ("irrelevant_photo", "outlier", 5),  # skimage photos among digits
    ("rare_class", "class_balance", 1),  # class "7", a folder row
    ("flipped_label", "label", 12),  # clear digits in a wrong class
    ("dark", "dark", 3),  # x 0.15
    ("light", "light", 3),  # near-white
    ("blurry", "blurry", 3),  # Gaussian ~1.5 px
    ("complex_texture", "complexity", 4),  # noise / checker textures
    ("odd_aspect_ratio", "odd_aspect_ratio", 2),  # 140x28
    ("odd_size", "odd_size", 2),  # 280x280
]


def test_planted_kinds_checks_and_counts(planted: dict[str, Row]) -> None:
    got = Counter((r["kind"], r["check"]) for r in planted.values())
    assert got == Counter({(k, c): n for k, c, n in KINDS})


def test_every_planted_path_exists(planted: dict[str, Row]) -> None:
    for path, row in planted.items():
        assert "\\" not in path and not path.startswith(("/", "..")), path
        target = SAMPLE / path
        if row["kind"] == "rare_class":
            assert target.is_dir(), f"{path}: class-level kind must name a folder"
        else:
            assert target.is_file(), f"{path}: listed in PLANTED.csv but missing"


# class -> (files in the folder, clean real digits = files not in PLANTED.csv)
CLASS_COUNTS = [
    ("0", 220, 215),  # 215 clean + 5 planted
    ("1", 221, 215),  # the planted cycle's one extra lands here
    ("2", 220, 215),
    ("3", 220, 215),
    ("4", 220, 215),
    ("5", 220, 215),
    ("6", 220, 215),
    ("7", 25, 25),  # the rare class: no planted files, only 25 digits
    ("8", 220, 215),
    ("9", 220, 215),
]


@pytest.mark.parametrize(("label", "n_files", "n_clean"), CLASS_COUNTS)
def test_class_counts(planted: dict[str, Row], label: str, n_files: int, n_clean: int) -> None:
    files = [p.relative_to(SAMPLE).as_posix() for p in (SAMPLE / label).iterdir()]
    assert len(files) == n_files
    assert sum(f not in planted for f in files) == n_clean
    # clean files are real MNIST digits: 28x28 grayscale PNG named by test-set index
    for f in files:
        if f not in planted:
            assert Path(f).name.startswith("mnist_") and f.endswith(".png"), f


def test_only_class_folders_and_docs_at_root() -> None:
    assert sorted(p.name for p in SAMPLE.iterdir()) == sorted(
        [str(d) for d in range(10)] + ["PLANTED.csv", "README.md"])


def test_undecodable_files_are_exactly_the_planted_ones(
        planted: dict[str, Row], decoded: dict[str, Image.Image | str]) -> None:
    bad = {p for p, v in decoded.items() if isinstance(v, str)}
    assert bad == {p for p, r in planted.items()
                   if r["kind"] in ("zero_byte", "truncated", "not_an_image")}
    # the default gate passes: undecodable share <= 5%, every class >= 10 images
    assert len(bad) / len(decoded) <= 0.05
    assert min(Counter(p.split("/")[0] for p in decoded).values()) >= 10


def _laplacian_var(im: Image.Image) -> float:
    return float(ndimage.laplace(np.asarray(im.convert("L"), dtype=np.float64) / 255).var())


def _source(row: Row) -> str:
    return row["detail"].split("copy of ")[1].split(":")[0]


_CLEAN_EXTREMES: dict[str, float] = {}


def _clean_extreme(name: str, fn: Callable[[Image.Image], float], pick: Callable,
                   planted: dict[str, Row], decoded: dict[str, Image.Image | str]) -> float:
    """``pick`` (min/max) of ``fn`` over the clean digits, computed once per test run."""
    if name not in _CLEAN_EXTREMES:
        _CLEAN_EXTREMES[name] = pick(fn(v) for p, v in decoded.items()
                                     if p not in planted and not isinstance(v, str))
    return _CLEAN_EXTREMES[name]


Check = Callable[[str, Row, dict[str, Row], dict[str, Image.Image | str]], None]


def _exact(path: str, row: Row, planted: dict[str, Row], dec: dict) -> None:
    src = _source(row)
    assert src.split("/")[0] == path.split("/")[0] and src != path and src not in planted
    assert (SAMPLE / path).read_bytes() == (SAMPLE / src).read_bytes()


def _near(path: str, row: Row, planted: dict[str, Row], dec: dict) -> None:
    src = _source(row)
    assert src.split("/")[0] == path.split("/")[0] and src not in planted
    a, b = dec[path], dec[src]
    assert a.size != b.size or not np.array_equal(np.asarray(a), np.asarray(b))
    assert imagehash.phash(a) - imagehash.phash(b) <= 4


def _error(reason: str) -> Check:
    def check(path: str, row: Row, planted: dict[str, Row], dec: dict) -> None:
        assert isinstance(dec[path], str) and reason in dec[path], dec[path]
    return check


def _truncated(path: str, row: Row, planted: dict[str, Row], dec: dict) -> None:
    _error("truncated")(path, row, planted, dec)
    assert (SAMPLE / path).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def _wrong_ext(path: str, row: Row, planted: dict[str, Row], dec: dict) -> None:
    assert path.endswith(".jpg") and dec[path].size == (28, 28)
    assert Image.open(SAMPLE / path).format == "PNG"


def _photo(path: str, row: Row, planted: dict[str, Row], dec: dict) -> None:
    im = dec[path]
    assert im.mode == "RGB" and 64 <= max(im.size) <= 128 and min(im.size) >= 40
    assert Image.open(SAMPLE / path).format == "JPEG"


def _rare(path: str, row: Row, planted: dict[str, Row], dec: dict) -> None:
    counts = Counter(p.split("/")[0] for p in dec)
    assert counts[path] == 25 and min(n for c, n in counts.items() if c != path) >= 8 * 25


def _flipped(path: str, row: Row, planted: dict[str, Row], dec: dict) -> None:
    true = row["detail"].removeprefix("true label ")
    assert true in {str(d) for d in range(10)} and true != path.split("/")[0]
    # not also present, under any name, anywhere else in the sample
    im = dec[path]
    same = [p for p, v in dec.items() if not isinstance(v, str) and v.size == im.size
            and v.mode == im.mode and v.tobytes() == im.tobytes()]
    assert same == [path], same


def _dark(path: str, row: Row, planted: dict[str, Row], dec: dict) -> None:
    assert int(np.asarray(dec[path]).max()) <= 40


def _light(path: str, row: Row, planted: dict[str, Row], dec: dict) -> None:
    assert int(np.asarray(dec[path]).min()) >= 215


def _blurry(path: str, row: Row, planted: dict[str, Row], dec: dict) -> None:
    least_sharp = _clean_extreme("laplacian", _laplacian_var, min, planted, dec)
    assert dec[path].size == (28, 28) and _laplacian_var(dec[path]) < 0.2 * least_sharp


def _zlib_size(im: Image.Image) -> int:
    # compressed size of the raw pixels: a complexity measure (busy = incompressible)
    return len(zlib.compress(im.tobytes(), 9))


def _texture(path: str, row: Row, planted: dict[str, Row], dec: dict) -> None:
    largest_digit = _clean_extreme("zlib", _zlib_size, max, planted, dec)
    assert dec[path].size == (28, 28) and _zlib_size(dec[path]) > 2 * largest_digit


def _size(expected: tuple[int, int]) -> Check:
    def check(path: str, row: Row, planted: dict[str, Row], dec: dict) -> None:
        assert dec[path].size == expected
    return check


# kind -> what makes the planted problem real
TRUTH: dict[str, Check] = {
    "exact_duplicate": _exact,  # same bytes as a clean file of the same class
    "near_duplicate": _near,  # other pixels, perceptual hash within 4 bits of the source
    "zero_byte": _error("zero-byte"),  # open_image says so
    "truncated": _truncated,  # a PNG header whose data stops early
    "not_an_image": _error("unidentified"),  # no image format recognised
    "wrong_extension": _wrong_ext,  # decodes; PNG content, .jpg name
    "irrelevant_photo": _photo,  # an RGB JPEG photo 64..128 px, not a 28x28 digit
    "rare_class": _rare,  # 25 images vs >= 200 elsewhere
    "flipped_label": _flipped,  # a different true label, not duplicated in its true class
    "dark": _dark,  # brightest pixel <= 40 of 255
    "light": _light,  # darkest pixel >= 215 of 255
    "blurry": _blurry,  # Laplacian variance < 0.2x the least sharp clean digit
    "complex_texture": _texture,  # zlib size > 2x that of any clean digit
    "odd_aspect_ratio": _size((140, 28)),  # 5:1 wide
    "odd_size": _size((280, 280)),  # 10x the usual side
}


def test_planted_truth_is_real(planted: dict[str, Row],
                               decoded: dict[str, Image.Image | str]) -> None:
    assert set(TRUTH) == {k for k, _, _ in KINDS}
    for path, row in planted.items():
        try:
            TRUTH[row["kind"]](path, row, planted, decoded)
        except AssertionError as exc:
            raise AssertionError(f"{path} ({row['kind']}): {exc}") from None


def test_total_size_is_small() -> None:
    total = sum(p.stat().st_size for p in SAMPLE.rglob("*") if p.is_file())
    assert total < 5_000_000, f"data/sample holds {total / 1e6:.2f} MB"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True,
                          text=True, timeout=120, check=False)


def test_regenerates_byte_identical(tmp_path: Path) -> None:
    if not (MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"MNIST test set not found at {MNIST}; cannot regenerate the sample")
    out = tmp_path / "sample"
    res = _run("--mnist", str(MNIST), "--out", str(out))
    assert res.returncode == 0, res.stderr
    want = {p.relative_to(SAMPLE).as_posix(): p.read_bytes()
            for p in SAMPLE.rglob("*") if p.is_file()}
    got = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert sorted(got) == sorted(want)
    differ = sorted(p for p in want if want[p] != got[p])
    assert not differ, (f"{len(differ)} files differ from the committed sample, e.g. "
                        f"{differ[:5]}; Pillow {PIL.__version__} here (the encoders' "
                        "output can change between Pillow builds)")


def test_missing_mnist_is_a_clear_error(tmp_path: Path) -> None:
    res = _run("--mnist", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"))
    assert res.returncode == 1
    assert f"{tmp_path / 'nowhere'}: MNIST test folder not found" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "out").exists()


def test_refuses_to_replace_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    res = _run("--out", str(tmp_path))
    assert res.returncode == 1 and "not a generated sample" in res.stderr
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_readme_keeps_the_attribution() -> None:
    text = (SAMPLE / "README.md").read_text(encoding="utf-8")
    for needle in ["Yann LeCun", "Corinna Cortes", "Burges", "CC BY-SA 3.0",
                   "skimage.data", "scripts/make_sample.py"]:
        assert needle in text, needle


# --------------------------------------------------------------------------- the pipeline
@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sample")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["source"] = str(SAMPLE)  # outputs go under root, the sample is only read
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("scan", "tensors", "crossval", "learning_curve", "audit"):
        assert main([stage, "--params", str(root / "params.yaml")]) == 0, stage
    return root


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_planted_file_is_flagged_by_its_check(audited: Path) -> None:
    params = load_params(audited / "params.yaml")
    issues = pd.read_parquet(params.path("issues")).set_index("path")
    planted = pd.read_csv(SAMPLE / "PLANTED.csv")
    files = planted[planted["path"].isin(issues.index)]
    assert len(files) == len(planted) - 1  # all but the class-level 'rare_class' row
    missed = [(r.path, r.kind) for r in files.itertuples()
              if not issues.at[r.path, f"is_{r.check}_issue"]]
    # every file-level problem is found; of the 12 flipped labels at least 10 (the
    # label verdict's goal below 1 % noise is 80 % of the flips: the default rule is
    # chosen on 10,000 real digits, not on this sample, where one flip scores 0.008
    # against the 0.005 threshold)
    assert [m for m in missed if m[1] != "flipped_label"] == []
    assert len([m for m in missed if m[1] == "flipped_label"]) <= 2, missed


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_rare_class_is_insufficient_and_gate_passes(audited: Path) -> None:
    params = load_params(audited / "params.yaml")
    metrics = json.loads(params.path("audit_metrics").read_text())
    assert metrics["balance"]["classes_under_min"] == ["7"]
    rules = evaluate(params.gate, metrics)
    assert [r.name for r in rules if r.passed is False] == []
