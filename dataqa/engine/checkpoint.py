"""The one loader of torch checkpoint files, trusted or not.

Every weights file dataqa reads goes through :func:`load_checkpoint`: a local
``engine.weights`` file and a file in torchvision's cache alike. It never runs pickled
code: ``torch.load(weights_only=True)`` accepts tensors and plain containers only, so a
pickle payload placed under a real weights file name fails to load instead of running.
torchvision's own loader (``WeightsEnum.get_state_dict`` ->
``torch.hub.load_state_dict_from_url``) is not used: its ``weights_only`` defaults to
False, and it checks the file's hash only while downloading, never a file already in
the cache.

Where the file name carries a hash (torch.hub's convention, ``resnet18-f37072fd.pth``:
the first hex digits of the file's SHA-256), the file's digest must start with it, on
every load: a cached file that is not the published one is refused with the file named.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from dataqa.errors import EngineError

# torch.hub.HASH_REGEX: "<name>-<sha256 prefix>.<ext>"
HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,64})\.")
_CHUNK = 1 << 20


def hash_prefix_of(path: str | Path) -> str | None:
    """The SHA-256 prefix that torch.hub's file-name convention puts in ``path``'s name,
    or None when the name carries none."""
    found = HASH_IN_NAME.search(Path(path).name)
    return found.group(1) if found else None


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_hash(path: Path, prefix: str) -> None:
    """Raise :class:`EngineError` unless ``path``'s SHA-256 starts with ``prefix``."""
    digest = sha256_of(path)
    if not digest.startswith(prefix):
        raise EngineError(
            f"{path}: SHA-256 {digest[:len(prefix)]}... does not match the {prefix} its name "
            "promises: this is not the published weights file (corrupt, truncated or "
            "replaced); delete it so that it is downloaded again, or give your own file "
            "under another name as a local path in engine.weights")


def load_checkpoint(path: str | Path, *, hash_prefix: str | None = None) -> Any:
    """Read the checkpoint at ``path`` without running any pickled code.

    ``hash_prefix``: the SHA-256 prefix the file must have (torchvision's cache files:
    :func:`hash_prefix_of` their published name). Any failure is an
    :class:`EngineError` naming the file.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise EngineError(f"{path}: weights file not found (engine.weights)")
    if hash_prefix:
        verify_hash(path, hash_prefix)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        first = (str(exc).splitlines() or [""])[0][:200]
        raise EngineError(f"{path}: not a loadable state_dict (engine.weights; only tensors "
                          f"and plain containers are accepted, no pickled code): "
                          f"{type(exc).__name__}: {first}") from None
