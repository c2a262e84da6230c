"""Our DDPM against the best peer at equal CPU time, as one command (issue 32).

    python -m measure.compare --data fashion-mnist/test \
        --peer-python /tmp/peervenv/bin/python --minutes 25 --classifier clf.pt

1. train   ddpm.py through train.py (the issue's 1.62M U-Net: --ch 32 --ch-mult 1,2,2,
           attention at S/4, no dropout, class-conditional) and the peer, lucidrains'
           denoising-diffusion-pytorch (its classifier-free-guidance Unet, dim 32,
           dim_mults 1,2,2: 1,648,993 parameters; its cosine schedule), on the same
           images in the same order, with the same batch size, learning rate and
           p_uncond, at the same time, each pinned to its own core with one thread, both
           stopped by SIGTERM after --minutes
2. sample  -n samples from each (class i mod K for sample i), --sample-steps steps
           (ours: the DDPM step on the respaced chain, sample.py's fast path; the peer:
           its DDIM), guidance --guidance on both, side by side again, each into a
           folder of class subfolders
3. score   evaluate.py on each folder against --ref on --classifier's features: FD, KID,
           precision, recall, density, coverage, accuracy; per class (the samples asked
           for class c against the real images of c) FD, precision and recall, averaged:
           for a conditional model these answer "the asked class, and real-looking?";
           and class balance, H(classes named) / log K, from the same classifier: 1 when
           each class is named equally often
4. table   OUT/compare.md: the better figure of each column in bold, every command run

The peer runs in its own Python (--peer-python: a scratch venv, docs/compare.md) as
measure/compare_peer.py, which the project never imports: the peer library is no
dependency.
"""
import argparse
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import time
import numpy as np
import torch
from support.cli import COUNT, PROBABILITY, RATE, REAL, SEED, Fail, Parser, Range, command

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# run from ROOT, as every command
PEER = "measure/compare_peer.py"
LIBRARY = "denoising_diffusion_pytorch.classifier_free_guidance"
# better when lower; the rest: higher
LOWER = ("sampling s", "FD", "KID", "intra FD")


def parse(argv):
    """The flags, each number with its declared range, or one line on what is wrong."""
    p = Parser(prog="python -m measure.compare", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="a folder of class subfolders of images")
    p.add_argument("--peer-python", required=True, metavar="PATH",
                   help="a Python with denoising-diffusion-pytorch (docs/compare.md)")
    p.add_argument("--minutes", type=RATE, default=25.0,
                   help="each side's training time. default: 25")
    p.add_argument("-n", type=COUNT, default=500, help="samples a side. default: 500")
    p.add_argument("--sample-steps", type=Range(int, 2, 1000), default=50,
                   help="sampler steps. default: 50")
    p.add_argument("--guidance", type=REAL, default=3.0,
                   help="classifier-free guidance scale. default: 3")
    p.add_argument("--image-size", type=Range(int, 8), default=28, help="default: 28")
    p.add_argument("--batch-size", type=COUNT, default=64, help="default: 64")
    p.add_argument("--lr", type=RATE, default=5e-4, help="default: 5e-4")
    p.add_argument("--p-uncond", type=PROBABILITY, default=0.1,
                   help="probability of dropping the class. default: 0.1")
    p.add_argument("--seed", type=SEED, default=0, help="default: 0")
    p.add_argument("--classifier", metavar="PATH",
                   help="evaluate.py's classifier. default: train one on --data")
    p.add_argument("--ref", help="the real images scored against. default: --data")
    p.add_argument("--cores", metavar="A,B",
                   help="the cores of ours and the peer. default: the first two allowed")
    p.add_argument("--out", default="runs/compare",
                   help="a new folder for everything. default: runs/compare")
    return p.parse_args(argv)


def plan(allowed, cores=None):
    """The cores (ours, peer) from the set this process may run on, or --cores A,B."""
    if cores is None:
        if len(allowed) < 2:
            raise Fail(f"side by side needs two cores; this process has {len(allowed)}")
        return tuple(sorted(allowed)[:2])
    try:
        pair = tuple(map(int, cores.split(",")))
    except ValueError:
        pair = ()
    if len(pair) != 2 or pair[0] == pair[1]:
        raise Fail(f"--cores takes two different core numbers, A,B (got {cores})")
    if not set(pair) <= set(allowed):
        raise Fail(f"--cores {cores}: this process may use cores {sorted(allowed)}")
    return pair


def check(args):
    """Every refusal before any work: the folders, the peer's Python, the cores."""
    for flag, path in (("--data", args.data), ("--ref", args.ref)):
        if path and not os.path.isdir(path):
            raise Fail(f"{flag} {path} is not a folder of class subfolders")
    if args.classifier and not os.path.isfile(args.classifier):
        raise Fail(f"--classifier {args.classifier} does not exist: leave it out")
    if os.path.isdir(args.out) and os.listdir(args.out):
        raise Fail(f"--out {args.out} is not empty: give a new folder")
    if not hasattr(os, "sched_setaffinity"):
        raise Fail("pinning each side to a core needs Linux (os.sched_setaffinity)")
    cores = plan(os.sched_getaffinity(0), args.cores)
    py = args.peer_python
    if not (os.path.isfile(py) and os.access(py, os.X_OK)):
        raise Fail(f"--peer-python {py} is not a Python you can run (docs/compare.md)")
    found = subprocess.run([py, "-I", "-c", f"import {LIBRARY}"], capture_output=True)
    if found.returncode:
        raise Fail(f"--peer-python {py} cannot import {LIBRARY}: {py} -m pip install "
                   "denoising-diffusion-pytorch (docs/compare.md)")
    return cores


def side_by_side(jobs, logs, seconds=None):
    """jobs {name: (argv, core)} started together, each pinned to its core with one
    thread; SIGTERM to each after `seconds` (None: each runs to its end).
    -> {name: wall seconds}. A job that fails stops all, in one line naming its log."""
    env = {**os.environ,
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    procs = {}
    start = time.perf_counter()
    for name, (argv, core) in jobs.items():
        with open(logs[name], "w") as log:
            procs[name] = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=lambda c=core: os.sched_setaffinity(0, {c}))
    took = {}
    stopped = False
    try:
        while len(took) < len(procs):
            now = time.perf_counter() - start
            for name, p in procs.items():
                if name not in took and p.poll() is not None:
                    took[name] = now
                    code = p.returncode
                    if not (code == 0 or (stopped and code == 128 + signal.SIGTERM)):
                        raise Fail(f"{name} stopped with status {code}: see {logs[name]}")
            if seconds and now >= seconds and not stopped:
                # both at the same instant
                for p in procs.values():
                    p.send_signal(signal.SIGTERM)
                stopped = True
            time.sleep(0.5)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
    return took


def balance(counts):
    """Class balance: the entropy of the classes named, H = -sum_k p_k log p_k with
    p_k = n_k / n, over its most, log K. 1: each class named equally often; 0: one."""
    p = np.asarray(counts, np.float64) / np.sum(counts)
    H = -sum(q * math.log(q) for q in p if q > 0)
    return H / math.log(len(p))


def class_balance(folder, classifier):
    """The classes the classifier names for the images of folder -> balance()."""
    from support.classifier import load_classifier
    from support.features import features_and_probs, read_folder, reads
    net, ck = load_classifier(classifier)
    size, C = reads(ck)
    images = read_folder(folder, size, classes=True)[0]
    probs = features_and_probs(net, images, C, torch.device("cpu"))[1]
    return balance(np.bincount(probs.argmax(1), minlength=len(ck["class_names"])))


def figures(r):
    """One row's figures, by column."""
    s = r["scores"]
    return {"steps trained": r["steps"],
            "images/s": r["steps"] * r["batch"] / r["seconds"],
            "sampling s": r["sampling"], "FD": s["FD"], "KID": s["KID"],
            "precision": s["precision"], "recall": s["recall"],
            "density": s["density"], "coverage": s["coverage"],
            "intra FD": s["intra_FD"], "class precision": s["intra_precision"],
            "class recall": s["intra_recall"],
            "class balance": r["balance"], "accuracy": s["accuracy"]}


def table(rows):
    """rows: dicts of system, steps, batch, seconds (of training), sampling (seconds),
    balance and scores (evaluate.py's JSON) -> a Markdown table, each column's better
    figure in bold."""
    per_row = [figures(r) for r in rows]
    head = per_row[0]
    lines = ["| system | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    for r, row in zip(rows, per_row):
        out = []
        for c, v in row.items():
            column = [f[c] for f in per_row]
            better = min if c in LOWER else max
            text = number(v)
            if len(rows) > 1 and v == better(column) and column.count(v) == 1:
                text = f"**{text}**"
            out.append(text)
        lines.append(f"| {r['system']} | " + " | ".join(out) + " |")
    return "\n".join(lines)


def number(v):
    """A count with thousands' commas, a figure below 10 to 3 digits, others 1 decimal."""
    return f"{v:,}" if isinstance(v, int) else f"{v:.3g}" if abs(v) < 10 else f"{v:,.1f}"


def shown(argv, core=None):
    """A command as the shell line that runs it by hand."""
    line = shlex.join(["python" if a == sys.executable else a for a in argv])
    return f"OMP_NUM_THREADS=1 taskset -c {core} {line}" if core is not None else line


def stages(args, out, clf, cores):
    """The three side-by-side stages, {stage: {side: (argv, core)}}, cores = (ours,
    peer); and the peer's settings, for OUT/peer/job.json."""
    S = args.image_size
    job = dict(data=f"{out}/data.pt", out=f"{out}/peer", samples=f"{out}/peer_samples",
               dim=32, dim_mults=[1, 2, 2], batch_size=args.batch_size, lr=args.lr,
               p_uncond=args.p_uncond, seed=args.seed, steps=args.sample_steps, n=args.n,
               guidance=args.guidance)
    # SIGTERM ends the run, not --steps
    big = 1_000_000_000
    flags = (f"--classes --image-size {S} --ch 32 --ch-mult 1,2,2 --attn-res {S // 4} "
             f"--dropout 0 --p-uncond {args.p_uncond} --lr {args.lr} "
             f"--batch-size {args.batch_size} --seed {args.seed} --steps {big} "
             f"--sample-every {big} --ckpt-every {big} --quiet")
    train = [sys.executable, "train.py", "ddpm", "--data", args.data, *flags.split(),
             "--out", f"{out}/ours"]
    flags = (f"-n {args.n} --sampler ddpm --steps {args.sample_steps} "
             f"--guidance {args.guidance} --seed {args.seed} --quiet")
    sample = [sys.executable, "sample.py", f"{out}/ours/ckpt.pt", *flags.split(),
              "--out", f"{out}/ours_samples/"]
    peer = [args.peer_python, "-I", PEER]
    job_json = f"{out}/peer/job.json"
    evaluate = {side: [sys.executable, "evaluate.py", f"{out}/{side}_samples",
                       "--ref", args.ref or args.data, "--features", "classifier",
                       "--classifier", clf, "--json", f"{out}/{side}.json"]
                for side in ("ours", "peer")}
    argvs = {"train": {"ours": train, "peer": peer + ["train", job_json]},
             "sample": {"ours": sample, "peer": peer + ["sample", job_json]},
             "evaluate": evaluate}
    return {stage: {side: (argv, cores[side == "peer"]) for side, argv in jobs.items()}
            for stage, jobs in argvs.items()}, job


def main(argv):
    args = parse(argv)
    cores = check(args)
    out = args.out
    # decoding: after every refusal
    from support.data import dataset
    images, labels, names, _ = dataset(args.data, args.image_size, classes=True)
    if not names or len(names) < 2:
        raise Fail(f"--data {args.data} needs two or more class subfolders")
    for d in ("ours", "peer", "ours_samples", "peer_samples"):
        os.makedirs(f"{out}/{d}", exist_ok=True)
    # the peer's data: the very same array
    data = {"images": torch.from_numpy(images), "labels": torch.from_numpy(labels),
            "names": names}
    torch.save(data, f"{out}/data.pt")
    commands = []
    clf = args.classifier
    if clf is None:
        clf = f"{out}/classifier.pt"
        argv = [sys.executable, "evaluate.py", "--train-classifier", args.data,
                "--image-size", str(args.image_size), "--epochs", "5", "--out", clf]
        commands.append(shown(argv))
        with open(f"{out}/classifier.log", "w") as log:
            trained = subprocess.run(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        if trained.returncode:
            raise Fail(f"training the classifier failed: see {out}/classifier.log")
    plan, job = stages(args, out, clf, cores)
    with open(f"{out}/peer/job.json", "w") as f:
        json.dump(job, f, indent=1)
    took = {}
    for stage, jobs in plan.items():
        commands += [shown(argv, core) for argv, core in jobs.values()]
        logs = {side: f"{out}/{side}_{stage}.log" for side in jobs}
        print(f"{stage}: ours on core {cores[0]}, the peer on {cores[1]}", flush=True)
        took[stage] = side_by_side(jobs, logs,
                                   args.minutes * 60 if stage == "train" else None)
    with open(f"{out}/peer/train.json") as f:
        peer = json.load(f)
    ours = torch.load(f"{out}/ours/ckpt.pt", weights_only=True)
    systems = {"ours": ("ours: ddpm.py, the 1.62M U-Net; the DDPM step, respaced",
                        ours["step"]),
               "peer": (f"denoising-diffusion-pytorch {peer['library']}, "
                        f"{peer['parameters']:,} parameters; its DDIM", peer["steps"])}
    rows = []
    for side, (system, steps) in systems.items():
        with open(f"{out}/{side}.json") as f:
            scores = json.load(f)
        rows.append(dict(system=system, steps=steps, batch=args.batch_size,
                         seconds=args.minutes * 60, sampling=took["sample"][side],
                         scores=scores,
                         balance=class_balance(f"{out}/{side}_samples", clf)))
    text = (f"{args.minutes:g} min of training each, {args.n} samples, "
            f"{args.sample_steps} steps, guidance {args.guidance:g}; images/s: steps x "
            f"{args.batch_size} / the training time; scored on {clf}'s features "
            "(FD is not FID)\n\n"
            f"{table(rows)}\n\n```\n" + "\n".join(commands) + "\n```\n")
    with open(f"{out}/compare.md", "w") as f:
        f.write(text)
    print(text + f"wrote {out}/compare.md")


def cli(argv):
    """The command line: main, a mistake in the input as one line and exit status 1."""
    return command(main, argv)


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
