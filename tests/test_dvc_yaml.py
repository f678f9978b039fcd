"""dvc.yaml and params.yaml agree: every params key a stage lists exists in params.yaml
(DVC refuses to run otherwise), every ${paths.*} it uses is a known path, and every
stage script and code dependency exists."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from dataqa.cli import COMMANDS
from dataqa.params import Paths

REPO = Path(__file__).resolve().parents[1]
DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


def _lookup(tree: dict, dotted: str) -> bool:
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_stage_params_exist_in_params_yaml() -> None:
    missing = [(name, key) for name, stage in DVC["stages"].items()
               for key in stage.get("params", []) if not _lookup(PARAMS, key)]
    assert missing == []


def test_templated_paths_are_known() -> None:
    text = (REPO / "dvc.yaml").read_text()
    used = set(re.findall(r"\$\{paths\.(\w+)\}", text))
    assert used <= set(Paths.model_fields)
    assert used <= set(PARAMS["paths"])  # templating reads params.yaml, not the defaults


def test_code_dependencies_exist() -> None:
    for name, stage in DVC["stages"].items():
        for dep in stage.get("deps", []):
            if "${" not in dep:
                assert (REPO / dep).exists(), f"stage {name}: dep {dep} does not exist"


def test_every_stage_runs_a_cli_command() -> None:
    commands = {c.name for c in COMMANDS}
    for name, stage in DVC["stages"].items():
        script = re.match(r"python stages/(\w+)\.py", stage["cmd"])
        assert script, f"stage {name}: cmd {stage['cmd']!r} is not a stage script"
        assert script.group(1) in commands


def test_paths_in_params_yaml_match_defaults() -> None:
    # params.yaml restates the defaults so dvc.yaml can template them; they must agree
    assert {k: v for k, v in PARAMS["paths"].items()} == {
        k: getattr(Paths(), k) for k in PARAMS["paths"]}


def test_declared_reads_are_declared_keys() -> None:
    # dataqa/steps/reads.py names params keys and paths: each must be a declared key
    # (a typo there would be a DVC error, or a dependency on nothing)
    from pydantic import BaseModel

    from dataqa.params import Params
    from dataqa.steps.reads import STAGES, deps

    def declared(key: str) -> bool:
        model: type[BaseModel] | None = Params
        for part in key.split("."):
            if model is None or part not in model.model_fields:
                return False
            ann = model.model_fields[part].annotation
            model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        return True

    bad = [(name, key) for name, reads in STAGES.items()
           for key in [*reads.params, *deps(name), *(o.key for o in reads.out_list())]
           if not declared(key)]
    assert bad == []
