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

import json
from pathlib import Path

import pytest

pytest.importorskip("importlinter")

from importlinter.api import read_configuration  # noqa: E402
from importlinter.cli import lint_imports  # noqa: E402

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"

CONTRACTS = [c["id"] for c in read_configuration(str(PYPROJECT))["contracts_options"]]


def _toml(options: dict) -> str:
    # JSON strings and lists of strings are valid TOML values.
    return "".join(f"{key} = {json.dumps(value)}\n" for key, value in options.items())


def _lint(tmp_path: Path, capsys, contract: str | None) -> tuple[int, str]:
    """(exit code, import-linter's report) of pyproject.toml's contracts."""
    config = read_configuration(str(PYPROJECT))
    text = "[tool.importlinter]\n" + _toml(config["session_options"])
    for options in config["contracts_options"]:
        text += "\n[[tool.importlinter.contracts]]\n" + _toml(options)
    path = tmp_path / "importlinter.toml"
    path.write_text(text)
    capsys.readouterr()
    code = lint_imports(
        config_filename=str(path),
        limit_to_contracts=(contract,) if contract else (),
        no_cache=True,
        no_logo=True,
    )
    return code, capsys.readouterr().out


def test_the_contracts_are_the_documented_ones():
    assert CONTRACTS == ["layers", "agents-see-specs", "light-bottom", "acyclic"]


@pytest.mark.parametrize("contract", CONTRACTS)
def test_contract(contract, tmp_path, capsys):
    """No import breaks the contract; a failure prints import-linter's chain (file and line)."""
    code, report = _lint(tmp_path, capsys, contract)
    assert code == 0, f"contract {contract!r} broken (fix the import, not the contract):\n{report}"
