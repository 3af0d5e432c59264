"""Where the project's own code lives (the folder holding src/), for provenance records."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
