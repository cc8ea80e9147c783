"""Text to RunSpec: the one parser for command-line flags, config files, config.json and sweep grids.

A config file (TOML; YAML with pyyaml; JSON) holds RunSpec fields at the top level and the
agent's options in a table:

    env = "CartPole-v1"
    agent = "stream-ac"
    steps = 100000
    schedule = "switch"        # or a table {kind = "switch", every = 50000, tasks = 2, order = "cyclic"}
    [agent_options]
    hidden = [128, 128]
    lr = 1.0

A results directory's config.json reads back the same way (for `oakrl resume`). A sweep spec
has [base] (such a table) and [grid] (field -> list of values; "agent_options.KEY" sweeps an
agent option). Every error is one line naming the file, the field, the bad value and what is
allowed.
"""

from __future__ import annotations

import itertools
import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from oakrl.errors import ConfigError
from oakrl.lab.spec import FIELDS, RunSpec, agent_config_type

# What config.json adds to the fields (ignored when reading it back).
DERIVED = ("oakrl_version", "continuing", "agent_config")


def read_file(path: str | Path) -> dict[str, Any]:
    """The table of a TOML (or YAML, JSON) file; ConfigError (one line) when it cannot be read."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror or e}") from None
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ConfigError(
                f"{path}: YAML config files need pyyaml (pip install pyyaml); or use TOML"
            ) from None
        try:
            data = yaml.safe_load(text.decode("utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: not valid YAML: {_first_line(e)}") from None
    elif suffix == ".json":
        try:
            data = json.loads(text.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: not valid JSON: {_first_line(e)}") from None
    else:
        try:
            data = tomllib.loads(text.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: not valid TOML: {_first_line(e)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must hold a table of fields ({', '.join(FIELDS)})")
    return data


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def fields_of(data: Mapping[str, Any], where: str, allow_derived: bool = False) -> dict[str, Any]:
    """RunSpec keyword arguments from a table (schedule tables flattened); refuses unknown fields."""
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if allow_derived and key in DERIVED:
            continue
        if key not in FIELDS:
            raise ConfigError(f"{where}: unknown field {key!r}; valid: {', '.join(FIELDS)}")
        if key == "schedule" and isinstance(value, dict):
            for sub, v in value.items():
                if sub not in ("kind", "every", "tasks", "order"):
                    raise ConfigError(
                        f"{where}: unknown field schedule.{sub}; valid: schedule.kind, every, tasks, order"
                    )
                kwargs["schedule" if sub == "kind" else sub] = v
            continue
        if key == "env_options" and not isinstance(value, dict):
            raise ConfigError(f"{where}: env_options must be a table of environment options, got {value!r}")
        if key == "agent_options":
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: agent_options must be a table of agent options, got {value!r}")
            value = dict(value)
        kwargs[key] = value
    return kwargs


def make_spec(kwargs: Mapping[str, Any], where: str | None = None) -> RunSpec:
    """A checked RunSpec from keyword arguments; errors prefixed by `where` if given."""
    try:
        return RunSpec(**kwargs)
    except ConfigError as e:
        if where is None:
            raise
        raise ConfigError(f"{where}: {e}") from None


def spec_from_file(path: str | Path, **overrides: Any) -> RunSpec:
    """A RunSpec from a config file, fields in `overrides` replacing the file's."""
    return make_spec({**fields_of(read_file(path), str(path)), **overrides}, str(path))


def spec_of_run(directory: str | Path) -> RunSpec:
    """The RunSpec a results directory was made with (its config.json)."""
    path = Path(directory) / "config.json"
    if not Path(directory).is_dir():
        what = "a file" if Path(directory).exists() else "no such directory"
        raise ConfigError(f"{directory} is not a results directory ({what})")
    if not path.is_file():
        raise ConfigError(f"{directory} holds no run (no config.json)")
    data = read_file(path)
    kwargs = fields_of(data, str(path), allow_derived=True)
    stored = data.get("agent_config")
    if isinstance(stored, dict) and isinstance(kwargs.get("agent"), str):
        try:
            kind = agent_config_type(kwargs["agent"])
        except ConfigError:
            kind = None  # an unknown agent: make_spec says so in its own words
        # An option whose default changed since the run was made: absent, it had the old value.
        given = kwargs.get("agent_options") or {}
        as_run = kind.as_run(stored, given) if kind is not None and isinstance(given, dict) else given
        if as_run != given:
            kwargs["agent_options"] = as_run
    return make_spec(kwargs, str(path))


def parse_options(agent: str, pairs: Iterable[str], learners: int = 1) -> dict[str, Any]:
    """`--opt KEY=VALUE` pairs to typed, checked agent option values.

    For several learners (`--agent A,B` or `--learners N`) a key is the joint agent's own, a
    learner's option (every learner that has it) or `lI.KEY` (learner I only); each value is
    parsed by the agent it is for (agents/joint.py `route_options` then routes them).
    """
    from oakrl.agents import multi_learner
    from oakrl.agents.joint import option_parser

    name, implied, _ = multi_learner(agent, learners)
    names = tuple(implied["agents"].split(",")) if implied else None
    kind = agent_config_type(name)
    options = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--opt takes KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        key = key.strip().replace("-", "_")
        if names is None:
            options[key] = kind.parse(key, value)
            continue
        found = option_parser(names, key)
        # Nothing takes the key: kept as text, and route_options names what is wrong in one line.
        options[key] = value if found is None else found[0].parse(found[1], value)
    return options


def spec_from_cli(config_file: str | None, flags: Mapping[str, Any], opts: Iterable[str] = ()) -> RunSpec:
    """Flags given on the command line override the config file, which overrides the defaults.

    flags: field -> value for the flags the user gave (not click's defaults).
    """
    kwargs: dict[str, Any] = fields_of(read_file(config_file), config_file) if config_file else {}
    env_opts = kwargs.pop("env_opt", ()) or ()  # --env-opt KEY=VALUE (gym: environments)
    kwargs.update(flags)
    env_opts = kwargs.pop("env_opt", env_opts) or ()
    if env_opts:
        env_options = dict(kwargs.get("env_options") or {})
        for pair in env_opts:
            if "=" not in pair:
                raise ConfigError(f"--env-opt takes KEY=VALUE, got {pair!r}")
            key, value = pair.split("=", 1)
            env_options[key.strip().replace("-", "_")] = value.strip()
        kwargs["env_options"] = env_options
    agent = kwargs.get("agent", RunSpec.agent)
    options = dict(kwargs.get("agent_options", {}))
    options.update(parse_options(agent, opts, int(kwargs.get("learners") or 1)))
    kwargs["agent_options"] = options
    return make_spec(kwargs, config_file)


def read_sweep(path: str | Path) -> tuple[dict[str, Any], dict[str, list]]:
    """The [base] and [grid] tables of a sweep spec."""
    data = read_file(path)
    unknown = sorted(set(data) - {"base", "grid"})
    if unknown:
        raise ConfigError(f"{path}: unknown section {unknown[0]!r}; a sweep spec has [base] and [grid]")
    base, grid = data.get("base", {}), data.get("grid", {})
    if not isinstance(base, dict) or not isinstance(grid, dict):
        raise ConfigError(f"{path}: [base] and [grid] must be tables")
    if not grid:  # one trial, silently: almost surely a mistake (a misspelt or missing table)
        raise ConfigError(
            f"{path}: no [grid] (or an empty one): a sweep needs a field to vary, e.g. [grid] "
            "seed = [0, 1]; for one run use `oakrl run --config`"
        )
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{path}: grid.{key} must be a non-empty list of values, got {values!r}")
    return base, grid


def sweep_specs(path: str | Path) -> list[tuple[str, dict[str, Any], RunSpec]]:
    """(name, grid values, RunSpec) of every trial of a sweep spec, each checked."""
    base, grid = read_sweep(path)
    base_kwargs = fields_of(base, f"{path} [base]")
    names = list(grid)
    out = []
    for k, values in enumerate(itertools.product(*(grid[n] for n in names))):
        point = dict(zip(names, values, strict=True))
        kwargs = {**base_kwargs, "agent_options": dict(base_kwargs.get("agent_options", {}))}
        for name, value in point.items():
            if name.startswith("agent_options."):
                kwargs["agent_options"][name[len("agent_options.") :]] = value
            else:
                kwargs.update(fields_of({name: value}, f"{path} [grid]"))
        label = ",".join(f"{n.replace('agent_options.', '')}={v}" for n, v in point.items())
        name = f"{k:04d}" + (f"_{re.sub(r'[^A-Za-z0-9_.=,+-]', '_', label)}" if label else "")
        out.append((name, point, make_spec(kwargs, f"{path} trial {name}")))
    return out
