"""The package's layers point one way: the import-linter contracts in pyproject.toml hold.

The layer order (README, "Layout"; `[tool.importlinter]` in pyproject.toml), highest first:
__main__ <- cli <- study <- report <- lab <- agents <- priors <- (envs | model | options | plan)
<- learn <- core <- (errors | io). Each contract is checked on its own, so a failure names the
contract and prints import-linter's broken chains (module -> module (l.LINE)).

KNOWN_VIOLATIONS are the upward imports that remain in files being rewritten elsewhere. They are
ignored by `test_contract` (so any *new* violation fails at once), must still exist
(`test_known_violations_are_still_there`: a fixed one fails until it is struck from the list) and
make `test_contracts_hold_without_exceptions` an expected failure until the list is empty.

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

# importer -> imported: why it is still there, and the change that removes it.
KNOWN_VIOLATIONS = {
    "oakrl.priors -> oakrl.agents": (
        "priors/__init__.py:11 imports oakrl.agents to fix the import order for prior-ac; goes "
        "when prior-ac moves to oakrl/agents/ (agents/__init__.py:23 then imports it from there)"
    ),
    "oakrl.priors.agent -> oakrl.agents.common": (
        "prior-ac is an agent: move priors/agent.py to oakrl/agents/prior_ac.py"
    ),
    "oakrl.priors.bc -> oakrl.agents.common": (
        "bc.py:22 needs only the Normalizers NamedTuple: move it (and normalizers_init) to "
        "oakrl/learn/normalize.py, next to the functions it holds the state of"
    ),
}

CONTRACTS = [c["id"] for c in read_configuration(str(PYPROJECT))["contracts_options"]]


def _toml(options: dict) -> str:
    # JSON strings and lists of strings are valid TOML values.
    return "".join(f"{key} = {json.dumps(value)}\n" for key, value in options.items())


def _lint(tmp_path: Path, capsys, contract: str | None, ignore: dict[str, str]) -> tuple[int, str]:
    """(exit code, import-linter's report) of pyproject.toml's contracts, `ignore` ignored."""
    config = read_configuration(str(PYPROJECT))
    text = "[tool.importlinter]\n" + _toml(config["session_options"])
    for options in config["contracts_options"]:
        if ignore:
            options = {
                **options,
                "ignore_imports": [*options.get("ignore_imports", []), *ignore],
                "unmatched_ignore_imports_alerting": "none",  # not every contract meets each one
            }
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
    """No import breaks the contract, apart from KNOWN_VIOLATIONS."""
    code, report = _lint(tmp_path, capsys, contract, KNOWN_VIOLATIONS)
    assert code == 0, f"contract {contract!r} broken (fix the import, not the contract):\n{report}"


def test_known_violations_are_still_there():
    import grimp

    graph = grimp.build_graph("oakrl", cache_dir=None)
    gone = []
    for expression in KNOWN_VIOLATIONS:
        importer, imported = (m.strip() for m in expression.split("->"))
        if not graph.direct_import_exists(importer=importer, imported=imported):
            gone.append(expression)
    assert not gone, f"fixed, strike from KNOWN_VIOLATIONS in {__file__}: {gone}"


@pytest.mark.xfail(
    bool(KNOWN_VIOLATIONS),
    reason="upward imports remain in files being rewritten: " + "; ".join(KNOWN_VIOLATIONS),
    strict=True,
)
def test_contracts_hold_without_exceptions(tmp_path, capsys):
    code, report = _lint(tmp_path, capsys, None, {})
    assert code == 0, report
