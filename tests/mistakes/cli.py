"""support/cli.py's mistakes: repeat counts without their upper bound, stage 1 of no steps
(issue 42, item 7)."""
from tests.mistakes import Mistake

ITEM_7 = "tests/test_flags.py"
MISTAKES = [
    Mistake("support/cli.py", "--d-repeats unbounded",
            '"d_repeats": Range(int, 1, 100)', '"d_repeats": COUNT',
            tests=ITEM_7,
            shows="--d-repeats 1000000000: one step never ends, nor does the first Ctrl-C"),
    Mistake("support/cli.py", "--n-critic unbounded, and 0 let through",
            '"n_critic": Range(int, 1, 100),', '"n_critic": COUNT0,',
            tests=ITEM_7,
            shows="stargan --n-critic 0 divides by zero at the first step"),
    Mistake("support/cli.py", "--ae-steps 0 let through",
            '"ae_steps": COUNT,', '"ae_steps": COUNT0,',
            tests=ITEM_7,
            shows="the diffusion learns the latents of an untrained autoencoder"),
]
