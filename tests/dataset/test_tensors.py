"""Stage ``tensors``: letterboxed (never stretched) uint8 tensors aligned with the
manifest, zeros for undecodable rows, colour chosen per dataset."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dataqa.dataset.imageio import letterbox, open_image
from dataqa.dataset.tensors import choose_channels
from dataqa.errors import StageInputError
from dataqa.io import write_parquet
from dataqa.params import Params
from dataqa.steps.tensors import run_stage


@dataclasses.dataclass
class Folder:
    """What the ``manifest_for`` fixture reads: files relative to ``root``."""

    root: Path
    truth: dict[str, str] = dataclasses.field(default_factory=dict)
    splits: dict[str, str] = dataclasses.field(default_factory=dict)


def _sample_photo(name: str) -> np.ndarray:
    if name.startswith("china"):
        from sklearn.datasets import load_sample_images
        photo = np.asarray(load_sample_images().images[0])
        return np.ascontiguousarray(np.rot90(photo)) if name == "china_tall" else photo
    import skimage.data
    return np.asarray(getattr(skimage.data, name)())


def _folder(root: Path, shapes: dict[str, tuple[int, ...] | str]) -> Folder:
    """One PNG per entry: a shape (random pixels) or the name of a bundled photo."""
    pf = Folder(root)
    rng = np.random.default_rng(0)
    for rel, spec in shapes.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if spec == "truncated":
            Image.fromarray(rng.integers(0, 255, (20, 20), dtype=np.uint8)).save(path)
            path.write_bytes(path.read_bytes()[:40])
        else:
            arr = (_sample_photo(spec) if isinstance(spec, str)
                   else rng.integers(1, 255, spec, dtype=np.uint8))
            Image.fromarray(arr).save(path)
        pf.truth[rel] = "clean" if spec != "truncated" else "truncated"
        pf.splits[rel] = "train"
    return pf


@pytest.fixture
def make_tensors(tmp_path: Path, params_for: Callable[..., Params],
                 manifest_for: Callable[..., pd.DataFrame]
                 ) -> Callable[..., tuple[Params, pd.DataFrame]]:
    """``make_tensors(shapes, size=, channels=, workers=)``: write the files, their
    manifest (real decoding, see conftest), run the stage; return params and manifest."""
    def make(shapes: dict[str, object], *, size: int = 32, channels: str = "auto",
             workers: int = 0) -> tuple[Params, pd.DataFrame]:
        pf = _folder(tmp_path / "images", shapes)  # type: ignore[arg-type]
        manifest = manifest_for(pf, max_pixels=10**8)
        manifest["stat_colorfulness"] = 0.0
        params = params_for(data={"source": str(pf.root)},
                            engine={"image_size": size, "channels": channels},
                            tensors={"workers": workers, "chunk_size": 2})
        write_parquet(params.path("manifest"), manifest)
        assert run_stage(params) == 0
        return params, manifest
    return make


@pytest.mark.parametrize("shape,size,box", [
    ((60, 20), 30, (0, 10, 30, 10)),  # tall: height fills, width padded both sides
    ((20, 60), 30, (10, 0, 10, 30)),  # wide: width fills, height padded
    ((40, 40), 30, (0, 0, 30, 30)),  # square: fills, no padding
    ((9, 30), 30, (10, 0, 9, 30)),  # exact fit of the long side: no resize at all
    ((3, 90), 30, (14, 0, 1, 30)),  # a sliver keeps at least one row
    ("china", 32, (5, 0, 21, 32)),  # real photo 427x640 (sklearn)
    ("camera", 32, (0, 0, 32, 32)),  # real photo 512x512 (skimage)
    ("china_tall", 32, (0, 5, 32, 21)),  # the same photo turned upright: 640x427
])
def test_letterbox_keeps_aspect(make_tensors: Callable[..., tuple[Params, pd.DataFrame]],
                                shape: object, size: int, box: tuple[int, int, int, int]) -> None:
    params, manifest = make_tensors({"a/x.png": shape}, size=size)
    index = pd.read_parquet(params.path("tensor_index"))
    got = tuple(int(index.at[0, c]) for c in ("box_top", "box_left", "box_height", "box_width"))
    assert got == box
    h, w = manifest.at[0, "height"], manifest.at[0, "width"]
    # aspect preserved up to rounding of the shorter side (half a pixel)
    assert abs(got[2] * w / h - got[3]) <= 0.5 * max(w / h, 1) + 1e-9
    tensor = np.load(params.path("tensors"))[0]
    assert tensor[got[0]:got[0] + got[2], got[1]:got[1] + got[3]].any()
    outside = tensor.copy()
    outside[got[0]:got[0] + got[2], got[1]:got[1] + got[3]] = 0
    assert not outside.any()  # padding is zero


def test_tensors_aligned_with_manifest(tmp_path: Path, make_tensors: Callable[..., tuple[Params, pd.DataFrame]]) -> None:
    shapes = {"a/0.png": (20, 30, 3), "a/1.png": "truncated", "b/2.png": (32, 32),
              "b/3.png": (50, 10, 3)}
    params, manifest = make_tensors(shapes, size=16, workers=2)
    tensors = np.load(params.path("tensors"), mmap_mode="r")
    index = pd.read_parquet(params.path("tensor_index"))
    assert tensors.shape == (4, 16, 16, 1) and tensors.dtype == np.uint8
    assert index["id"].tolist() == manifest["id"].tolist()
    assert index["decoded"].tolist() == [True, False, True, True]
    assert not tensors[1].any() and index.loc[1, "box_top":].isna().all()
    for i in (0, 2, 3):  # every decoded row is exactly the letterbox of its file
        img = open_image(tmp_path / "images" / manifest.at[i, "path"], 10**8)
        expected, _ = letterbox(np.asarray(img.convert("L")), 16)
        assert np.array_equal(tensors[i, :, :, 0], expected)


def test_workers_give_identical_output(make_tensors: Callable[..., tuple[Params, pd.DataFrame]]) -> None:
    shapes = {f"c{i % 2}/{i}.png": (10 + i, 30 - i, 3) for i in range(7)}
    p0, _ = make_tensors(shapes, workers=0, channels="rgb")
    serial = np.load(p0.path("tensors"))
    p2 = p0.replace(tensors=p0.tensors.replace(workers=2))
    run_stage(p2)
    assert np.array_equal(np.load(p2.path("tensors")), serial) and serial.shape[-1] == 3


@pytest.mark.parametrize("colourful,setting,channels", [
    (0.0, "auto", 1),  # no image has colour: gray
    (0.09, "auto", 1),  # 9 % colourful (photos in a digit set): still gray
    (0.10, "auto", 3),  # 10 % colourful: rgb
    (1.0, "gray", 1),  # forced gray even for a colour set
    (0.0, "rgb", 3),  # forced rgb even for a gray set
])
def test_choose_channels(colourful: float, setting: str, channels: int) -> None:
    n = 100
    manifest = pd.DataFrame({"decode_error": [None] * n + ["truncated"] * 50,
                             "stat_colorfulness": [0.5] * round(colourful * n)
                             + [0.0] * (n - round(colourful * n)) + [0.9] * 50})
    assert choose_channels(manifest, setting) == channels  # undecodable rows don't count


def test_source_changed_since_scan_is_an_error(tmp_path: Path, make_tensors: Callable[..., tuple[Params, pd.DataFrame]]) -> None:
    params, manifest = make_tensors({"a/0.png": (8, 8), "a/1.png": (9, 9)})
    (tmp_path / "images/a/1.png").write_bytes(b"garbage")
    with pytest.raises(StageInputError, match=r"a/1\.png: changed since the scan \(7 bytes"):
        run_stage(params)


def test_missing_manifest_is_an_error(params_for: Callable[..., Params]) -> None:
    with pytest.raises(StageInputError, match="run the 'scan' stage first"):
        run_stage(params_for())
