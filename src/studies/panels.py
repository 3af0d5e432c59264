"""The panels of a study's figure, read from each variant's own logs: one line (or bar) per
variant. Drawing is src/reporting/plots.py's; here is only which numbers go where."""

import math
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path

from src.core.errors import lookup
from src.reporting.plots import Panel, plot_panels
from src.studies.columns import activation_stats_at_init
from src.studies.runner import VariantResult

PanelOf = Callable[[Sequence[VariantResult]], Panel]


def _lines(results: Sequence[VariantResult],
           points_of: Callable[[VariantResult], list[tuple[float, float]]],
           ) -> list[tuple[str, list[tuple[float, float]]]]:
    return [(result.variant.label, points_of(result)) for result in results]


def train_loss_per_step(results: Sequence[VariantResult]) -> Panel:
    # A diverging run would squash every other line: it leaves through the top instead.
    first = [points[0].value for r in results if (points := r.traces.get("train/loss_step"))
             and math.isfinite(points[0].value)]
    return Panel("train loss (logged steps)", _lines(results, lambda r: [
        (p.step, p.value) for p in r.traces.get("train/loss_step", [])]),
        xlabel="optimizer step", log_y=True, top=3 * max(first) if first else None)


def per_epoch_panel(metric: str, title: str) -> PanelOf:
    """A panel of one epoch-level metric, one line per variant."""
    def panel(results: Sequence[VariantResult]) -> Panel:
        return Panel(title, _lines(results, lambda r: [
            (p.epoch, p.value) for p in r.traces.get(metric, []) if p.epoch is not None]),
            xlabel="epoch", style="-o", integer_x=True)
    return panel


def lr_per_epoch(results: Sequence[VariantResult]) -> Panel:
    def points(result: VariantResult) -> list[tuple[float, float]]:
        # The LR monitor logs per step without an epoch: place its values by the number of
        # steps per epoch (the first epoch ends at the step its epoch values carry).
        ends = result.traces.get("train/loss_epoch", [])
        steps_per_epoch = ends[0].step + 1 if ends else 1
        name = next((name for name in result.traces if name.startswith("lr")), None)
        return [(p.step / steps_per_epoch, p.value) for p in result.traces.get(name, [])]
    return Panel("learning rate", _lines(results, points), xlabel="epoch")


def seconds_per_epoch(results: Sequence[VariantResult]) -> Panel:
    bars = []
    for result in results:
        points = result.traces.get("time/train_epoch_s", [])
        bars.append((result.variant.label,
                     statistics.median(p.value for p in points) if points else 0.0))
    return Panel("training time per epoch (median)", bars=bars, ylabel="seconds")


def activation_std_at_init(results: Sequence[VariantResult]) -> Panel:
    return Panel("activation std at initialization (step 0)", _lines(results, lambda r: [
        (int(row["layer_index"]), float(row["act_std"])) for row in activation_stats_at_init(r)]),
        xlabel="hidden layer (activation), input -> output", style="-o", log_y=True,
        integer_x=True)


PANELS: dict[str, PanelOf] = {
    "train loss per step": train_loss_per_step,
    "train loss per epoch": per_epoch_panel("train/loss_epoch",
                                            "train loss (mean over each epoch)"),
    "val acc per epoch": per_epoch_panel("val/acc", "validation accuracy"),
    "train acc per epoch": per_epoch_panel("train/acc",
                                           "train accuracy (training mode, augmented)"),
    "lr per epoch": lr_per_epoch,
    "seconds per epoch": seconds_per_epoch,
    "activation std at init": activation_std_at_init,
}


def plot_study(results: Sequence[VariantResult], panels: Sequence[str], title: str,
               path: Path) -> Path:
    return plot_panels([lookup(PANELS, name, "study plot panel")(results) for name in panels],
                       title, path)
