"""cli.Progress: a long sampling loop shows one updating line on stderr; a short one, or --quiet, none."""
import itertools
import cli


def run(monkeypatch, capsys, seconds_per_step, steps=5, quiet=False):
    clock = itertools.count(0, seconds_per_step)                             # a fake clock: each read is one step later
    monkeypatch.setattr(cli.time, "perf_counter", lambda: next(clock))
    out = list(cli.Progress("sampling", quiet)(iter(range(steps)), steps))
    assert out == list(range(steps))                                         # the loop itself is untouched
    return capsys.readouterr()


def test_a_long_loop_shows_step_rate_and_eta_on_stderr(monkeypatch, capsys):
    r = run(monkeypatch, capsys, seconds_per_step=1.0)
    assert r.out == "" and "sampling: step 5/5" in r.err and "it/s" in r.err and "eta 0 s" in r.err
    assert r.err.count("\n") == 1                                            # one line, rewritten in place


def test_a_short_loop_and_quiet_print_nothing(monkeypatch, capsys):
    assert run(monkeypatch, capsys, seconds_per_step=0.01).err == ""
    assert run(monkeypatch, capsys, seconds_per_step=1.0, quiet=True).err == ""


def test_watched_offers_progress_only_to_a_sampler_that_takes_it():
    def takes(n, y=None, progress=None, *, steps=10): ...
    def does_not(n, y=None, *, steps=10): ...
    assert isinstance(cli.watched(takes, "grid", False)["progress"], cli.Progress)
    assert cli.watched(does_not, "grid", False) == {}
