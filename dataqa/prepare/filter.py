"""The ``filter`` stage: split the manifest into a clean table and a quarantine table.

Nothing is deleted: "removing" an image means leaving it out of ``clean.parquet`` and
listing it in ``quarantine.parquet`` with every check that failed it, the worst score
and a reason in words. Every manifest row is in exactly one of the two tables.

Per check (each ``is_<check>_issue`` column of ``issues.parquet``) the policy in
``params.yaml: filter`` says what a failing row gets:

- ``drop``: quarantined; ``review``: kept, marked (``review`` and ``review_checks``);
  ``keep``: the flag is ignored. Checks the policy omits get ``default_policy``.
- ``min_score.<check>``: a row fails when ``<check>_score`` is below it, replacing the
  check's own flag (a stricter or looser operating point without rerunning the audit).
- Duplicate checks (those with a ``<check>_group`` column): of each group, the first
  member by path that no other dropping check removed is kept, the others fail; so one
  image of every group survives whenever any member is otherwise clean.
- Undecodable and unlabelled rows are always quarantined.
- A model too weak to judge labels (``audit.json: model``): its checks are review-only.
- ``quarantine_min_flags``: a row flagged by at least this many review-policy checks
  is quarantined (pseudo-check ``several_checks``): one light image is a review item,
  one that is light, low-information and grayscale at once is a placeholder.
- Review decisions (``review_*`` columns of ``issues.parquet``, written by the audit
  from ``paths.reviews``) come before the policy: ``exclude`` quarantines the image
  (pseudo-check ``review``, reason "excluded by review (who, 'note')"); ``keep`` and
  ``relabel`` clear the flags of the checks the decision covers (a kept duplicate copy
  stays); ``relabel`` puts the reviewed class in ``label`` and the given one in
  ``label_original``. Both tables carry ``decision``.
- ``relabel``: label issues whose suggested class has an out-of-fold probability of at
  least ``relabel_min_confidence`` get ``label_suggested`` and stay (``label_original``,
  ``relabelled``) instead of failing the label check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dataqa.dataset.balance import class_counts, imbalance_ratio
from dataqa.errors import DataQAError, ParamsError, StageInputError
from dataqa.params import FilterParams

LABEL_CHECK = "label"  # the check whose flags relabelling may fix
DECODE = "decode"  # pseudo-check: the file did not decode (always dropped)
NO_LABEL = "no_label"  # pseudo-check: the row has no class (always dropped)
SEVERAL = "several_checks"  # pseudo-check: >= quarantine_min_flags review checks flag it
REVIEW = "review"  # pseudo-check: a person excluded the image (dataqa review, the report)
WHERE = "params.yaml: filter"


@dataclass
class FilterResult:
    """``clean``: kept manifest rows plus ``label_original``, ``relabelled``, ``review``,
    ``review_checks``, ``review_reason``; ``quarantine``: ``id, path, label, split,
    check, score, reason, review_checks``; ``summary``: the metrics document."""

    clean: pd.DataFrame
    quarantine: pd.DataFrame
    summary: dict[str, Any]


def find_checks(issues: pd.DataFrame) -> list[str]:
    """Check names in ``issues`` (from its ``is_<check>_issue`` columns), in column order."""
    return [c[3:-6] for c in issues.columns
            if isinstance(c, str) and c.startswith("is_") and c.endswith("_issue")]


def validate_policy(params: FilterParams, checks: list[str], *,
                    group_checks: list[str]) -> dict[str, str]:
    """The action of every check; :class:`ParamsError` for a key naming no check of the
    audit, a threshold outside [0, 1], or a threshold on a duplicate check."""
    for key, mapping in (("policy", params.policy), ("min_score", params.min_score)):
        for check in mapping:
            if check not in checks:
                raise ParamsError(f"{WHERE}.{key}.{check}: {_unknown(check)}; checks in the "
                                  f"audit's issues table: {', '.join(checks) or 'none'}")
    for check in params.min_score:  # the ranges: checked when params load
        if check in group_checks:
            raise ParamsError(f"{WHERE}.min_score.{check}: '{check}' flags duplicate "
                              "groups, not scores; set its threshold in audit.settings")
    return {c: params.policy.get(c, params.default_policy) for c in checks}


def _unknown(check: str) -> str:
    from dataqa.checks import get_check  # imports the check modules: only on this error

    try:
        get_check(check)
    except ParamsError:
        return f"unknown check '{check}'"
    return f"check '{check}' did not run in the audit (add it to audit.checks)"


# --------------------------------------------------------------------------- core
def filter_rows(manifest: pd.DataFrame, issues: pd.DataFrame, *, params: FilterParams,
                pred_probs: np.ndarray | None = None, classes: list[str] | None = None,
                demoted: dict[str, str] | None = None) -> FilterResult:
    """Apply the policy. ``issues`` is aligned with ``manifest`` (same length and ids);
    ``pred_probs`` (N, K) with class names ``classes`` is needed only with ``relabel``.
    ``demoted``: check -> reason, checks whose word rests on a model too weak to trust
    (:func:`dataqa.model_strength.review_only`): ``drop`` becomes ``review``, no
    relabelling, and their flags do not count towards ``quarantine_min_flags``."""
    n = len(manifest)
    _check_aligned(manifest, issues)
    checks = find_checks(issues)
    group_checks = [c for c in checks if f"{c}_group" in issues]
    actions = validate_policy(params, checks, group_checks=group_checks)
    demoted = {c: why for c, why in (demoted or {}).items() if c in actions}
    for c in demoted:
        if actions[c] == "drop":
            actions[c] = "review"
    ids = manifest["id"].to_numpy(dtype=np.int64)
    labels = manifest["label"].astype("string")
    label_original = labels.copy()

    fails: dict[str, np.ndarray] = {}
    notes: dict[str, dict[int, str]] = {}  # check -> {row: words beyond the score}
    for c in checks:
        if c in group_checks:
            continue
        if c in params.min_score:
            score = issues[f"{c}_score"].to_numpy(dtype=float)
            fails[c] = np.nan_to_num(score, nan=1.0) < params.min_score[c]
        else:
            fails[c] = issues[f"is_{c}_issue"].fillna(False).to_numpy(dtype=bool, copy=True)

    # review decisions over the policy (the audit wrote them into issues.parquet)
    decision, decided_for, by_note = _review(issues)
    excluded = decision == "exclude"
    reviewed = (decision == "keep") | (decision == "relabel")
    relabelled = decision == "relabel"
    if relabelled.any():  # the audit's label column holds the reviewed class
        labels = labels.where(~relabelled, issues["label"].astype("string").to_numpy())
    for c in fails:
        fails[c] &= ~(reviewed & np.array([c in d for d in decided_for], dtype=bool))
    if params.relabel and LABEL_CHECK in fails and LABEL_CHECK not in demoted:
        by_model = _relabel_mask(issues, labels, fails[LABEL_CHECK], params=params,
                                 pred_probs=pred_probs, classes=classes) & (decision == "")
        labels = labels.where(~by_model, issues[f"{LABEL_CHECK}_suggested"].astype("string"))
        fails[LABEL_CHECK] = fails[LABEL_CHECK] & ~by_model
        relabelled |= by_model
    if f"{LABEL_CHECK}_suggested" in issues and LABEL_CHECK in fails:
        sugg = issues[f"{LABEL_CHECK}_suggested"].astype("string")
        notes[LABEL_CHECK] = {int(i): f"given '{label_original.iloc[i]}', suggested "
                              f"'{sugg.iloc[i]}'" for i in np.flatnonzero(fails[LABEL_CHECK])
                              if not pd.isna(sugg.iloc[i])}

    undecodable = manifest["decode_error"].notna().to_numpy()
    no_label = (labels.isna() | (labels.str.strip() == "")).fillna(True)
    no_label = no_label.to_numpy(dtype=bool, copy=True)
    no_label &= ~undecodable
    dropped = undecodable | no_label | excluded
    for c in checks:
        if c not in group_checks and actions[c] == "drop":
            dropped |= fails[c]
    # several independent review flags on one image are evidence enough to quarantine
    voters = [c for c in checks if actions[c] == "review" and c not in group_checks
              and c not in demoted]
    several = np.zeros(n, dtype=bool)
    votes = np.zeros(n, dtype=np.int64)
    if params.quarantine_min_flags is not None and params.quarantine_min_flags < 2:
        raise ParamsError(f"{WHERE}.quarantine_min_flags: must be >= 2 or null (one flag "
                          f"is the check's own policy), got {params.quarantine_min_flags}")
    if params.quarantine_min_flags is not None and voters:
        votes = np.sum([fails[c] for c in voters], axis=0)
        several = (votes >= params.quarantine_min_flags) & ~dropped
        dropped |= several
    # duplicate groups after the other checks: keep the first surviving member by path
    path_rank = np.argsort(np.argsort(manifest["path"].astype(str).to_numpy(dtype=str),
                                      kind="stable"), kind="stable")
    for c in sorted(group_checks):
        if actions[c] == "keep":
            fails[c] = np.zeros(n, dtype=bool)
            continue
        groups = issues[f"{c}_group"].fillna(-1).to_numpy(dtype=np.int64)
        fails[c], refs = _group_losers(groups, path_rank, candidates=~dropped)
        # a copy a person kept stays (its decision covers this check)
        fails[c] &= ~(reviewed & np.array([c in d for d in decided_for], dtype=bool))
        # a flag without a group id cannot be resolved to a keeper: it stands as given
        flagged = issues[f"is_{c}_issue"].fillna(False).to_numpy(dtype=bool, copy=True)
        fails[c] |= flagged & (groups < 0)
        notes[c] = {int(i): f"duplicate of id {ids[refs[i]]}" for i in np.flatnonzero(fails[c])
                    if refs[i] != i}
        if actions[c] == "drop":
            dropped |= fails[c]
    review = np.zeros(n, dtype=bool)
    for c in checks:
        if actions[c] == "review":
            review |= fails[c]
    review &= ~dropped

    scores = {c: issues[f"{c}_score"].to_numpy(dtype=float) for c in checks
              if f"{c}_score" in issues}
    drop_checks = [c for c in checks if actions[c] == "drop"]
    review_checks = [c for c in checks if actions[c] == "review"]
    q_idx = np.flatnonzero(dropped).tolist()
    c_idx = np.flatnonzero(~dropped).tolist()
    decode_err = manifest["decode_error"].astype("string")

    def failing(i: int, names: list[str]) -> list[str]:
        return [c for c in names if fails[c][i]]

    def reason(i: int, c: str) -> str:
        words = []
        if c in scores and c not in group_checks:
            thr = params.min_score.get(c)
            words.append(f"score {scores[c][i]:.3f}" + (f" < {thr:g}" if thr is not None else ""))
        if i in notes.get(c, {}):
            words.append(notes[c][i])
        return f"{c}: {', '.join(words)}" if words else c

    q_checks, q_scores, q_reasons = [], [], []
    for i in q_idx:
        names = ([DECODE] if undecodable[i] else []) + ([NO_LABEL] if no_label[i] else [])
        names += [REVIEW] if excluded[i] else []
        names += failing(i, drop_checks)
        if several[i]:
            names += [SEVERAL] + failing(i, voters)
        parts = [f"{DECODE}: {decode_err.iloc[i]}" if c == DECODE else
                 f"{NO_LABEL}: the row has no class" if c == NO_LABEL else
                 f"{REVIEW}: excluded by review{by_note[i]}" if c == REVIEW else
                 f"{SEVERAL}: flagged by {int(votes[i])} independent checks (>= "
                 f"{params.quarantine_min_flags})" if c == SEVERAL else reason(i, c)
                 for c in names]
        vals = [scores[c][i] for c in names if c in scores and not np.isnan(scores[c][i])]
        q_checks.append(",".join(names))
        q_scores.append(min(vals) if vals else np.nan)
        q_reasons.append("; ".join(parts))
    q_review = [",".join(failing(i, review_checks)) for i in q_idx]

    base = manifest.assign(label=labels)
    quarantine = base.iloc[q_idx][["id", "path", "label", "split"]].reset_index(drop=True)
    quarantine["check"] = pd.Series(q_checks, dtype="string")
    quarantine["score"] = pd.Series(q_scores, dtype="float64")
    quarantine["reason"] = pd.Series(q_reasons, dtype="string")
    quarantine["review_checks"] = pd.Series(q_review, dtype="string")
    quarantine["decision"] = pd.Series(decision[q_idx], dtype="string")

    clean = base.iloc[c_idx].reset_index(drop=True)
    clean["label_original"] = label_original.iloc[c_idx].reset_index(drop=True)
    clean["relabelled"] = relabelled[c_idx]
    clean["review"] = review[c_idx]
    clean["review_checks"] = pd.Series([",".join(failing(i, review_checks)) if review[i]
                                        else "" for i in c_idx], dtype="string")
    clean["review_reason"] = pd.Series(["; ".join(reason(i, c) for c in
                                                  failing(i, review_checks)) if review[i]
                                        else "" for i in c_idx], dtype="string")
    clean["decision"] = pd.Series(decision[c_idx], dtype="string")
    check_partition(manifest, clean, quarantine)
    summary = _summary(manifest, clean, quarantine, checks=checks, actions=actions,
                       fails=fails, dropped=dropped, review=review, relabelled=relabelled,
                       undecodable=undecodable, no_label=no_label, params=params)
    summary["several_checks"] = int(several.sum())
    summary["review"] = {"excluded": int(excluded.sum()),
                         "relabelled": int((decision == "relabel").sum()),
                         "kept": int((decision == "keep").sum())}
    summary["demoted"] = demoted
    return FilterResult(clean, quarantine, summary)


def _review(issues: pd.DataFrame) -> tuple[np.ndarray, list[set[str]], list[str]]:
    """Per row: the review decision ("" none), the checks it covers, and ' (by who:
    note)' for the quarantine reason; from the audit's ``review_*`` columns (none in an
    issues table written before issue 22)."""
    n = len(issues)
    if "review_decision" not in issues:
        return np.full(n, "", dtype=object), [set() for _ in range(n)], [""] * n
    decision = issues["review_decision"].fillna("").astype(str).to_numpy(dtype=object)
    covered = [set(filter(None, str(v).split(";")))
               for v in issues["review_checks"].fillna("").astype(str)]
    who = issues["review_by"].fillna("").astype(str).tolist()
    note = issues["review_note"].fillna("").astype(str).tolist()
    words = [f" ({', '.join(filter(None, [w, repr(t) if t else '']))})" if (w or t) else ""
             for w, t in zip(who, note)]
    return decision, covered, words


def _group_losers(groups: np.ndarray, path_rank: np.ndarray, *, candidates: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """For group ids ``groups`` (N,) (-1: none) and each row's rank by path: the mask
    (N,) of members that are not their group's kept image, and for each row the row
    index (N,) of that kept image: the group's first candidate by path, or its first
    member by path when no member is a candidate."""
    n = len(groups)
    refs = np.arange(n)
    member = groups >= 0
    if not member.any():
        return np.zeros(n, dtype=bool), refs
    rows = np.flatnonzero(member)
    # order members by (group, not candidate, path): the head of each group is its keeper
    order = np.lexsort((path_rank[rows], ~candidates[rows], groups[rows]))
    rows = rows[order]
    g = groups[rows]
    head = np.r_[True, g[1:] != g[:-1]]
    keeper = rows[head][np.cumsum(head) - 1]
    refs[rows] = keeper
    losers = np.zeros(n, dtype=bool)
    losers[rows] = rows != keeper
    return losers, refs


def _relabel_mask(issues: pd.DataFrame, labels: pd.Series, flagged: np.ndarray, *,
                  params: FilterParams, pred_probs: np.ndarray | None,
                  classes: list[str] | None) -> np.ndarray:
    col = f"{LABEL_CHECK}_suggested"
    if col not in issues:
        raise StageInputError(f"issues table has no '{col}' column, which "
                              f"{WHERE}.relabel needs; run the '{LABEL_CHECK}' check")
    if pred_probs is None or classes is None:
        raise StageInputError(f"{WHERE}.relabel needs out-of-fold pred_probs")
    if pred_probs.shape != (len(issues), len(classes)):
        raise StageInputError(f"pred_probs has shape {pred_probs.shape}, expected "
                              f"({len(issues)}, {len(classes)}) for the manifest and classes")
    code = {c: i for i, c in enumerate(classes)}
    sugg = issues[col].astype("string")
    idx = sugg.map(lambda s: code.get(str(s), -1) if not pd.isna(s) else -1).to_numpy(int)
    ok = flagged & (idx >= 0)
    conf = np.zeros(len(issues))
    rows = np.flatnonzero(ok)
    conf[rows] = pred_probs[rows, idx[rows]]
    same = (sugg == labels).fillna(False).to_numpy(dtype=bool, copy=True)
    return ok & ~same & (np.nan_to_num(conf, nan=0.0) >= params.relabel_min_confidence)


def check_partition(manifest: pd.DataFrame, clean: pd.DataFrame,
                    quarantine: pd.DataFrame) -> None:
    """Raise :class:`DataQAError` unless every manifest id is in exactly one table."""
    m = manifest["id"].to_numpy(dtype=np.int64)
    c = clean["id"].to_numpy(dtype=np.int64)
    q = quarantine["id"].to_numpy(dtype=np.int64)
    both = np.intersect1d(c, q)
    union = np.concatenate([c, q])
    if len(both) or len(union) != len(m) or not np.array_equal(np.sort(union), np.sort(m)):
        missing = np.setdiff1d(m, union)[:10].tolist()
        raise DataQAError(f"filter: clean + quarantine do not partition the manifest "
                          f"(in both: {both[:10].tolist()}, missing: {missing}); "
                          "this is a bug in dataqa")


def _check_aligned(manifest: pd.DataFrame, issues: pd.DataFrame) -> None:
    if len(issues) != len(manifest):
        raise StageInputError(f"issues table has {len(issues)} rows, the manifest "
                              f"{len(manifest)}; rerun the 'audit' stage")
    if "id" in issues and not np.array_equal(issues["id"].to_numpy(dtype=np.int64),
                                             manifest["id"].to_numpy(dtype=np.int64)):
        raise StageInputError("issues table ids differ from the manifest's; rerun 'audit'")


def _summary(manifest: pd.DataFrame, clean: pd.DataFrame, quarantine: pd.DataFrame, *,
             checks: list[str], actions: dict[str, str], fails: dict[str, np.ndarray],
             dropped: np.ndarray, review: np.ndarray, relabelled: np.ndarray,
             undecodable: np.ndarray, no_label: np.ndarray, params: FilterParams,
             ) -> dict[str, Any]:
    n = len(manifest)
    all_classes = manifest.loc[~undecodable, "label"].dropna().astype(str).unique()
    per_class = class_counts(clean["label"], all_classes)
    return {
        "n_rows": n,
        "n_clean": len(clean),
        "n_quarantined": len(quarantine),
        "quarantined_share": len(quarantine) / n if n else 0.0,
        "n_review": int(review.sum()),
        "n_relabelled": int(relabelled.sum()),
        "undecodable": int(undecodable.sum()),
        "unlabelled": int(no_label.sum()),
        "checks": {c: {"action": actions[c], "failed": int(fails[c].sum()),
                       "quarantined": int((fails[c] & dropped).sum()),
                       "review": int((fails[c] & review).sum()),
                       "min_score": params.min_score.get(c)} for c in checks},
        "clean_per_class": per_class,
        "min_clean_per_class": min(per_class.values()) if per_class else 0,
        "n_classes": len(per_class),
        "lost_classes": [k for k, v in per_class.items() if v == 0],
        "imbalance_ratio": imbalance_ratio(per_class, skip_empty=False),
        "relabel": params.relabel,
    }
