"""measure/curves.py's mistakes: several runs' logs drawn side by side."""
from tests.mistakes import Mistake

F = "measure/curves.py"
T = "tests/test_train.py"

MISTAKES = [
    Mistake(F, "--keys read but ignored: every shared quantity drawn",
            "for k in keys or shared}",
            "for k in shared}",
            tests=T,
            shows="the figure asked for one panel (lab accuracy) holds the loss terms too"),
    Mistake(F, "a quantity kept when only the first run holds it",
            "if all(k in q for q in per_run.values())]",
            "if any(k in q for q in per_run.values())]",
            tests=T,
            shows="a panel of D's outputs with a DDPM beside a GAN: a KeyError, not a figure"),
    Mistake(F, "--out checked without the logs it reads",
            'writable("--out", a.out, named(a, "out"))',
            'writable("--out", a.out)',
            tests="tests/test_outputs.py",
            shows="python -m measure.curves old.jsonl --out old.jsonl destroys the log it "
                  "draws"),
]
