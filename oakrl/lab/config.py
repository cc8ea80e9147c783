"""Config files: a RunConfig from TOML (or YAML when pyyaml is installed), validated up front.

A config file holds RunConfig fields at the top level and the agent's options in a table:

    env = "CartPole-v1"
    agent = "stream-ac"
    steps = 100000
    schedule = "switch"        # or a table {kind = "switch", every = 50000, tasks = 2, order = "cyclic"}
    [agent_options]
    hidden = [128, 128]
    lr = 1.0

The same reader turns a results directory's config.json back into its RunConfig (for
`oakrl resume`). Every error is one line naming the field, the bad value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path
from typing import Any

from oakrl.errors import ConfigError
from oakrl.lab.run import RunConfig, build

FIELDS = [f.name for f in dataclasses.fields(RunConfig)]
# What config.json adds to the fields (ignored when reading it back).
DERIVED = ("oakrl_version", "continuing", "agent_config")


def read_file(path: str | Path) -> dict[str, Any]:
    """The table of a TOML (or YAML) file; ConfigError (one line) when it cannot be read."""
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


def fields_from_dict(data: dict[str, Any], where: str, allow_derived: bool = False) -> dict[str, Any]:
    """RunConfig keyword arguments from a table; refuses unknown fields. Not yet checked."""
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
        if key == "agent_options" and not isinstance(value, dict):
            raise ConfigError(f"{where}: agent_options must be a table of agent options, got {value!r}")
        kwargs[key] = dict(value) if key == "agent_options" else value
    return kwargs


def checked(kwargs: dict[str, Any], where: str | None = None) -> RunConfig:
    """A RunConfig from keyword arguments, validated; errors prefixed by `where` if given."""
    config = RunConfig(**kwargs)
    try:
        config.check()
        build(config)  # the environment and the agent exist and fit each other (no compute)
    except ConfigError as e:
        if where is None:
            raise
        raise ConfigError(f"{where}: {e}") from None
    return config


def load_config(path: str | Path) -> RunConfig:
    """A validated RunConfig from a config file."""
    return checked(fields_from_dict(read_file(path), str(path)), str(path))


def config_of_run(directory: str | Path) -> RunConfig:
    """The RunConfig a results directory was made with (its config.json)."""
    path = Path(directory) / "config.json"
    if not Path(directory).is_dir():
        what = "a file" if Path(directory).exists() else "no such directory"
        raise ConfigError(f"{directory} is not a results directory ({what})")
    if not path.is_file():
        raise ConfigError(f"{directory} holds no run (no config.json)")
    data = read_file(path)
    return checked(fields_from_dict(data, str(path), allow_derived=True), str(path))
