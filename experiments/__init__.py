"""The app: thin entry points (`python -m experiments.<name>`), recipes (configs/) and
sweep specs (sweeps/). Everything they run lives in the library, `src/`."""

from pathlib import Path

from src.core.recipes import Recipes

HERE = Path(__file__).resolve().parent
RECIPES = Recipes(package=__name__, config_dir=HERE / "configs", sweep_dir=HERE / "sweeps")
