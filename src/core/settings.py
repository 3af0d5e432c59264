"""Each setting declared once: its type, default, range, help and the choice it applies to.

A group of settings is a frozen dataclass whose fields are made with `setting(...)`:

    @settings_group
    @dataclass(frozen=True)
    class OptimizerSettings:
        optimizer: str = setting("sgd", "optimizer name", choices=OPTIMIZERS)
        momentum: float = setting(0.9, "SGD momentum", low=0, high=1, high_inclusive=False,
                                  applies=("optimizer", ("sgd",)))

From that one declaration come:
- the group's docstring (`Args:` lines; LightningCLI's `--help` text is read from it),
- `check_settings`: finite numbers, ranges, known names, and options that the chosen
  optimizer/schedule/network/loss does not use (refused, not ignored),
- `flat_signature`: a keyword-only signature over several groups, which the
  LightningModule uses as its own (one flat `--model.<name>` flag per setting),
- `reference_table`: the markdown reference in docs/.

An option counts as set when it differs from its declared default. The command line
resets the options a recipe file set for another choice (`unused_settings`), so switching
the optimizer or schedule of a recipe with one flag keeps working, while an option the
user gives for a choice not taken is refused.
"""

import dataclasses
import difflib
import inspect
import math
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from src.core.errors import ConfigError, check_range, lookup

_KEY = "setting"


@dataclass(frozen=True)
class Spec:
    """What a setting's declaration holds besides its type and default."""

    help: str
    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True
    high_inclusive: bool = True
    # Accepted names (a registry's keys); checked case-insensitively, as the factories do.
    choices: Sequence[str] | Mapping[str, Any] | None = None
    # (selector setting, the selector's values this setting is used with); None: always used.
    applies: tuple[str, tuple[str, ...]] | None = None
    # Where a value of None means something other than "off", say what (e.g. "0.01").
    none_means: str | None = None


def setting(default: Any, help: str, **spec: Any) -> Any:
    """A dataclass field carrying its declaration (see the module docstring)."""
    return dataclasses.field(default=default, metadata={_KEY: Spec(help=help, **spec)})


def specs(group: type) -> dict[str, tuple[dataclasses.Field, Spec]]:
    """name -> (field, spec) for every setting of a group, in declaration order."""
    return {f.name: (f, f.metadata[_KEY]) for f in dataclasses.fields(group)}


def _interval(spec: Spec) -> str:
    if spec.low is None and spec.high is None:
        return ""
    left = "[" if spec.low_inclusive else "("
    right = "]" if spec.high_inclusive else ")"
    low = "-inf" if spec.low is None else f"{spec.low:g}"
    high = "inf" if spec.high is None else f"{spec.high:g}"
    return f"{left}{low}, {high}{right}"


def describe(spec: Spec) -> str:
    """The help text with what the declaration adds: range, names, where it applies."""
    parts = [spec.help.rstrip(".") + "."]
    if spec.choices is not None:
        parts.append(f"One of: {', '.join(spec.choices)}.")
    if interval := _interval(spec):
        parts.append(f"Range {interval}.")
    if spec.none_means:
        parts.append(f"null: {spec.none_means}.")
    if spec.applies is not None:
        selector, values = spec.applies
        parts.append(f"Used with {selector} {', '.join(values)} only.")
    return " ".join(parts)


def settings_group(group: type) -> type:
    """Class decorator: write the group's `Args:` docstring from its declarations."""
    intro = (group.__doc__ or group.__name__).strip().split("\n\n")[0]
    lines = [f"    {name}: {describe(spec)}" for name, (_, spec) in specs(group).items()]
    group.__doc__ = f"{intro}\n\nArgs:\n" + "\n".join(lines) + "\n"
    return group


def _numbers(value: Any) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [value]
    if isinstance(value, list | tuple):
        return [item for item in value if isinstance(item, int | float)
                and not isinstance(item, bool)]
    return []


def check_settings(values: Any, flag_prefix: str = "--model.") -> None:
    """One `ConfigError` line for the first bad value of a settings group instance."""
    declared = specs(type(values))
    for name, (_, spec) in declared.items():
        value = getattr(values, name)
        many = isinstance(value, list | tuple)
        for index, number in enumerate(_numbers(value)):
            where = f"{name}[{index}]" if many else name
            if not math.isfinite(number):
                raise ConfigError(f"{flag_prefix}{where}={number!r} is not a finite number; "
                                  f"give a real value (see --help)")
            check_range(where, number, spec.low, spec.high, spec.low_inclusive,
                        spec.high_inclusive)
        if spec.choices is not None and value is not None:
            lookup({key: key for key in spec.choices}, value, name)
    for name, (field, spec) in declared.items():
        if spec.applies is None:
            continue
        selector, used_with = spec.applies
        chosen = getattr(values, selector)
        chosen = chosen.lower() if isinstance(chosen, str) else chosen
        if chosen not in used_with and not same_value(getattr(values, name), field.default):
            raise ConfigError(
                f"{flag_prefix}{name} applies to {selector} {', '.join(used_with)} only, and "
                f"{selector} is {chosen!r}: remove {flag_prefix}{name} (or set it back to "
                f"{field.default!r}), or choose {flag_prefix}{selector} "
                f"{used_with[0]}")


def unused_settings(groups: Sequence[type], values: Mapping[str, Any]) -> dict[str, Any]:
    """name -> declared default, for every setting of `groups` that the choices in
    `values` do not use (e.g. momentum when the optimizer is adam)."""
    unused = {}
    for group in groups:
        for name, (field, spec) in specs(group).items():
            if spec.applies is None or name not in values:
                continue
            selector, used_with = spec.applies
            chosen = values.get(selector, specs(group)[selector][0].default)
            if (chosen.lower() if isinstance(chosen, str) else chosen) not in used_with:
                unused[name] = field.default
    return unused


def same_value(value: Any, other: Any) -> bool:
    """Equal, where a list and a tuple with the same items count as equal."""
    if isinstance(value, list | tuple) and isinstance(other, list | tuple):
        return list(value) == list(other)
    return value == other


def split_settings(groups: Sequence[type], values: Mapping[str, Any]) -> list[Any]:
    """Plain values (as flags and checkpoints hold them) -> one instance per group.

    Names no group declares are refused in one line that lists the closest ones.
    """
    known = {name for group in groups for name in specs(group)}
    unknown = sorted(set(values) - known)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown model setting {unknown[0]!r}{hint}")
    return [group(**{name: values[name] for name in specs(group) if name in values})
            for group in groups]


def flat_signature(groups: Sequence[type]) -> inspect.Signature:
    """`(self, *, <every setting of every group>)`, with the declared types and defaults."""
    parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    for group in groups:
        hints = _type_hints(group)
        for name, (field, _) in specs(group).items():
            parameters.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY,
                                                default=field.default,
                                                annotation=hints[name]))
    return inspect.Signature(parameters)


def _type_hints(group: type) -> dict[str, Any]:
    return typing.get_type_hints(group)


def args_section(groups: Sequence[type]) -> str:
    """The `Args:` lines of several groups, for a docstring."""
    return "\n".join(f"    {name}: {describe(spec)}"
                     for group in groups for name, (_, spec) in specs(group).items())


def reference_table(group: type, flag_prefix: str = "--model.") -> str:
    """A markdown table of one group: flag, type, default, what it does."""
    hints = _type_hints(group)
    rows = ["| flag | type | default | meaning |", "| --- | --- | --- | --- |"]
    for name, (field, spec) in specs(group).items():
        hint = hints[name]
        kind = hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")
        default = "null" if field.default is None else repr(field.default)
        text = describe(spec)
        cells = [f"`{flag_prefix}{name}`", f"`{kind}`", f"`{default}`", text]
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows)
