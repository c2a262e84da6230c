"""support/sampling.py's mistakes: check, the destination of sample.py's pictures."""
from tests.mistakes import Mistake

F = "support/sampling.py"
T = "tests/test_outputs.py"

MISTAKES = [
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
