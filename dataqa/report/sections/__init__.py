"""Report sections. Every module here is imported when a report is built; each
registers its builders with :func:`dataqa.report.page.section` (kind, order).

Order slots of the audit report (pick a free number inside the slot):

====  =====================================================================
5     model too weak to judge labels (only then; audit_verdict.py)
7     review: flags pending review per check, saving decisions (audit_review.py)
10    gate summary (rules, value, threshold, pass/fail)
20    summary card per check (count, rate, threshold, pass/fail)
30    overview (counts per class and split, sizes, aspect ratios, formats), 32 source
      listing (warnings, skipped image-like extensions)
35    class balance and sufficiency (learning curve, recommendation)
40    integrity: unreadable and mislabelled files with reasons
50    label issues (given -> suggested pairs), 52 per-class accuracy and
      confusion matrix, 54 confidence histogram
60    duplicates and near-duplicate groups, 65 outliers, 70 complexity,
      75 image quality
80    prepared data (clean/quarantine, augmentation grid, subsets)
90    one gallery per check (top flagged images, generic)
====  =====================================================================

A builder takes the report's data object (for the audit report:
:class:`dataqa.report.audit_report.AuditData`) and returns a
:class:`~dataqa.report.page.Section`, a list of them, or None. Its template
(``templates/<name>.html.j2``) sees the section's context as ``ctx`` and the page
globals ``thumbs`` (call ``thumbs.want(ids)`` in the builder for every image the
template will show) and ``thumb_size``; ``macros.html.j2`` has the thumbnail, table
and filter helpers.
"""
