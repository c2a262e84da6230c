"""support/cli.py's mistakes: the declared ranges of the flags every command shares."""
from tests.mistakes import Mistake

F = "support/cli.py"

MISTAKES = [
    Mistake(F, "classifier guidance's scale without its upper bound",
            '"classifier_scale": Range(float, 0, 1000),',
            '"classifier_scale": WEIGHT,',
            tests="tests/test_guidance.py",
            shows="--classifier-scale 1e30 is accepted: the guidance term swamps eps and every "
                  "pixel is drawn at the clip"),
]
