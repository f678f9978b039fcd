"""A dataqa project in the user's own repository: ``dataqa init`` inspects an image
source and writes ``params.yaml`` (from a preset in ``dataqa/presets/``), ``dvc.yaml``
(``dataqa/project/templates/``), thin ``stages/<stage>.py`` scripts and ``.gitignore``
entries. The repository's own files are exactly what ``dataqa init --source data/sample
--preset digits`` writes (tests/project/test_init.py asserts it)."""
