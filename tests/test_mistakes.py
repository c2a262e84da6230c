"""The kept list of mistakes (tests/mistakes/) cannot rot: each pattern still matches exactly one
place of its file, its edit changes something, and the test files it names exist. Running the
list itself is `python -m tests.mistakes` (minutes; not part of this suite)."""
import os
from collections import Counter
import pytest
from tests.mistakes import every_mistake

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MISTAKES = every_mistake()
MODEL_FILES = ["vae.py", "gan.py", "dcgan.py", "pix2pix.py", "cyclegan.py", "stylegan.py",
               "ddpm.py", "ldm.py"]


@pytest.mark.parametrize("m", MISTAKES, ids=lambda m: f"{m.file}: {m.says}")
def test_each_pattern_matches_one_place(m):
    with open(os.path.join(ROOT, m.file)) as f:
        code = f.read()
    assert code.count(m.pattern) == 1, f"{m.pattern!r} matches {code.count(m.pattern)} places"
    assert m.pattern != m.replacement
    for t in m.test_files():
        assert os.path.isfile(os.path.join(ROOT, t)), t


def test_no_mistake_is_listed_twice():
    twice = [k for k, n in Counter((m.file, m.pattern) for m in MISTAKES).items() if n > 1]
    assert not twice, twice
