"""cli.Progress: a long sampling loop shows one updating line on stderr; a short one, or --quiet,
none."""
import itertools
from support import cli


def run(monkeypatch, capsys, seconds_per_step, steps=5, quiet=False):
    clock = itertools.count(0, seconds_per_step)         # a fake clock: each read a step later
    monkeypatch.setattr(cli.time, "perf_counter", lambda: next(clock))
    out = list(cli.Progress("sampling", quiet)(iter(range(steps)), steps))
    assert out == list(range(steps))                     # the loop itself is untouched
    return capsys.readouterr()


def test_a_long_loop_shows_step_rate_and_eta_on_stderr(monkeypatch, capsys):
    r = run(monkeypatch, capsys, seconds_per_step=1.0)
    assert r.out == "" and "sampling: step 5/5" in r.err and "it/s" in r.err and "eta 0 s" in r.err
    assert r.err.count("\n") == 1                                            # one line


def test_a_terminal_gets_one_line_rewritten_in_place_and_a_log_file_a_line_every_10_s(
        monkeypatch, capsys):
    monkeypatch.setattr(cli.sys.stderr, "isatty", lambda: True)
    tty = run(monkeypatch, capsys, seconds_per_step=1.0, steps=60).err
    assert tty.count("\r") > 50 and tty.count("\n") == 1     # each step after 2 s rewrites it
    monkeypatch.setattr(cli.sys.stderr, "isatty", lambda: False)
    log = run(monkeypatch, capsys, seconds_per_step=1.0, steps=60).err
    assert "\r" not in log and 5 <= log.count("\n") <= 7     # nohup's log: whole lines, ~10 s
    assert log.splitlines()[-1].startswith("sampling: step 60/60")


def test_a_short_loop_and_quiet_print_nothing(monkeypatch, capsys):
    assert run(monkeypatch, capsys, seconds_per_step=0.01).err == ""
    assert run(monkeypatch, capsys, seconds_per_step=1.0, quiet=True).err == ""


def test_watched_offers_progress_only_to_a_sampler_that_takes_it():
    def takes(n, y=None, progress=None, *, steps=10): ...
    def does_not(n, y=None, *, steps=10): ...
    assert isinstance(cli.watched(takes, "grid", False)["progress"], cli.Progress)
    assert cli.watched(does_not, "grid", False) == {}


def test_diffusion_sampling_runs_its_whole_loop_through_progress():
    """The wrapper sees every step of the reverse process, and the total it is told is their
    number."""
    from ddpm import DDPM
    m = DDPM(8, 1, T=20, ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_res=(4,), dropout=0.0)
    seen = []

    def progress(steps, total):
        for i, x in enumerate(steps, 1):
            seen.append((i, total))
            yield x
    m.sample(2, progress=progress, sampler="ddim", steps=7)
    assert seen == [(i, 7) for i in range(1, 8)]
