"""The audit's scale machinery: numpy thumbnails (uint8) equal to the torch resampling
they replaced, results independent of the memory budget, and no torch import in the
audit (torch is 650 MB and 2 s with the CUDA build; no audit check trains)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from dataqa.checks.near_duplicate import (
    CROPS,
    get_aligned_distances,
    get_thumbnails,
    letterbox_boxes,
)
from dataqa.checks.neighbors import rows_per_chunk


def torch_thumbnails(tensors, boxes, size):
    """The previous implementation (torch area resize + affine_grid/grid_sample), before
    the unit normalisation: the reference the numpy version must reproduce."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    side = tensors.shape[1]
    work = min(side, 2 * size)
    x = torch.from_numpy(tensors.astype(np.float32))
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    if x.shape[1] == 3:
        x = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, True)
    x = x[:, :1]
    if work < side:
        x = F.interpolate(x, size=(work, work), mode="area")
    box = torch.from_numpy(boxes.astype(np.float32)) / side
    top, left, h, w = box.unbind(1)
    out = []
    for crop in CROPS:
        theta = torch.zeros(len(x), 2, 3)
        theta[:, 0, 0] = w * (1 - 2 * crop)
        theta[:, 0, 2] = (left + w / 2) * 2 - 1
        theta[:, 1, 1] = h * (1 - 2 * crop)
        theta[:, 1, 2] = (top + h / 2) * 2 - 1
        grid = F.affine_grid(theta, [len(x), 1, size, size], align_corners=False)
        out.append(F.grid_sample(x, grid, mode="bilinear", align_corners=False).flatten(1))
    return torch.stack(out, 1).numpy()


@pytest.mark.parametrize("side, channels", [(32, 1), (48, 3), (20, 1), (64, 3)])
def test_thumbnails_match_torch_resampling(side, channels):
    rng = np.random.default_rng(side)
    n = 40
    tensors = rng.integers(0, 256, size=(n, side, side, channels), dtype=np.uint8)
    heights = rng.integers(5, 300, size=n)
    widths = rng.integers(5, 300, size=n)
    boxes = letterbox_boxes(heights, widths, side)
    ours = get_thumbnails(tensors, boxes, size=16)
    assert ours.dtype == np.uint8 and ours.shape == (n, len(CROPS), 256)
    ref = torch_thumbnails(tensors, boxes, 16)
    assert np.abs(ours.astype(np.float64) - ref).max() <= 0.5 + 1e-3  # rounding only


def test_results_do_not_depend_on_the_memory_budget():
    rng = np.random.default_rng(0)
    tensors = rng.integers(0, 256, size=(300, 32, 32, 1), dtype=np.uint8)
    boxes = letterbox_boxes(np.full(300, 32), np.full(300, 32), 32)
    small = get_thumbnails(tensors, boxes, size=16, memory_mb=0.01)  # 64-row chunks
    assert rows_per_chunk(32 * 32 * 12, 0.01) == 64
    np.testing.assert_array_equal(small, get_thumbnails(tensors, boxes, size=16))
    pairs = rng.integers(0, 300, size=(1000, 2))
    np.testing.assert_array_equal(get_aligned_distances(small, pairs, memory_mb=0.01),
                                  get_aligned_distances(small, pairs))


def test_audit_checks_do_not_import_torch():
    """Every registered check runs in a fresh interpreter without importing torch."""
    code = textwrap.dedent("""
        import sys
        import numpy as np, pandas as pd
        from dataqa.checks import REGISTRY, AuditContext, get_check
        from dataqa.dataset.manifest import COLUMNS
        get_check("integrity")
        rng = np.random.default_rng(0)
        n = 200
        rows = [{c: None for c in COLUMNS} | {"id": i, "path": f"c{i % 2}/{i}.png",
                "label": f"c{i % 2}", "split": "train", "sha256": f"{i:064x}", "bytes": 100,
                "format": "PNG", "mode": "L", "n_frames": 1, "exif_rotated": False,
                "width": 32, "height": 32, "phash": f"{rng.integers(2**62):016x}",
                "dhash": f"{rng.integers(2**62):016x}"} for i in range(n)]
        manifest = pd.DataFrame(rows, columns=list(COLUMNS))
        for c in COLUMNS:
            if c.startswith("stat_"):
                manifest[c] = rng.uniform(0.1, 0.9, size=n)
        manifest = manifest.astype(COLUMNS)
        probs = rng.dirichlet([1, 1], size=n)
        ctx = AuditContext(manifest=manifest, classes=["c0", "c1"],
                           labels=np.arange(n) % 2, pred_probs=probs,
                           embeddings=rng.normal(size=(n, 16)).astype(np.float32),
                           tensors=rng.integers(0, 256, (n, 32, 32, 1), dtype=np.uint8))
        for name in sorted(REGISTRY):
            REGISTRY[name]().find(ctx)
        loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
        print("TORCH", loaded[:3])
        sys.exit(1 if loaded else 0)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]


def test_audit_stage_does_not_import_torch(tmp_path):
    """The audit stage's own reading of the crossval metrics (not evaluated?) imports no
    training engine: torch alone is ~600 MB of the audit process's memory (issue 23)."""
    (tmp_path / "m.json").write_text('{"evaluated": false, "not_evaluated_reason": "x"}')
    (tmp_path / "params.yaml").write_text(f"paths: {{crossval_metrics: {tmp_path / 'm.json'}}}\n")
    code = textwrap.dedent(f"""
        import sys
        from dataqa.params import load_params
        from dataqa.steps import audit
        assert audit.model_not_evaluated(load_params({str(tmp_path / 'params.yaml')!r})) == "x"
        sys.exit(1 if "torch" in sys.modules else 0)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
