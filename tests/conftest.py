import importlib
import io
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from types import SimpleNamespace
import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def pytest_configure(config):
    config.addinivalue_line("markers", "compile: torch.compile on the CPU, seconds once inductor's "
                            "kernel cache is warm, minutes the first time on a machine (run by "
                            "default; -m 'not compile' skips them)")


def module(script):
    """train.py -> train, measure/bench.py -> measure.bench."""
    return script.removesuffix(".py").replace("/", ".")


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Run `python SCRIPT args...` from the repository root, with the image cache in tmp_path.

    By default in this process: SCRIPT's cli(argv), the very function its __main__ runs, so each
    call skips the seconds of a fresh interpreter importing torch. fresh=True starts a new
    interpreter, for what only a real process shows (a single line on stderr and no traceback,
    exit statuses).
    Returns an object with .returncode, .stdout, .stderr and .out = stdout + stderr."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}
    monkeypatch.setenv("XDG_CACHE_HOME", env["XDG_CACHE_HOME"])
    monkeypatch.chdir(ROOT)

    def run(script, *args, timeout=300, fresh=False):
        argv = [str(a) for a in args]
        if fresh:
            command = ["-m", module(script)] if "/" in script else [script]   # support/: -m
            p = subprocess.run([sys.executable, *command, *argv], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=timeout)
        else:
            out, err = io.StringIO(), io.StringIO()
            with redirect_stdout(out), redirect_stderr(err):
                try:
                    code = importlib.import_module(module(script)).cli(argv)
                except SystemExit as e:                # --help, argparse errors, Ctrl-C's 130
                    code = e.code if isinstance(e.code, int) else 1
            p = SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())
        p.out = p.stdout + p.stderr
        return p

    run.env = env
    return run



def adversarial_steps(model, batch, steps):
    """train.py's loop for the adversarial models, written out for the learning tests: at each
    step a D step on batch(step) = (x, y), then, every model.n_critic steps, a G step on the same
    batch (g_loss scores the fakes d_loss drew). Only terms that carry a gradient are trained on.
    Returns D's terms of every step, detached, for the test to read."""
    def descend(opt, terms):
        opt.zero_grad()
        sum(v for v in terms.values() if v.requires_grad).backward()
        opt.step()

    d_opt, g_opt = model.configure_optimizers()
    d_terms = []
    for step in range(1, steps + 1):
        x, y = batch(step)
        terms = model.d_loss(x, y)
        descend(d_opt, terms)
        d_terms.append({k: v.detach() for k, v in terms.items()})
        if step % model.n_critic == 0:
            descend(g_opt, model.g_loss(x, y))
    return d_terms


class Fn(torch.nn.Module):
    """A stand-in for one of D's networks, with a known answer."""
    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, h):
        return self.f(h)
