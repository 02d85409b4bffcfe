"""The layers of DESIGN.md, enforced: a wrong import fails the suite instead of a review."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_import_linter_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def _layout_section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return readme.split("## Layout", 1)[1].split("\n## ", 1)[0]


def test_the_readme_layout_table_names_every_package_and_engine_module() -> None:
    layout = _layout_section()
    packages = [p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()]
    engine = ROOT / "scenario_upscale"
    modules = [p.name for p in engine.glob("*.py") if p.name != "__init__.py"]
    modules += [f"{p.name}/" for p in engine.iterdir() if (p / "__init__.py").exists()]
    missing = [p for p in packages if f"`{p}/`" not in layout]
    missing += [
        m for m in modules if f"`{m}`" not in layout and f"`scenario_upscale/{m}`" not in layout
    ]
    assert not missing, f"README.md's layout table does not mention {missing}"


def test_the_command_line_loads_neither_the_engine_nor_fastapi_nor_prefect_on_import() -> None:
    # The demo starts its Prefect server first thing: ~3 s of imports before it delayed that.
    heavy = ("scenario_sdk", "fastapi", "prefect")
    code = f"import sys, commands.cli; print([m for m in {heavy} if m in sys.modules])"
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "[]"


@pytest.mark.parametrize("name", ["scenario_upscale", "scenario_upscale.emulator"])
def test_each_public_name_of_a_package_loaded_on_first_use_is_its_modules(name: str) -> None:
    package = importlib.import_module(name)
    stub = ast.parse(Path(package.__file__ or "").with_suffix(".pyi").read_text(encoding="utf-8"))
    named = {
        alias.name: node.module
        for node in stub.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert named and sorted(named) == sorted(package.__all__)
    for public, module_name in named.items():
        module = importlib.import_module(f"{name}.{module_name}")
        assert getattr(package, public) is getattr(module, public)
    with pytest.raises(AttributeError, match="attribute nothing"):
        package.nothing  # noqa: B018
