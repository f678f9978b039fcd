"""Preparation stages: turn the audit into the datasets the tuning run consumes.

- :mod:`dataqa.prepare.filter`: clean and quarantine tables (raw files untouched);
- :mod:`dataqa.prepare.augment`: aspect-preserving copies that balance small classes;
- :mod:`dataqa.prepare.subsample`: the fixed validation split and the training subsets.

The augmentation policy itself lives in :mod:`dataqa.augmentation` (one definition for
these copies and for the tuning run's device augmentation).
"""
