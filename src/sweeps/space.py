"""Search spaces over config keys: grids, random samples, and refinement around a point.

A space maps dotted config keys (`model.lr`, `data.batch_size`) to either
- a list of values (`Choice`): tried in order by a grid, drawn uniformly by random search;
- a range `{min, max, log: bool, int: bool, num: N}` (`Range`): drawn uniformly (or
  log-uniformly) by random search; a grid takes `num` evenly (or log-) spaced points.
"""

import itertools
import math
import random
import re
from dataclasses import dataclass
from typing import Any

from src.core.errors import ConfigError, check_range

KEY_PATTERN = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")  # section.name[.name...]
RANGE_KEYS = {"min", "max", "log", "int", "num"}
SIGNIFICANT_DIGITS = 4  # sampled floats are rounded so flags and tables stay readable


@dataclass(frozen=True)
class Choice:
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Range:
    low: float
    high: float
    log: bool = False
    integer: bool = False
    num: int | None = None  # grid points; needed only by grids


Dimension = Choice | Range
Space = dict[str, Dimension]


def parse_space(parameters: dict[str, Any]) -> Space:
    """Check and convert the `parameters:` section of a sweep spec."""
    if not isinstance(parameters, dict) or not parameters:
        raise ConfigError("a sweep needs `parameters:`, a mapping of config keys "
                          "(e.g. model.lr) to a list of values or {min, max, log}")
    return {key: _parse_dimension(key, value) for key, value in parameters.items()}


def _parse_dimension(key: str, value: Any) -> Dimension:
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise ConfigError(f"sweep parameter {key!r} is not a dotted config key such as "
                          f"model.lr or data.batch_size")
    if isinstance(value, list):
        if not value:
            raise ConfigError(f"sweep parameter {key}: the list of values is empty")
        return Choice(tuple(value))
    if not isinstance(value, dict):
        raise ConfigError(f"sweep parameter {key}: give a list of values or "
                          f"{{min, max[, log, int, num]}}, not {value!r}")
    unknown = sorted(set(value) - RANGE_KEYS)
    if unknown or "min" not in value or "max" not in value:
        raise ConfigError(f"sweep parameter {key}: a range takes min and max (and "
                          f"optionally log, int, num); got {sorted(value)}")
    low, high = _number(key, "min", value["min"]), _number(key, "max", value["max"])
    check_range(f"{key} max", high, low)
    log = bool(value.get("log", False))
    if log:
        check_range(f"{key} min (log scale)", low, 0.0, low_inclusive=False)
    num = value.get("num")
    if num is not None:
        check_range(f"{key} num", num, 1)
    return Range(low, high, log=log, integer=bool(value.get("int", False)), num=num)


def space_to_parameters(space: Space) -> dict[str, Any]:
    """The inverse of `parse_space`: the `parameters:` section that gives `space`."""
    parameters: dict[str, Any] = {}
    for key, dimension in space.items():
        if isinstance(dimension, Choice):
            parameters[key] = list(dimension.values)
            continue
        entry: dict[str, Any] = {"min": dimension.low, "max": dimension.high}
        if dimension.log:
            entry["log"] = True
        if dimension.integer:
            entry["int"] = True
        if dimension.num is not None:
            entry["num"] = dimension.num
        parameters[key] = entry
    return parameters


def _number(key: str, field: str, value: Any) -> float:
    try:
        return float(value)  # YAML reads 1e-3 (no dot) as a string
    except (TypeError, ValueError):
        raise ConfigError(f"sweep parameter {key}: {field}={value!r} is not a number") from None


def _tidy(dimension: Range, value: float) -> float | int:
    """Round to readable digits (or to an integer), staying inside the range."""
    if dimension.integer:
        return min(max(round(value), math.ceil(dimension.low)), math.floor(dimension.high))
    rounded = float(f"{value:.{SIGNIFICANT_DIGITS}g}")
    return min(max(rounded, dimension.low), dimension.high)


def grid_points(key: str, dimension: Dimension) -> list[Any]:
    if isinstance(dimension, Choice):
        return list(dimension.values)
    if dimension.num is None:
        raise ConfigError(f"sweep parameter {key}: a grid needs a list of values or a range "
                          f"with num (number of points)")
    if dimension.num == 1:
        points = [dimension.low]
    elif dimension.log:
        ratio = math.log(dimension.high / dimension.low) / (dimension.num - 1)
        points = [dimension.low * math.exp(ratio * i) for i in range(dimension.num)]
    else:
        step = (dimension.high - dimension.low) / (dimension.num - 1)
        points = [dimension.low + step * i for i in range(dimension.num)]
    tidy = [_tidy(dimension, point) for point in points]
    return list(dict.fromkeys(tidy))  # integer rounding can merge neighbours


def grid(space: Space) -> list[dict[str, Any]]:
    """Every combination, the last key varying fastest."""
    keys = list(space)
    axes = [grid_points(key, space[key]) for key in keys]
    return [dict(zip(keys, combination, strict=True)) for combination in itertools.product(*axes)]


def sample_value(dimension: Dimension, rng: random.Random) -> Any:
    if isinstance(dimension, Choice):
        return rng.choice(dimension.values)
    if dimension.log:
        value = math.exp(rng.uniform(math.log(dimension.low), math.log(dimension.high)))
    else:
        value = rng.uniform(dimension.low, dimension.high)
    return _tidy(dimension, value)


def sample(space: Space, rng: random.Random) -> dict[str, Any]:
    return {key: sample_value(dimension, rng) for key, dimension in space.items()}


@dataclass(frozen=True)
class Refinement:
    space: Space  # the finer space around the best point
    at_edge: list[str]  # keys whose best value lies on the edge of the coarse grid


def refine_around(space: Space, best: dict[str, Any]) -> Refinement:
    """The space between the grid neighbours of `best` on each range; choices are fixed.

    If the loss curve along a range has one minimum, it lies between the two neighbours
    of the best grid point; a best point on the edge of the grid means it may lie outside.
    """
    refined: Space = {}
    at_edge = []
    for key, dimension in space.items():
        if isinstance(dimension, Choice):
            refined[key] = Choice((best[key],))
            continue
        points = grid_points(key, dimension)
        index = points.index(best[key])
        low, high = points[max(index - 1, 0)], points[min(index + 1, len(points) - 1)]
        if len(points) > 1 and index in (0, len(points) - 1):
            at_edge.append(key)
        refined[key] = Range(low, high, log=dimension.log, integer=dimension.integer)
    return Refinement(refined, at_edge)
