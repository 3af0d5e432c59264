"""Study: weight initialization x activation (`--help` for the flags)."""

from experiments import RECIPES
from src.cli import study as cli
from src.studies.presets import full, plain_mlp, quick, sgd_momentum
from src.studies.study import Study, Variant

DEPTH, WIDTH = 8, 256
INITS = {
    "normal std 0.01": (("--model.init", "normal", "--model.init_std", "0.01"),
                        "too small: the signal shrinks layer after layer (vanishes)"),
    "normal std 1.0": (("--model.init", "normal", "--model.init_std", "1.0"),
                       "too large: the signal grows with depth (ReLU) or saturates (tanh)"),
    "xavier": (("--model.init", "xavier_normal"),
               "variance 1/fan_avg: keeps tanh's signal near its scale"),
    "kaiming": (("--model.init", "kaiming_normal"),
                "variance 2/fan_in (ReLU's gain): keeps ReLU's signal at its scale"),
}
ACTIVATIONS = ("tanh", "relu")

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
        Variant(f"{init} + {act}", (*flags, "--model.act", act), note)
        for init, (flags, note) in INITS.items() for act in ACTIVATIONS),
    budgets={"quick": quick(500, 4), "full": full(20)},
    columns=("act std, first layer @init", "act std, last layer @init",
             "dead/saturated, last layer @init", "best val acc", "test acc", "run s"),
    panels=("activation std at init", "train loss per step", "val acc per epoch"),
)


def main(argv: list[str] | None = None):
    return cli.main(STUDY, RECIPES, argv)


if __name__ == "__main__":
    main()
