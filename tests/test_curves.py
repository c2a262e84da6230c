"""python -m measure.curves reads any log.jsonl (issue 42): what can be plotted is plotted, and
anything else (a file that is not a log, an --out Pillow cannot write, a figure too large) is one
line, exit 1, nothing written; never a traceback. (Its drawing: tests/test_train.py.)"""
import json
import math
import pytest
from measure import curves

GOOD = [{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.25}]


def one_line(r):
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), r.out
    return lines[0]


LOGS = [
    (bytes(range(256)) * 4, "line 1, is not JSON"),                     # binary garbage
    (b'{"step": 1, "loss": 1.0}\n\xff\xfe{"step": 2}\n', "line 2, is not JSON"),   # not UTF-8
    (b'{"step": 1, "loss": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "line 1, is not JSON"),
    (b'{"step": 1' + b"0" * 400 + b', "loss": 1}', "line 1, has no step"),   # past a float
    (b'{"step": -3, "loss": 1}', "line 1, has no step"),
    (b'{"step": 2.5, "loss": 1}', "line 1, has no step"),
    (b'[{"step": 1}]', "line 1, has no step"),
    (b'{"step": 1, "loss": NaN, "FD": "high", "KID": {"mean": 1}, "acc": [1], "x": null}',
     "no loss, KID, FD or accuracy to draw"),
    (b'{"step": 1, "loss": 1e308}\n{"step": 2, "loss": -1e308}', "no number within +-1e+300"),
]


@pytest.mark.parametrize("content, says", LOGS, ids=[says for _, says in LOGS])
def test_a_log_that_cannot_be_plotted_is_one_line(cli, tmp_path, content, says):
    log = tmp_path / "log.jsonl"
    log.write_bytes(content)
    r = cli("measure/curves.py", log, "--out", tmp_path / "c.png")
    assert says in one_line(r)
    assert not (tmp_path / "c.png").exists()


def test_what_can_be_plotted_is_plotted(cli, tmp_path):
    """Values that are not numbers (NaN, inf, strings, lists, objects, null), or beyond 1e300
    (1e308, an int of 400 digits: a diverged run), are left out; the rest is drawn, however
    near 0 (5e-324) or however far apart its steps (0 and 9e18)."""
    records = [{"step": 0, "loss": 1e308, "D.real": 5e-324, "KID": 10 ** 400},
               {"step": 9 * 10**18, "loss": 0.5, "D.real": 0, "KID": float("nan"), "FD": "x",
                "G.gan": [1], "lab_acc_test": {"a": 1}, "D(x)": None},
               {"step": 10, "loss": -1e308, "G.gan": 1e300, "KID": float("inf")}]
    assert curves.series(records) == {"loss terms": {
        "D.real": [(0, 5e-324), (9 * 10**18, 0.0)], "loss": [(9 * 10**18, 0.5)],
        "G.gan": [(10, 1e300)]}}
    log = tmp_path / "log.jsonl"
    log.write_text("\n".join(json.dumps(r) for r in records))
    r = cli("measure/curves.py", log, "--out", tmp_path / "c.png")
    assert r.returncode == 0 and "wrote" in r.out and (tmp_path / "c.png").exists(), r.out


@pytest.mark.parametrize("lo, hi", [(-1e300, 1e300), (0, 5e-324), (1e300, 1e300),
                                    (-1e-310, 1e-310), (0, 2**63 - 1)])
def test_ticks_of_extreme_ranges_are_finite_and_cover_them(lo, hi):
    """Up to 1e300 either side, down to 5e-324 apart; covered to 1e-12 of the largest (1e300
    is a float a little above the integer tick 10^300)."""
    t = curves.ticks(lo, hi)
    near = 1e-12 * max(abs(lo), abs(hi))
    assert 2 <= len(t) <= 12 and all(math.isfinite(v) for v in t)
    assert t[0] <= lo + near and t[-1] >= hi - near, t


@pytest.mark.parametrize("out", ["curves", "curves.xyz", "curves.xbm", "log.jsonl/"])
def test_an_out_pillow_cannot_write_is_refused_before_the_log_is_read(cli, tmp_path, out):
    """No extension, an unknown one, a format that has no colour (XBM): one line, before the
    log is read (here, one that is not there)."""
    r = cli("measure/curves.py", tmp_path / "missing.jsonl", "--out", f"{tmp_path}/{out}")
    assert "--out" in one_line(r) and "cannot read" not in r.out
    assert [p.name for p in tmp_path.iterdir()] == []


@pytest.mark.parametrize("size", [["--width", 100_000, "--height", 100_000],
                                  ["--width", 10**30], ["--height", 10**12],
                                  ["--height", 20_000]])
def test_a_figure_too_large_is_one_line(cli, tmp_path, size):
    """Over 50 million pixels: --height 20000 is a panel of 14.4 million, and the log's 4 kinds
    of quantity (loss, KID, FD, the lab's accuracy) make 4 panels."""
    log = tmp_path / "log.jsonl"
    log.write_text("\n".join(json.dumps(r | {"KID": 1, "FD": 2, "lab_acc_test": 3})
                             for r in GOOD))
    r = cli("measure/curves.py", log, "--out", tmp_path / "c.png", *size)
    assert "smaller --width or --height" in one_line(r)
    assert not (tmp_path / "c.png").exists()
