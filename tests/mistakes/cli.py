"""support/cli.py's mistakes: the declared ranges of the flags every command shares, the run
folder's check."""
from tests.mistakes import Mistake

F = "support/cli.py"

MISTAKES = [
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
]
