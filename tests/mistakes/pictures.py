"""support/pictures.py's mistakes: the files sample.py writes, checked and named."""
from tests.mistakes import Mistake

F = "support/pictures.py"
T = "tests/test_outputs.py"

MISTAKES = [
    Mistake(F, "--out checked as a whole, not each file written into it",
            '        spares("--out", f, inputs)',
            '        spares("--out", out, inputs)',
            tests=T,
            shows="sample.py --input DIR --out DIR/ writes its outputs over the images it read"),
    Mistake(F, "each output written at the top of --out, its subfolder dropped",
            "path = os.path.join(out, f)",
            "path = os.path.join(out, os.path.basename(f))",
            tests=T,
            shows="stargan's translations of every domain land in one folder, each domain's "
                  "over the last: one image per input is left, of the last domain"),
]
