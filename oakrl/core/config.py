"""Typed, frozen agent configs: each option's type, default, meaning and bounds declared once.

An agent declares its options as a frozen dataclass next to its code:

    @dataclass(frozen=True)
    class StreamQConfig(Config):
        lr: float = option(1.0, "ObGD step size", gt=0)
        hidden: tuple[int, ...] = option((128, 128), "hidden widths; () is linear", each_gt=0)
        exploration_steps: int | None = option(None, "epsilon decay steps; None: 5% of the run", ge=1)

        def resolve(self, run: RunFacts) -> StreamQConfig:   # what depends on the run
            ...

Everything above the agents (the lab, the CLI, config files, sweeps, studies) reads options
through this module only: `Config.build` types and checks a table of values (from TOML/JSON or
Python), `Config.parse` turns one command-line string into its type, `Config.describe` lists
them. Every refusal is one ConfigError line naming the option, the bad value and what is valid.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple, Self

from oakrl.core.types import Spec
from oakrl.errors import ConfigError


class RunFacts(NamedTuple):
    """What an agent config may depend on besides its own options (see `Config.resolve`)."""

    steps: int  # steps per seed of the run
    obs_shape: tuple[int, ...]
    action_spec: Spec


class Bounds(NamedTuple):
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    choices: tuple[str, ...] | None = None
    each_gt: float | None = None  # every element of a tuple

    def rule(self) -> str:
        if self.choices is not None:
            return f"one of {', '.join(self.choices)}"
        parts = []
        if self.ge is not None and self.le is not None:
            return f"in [{_num(self.ge)}, {_num(self.le)}]"
        if self.ge is not None and self.lt is not None:
            return f"in [{_num(self.ge)}, {_num(self.lt)})"
        for op, v in ((">", self.gt), (">=", self.ge), ("<", self.lt), ("<=", self.le)):
            if v is not None:
                parts.append(f"{op} {_num(v)}")
        if self.each_gt is not None:
            parts.append(f"all > {_num(self.each_gt)}")
        return " and ".join(parts)

    def violation(self, value: Any) -> str | None:
        """What is wrong with `value` ("finite", or the rule), or None when it holds."""
        if isinstance(value, float) and not math.isfinite(value):
            return "finite"
        return None if self.holds(value) else self.rule()

    def holds(self, value: Any) -> bool:
        if value is None:
            return True
        if self.choices is not None:
            return value in self.choices
        if isinstance(value, tuple):
            return self.each_gt is None or all(v > self.each_gt for v in value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            if isinstance(value, float) and not math.isfinite(value):
                return False
            return not (
                (self.gt is not None and not value > self.gt)
                or (self.ge is not None and not value >= self.ge)
                or (self.lt is not None and not value < self.lt)
                or (self.le is not None and not value <= self.le)
            )
        return True


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


def option(
    default: Any,
    doc: str,
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    choices: tuple[str, ...] | None = None,
    each_gt: float | None = None,
) -> Any:
    """A config field: its default, one line saying what it means, and the values it allows."""
    meta = {"doc": doc, "bounds": Bounds(gt, ge, lt, le, choices, each_gt)}
    if isinstance(default, dict):  # a mutable default needs a factory
        return dataclasses.field(default_factory=lambda: dict(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


class OptionInfo(NamedTuple):
    name: str
    kind: Any  # the annotated type, e.g. float, tuple[int, ...], int | None
    default: Any
    doc: str
    bounds: Bounds


@dataclasses.dataclass(frozen=True)
class Config:
    """Base of every agent config. Subclasses are frozen dataclasses of `option` fields."""

    # Options whose default changed, with the value they had before: a stored run (config.json's
    # agent_config) that does not list such an option ran with that value, and resumes with it
    # (`to_dict` leaves the option out exactly when it has this value).
    PREVIOUS_DEFAULTS: ClassVar[dict[str, Any]] = {}

    @classmethod
    def option_info(cls) -> dict[str, OptionInfo]:
        """Name -> type, default, meaning and bounds, per field (an agent may have an option
        called `options`: OaK's slot count)."""
        hints = typing.get_type_hints(cls)
        out = {}
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            out[f.name] = OptionInfo(
                f.name, hints[f.name], default, f.metadata.get("doc", ""), f.metadata.get("bounds", Bounds())
            )
        return out

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {name: info.default for name, info in cls.option_info().items()}

    @classmethod
    def build(cls, values: Mapping[str, Any] | None = None, where: str = "agent option") -> Self:
        """A checked config from typed values (a TOML/JSON table, Python); ConfigError otherwise."""
        opts = cls.option_info()
        typed = {}
        for key, value in (values or {}).items():
            if not isinstance(key, str) or key not in opts:
                raise ConfigError(
                    f"{cls.agent_name()} has no option {key!r}; valid: {', '.join(sorted(opts))}"
                )
            typed[key] = _coerce(opts[key], value, where)
        config = cls(**typed)
        config.check(where)
        return config

    @classmethod
    def parse(cls, key: str, text: str) -> Any:
        """One option's value from command-line text (`--opt key=text`), typed and checked."""
        opts = cls.option_info()
        if key not in opts:
            raise ConfigError(f"{cls.agent_name()} has no option {key!r}; valid: {', '.join(sorted(opts))}")
        info = opts[key]
        try:
            value = _from_text(info.kind, text.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as e:
            raise ConfigError(f"--opt {key}={text}: {e}; default is {info.default!r}") from None
        return _coerce(info, value, "--opt")

    def check(self, where: str = "agent option") -> None:
        """Bounds of every field, then the agent's own cross-field rules (`validate`)."""
        for name, info in type(self).option_info().items():
            wrong = info.bounds.violation(getattr(self, name))
            if wrong is not None:
                raise ConfigError(f"{where} {name} must be {wrong}, got {getattr(self, name)!r}")
        self.validate()

    def validate(self) -> None:
        """Rules that involve several fields; raise ConfigError. Override where needed."""

    def resolve(self, run: RunFacts) -> Self:
        """The config as this run uses it (defaults that depend on the run filled in). Override."""
        return self

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Field -> value, in declaration order (what config.json records as agent_config)."""
        return self.without_previous({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

    @classmethod
    def without_previous(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """`options` less those at their previous default (PREVIOUS_DEFAULTS): what a run made
        before the default changed did not list."""
        previous = cls.PREVIOUS_DEFAULTS
        return {k: v for k, v in options.items() if k not in previous or v != previous[k]}

    @classmethod
    def as_run(cls, stored: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
        """The options that rebuild a stored run's config as it ran: `given` (config.json's
        agent_options) and the previous default of each option whose default changed and that
        `stored` (its agent_config) does not list."""
        return {**{k: v for k, v in cls.PREVIOUS_DEFAULTS.items() if k not in stored}, **given}

    @classmethod
    def agent_name(cls) -> str:
        return getattr(cls, "NAME", cls.__name__)

    @classmethod
    def describe(cls) -> list[tuple[str, str, str]]:
        """(name, default as written on the command line, meaning and valid values) per option."""
        rows = []
        for info in cls.option_info().values():
            rule = info.bounds.rule()
            rows.append((info.name, format_value(info.default), info.doc + (f" ({rule})" if rule else "")))
        return rows


def format_value(v: Any) -> str:
    if isinstance(v, tuple):
        return ",".join(str(x) for x in v) if v else "linear"
    return str(v)


def _base(kind: Any) -> tuple[Any, bool]:
    """(the type without None, whether None is allowed)."""
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(kind))
    return kind, False


def _from_text(kind: Any, text: str) -> Any:
    base, optional = _base(kind)
    if optional and text.lower() in ("none", ""):
        return None
    if base is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError("expected true or false")
    if base is int:
        return int(text)
    if base is float:
        return float(text)
    if base is str:
        return text
    if typing.get_origin(base) is tuple:
        if text.lower() == "linear":  # hidden=linear: no hidden layer
            return ()
        return tuple(int(s) for s in text.replace(" ", "").split(",") if s)
    return ast.literal_eval(text)


def _coerce(info: OptionInfo, value: Any, where: str) -> Any:
    """A typed value to the option's type (ints to floats, lists to tuples), or ConfigError."""
    base, optional = _base(info.kind)
    ok = True
    kind = getattr(base, "__name__", str(base))
    if value is None:
        ok = optional
    elif base is bool:
        ok = isinstance(value, bool)
    elif base is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif base is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif typing.get_origin(base) is tuple:
        ok = isinstance(value, list | tuple) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        )
        value = tuple(value) if ok else value
        kind = "list of integers"
    elif base is str:
        ok = isinstance(value, str)
    elif typing.get_origin(base) is dict or base is dict:
        ok = isinstance(value, dict) and all(isinstance(k, str) for k in value)
        kind = "table"
    if not ok:
        raise ConfigError(f"{where} {info.name} must be a {kind} like {info.default!r}, got {value!r}")
    wrong = info.bounds.violation(value)
    if wrong is not None:
        raise ConfigError(f"{where} {info.name} must be {wrong}, got {value!r}")
    return value
