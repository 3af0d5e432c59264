"""The benchmark's one table: rows of named columns, printed and written as CSV and
markdown."""

import csv
from pathlib import Path
from typing import Any

# Column -> header. Empty cells where a measurement does not apply.
COLUMNS = {
    "section": "section",
    "model": "model",
    "setup": "setup",
    "device": "device",
    "precision": "precision",
    "batch_size": "batch",
    "images_per_s": "images/s",
    "epoch_s": "epoch s (50k images)",
    "time_s": "time to target s",
    "accuracy": "test acc",
    "accuracy_flip_tta": "test acc, flip TTA",
    "ratio": "ratio",
    "note": "note",
}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS.values()) + " |",
             "|" + "|".join("---" for _ in COLUMNS) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(key)) for key in COLUMNS) + " |")
    return "\n".join(lines)


def write_report(rows: list[dict[str, Any]], out_dir: Path, header: str) -> tuple[Path, Path]:
    """Write benchmark.csv and benchmark.md (the header line, then the table)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out_dir / "benchmark.csv", out_dir / "benchmark.md"
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS))
        writer.writeheader()
        for row in rows:  # full precision here; rounded in the markdown table
            writer.writerow({key: row.get(key) for key in COLUMNS})
    md_path.write_text(f"{header}\n\n{markdown_table(rows)}\n")
    return csv_path, md_path
