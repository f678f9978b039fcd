"""dataqa: settle the quality of an image-classification dataset, then tune well."""

import os as _os

# albumentations checks PyPI for a newer release at import time (a blocking request with
# a timeout); dataqa never touches the network at run time, so switch that off for every
# import path before albumentations can be imported.
_os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
