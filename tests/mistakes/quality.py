"""support/quality.py's mistakes: the progress grids' own seed, kept apart from training's
random numbers."""
from tests.mistakes import Mistake

T = "tests/test_train.py"
MISTAKES = [
    Mistake("support/quality.py", "the grid's seed not set: each grid draws new noise",
            'proc.autocast:\n        torch.manual_seed(args["seed"])\n        if batches',
            "proc.autocast:\n        if batches",
            tests=T,
            shows="each grid shows other samples: a grid's change mixes training's progress "
                  "with a new draw of z, and no two grids compare"),
    Mistake("support/quality.py", "the grid's seed set on training's random numbers",
            "with torch.random.fork_rng(devices=[device] if proc.cuda else []), proc.autocast:",
            "with proc.autocast:",
            tests=T,
            shows="every grid resets training's generator to the seed: the batches and noise "
                  "after it repeat, and --sample-every changes the weights a run ends with"),
]
