"""support/scenes.py's mistakes: the files it writes spare the user's."""
from tests.mistakes import Mistake

MISTAKES = [
    Mistake("support/scenes.py", "the scenes' files checked without --conditions",
            'given = named(a, "out")',
            "given = []",
            tests="tests/test_outputs.py",
            shows="python -m support.scenes --out DIR --conditions DIR/0.png draws scene 0 over "
                  "the conditions it read"),
]
