"""The package's import graph: layered (apps over report over experiments over evaluate over train
over models over data over config over methods over core) and acyclic, function-level imports
included, with one folder per layer.

The contracts are import-linter's, in pyproject.toml ([tool.importlinter]); these tests run
import-linter on the package and check the contracts name exactly the package's folders.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "src" / "ja_adapt"


def _contracts() -> list[dict]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def _lint(src_root: Path, config: Path) -> subprocess.CompletedProcess:
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(lint), "--config", str(config), "--no-cache"],
        capture_output=True,
        text=True,
        cwd=src_root,
        env={"PYTHONPATH": str(src_root), "PATH": "/usr/bin:/bin"},
    )


def test_import_graph_is_layered_and_acyclic():
    result = _lint(PACKAGE.parent, REPO / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def test_every_module_belongs_to_a_layer():
    layers = next(c for c in _contracts() if c["type"] == "layers")["layers"]
    listed = {m.strip() for layer in layers for m in layer.replace("|", ":").split(":")}
    modules = {
        ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        for p in PACKAGE.rglob("*.py")
    }
    unlisted = {m for m in modules - {"ja_adapt"} if not any(m == top or m.startswith(top + ".") for top in listed)}
    assert not unlisted, f"add these modules to a layer in pyproject.toml: {sorted(unlisted)}"


def test_the_layers_are_the_folders():
    """Each layer names packages only, one per folder, and every folder is a layer: the folder
    listing is the architecture. Only __init__ and __main__ sit at the package root."""
    contracts = _contracts()
    layers = next(c for c in contracts if c["type"] == "layers")["layers"]
    listed = [m.strip() for layer in layers for m in layer.split(":")]
    folders = {f"ja_adapt.{p.name}" for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert set(listed) - {"ja_adapt.__main__"} == folders
    assert sorted(p.name for p in PACKAGE.glob("*.py")) == ["__init__.py", "__main__.py"]
    acyclic = next(c for c in contracts if c["type"] == "acyclic_siblings")["ancestors"]
    packages = {".".join(p.parent.relative_to(PACKAGE.parent).parts) for p in PACKAGE.rglob("__init__.py")}
    assert packages <= set(acyclic), sorted(packages - set(acyclic))


def test_an_upward_import_inside_a_function_is_caught(tmp_path):
    """The check can fail: a base module importing the command line inside a function, and a
    cycle through two train-layer siblings, are both reported with the offending import named."""
    shutil.copytree(PACKAGE, tmp_path / "ja_adapt", ignore=shutil.ignore_patterns("__pycache__"))
    errors = tmp_path / "ja_adapt" / "core" / "errors.py"
    errors.write_text(errors.read_text() + "\n\ndef _late():\n    from ja_adapt.apps.cli import main\n")
    telemetry = tmp_path / "ja_adapt" / "train" / "telemetry.py"
    telemetry.write_text(telemetry.read_text() + "\n\ndef _late():\n    from ja_adapt.train import loop\n")
    result = _lint(tmp_path, REPO / "pyproject.toml")
    assert result.returncode == 1
    assert "ja_adapt.core.errors -> ja_adapt.apps.cli" in result.stdout
    assert "Contracts: 0 kept, 2 broken." in result.stdout


def test_the_readme_layout_table_is_the_folder_listing():
    """README's layout table lists each folder once, bottom layer first, in the contract's order."""
    rows = re.findall(r"^\| `([a-z_]+)/` \|", (REPO / "README.md").read_text(), re.M)
    layers = next(c for c in _contracts() if c["type"] == "layers")["layers"]
    order = [
        m.strip().removeprefix("ja_adapt.")
        for layer in reversed(layers)
        for m in layer.split(":")
        if m.strip() != "ja_adapt.__main__"
    ]
    assert rows == order
