"""Figures are readable: no title drawn over another."""

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from src.reporting import plots


def test_learning_curve_title_does_not_overlap_the_panel_titles(tmp_path, monkeypatch):
    drawn: list[Figure] = []
    real_save = plots._save
    monkeypatch.setattr(plots, "_save", lambda figure, path: (drawn.append(figure),
                                                              real_save(figure, path))[1])
    history = [{"epoch": e, "train_loss": 2.0 / e, "val_loss": 2.2 / e, "train_acc": 0.1 * e,
                "val_acc": 0.09 * e} for e in range(1, 6)]
    plots.plot_learning_curves(history, tmp_path / "curves.png", title="cifar_mlp version_0")
    [figure] = drawn
    canvas = FigureCanvasAgg(figure)  # as savefig renders it
    canvas.draw()
    renderer = canvas.get_renderer()
    title = figure._suptitle.get_window_extent(renderer)
    for axes in figure.axes:
        panel_title = axes.title.get_window_extent(renderer)
        assert not title.overlaps(panel_title)
        assert title.y0 >= panel_title.y1  # the figure title sits above the panels
