"""The package's layers point one way: the import-linter contracts in pyproject.toml hold.

The layer order (README, "Layout"; `[tool.importlinter]` in pyproject.toml), highest first:
__main__ <- cli <- study <- report <- lab <- agents <- priors <- (envs | model | options | plan)
<- learn <- core <- (errors | io). Each contract is checked on its own, so a failure names the
contract and prints import-linter's broken chains (module -> module (l.LINE)).

What the contracts do not see: imports made from strings (importlib.import_module, __import__),
and the implicit import of a package's __init__ when one of its modules is imported
(`from oakrl.agents.common import X` runs oakrl/agents/__init__.py; grimp records only
oakrl.agents.common). Imports inside functions and under TYPE_CHECKING do count.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter")

from importlinter.api import read_configuration  # noqa: E402

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"

CONTRACTS = [c["id"] for c in read_configuration(str(PYPROJECT))["contracts_options"]]


def _lint(contract: str) -> tuple[int, str]:
    """(exit code, import-linter's report) of one of pyproject.toml's contracts.

    In a subprocess: import-linter writes through a console bound to the streams of the first
    process that imported it, which pytest closes between tests (the suite then died on
    "I/O operation on closed file" at the first broken contract)."""
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    argv = [sys.executable, "-c", code, str(PYPROJECT), "--contract", contract, "--no-cache", "--no-logo"]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=PYPROJECT.parent)
    return proc.returncode, proc.stdout + proc.stderr


def test_the_contracts_are_the_documented_ones():
    assert CONTRACTS == ["layers", "agents-see-specs", "light-bottom", "acyclic"]


@pytest.mark.parametrize("contract", CONTRACTS)
def test_contract(contract):
    """No import breaks the contract; a failure prints import-linter's chain (file and line)."""
    code, report = _lint(contract)
    assert code == 0, f"contract {contract!r} broken (fix the import, not the contract):\n{report}"
