"""measure/curves.py's mistakes: several runs' logs drawn side by side; any log read, a plot
of what can be plotted or one line (issue 42)."""
from tests.mistakes import Mistake

F = "measure/curves.py"
T = "tests/test_train.py"

MISTAKES = [
    Mistake(F, "the log read as strict UTF-8",
            'with open(path, encoding="utf-8", errors="replace") as f:',
            'with open(path, encoding="utf-8") as f:',
            shows="a log with one byte that is not UTF-8 (a disk fault, binary garbage): a "
                  "UnicodeDecodeError traceback, not the line that is not JSON"),
    Mistake(F, "JSON nested too deep not caught",
            "except (ValueError, RecursionError):",
            "except ValueError:",
            shows="a line of arrays nested 100,000 deep: a RecursionError traceback"),
    Mistake(F, "any int taken as a step",
            "if not isinstance(step, int) or not 0 <= step < 2**63:",
            "if not isinstance(step, int):",
            shows="a step of 400 digits: an OverflowError in the axis's ticks, not one line"),
    Mistake(F, "every finite number plotted, however large",
            "number = isinstance(v, (int, float)) and abs(v) <= LARGEST",
            "number = isinstance(v, (int, float)) and math.isfinite(v)",
            shows="a diverged loss of 1e308 beside -1e308: the axis's span overflows to inf, an "
                  "OverflowError; an int of 400 digits: an OverflowError in isfinite"),
    Mistake(F, "only an exactly flat range padded",
            "if hi - lo < 1e-300:",
            "if hi <= lo:",
            shows="values 0 and 5e-324: a tick step that underflows to 0, a math domain error"),
    Mistake(F, "a flat range about 0 padded by nothing",
            "if max(abs(lo), abs(hi)) > 1e-300 else 0.5",
            "if max(abs(lo), abs(hi)) > 0 else 0.5",
            shows="values 0 and 5e-324: a band of 5e-324, ticks that underflow"),
    Mistake(F, "--out's format tried without OSError",
            "except (KeyError, ValueError, OSError):",
            "except (KeyError, ValueError):",
            shows="--out curves.xbm (no colour): an OSError traceback after the work, not one "
                  "line before it"),
    Mistake(F, "the figure's size counted for one panel",
            "if a.width * a.height * len(panels) > PIXELS:",
            "if a.width * a.height > PIXELS:",
            shows="--height 20000 with 4 kinds of quantity: a 58-million-pixel figure drawn"),
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
