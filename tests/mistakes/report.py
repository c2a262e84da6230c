"""support/report.py's mistakes: evaluate.py's one evaluation at a time, and the flags each
reads."""
from tests.mistakes import Mistake

F = "support/report.py"
T = "tests/test_evaluate.py"

MISTAKES = [
    Mistake(F, "two evaluations let through, only three refused",
            "if len(modes) > 1:",
            "if len(modes) > 2:",
            tests=T,
            shows="--ref beside --conditions, or beside --pairs, is silently ignored: the "
                  "FID the user asked for never appears"),
    Mistake(F, "every evaluation checked against the flags of SAMPLES alone",
            'mode = modes[0] if modes else "SAMPLES"',
            'mode = "SAMPLES"',
            tests=T,
            shows="evaluate.py SAMPLES --pairs TARGETS is refused: --pairs 'has no effect'"),
    Mistake(F, "the flags read with the mode's own flag left out of what applies",
            "if stray := sorted(given - set(READS[mode]) - {mode}):",
            "if stray := sorted(given - set(READS[mode])):",
            tests=T,
            shows="every evaluation but SAMPLES alone is refused as having no effect"),
    Mistake(F, "--objects without --labels let through",
            'if "--objects" in given and not args.labels:',
            'if "--objects" in given and args.labels:',
            tests=T,
            shows="--objects alone is ignored, and with --labels it is refused"),
]
