"""support/cli.py's mistakes: the declared ranges of the flags every command shares: repeat
counts without their upper bound, stage 1 of no steps (issue 42, item 7), classifier
guidance's scale; the run folder's check."""
from tests.mistakes import Mistake

F = "support/cli.py"
ITEM_7 = "tests/test_flags.py"

MISTAKES = [
    Mistake(F, "--d-repeats unbounded",
            '"d_repeats": Range(int, 1, 100)', '"d_repeats": COUNT',
            tests=ITEM_7,
            shows="--d-repeats 1000000000: one step never ends, nor does the first Ctrl-C"),
    Mistake(F, "--n-critic unbounded, and 0 let through",
            '"n_critic": Range(int, 1, 100),', '"n_critic": COUNT0,',
            tests=ITEM_7,
            shows="stargan --n-critic 0 divides by zero at the first step"),
    Mistake(F, "--ae-steps 0 let through",
            '"ae_steps": COUNT,', '"ae_steps": COUNT0,',
            tests=ITEM_7,
            shows="the diffusion learns the latents of an untrained autoencoder"),
    Mistake(F, "the run's folder checked as a file beside it",
            'writable("--out", os.path.join(out, ".lock"))',
            'writable("--out", out + ".lock")',
            tests="tests/test_modes.py",
            shows="train.py --resume into a run folder made read-only: a step trained and "
                  "logged, then the grid fails to be written"),
    Mistake(F, "classifier guidance's scale without its upper bound",
            '"classifier_scale": Range(float, 0, 1000),',
            '"classifier_scale": WEIGHT,',
            tests="tests/test_guidance.py",
            shows="--classifier-scale 1e30 is accepted: the guidance term swamps eps and every "
                  "pixel is drawn at the clip"),
    Mistake(F, "--num-res-blocks without its upper bound",
            '"num_res_blocks": Range(int, 1, 100)',
            '"num_res_blocks": COUNT',
            tests=ITEM_7,
            shows="ddpm --num-res-blocks 100000 builds modules for minutes before the first "
                  "step"),
    Mistake(F, "the schedule's T without its upper bound",
            '"T": Range(int, 1, 100_000),',
            '"T": COUNT,',
            tests=ITEM_7,
            shows="ddpm --T 1000000000: the schedule's buffers fill the memory, the run is "
                  "killed"),
]
