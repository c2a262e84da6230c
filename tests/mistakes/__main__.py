"""python -m tests.mistakes [--only FILE] [--jobs N]: every mistake of the kept list, applied to a
copy of the project one at a time; its owning test file is run there. A mistake is caught when
a test fails (pytest's exit status 1); missed when every test passes; an error otherwise (the
edit broke the import, or the tests ran past --timeout). Prints one line per mistake, a total,
and exits 1 unless every mistake run was caught."""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from tests.mistakes import every_mistake

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SKIP = shutil.ignore_patterns(".git", "runs", "__pycache__", "*.pt", ".pytest_cache")


def run_one(m, copy, timeout):
    """m applied in the copy, its tests run, the file restored -> caught | missed | error."""
    path = os.path.join(copy, m.file)
    with open(path) as f:
        right = f.read()
    if right.count(m.pattern) != 1:
        return "error: the pattern matches " + str(right.count(m.pattern)) + " places"
    with open(path, "w") as f:
        f.write(right.replace(m.pattern, m.replacement))
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *m.test_files()]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}    # one core a copy: --jobs copies side by side
    try:
        r = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
        code = r.returncode
    except subprocess.TimeoutExpired:
        code = "timeout"
    finally:
        with open(path, "w") as f:
            f.write(right)
    return {0: "MISSED", 1: "caught"}.get(code, f"error: pytest exit {code}")


def main():
    p = argparse.ArgumentParser(prog="python -m tests.mistakes", description=__doc__)
    p.add_argument("--only", metavar="FILE", help="the mistakes of one file, e.g. ddpm.py")
    p.add_argument("--jobs", type=int, default=1, help="copies run at once. default: 1")
    p.add_argument("--timeout", type=int, default=600, help="seconds per mistake. default: 600")
    args = p.parse_args()
    todo = [m for m in every_mistake() if args.only in (None, m.file)]
    known = [m for m in todo if m.missed]
    todo = [m for m in todo if not m.missed]
    with tempfile.TemporaryDirectory() as tmp:
        copies = [os.path.join(tmp, str(i)) for i in range(max(1, args.jobs))]
        for c in copies:
            shutil.copytree(ROOT, c, ignore=SKIP)
        free = list(copies)

        def job(m):
            copy = free.pop()
            try:
                return run_one(m, copy, args.timeout)
            finally:
                free.append(copy)

        with ThreadPoolExecutor(len(copies)) as pool:
            results = []
            for m, result in zip(todo, pool.map(job, todo)):
                print(f"{result:8} {m.file}: {m.says}", flush=True)
                results.append(result)
    for m in known:
        print(f"{'not run':8} {m.file}: {m.says} ({m.missed})")
    caught = results.count("caught")
    print(f"{caught} of {len(todo)} caught; {len(known)} listed as beyond a cheap test")
    sys.exit(0 if caught == len(todo) else 1)


if __name__ == "__main__":
    main()
