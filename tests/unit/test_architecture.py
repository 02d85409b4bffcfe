"""The layers of DESIGN.md, enforced: a wrong import fails the suite instead of a review."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
