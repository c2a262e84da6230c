"""The kept list of mistakes: one-line edits a student plausibly makes, each of which the tests
must catch. `python -m tests.mistakes [--only ddpm.py]` applies each to a copy of the project and
runs the test file that owns the code (docs/mistakes.md: what each does to training).

One module here per file of the project (vae.py's mistakes in tests/mistakes/vae.py, and so on),
each a list MISTAKES of Mistake(...). tests/test_mistakes.py checks, in CI, that every pattern
still matches exactly one place, so the list cannot rot when the code moves.
"""
import importlib
import pkgutil
from dataclasses import dataclass


@dataclass(frozen=True)
class Mistake:
    file: str            # the project's file, from the root: "ddpm.py", "support/inception.py"
    says: str            # the mistake in a student's words: "predicts x_0 instead of the noise"
    pattern: str         # the exact text of the right code: it occurs once in file
    replacement: str     # the same place with the mistake in it
    tests: str = ""      # the test file(s) that catch it; default tests/test_<file's name>.py
    shows: str = ""      # what it does to training, as a student would see it (docs/mistakes.md)
    missed: str = ""     # why no cheap test can catch it, when none does (then it is not run)

    def test_files(self):
        if self.tests:
            return self.tests.split()
        return [f"tests/test_{self.file.split('/')[-1].removesuffix('.py')}.py"]


def every_mistake():
    """The mistakes of every module in this folder, in the order of the modules' names."""
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        found += importlib.import_module(f"{__name__}.{info.name}").MISTAKES
    return found
