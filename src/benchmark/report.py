"""The benchmark's one table: rows of named values, printed as markdown and written as
CSV (every number in its own column, full precision) and markdown (rounded).

A row may carry a value's spread beside it: `<key>_min` and `<key>_max` (the range of
repeated timings around their median) or `<key>_std` (the standard deviation of runs
over seeds around their mean). The markdown cell shows `median [min, max]` or
`mean ± std`; the CSV keeps each in its own column.
"""

from pathlib import Path
from typing import Any

from src.reporting.tables import markdown_table, write_csv

# Column -> markdown header, in table order. Spread columns follow their value in the CSV.
COLUMNS = {
    "section": "section",
    "model": "model",
    "setup": "setup",
    "device": "device",
    "precision": "precision",
    "batch_size": "batch",
    "runs": "runs",
    "images_per_s": "images/s",
    "epoch_s": "epoch s (50k images)",
    "time_s": "train s",
    "accuracy": "test acc",
    "accuracy_flip_tta": "test acc, flip TTA",
    "best_val_accuracy": "best val acc",
    "run_s": "run s",
    "ratio": "ratio",
    "note": "note",
}
RANGED = ("images_per_s", "epoch_s", "ratio")  # median [min, max] of repeats or pairs
WITH_STD = ("time_s", "accuracy", "accuracy_flip_tta", "best_val_accuracy", "run_s")


def csv_columns() -> list[str]:
    columns = []
    for key in COLUMNS:
        columns.append(key)
        if key in RANGED:
            columns += [f"{key}_min", f"{key}_max"]
        if key in WITH_STD:
            columns.append(f"{key}_std")
        if key == "ratio":
            columns.append("ratio_unit")
    return columns


def _number(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"


def _cell(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None:
        return ""
    if not isinstance(value, float):
        return str(value)
    show, unit = _number, ""
    if key == "ratio":  # ratio_unit: "x classic", "x speed-up" or "% time per step"
        percent = row["ratio_unit"].startswith("%")
        show = (lambda v: f"{v:+.1f}%") if percent else (lambda v: f"{v:.2f}x")
        unit = " " + row["ratio_unit"][1:].strip()
    text = show(value)
    if row.get(f"{key}_min") is not None:
        text += f" [{show(row[f'{key}_min'])}, {show(row[f'{key}_max'])}]"
    if row.get(f"{key}_std") is not None:
        text += f" ± {_number(row[f'{key}_std'])}"
    return text + unit


def benchmark_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a markdown table of the columns some row fills."""
    keys = [key for key in COLUMNS if any(row.get(key) is not None for row in rows)]
    return markdown_table([COLUMNS[key] for key in keys],
                          [[_cell(row, key) for key in keys] for row in rows])


def write_report(rows: list[dict[str, Any]], out_dir: Path, header: str) -> tuple[Path, Path]:
    """Write benchmark.csv and benchmark.md (the header, then the table)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out_dir / "benchmark.csv", out_dir / "benchmark.md"
    columns = csv_columns()  # full precision here; rounded in the markdown table
    write_csv(csv_path, columns, [[row.get(key) for key in columns] for row in rows])
    md_path.write_text(f"{header}\n\n{benchmark_table(rows)}")
    return csv_path, md_path
