"""support/translate.py's mistakes: the names of sample.py --input's and --invert's outputs,
and the check of the files they write."""
from tests.mistakes import Mistake

F = "support/translate.py"
T = "tests/test_outputs.py"

MISTAKES = [
    Mistake(F, "a clash of names never renamed, only refused",
            "[way(p) if found.count(n) > 1 or n in taken else n",
            "[way(p) if n in taken else n",
            tests=T,
            shows="sample.py --input x/ --input y/ with a.png in each is refused, and so is "
                  "a folder holding a.png and a.bmp"),
    Mistake(F, "the extension never kept: a.png and a.bmp still clash",
            'lambda p: os.path.relpath(p, root).replace(os.sep, "_").replace(".", "_")]',
            'lambda p: os.path.splitext(os.path.relpath(p, root))[0].replace(os.sep, "_")]',
            tests=T,
            shows="a folder with a.png and a.bmp cannot be translated or inverted into a "
                  "folder: refused, though the two have different names"),
    Mistake(F, "the outputs of --out DIR/ checked without the inputs",
            'destination(args.out, named(args, "out"), outputs)',
            "destination(args.out, (), outputs)",
            tests=T,
            shows="sample.py --input DIR --out DIR/ writes each translation over the image it "
                  "was made from"),
]
