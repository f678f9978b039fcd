"""``integrity``: files that cannot be used as they are, from manifest columns only.

Kinds of problem (``integrity_kind``, comma-joined when several apply):

==================  =====  =============================================================
kind                score  from
==================  =====  =============================================================
zero_byte           0      ``bytes == 0`` or the decoder's "zero-byte file"
not_an_image        0      the decoder recognised no image format
over_pixel_limit    0      width x height above ``scan.max_pixels`` (never decoded)
truncated           0      the decoder ran out of data, or the header claims more pixels
                           than the data can code (JPEG)
over_time_budget    0      decoding took longer than ``scan.decode_timeout`` (e.g. a JPEG
                           with thousands of scans)
over_size_limit     0      the file is larger than ``scan.max_bytes`` (never read)
corrupt             0      any other decode failure (NaN/inf float pixels included)
wrong_extension     0.5    the real format (``format``) differs from what the extension
                           claims (``ext_format``); JPG/JPEG/JFIF/MPO, TIF/TIFF are equal
multi_frame         0.5    animated or multi-page (``n_frames > 1``): only frame 0 is used
==================  =====  =============================================================

The 0.5 kinds still decode and train; they are flagged so a person can rename or split
the file. ``integrity_reason`` says the same in words for the report.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import Field

from dataqa.checks import register
from dataqa.checks.base import AuditContext, Check, CheckResult
from dataqa.params.base import Section

# Formats that are the same thing for a user picking an extension. MPO is the
# multi-picture JPEG that cameras write into ordinary .jpg files.
_FORMAT_ALIASES = {"JPG": "JPEG", "JPE": "JPEG", "JFIF": "JPEG", "MPO": "JPEG",
                   "TIF": "TIFF", "DIB": "BMP"}

# Undecodable kinds, in the order their message patterns are tried (imageio's wording).
_DECODE_KINDS: list[tuple[str, str]] = [
    ("zero_byte", r"zero-byte"),
    ("over_pixel_limit", r"over the pixel limit"),
    ("over_time_budget", r"over the time budget"),
    ("over_size_limit", r"over the size limit"),
    ("not_an_image", r"not an image|unidentified"),
    ("truncated", r"truncat|end of file|EOF"),
]


def normalize_format(values: pd.Series) -> pd.Series:
    """Upper-case format names with aliases folded (``.jpg``/``JPG`` -> ``JPEG``)."""
    s = values.astype("string").str.upper().str.lstrip(".").str.strip()
    return s.replace(_FORMAT_ALIASES)


def get_decode_kinds(manifest: pd.DataFrame) -> pd.Series:
    """Kind of decode failure per row, shape (N,); <NA> for rows that decoded."""
    err = manifest["decode_error"].astype("string")
    kind = pd.Series(pd.NA, index=manifest.index, dtype="string")
    failed = err.notna()
    kind[failed] = "corrupt"
    for name, pattern in reversed(_DECODE_KINDS):  # earlier patterns win: applied last
        kind[failed & err.str.contains(pattern, case=False, regex=True).fillna(False)] = name
    if "bytes" in manifest:
        kind[failed & (manifest["bytes"] == 0).fillna(False)] = "zero_byte"
    return kind


@register
class IntegrityCheck(Check):
    name = "integrity"
    description = ("The file is unreadable (zero bytes, truncated, not an image, over the "
                   "pixel limit), or readable but mislabelled by its extension or "
                   "holding several frames.")

    class Settings(Section):
        """``audit.settings.integrity``."""

        flag_wrong_extension: bool = Field(True, description="a .png holding a JPEG is flagged (score 0.5)")
        flag_multi_frame: bool = Field(True, description="animated GIF / multi-page TIFF flagged (score 0.5)")

    def find(self, ctx: AuditContext) -> CheckResult:
        m = ctx.manifest
        n = len(m)
        decode_kind = get_decode_kinds(m)
        broken = decode_kind.notna().to_numpy()

        wrong_ext = np.zeros(n, dtype=bool)
        if self.settings.flag_wrong_extension and {"format", "ext_format"} <= set(m.columns):
            real, claimed = normalize_format(m["format"]), normalize_format(m["ext_format"])
            # unknown on either side proves nothing: not flagged
            wrong_ext = ((real != claimed) & real.notna() & claimed.notna()).fillna(False)
            wrong_ext = wrong_ext.to_numpy(dtype=bool) & ~broken
        multi = np.zeros(n, dtype=bool)
        if self.settings.flag_multi_frame and "n_frames" in m:
            multi = (m["n_frames"].astype("Float64") > 1).fillna(False).to_numpy(dtype=bool)
            multi &= ~broken

        kinds: list[list[str]] = [[] for _ in range(n)]
        reasons: list[list[str]] = [[] for _ in range(n)]
        err = m["decode_error"].astype("string")
        for i in np.flatnonzero(broken):
            kinds[i].append(str(decode_kind.iat[i]))
            reasons[i].append(f"undecodable: {err.iat[i]}")
        for i in np.flatnonzero(wrong_ext):
            kinds[i].append("wrong_extension")
            reasons[i].append(f"extension says {m['ext_format'].iat[i]}, "
                              f"content is {m['format'].iat[i]}")
        for i in np.flatnonzero(multi):
            kinds[i].append("multi_frame")
            reasons[i].append(f"{int(m['n_frames'].iat[i])} frames; only the first is used")

        is_issue = broken | wrong_ext | multi
        score = np.where(broken, 0.0, np.where(is_issue, 0.5, 1.0))
        kind_col = pd.array([",".join(k) if k else None for k in kinds], dtype="string")
        reason_col = pd.array(["; ".join(r) if r else None for r in reasons], dtype="string")
        by_kind = {name: int((decode_kind == name).sum())
                   for name in [k for k, _ in _DECODE_KINDS] + ["corrupt"]}
        by_kind.update(wrong_extension=int(wrong_ext.sum()), multi_frame=int(multi.sum()))
        summary = {"by_kind": by_kind, "undecodable": int(broken.sum())}
        return self.result(ctx, is_issue, score, summary, kind=kind_col, reason=reason_col)
