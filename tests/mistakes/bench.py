"""measure/bench.py's mistakes: its --json, checked before any model runs."""
from tests.mistakes import Mistake

MISTAKES = [
    Mistake("measure/bench.py", "--json checked without the folder --data names",
            'writable("--json", s["json"], named(s, "json"))',
            'writable("--json", s["json"])',
            tests="tests/test_outputs.py",
            shows="python -m measure.bench --data DIR --json DIR/a.png writes the rows over "
                  "an image it trains on"),
]
