"""Study: weight initialization x activation (`--help` for the flags)."""

from experiments import RECIPES
from src.cli import study as cli
from src.studies.presets import full, plain_mlp, quick, sgd_momentum
from src.studies.study import Study, Variant

DEPTH, WIDTH = 8, 256
INITS = {
    "normal std 0.01": ("--model.init", "normal", "--model.init_std", "0.01"),
    "normal std 1.0": ("--model.init", "normal", "--model.init_std", "1.0"),
    "xavier": ("--model.init", "xavier_normal"),
    "kaiming": ("--model.init", "kaiming_normal"),
}
ACTIVATIONS = ("tanh", "relu")
# What each pair does at initialization, as the code computes it (src/modules/init.py):
# kaiming_normal takes the activation's own gain g (torch's calculate_gain: sqrt(2) for
# relu, 5/3 for tanh), variance g^2 / fan_in; xavier_normal has gain 1, variance
# 2 / (fan_in + fan_out), which is 1 / fan_in for these square hidden layers.
NOTES = {
    ("normal std 0.01", "tanh"): "too small: the signal shrinks layer after layer (vanishes)",
    ("normal std 0.01", "relu"): "too small: the signal shrinks layer after layer (vanishes)",
    ("normal std 1.0", "tanh"): "too large: the pre-activations are large and tanh saturates",
    ("normal std 1.0", "relu"): "too large: the signal grows with every layer (explodes)",
    ("xavier", "tanh"): "variance 1/fan_in (gain 1): keeps tanh's signal near its scale",
    ("xavier", "relu"): "variance 1/fan_in (gain 1): half what ReLU needs, so the signal "
                        "halves in variance at every layer",
    ("kaiming", "tanh"): "variance (5/3)^2/fan_in (tanh's gain 5/3): slightly above 1/fan_in, "
                         "to make up for tanh's contraction",
    ("kaiming", "relu"): "variance 2/fan_in (ReLU's gain sqrt 2): keeps ReLU's signal at its "
                         "scale",
}

STUDY = Study(
    name="study_init_activation",
    title=f"Initialization x activation: a plain MLP of {DEPTH} hidden layers x {WIDTH}",
    question="How does the weight initialization, together with the activation, decide "
             "whether the signal vanishes, explodes or saturates through the depth of a "
             "network without normalization layers, and whether it then trains?",
    base="cifar_mlp",
    common_flags=(*plain_mlp(f"[{','.join([str(WIDTH)] * DEPTH)}]"), *sgd_momentum(0.01),
                  "--data.batch_size", "128",
                  # step 0 is sampled: the statistics of the network as initialized
                  "--activation_stats.every_n_steps", "50"),
    variants=tuple(
        Variant(f"{init} + {act}", (*flags, "--model.act", act), NOTES[init, act])
        for init, flags in INITS.items() for act in ACTIVATIONS),
    budgets={"quick": quick(500, 4), "full": full(20)},
    columns=("act std, first layer @init", "act std, last layer @init",
             "dead/saturated, last layer @init", "best val acc", "test acc", "run s"),
    panels=("activation std at init", "train loss per step", "val acc per epoch"),
)


def main(argv: list[str] | None = None):
    return cli.main(STUDY, RECIPES, argv)


if __name__ == "__main__":
    main()
