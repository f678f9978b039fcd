"""Review decisions: a person decides about flagged images, and the pipeline honours it
(issue 22).

- :mod:`~dataqa.review.decisions`: the decisions file (``paths.reviews``, a CSV keyed by
  the sha256 of each image's bytes): strict reading, atomic writing, merging;
- :mod:`~dataqa.review.status`: decisions against the flags (pending vs decided), the
  ``review_*`` columns of ``issues.parquet`` and the counts of ``audit.json: review``;
- :mod:`~dataqa.review.commands`: ``dataqa review list | set | import``.

The audit stage is the pipeline's one reader of the decisions file; the report, gate
and filter read what it wrote.
"""

from dataqa.review.decisions import (
    COLUMNS,
    DECISIONS,
    Decision,
    DecisionsError,
    Merge,
    merge,
    neutralise,
    parse_decisions,
    read_decisions,
    to_csv,
    write_decisions,
)
from dataqa.review.status import (
    Matched,
    add_review_metrics,
    flag_table,
    match,
    pending_checks,
    review_columns,
    review_summary,
)

__all__ = [
    "COLUMNS", "DECISIONS", "Decision", "DecisionsError", "Matched", "Merge",
    "add_review_metrics", "flag_table", "match", "merge", "neutralise", "parse_decisions",
    "pending_checks", "read_decisions", "review_columns", "review_summary", "to_csv",
    "write_decisions",
]
