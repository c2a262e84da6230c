"""support/cli.py's mistakes: the shared command line."""
from tests.mistakes import Mistake

MISTAKES = [
    Mistake("support/cli.py", "the run's folder checked as a file beside it",
            'writable("--out", os.path.join(out, ".lock"))',
            'writable("--out", out + ".lock")',
            tests="tests/test_modes.py",
            shows="train.py --resume into a run folder made read-only: a step trained and "
                  "logged, then the grid fails to be written"),
]
