"""support/sampling.py's mistakes: knobs that would have no effect let through, and the
destination of sample.py's pictures (issue 42)."""
from tests.mistakes import Mistake

KNOBS = "tests/test_flags.py"
F = "support/sampling.py"
T = "tests/test_outputs.py"

MISTAKES = [
    Mistake("support/sampling.py", "--steps compared with the wrong side of T",
            'knobs["steps"] > config.get("T", knobs["steps"])',
            'knobs["steps"] < config.get("T", knobs["steps"])',
            tests=KNOBS,
            shows="--steps 5000 samples T steps, and any --steps below T is refused"),
    Mistake("support/sampling.py", "--no-batch-stats checked against the wrong norm",
            'if "batch_stats" in knobs and config.get("norm") == "instance":',
            'if "batch_stats" in knobs and config.get("norm") == "batch":',
            tests=KNOBS,
            shows="--no-batch-stats is refused where it acts, let through where it cannot"),
    Mistake(F, "--out checked without the command's inputs",
            'destination(args.out, named(args, "out"), files)',
            "destination(args.out, (), files)",
            tests=T,
            shows="sample.py --input a.png --out a.png writes the grid over the image it "
                  "translated"),
    Mistake(F, "a folder's files never named before the work",
            'files = [os.path.join(args.out, f) for f in files()] if files else []',
            "files = []",
            tests=T,
            shows="sample.py --init out/00001.png --out out/ draws its samples over the "
                  "image it started from"),
]
