"""The parameter documentation is generated from the declarations and cannot drift:
the README's params table and the comment beside every key of the params.yaml that
`dataqa init` writes (dataqa/params/docs.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataqa.checks import settings_models
from dataqa.params import Params, ScanParams, load_params
from dataqa.params.base import leaves
from dataqa.params.docs import annotate, comment, readme_block
from dataqa.project.init import preset_names, render_params

REPO = Path(__file__).resolve().parents[2]


def test_readme_table_is_generated_from_the_declarations() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert readme_block() in readme, "run `python -m dataqa.params.docs` and commit README.md"


def test_every_section_and_bounded_key_is_in_the_readme_table() -> None:
    table = readme_block()
    for name in Params.model_fields:
        if name != "root":
            assert f"| `{name}` |" in table
    assert "`workers` [0, 256]" in table  # scan.workers, with its bounds


def test_repository_params_comments_are_the_declarations() -> None:
    text = (REPO / "params.yaml").read_text(encoding="utf-8")
    assert annotate(text) == text, ("a comment differs from its declaration: regenerate "
                                    "with `dataqa init --source data/sample --preset "
                                    "digits --force`")
    for leaf in leaves(ScanParams, ("scan",))[:5]:  # the comments are really there
        assert comment(leaf) in text


@pytest.mark.parametrize("preset", preset_names())
def test_every_preset_is_valid_and_commented(tmp_path: Path, preset: str) -> None:
    text = render_params(preset, "data", None, "0.0.0")
    (tmp_path / "params.yaml").write_text(text, encoding="utf-8")
    load_params(tmp_path / "params.yaml", checks=settings_models())  # every key declared
    assert annotate(text) == text


def test_a_changed_description_is_drift(monkeypatch: pytest.MonkeyPatch) -> None:
    text = (REPO / "params.yaml").read_text(encoding="utf-8")
    field = ScanParams.model_fields["workers"]
    monkeypatch.setattr(field, "description", "a new meaning")
    assert annotate(text) != text
    assert "workers: 2            # a new meaning [0, 256]" in annotate(text)
