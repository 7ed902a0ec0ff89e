"""The product (mss_cli) stands without the research code (mss_research): imports go one way."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PRODUCT = Path(__file__).resolve().parent.parent / "mss_cli"


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_no_product_module_imports_research_code():
    offenders = {
        str(path.relative_to(PRODUCT.parent)): sorted(m for m in imported_modules(path) if m.startswith("mss_research"))
        for path in PRODUCT.rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


@pytest.mark.parametrize(
    "module", ["mss_cli.separate", "mss_cli.conditioning", "mss_cli.weights", "mss_cli.evaluate", "mss_cli.cli"]
)
def test_importing_the_product_loads_no_research_module(module):
    code = f"import sys, {module}\nprint(sorted(m for m in sys.modules if m.startswith('mss_research')))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_a_missing_extra_is_a_one_line_error_naming_it(capsys, monkeypatch):
    from mss_cli.errors import UsageError
    from mss_cli.extras import require

    monkeypatch.setitem(sys.modules, "fast_bss_eval", None)  # as if the [eval] extra were not installed
    with pytest.raises(UsageError) as caught:
        require("fast_bss_eval", "eval")
    assert str(caught.value) == ("this needs the [eval] extra (no module 'fast_bss_eval'): pip install 'mss-cli[eval]'")
    assert caught.value.exit_code == 2


def test_mss_eval_without_the_eval_extra_says_which_to_install(capsys, monkeypatch, tmp_path, tiny_weights):
    from mss_cli.cli import main

    monkeypatch.setitem(sys.modules, "fast_bss_eval", None)
    (tmp_path / "cases").mkdir()
    with pytest.raises(SystemExit) as caught:
        main(["eval", "--folder", str(tmp_path / "cases"), "--weights", str(tiny_weights), "-o", str(tmp_path / "out")])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mss: error: this needs the [eval] extra" in err


def test_the_research_code_uses_the_library_not_the_cli():
    """mss_research builds on mss_cli's library modules; the CLI is the product's shell only."""
    research = PRODUCT.parent / "mss_research"
    offenders = {
        str(path.relative_to(research.parent)): m
        for path in research.rglob("*.py")
        for m in imported_modules(path)
        if m == "mss_cli.cli"
    }
    assert offenders == {}


def test_the_cli_is_a_thin_shell():
    """Option declarations and calls: the batch plan, the worker pool, model and conditioning
    set-up live in the library (batch.py, api.py), where Python callers have them too."""
    lines = (PRODUCT / "cli.py").read_text().count("\n")
    assert lines < 400, f"mss_cli/cli.py has {lines} lines"


def test_research_data_and_scripts_are_outside_the_product():
    """The product ships no soundfont lists or General MIDI programs, and no lent-machine scripts."""
    product_text = "\n".join(p.read_text() for p in PRODUCT.glob("*.json"))
    assert "soundfont" not in product_text.lower() and "programs" not in product_text
    assert not list((PRODUCT.parent / "mss_research").rglob("*.sh"))
