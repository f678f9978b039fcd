"""dataqa: settle the quality of an image-classification dataset, then tune well."""

import os as _os

# albumentations checks PyPI for a newer release at import time (a blocking request with
# a timeout); dataqa never touches the network at run time, so switch that off for every
# import path before albumentations can be imported.
_os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"


__all__ = ["label_issues"]


def __getattr__(name: str) -> object:
    # lazy: ``import dataqa`` stays light (no pandas/cleanlab) for the CLI and the stages
    if name == "label_issues":
        from dataqa.labels import label_issues

        return label_issues
    raise AttributeError(f"module 'dataqa' has no attribute {name!r}")
