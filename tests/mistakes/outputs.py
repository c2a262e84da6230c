"""support/outputs.py's mistakes: the one rule of every output (spares, writable, named): what
a command writes never replaces an input, a checkpoint or a run's log."""
from tests.mistakes import Mistake

F = "support/outputs.py"

MISTAKES = [
    Mistake(F, "the inputs compared by their spelling, not as files",
            "elif os.path.samefile(p, path):",
            "elif p == path:",
            shows="sample.py --input a.png --out ./a.png, or through a link, writes its grid over "
                  "the image it read"),
    Mistake(F, "a folder among the inputs taken as one file: its pictures unguarded",
            'if picture and real.startswith(os.path.join(os.path.realpath(p), "")):',
            "if picture and real == os.path.realpath(p):",
            shows="sample.py --input photos/ --out photos/ writes each translation over the "
                  "photo of its name"),
    Mistake(F, "a run's log not among the files spared",
            'elif os.path.basename(path) == "log.jsonl":',
            'elif os.path.basename(path) == "log.json":',
            shows="evaluate.py --json runs/x/log.jsonl writes its figures over the run's "
                  "training log"),
    Mistake(F, "a checkpoint spared only when the output is one too: the test inverted",
            "if a_checkpoint(path) and not kind:",
            "if a_checkpoint(path) and kind:",
            shows="evaluate.py --json runs/x/ckpt.pt replaces the run's checkpoint with a JSON; "
                  "retraining a classifier into its own file is refused"),
    Mistake(F, "writable checks the folder but never the rule",
            "    spares(flag_name, path, inputs, kind)",
            "    return",
            shows="evaluate.py --json, the benchmark's --json and the curves' --out write over "
                  "a checkpoint, a log or their own input"),
    Mistake(F, "a repeatable flag's list of paths not read as inputs",
            "(v if isinstance(v, list) else [v])",
            "[v]",
            shows="sample.py --input DIR --out DIR/ (--input is repeatable) writes its outputs "
                  "over the images it read"),
]
