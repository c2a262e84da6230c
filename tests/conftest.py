import os, subprocess, sys
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


@pytest.fixture
def cli(tmp_path):
    """Run `python SCRIPT args...` from the repository root, with the image cache in tmp_path.
    Returns the CompletedProcess; its .out is stdout + stderr."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}

    def run(script, *args, timeout=300):
        p = subprocess.run([sys.executable, script, *map(str, args)], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=timeout)
        p.out = p.stdout + p.stderr
        return p

    run.env = env
    return run
