"""Audit report: what the listing of the source said (issue 15): warnings of the scan's
listing (look-alike class names such as ``Cat``/``cat``, NFC/NFD or ``01``/``1``, files
reached twice through folder links, class folders without images, ...) and the files
skipped because their image-like extension (``.heic``, ``.jfif``, ``.JPE``...) is not in
``scan.extensions``, counted per extension. Read from the manifest's Parquet metadata
(written by the scan); no section when the listing had nothing to say."""

from __future__ import annotations

from dataqa.report.audit_report import AuditData
from dataqa.report.page import Section, section


@section("audit", order=32)
def source_listing(data: AuditData) -> Section | None:
    attrs = data.manifest.attrs
    warnings = [str(w) for w in attrs.get("warnings") or []]
    skipped = {str(k): int(v) for k, v in (attrs.get("skipped_extensions") or {}).items()}
    if not warnings and not skipped:
        return None
    n_skipped = sum(skipped.values())
    return Section("source", "Source listing", "source.html.j2", {
        "warnings": warnings, "skipped": sorted(skipped.items()), "n_skipped": n_skipped,
        "extensions": list(data.params.scan.extensions),
    }, summary=f"{len(warnings)} warning(s), {n_skipped} skipped")
