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
               "ddpm.py", "ldm.py", "stargan.py"]
MODEL_FILES += ["progan.py"]
MODEL_FILES += ["srgan.py"]


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


def test_the_list_covers_the_maths():
    """Issue 31's floor: 100 mistakes in all, 8 a model file, 5 a support file with maths (the
    metrics, FID's network, the lab's accuracy, the EMA and the step, the gradient averaging)."""
    per_file = Counter(m.file for m in MISTAKES)
    maths = ["evaluate.py", "support/inception.py", "support/lab.py", "train.py",
             "support/processes.py", "support/invert.py", "support/guidance.py"]
    assert len(MISTAKES) >= 100
    short = {f: per_file[f] for f in MODEL_FILES if per_file[f] < 8}
    short |= {f: per_file[f] for f in maths if per_file[f] < 5}
    assert not short, f"too few mistakes listed: {short}"


def test_each_mistake_says_what_it_does():
    """docs/mistakes.md is generated from `says` and `shows`: neither may be empty."""
    silent = [f"{m.file}: {m.says}" for m in MISTAKES if not (m.says and m.shows)]
    assert not silent, silent
