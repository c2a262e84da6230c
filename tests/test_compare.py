"""measure/compare.py, the peer comparison, without the peer installed: its refusals (before any
work), the core pinning plan, the two sides' settings, class balance, the table, and the
side-by-side runner on small processes. The peer's own run (measure/compare_peer.py, in a scratch
venv) is measured in docs/compare.md, never here."""
import argparse
import math
import os
import re
import sys
import pytest
from measure import compare
from support.cli import Fail

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="Linux pinning")


def args(**kw):
    """compare.py's parsed flags at their defaults, with kw in place."""
    a = compare.parse(["--data", "d", "--peer-python", "py"])
    return argparse.Namespace(**{**vars(a), **kw})


# ------------------------------------------------------------------------------ refusals

def test_no_peer_python_is_one_line(cli, tmp_path):
    r = cli("measure/compare.py", "--data", tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0 and "--peer-python" in r.stderr


def without_site_packages(tmp_path):
    """A Python that surely lacks the peer library, whatever this machine has installed: this
    one, started without its site-packages (-S), where an installed library lives."""
    py = tmp_path / "python"
    py.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')
    py.chmod(0o755)
    return py


def test_a_python_without_the_peer_library_is_refused_before_any_work(cli, tmp_path):
    out = tmp_path / "out"
    r = cli("measure/compare.py", "--data", tmp_path, "--peer-python",
            without_site_packages(tmp_path), "--out", out)
    assert r.returncode == 1
    assert "cannot import denoising_diffusion_pytorch" in r.stderr
    assert r.stderr.strip().count("\n") == 0
    assert not out.exists()                                     # nothing trained, nothing written


@pytest.mark.parametrize("flags, says", [
    (["--peer-python", "/no/such/python"], "--peer-python /no/such/python is not a Python"),
    (["--minutes", "0"], "--minutes: must be above 0"),
    (["--minutes", "nan"], "--minutes: must be above 0"),
    (["-n", "0"], "-n: must be at least 1"),
    (["--sample-steps", "1"], "--sample-steps: must be in [2, 1000]"),
    (["--p-uncond", "1.5"], "--p-uncond: must be in [0, 1]"),
    (["--lr=-1e-4"], "--lr: must be above 0"),
    (["--guidance", "inf"], "--guidance: must be a finite number"),
    (["--cores", "0,0"], "--cores takes two different core numbers"),
    (["--classifier", "/no/such.pt"], "--classifier /no/such.pt does not exist"),
])
def test_bad_input_is_one_line_and_exit_1(cli, tmp_path, flags, says):
    given = ["--data", tmp_path, "--peer-python", sys.executable, "--out", tmp_path / "o"]
    r = cli("measure/compare.py", *given, *flags)
    assert r.returncode == 1
    assert says in r.stderr and r.stderr.strip().count("\n") == 0
    assert not (tmp_path / "o").exists()


def test_a_missing_data_folder_and_a_used_out_are_refused(cli, tmp_path):
    r = cli("measure/compare.py", "--data", tmp_path / "none", "--peer-python", sys.executable)
    assert r.returncode == 1 and "--data" in r.stderr and "is not a folder" in r.stderr
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "ckpt.pt").write_bytes(b"")
    r = cli("measure/compare.py", "--data", tmp_path, "--peer-python", sys.executable,
            "--out", tmp_path / "used")
    assert r.returncode == 1 and "is not empty" in r.stderr


# ------------------------------------------------------------------------------ the plan

def test_the_pinning_plan_for_two_cores_puts_each_side_on_its_own():
    assert compare.plan({0, 1}) == (0, 1)
    assert compare.plan({5, 2, 7}) == (2, 5)                    # the first two this process has
    assert compare.plan({0, 1, 2}, "2,0") == (2, 0)             # --cores: ours, then the peer
    for cores in ("1,1", "0,9", "a,b", "0"):
        with pytest.raises(Fail):
            compare.plan({0, 1, 2}, cores)
    with pytest.raises(Fail, match="two cores"):
        compare.plan({0})


def test_both_sides_get_the_same_settings_and_their_own_cores():
    a = args(batch_size=32, lr=3e-4, p_uncond=0.2, seed=7, n=40, sample_steps=25, guidance=2.5)
    plan, job = compare.stages(a, "o", "clf.pt", (3, 1))
    assert {side for stage in plan.values() for side in stage} == {"ours", "peer"}
    for stage in plan.values():
        assert stage["ours"][1] == 3 and stage["peer"][1] == 1

    def flag(argv, name):
        return argv[argv.index(name) + 1]
    train = plan["train"]["ours"][0]
    assert [flag(train, f) for f in ("--batch-size", "--lr", "--p-uncond", "--seed")] == \
        [str(job[k]) for k in ("batch_size", "lr", "p_uncond", "seed")]
    assert [flag(train, f) for f in ("--ch", "--ch-mult", "--attn-res", "--dropout")] == \
        ["32", "1,2,2", "7", "0"]                               # the issue's 1.62M U-Net at 28
    assert "--classes" in train and job["dim"] == 32 and job["dim_mults"] == [1, 2, 2]
    sample = plan["sample"]["ours"][0]
    assert [flag(sample, f) for f in ("-n", "--steps", "--guidance", "--seed")] == \
        [str(job[k]) for k in ("n", "steps", "guidance", "seed")]
    assert job["samples"] != flag(sample, "--out").rstrip("/")  # two folders, one per side
    for side in ("ours", "peer"):
        e = plan["evaluate"][side][0]
        assert flag(e, "--classifier") == "clf.pt" and flag(e, "--ref") == "d"
        assert flag(e, "--json") == f"o/{side}.json"
        assert e[2] == (flag(sample, "--out").rstrip("/") if side == "ours" else job["samples"])


# ------------------------------------------------------------------------------ the figures

def test_class_balance_is_the_entropy_of_the_classes_named_over_log_K():
    assert compare.balance([50] * 10) == pytest.approx(1.0)
    assert compare.balance([500, 0, 0, 0]) == pytest.approx(0.0)
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))        # 0.5623 nats
    assert compare.balance([30, 10]) == pytest.approx(h / math.log(2))       # 0.8113
    assert compare.balance([30, 10, 0, 0]) == pytest.approx(h / math.log(4))  # K counts, not seen


def scores(FD, KID, precision, recall, accuracy, intra=(300.0, 0.5, 0.4)):
    """evaluate.py's JSON, as much of it as the table reads."""
    return {"samples": "s", "n": 500, "FD": FD, "KID": KID, "KID_std": 1.0,
            "precision": precision, "recall": recall, "accuracy": accuracy,
            "density": precision, "coverage": recall, "intra_FD": intra[0],
            "intra_precision": intra[1], "intra_recall": intra[2]}


def test_the_table_computes_images_per_second_and_bolds_the_better_figure():
    rows = [dict(system="ours", steps=1316, batch=64, seconds=1500, sampling=480.0, balance=0.98,
                 scores=scores(118.2, 60.0, 0.52, 0.22, 0.83, (182.0, 0.74, 0.3))),
            dict(system="peer", steps=707, batch=64, seconds=1500, sampling=300.0, balance=0.91,
                 scores=scores(176.4, 80.0, 0.68, 0.44, 0.46, (376.0, 0.49, 0.2)))]
    lines = compare.table(rows).splitlines()
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    assert head == ["system", "steps trained", "images/s", "sampling s", "FD", "KID", "precision",
                    "recall", "density", "coverage", "intra FD", "class precision",
                    "class recall", "class balance", "accuracy"]
    assert re.fullmatch(r"(\|---)+\|", lines[1]) and lines[1].count("|") == len(head) + 1
    cell = {r["system"]: dict(zip(head, (c.strip() for c in line.strip("|").split("|"))))
            for r, line in zip(rows, lines[2:])}
    assert cell["ours"]["images/s"] == "**56.1**"               # 1316 x 64 / 1500 = 56.15
    assert cell["peer"]["images/s"] == "30.2"                   # 707 x 64 / 1500 = 30.17
    assert cell["ours"]["steps trained"] == "**1,316**"
    assert cell["ours"]["FD"] == "**118.2**" and cell["peer"]["FD"] == "176.4"     # lower: better
    assert cell["ours"]["KID"] == "**60.0**"
    assert cell["peer"]["sampling s"] == "**300.0**"
    assert cell["peer"]["precision"] == "**0.68**" and cell["ours"]["precision"] == "0.52"
    assert cell["peer"]["recall"] == "**0.44**"
    assert cell["ours"]["class balance"] == "**0.98**"
    assert cell["ours"]["accuracy"] == "**0.83**" and cell["peer"]["accuracy"] == "0.46"
    # the conditional figures: intra-class FD lower is better, per-class precision higher
    assert cell["ours"]["intra FD"] == "**182.0**" and cell["peer"]["intra FD"] == "376.0"
    assert cell["ours"]["class precision"] == "**0.74**"
    assert cell["peer"]["density"] == "**0.68**" and cell["ours"]["class recall"] == "**0.3**"


def test_a_tie_is_bold_on_neither_side():
    rows = [dict(system=s, steps=10, batch=8, seconds=60, sampling=1.0, balance=1.0,
                 scores=scores(5.0, 1.0, 0.5, 0.0, 0.1)) for s in ("a", "b")]
    assert "**" not in compare.table(rows)


# ------------------------------------------------------------------------------ side by side

def test_side_by_side_pins_each_job_to_its_core_with_one_thread(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "4")                 # a caller's many threads: not kept
    cores = compare.plan(os.sched_getaffinity(0))
    show = ("import os; print(sorted(os.sched_getaffinity(0)), os.environ['OMP_NUM_THREADS'])")
    jobs = {side: ([sys.executable, "-c", show], core) for side, core in zip("ab", cores)}
    logs = {side: str(tmp_path / f"{side}.log") for side in jobs}
    took = compare.side_by_side(jobs, logs)
    assert set(took) == {"a", "b"}
    for side, core in zip("ab", cores):
        assert open(logs[side]).read().split() == [f"[{core}]", "1"]


def test_side_by_side_stops_both_with_sigterm_at_the_deadline_and_names_a_failure(tmp_path):
    cores = compare.plan(os.sched_getaffinity(0))
    wait = ("import signal, sys, time; signal.signal(signal.SIGTERM, lambda *_: sys.exit(143)); "
            "print('up', flush=True); time.sleep(60)")             # train.py's exit on SIGTERM
    jobs = {side: ([sys.executable, "-c", wait], core) for side, core in zip("ab", cores)}
    logs = {side: str(tmp_path / f"{side}.log") for side in jobs}
    took = compare.side_by_side(jobs, logs, seconds=1.5)
    assert all(1.5 <= t < 30 for t in took.values())
    jobs["b"] = ([sys.executable, "-c", "raise SystemExit(3)"], cores[1])
    with pytest.raises(Fail, match=r"b stopped with status 3: see .*b\.log"):
        compare.side_by_side(jobs, logs, seconds=30)
