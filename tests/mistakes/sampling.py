"""support/sampling.py's mistakes: knobs that would have no effect let through (issue 42)."""
from tests.mistakes import Mistake

KNOBS = "tests/test_flags.py"
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
]
