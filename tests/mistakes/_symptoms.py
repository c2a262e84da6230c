"""python -m tests.mistakes._symptoms --data DIR [--only ID] [--page]: what the ten mistakes of
tests/mistakes/taught.py do to training, measured. Each is applied to a copy of the project and
trained by train.py on real images (Fashion-MNIST's class folders) beside the same run of the
right code (once per run kind, kept in --work); the two final sample grids go side by side in
docs/mistakes/ID.png, the final loss terms and the grids' pixel statistics in
docs/mistakes/symptoms.json. Every run is on one CPU thread. --page rewrites the generated parts
of docs/mistakes.md (the measured ten from the JSON, the whole list from every_mistake()), and
nothing else is run."""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import numpy as np
import torch
from PIL import Image, ImageDraw
from tests.mistakes import every_mistake
from tests.mistakes.taught import MISTAKES as TAUGHT

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCS = os.path.join(ROOT, "docs")
SKIP = shutil.ignore_patterns(".git", "runs", "__pycache__", "*.pt", ".pytest_cache", "docs")
GRID = 16
# train.py's flags of each run kind: small, few steps, 1-3 minutes of one core
RUNS = {
    "vae": "vae --image-size 16 --steps 800",
    "gan": "gan --image-size 28 --steps 2000",
    "wgan-gp": "gan --image-size 28 --steps 800 --loss wgan-gp --lr 1e-4 --beta1 0 --beta2 0.9",
    "dcgan": "dcgan --image-size 16 --steps 400 --batch-size 64 --ngf 32 --ndf 32 --z-dim 64",
    "ddpm": "ddpm --image-size 16 --steps 300 --batch-size 32 --ch 32 --ch-mult 1,2 "
            "--num-res-blocks 1 --attn-res 8 --dropout 0 --lr 1e-3",
}
# (ID, run kind) of each entry of taught.py, in its order
KINDS = [("vae-recon-mean", "vae"), ("vae-no-reparameterization", "vae"),
         ("gan-targets-swapped", "gan"), ("gan-g-detached", "gan"),
         ("wgan-real-sign", "wgan-gp"), ("dcgan-g-target-zero", "dcgan"),
         ("dcgan-sigmoid", "dcgan"), ("ddpm-predicts-x0", "ddpm"),
         ("ddpm-x0hat-no-sqrt", "ddpm"), ("data-range-01", "vae")]
assert len(KINDS) == len(TAUGHT), "one (ID, run kind) per entry of tests/mistakes/taught.py"


def train(kind, data, out, mistake=None):
    """One train.py run of `kind` in a copy of the project, with `mistake` applied there ->
    (the last log record, the final grid's path, seconds)."""
    argv = RUNS[kind].split()
    steps = int(argv[argv.index("--steps") + 1])
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, "project")
        shutil.copytree(ROOT, copy, ignore=SKIP)
        if mistake is not None:
            path = os.path.join(copy, mistake.file)
            with open(path) as f:
                code = f.read()
            assert code.count(mistake.pattern) == 1, f"{mistake.file}: {mistake.says}"
            with open(path, "w") as f:
                f.write(code.replace(mistake.pattern, mistake.replacement))
        run = os.path.join(tmp, "run")
        cmd = [sys.executable, "train.py", *argv, "--data", data, "--out", run, "--seed", "0",
               "--grid", str(GRID), "--log-every", str(steps // 10), "--sample-every",
               str(steps), "--ckpt-every", str(steps), "--quiet"]
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
        start = time.time()
        r = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True)
        seconds = time.time() - start
        if r.returncode != 0:
            return {"error": r.stderr.strip().splitlines()[-1]}, None, seconds
        with open(os.path.join(run, "log.jsonl")) as f:
            last = json.loads(f.read().splitlines()[-1])
        png = os.path.join(out, "samples.png")
        shutil.copy(os.path.join(run, f"samples_{steps:06d}.png"), png)
    last.pop("img_per_s", None)
    return last, png, seconds


def pixels(png):
    """The grid's tiles (its 2-pixel gaps left out) -> mean and std of the pixels, in [0, 1]."""
    a = np.asarray(Image.open(png).convert("L"), np.float64) / 255
    nrow = int(np.ceil(np.sqrt(GRID)))
    size = (a.shape[1] - 2) // nrow - 2
    tiles = [a[2 + r * (size + 2):][:size, 2 + c * (size + 2):][:, :size]
             for r in range(nrow) for c in range(nrow)]
    t = np.stack(tiles)
    return {"mean": round(float(t.mean()), 3), "std": round(float(t.std()), 3)}


def side_by_side(right, wrong, path, scale=3):
    """right | wrong, each scaled up `scale` times, with a caption over each."""
    a, b = (Image.open(p).convert("RGB") for p in (right, wrong))
    a, b = (im.resize((im.width * scale, im.height * scale), Image.NEAREST) for im in (a, b))
    canvas = Image.new("RGB", (a.width + b.width + 12, a.height + 18), "white")
    canvas.paste(a, (0, 18))
    canvas.paste(b, (a.width + 12, 18))
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 3), "right", fill="black")
    draw.text((a.width + 16, 3), "with the mistake", fill="black")
    canvas.save(path)


def hardware():
    """The machine the runs were measured on, in words."""
    cpu = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    return f"{cpu}, 1 thread; Python {platform.python_version()}, torch {torch.__version__}"


def measure(data, only, work):
    """The runs of the chosen IDs (and the right runs they compare with), into symptoms.json."""
    path = os.path.join(DOCS, "mistakes", "symptoms.json")
    found = {}
    if os.path.exists(path):
        with open(path) as f:
            found = json.load(f)
    found.setdefault("runs", {})
    found["hardware"] = hardware()
    found["data"] = "/".join(os.path.normpath(data).split(os.sep)[-2:])
    for (mid, kind), m in zip(KINDS, TAUGHT):
        if only and mid not in only:
            continue
        right_dir = os.path.join(work, "right-" + kind)
        if not os.path.exists(os.path.join(right_dir, "result.json")):
            last, png, seconds = train(kind, data, right_dir)
            with open(os.path.join(right_dir, "result.json"), "w") as f:
                json.dump({"loss": last, "seconds": round(seconds)}, f)
        with open(os.path.join(right_dir, "result.json")) as f:
            right = json.load(f)
        right["pixels"] = pixels(os.path.join(right_dir, "samples.png"))
        last, png, seconds = train(kind, data, os.path.join(work, mid), m)
        wrong = {"loss": last, "seconds": round(seconds)}
        if png is not None:
            wrong["pixels"] = pixels(png)
            side_by_side(os.path.join(right_dir, "samples.png"), png,
                         os.path.join(DOCS, "mistakes", mid + ".png"))
        found["runs"][mid] = {"file": m.file, "says": m.says,
                              "command": "python train.py " + RUNS[kind],
                              "right": right, "wrong": wrong}
        print(f"{mid}: right {right['loss']}, wrong {wrong['loss']}", flush=True)
        with open(path, "w") as f:
            json.dump(found, f, indent=1)


ORDER = ["vae.py", "gan.py", "dcgan.py", "pix2pix.py", "cyclegan.py", "stylegan.py", "ddpm.py",
         "ldm.py", "train.py", "sample.py", "evaluate.py"]


def wrap(text, indent=""):
    """Prose at 100 columns."""
    return textwrap.wrap(text, 100, initial_indent=indent, subsequent_indent=" " * len(indent),
                         break_on_hyphens=False)


def command(flags):
    """train.py's command line as a code block, at 100 columns."""
    lines = textwrap.wrap("python train.py " + flags, 96, subsequent_indent="    ",
                          break_on_hyphens=False)
    return ["```", *[ln + " \\" for ln in lines[:-1]], lines[-1], "```"]


def measured_part(found):
    """The measured ten: the command, the hardware, and for each its picture and figures."""
    out = wrap(f"Measured on {found['hardware']}, on Fashion-MNIST's 10,000 test images "
               f"(`--data {found['data']}`), with `--seed 0 --grid {GRID}`, each run in a fresh "
               "copy of the project, the machine shared with other work (the seconds are wall "
               "time). The figures are train.py's last logged terms (averaged over the last "
               "`--log-every` steps) and the mean and std of the final grid's pixels, 0 black, "
               "1 white. The runs:")
    for kind, flags in RUNS.items():
        out += ["", f"{kind}:", *command(flags)]
    for i, (mid, _) in enumerate(KINDS, 1):
        run = found["runs"].get(mid)
        m = TAUGHT[i - 1]
        out += ["", f"### {i}. {m.file}: {m.says}", ""]
        if run is None:
            out += ["(not measured yet)"]
            continue
        out += [f"![{mid}](mistakes/{mid}.png)", ""]
        out += wrap(f"{m.shows[0].upper()}{m.shows[1:]}.")
        out += ["", "The edit:", "```diff", "- " + m.pattern, "+ " + m.replacement, "```", ""]
        keys = [k for k in run["right"]["loss"] if k != "step"]
        out += ["| | " + " | ".join(keys) + " | pixel mean | pixel std | seconds |"]
        out += ["|---" * (len(keys) + 4) + "|"]
        for side in ("right", "wrong"):
            r = run[side]
            loss = r["loss"]
            if "error" in loss:
                out += [f"| {side} | {loss['error'][:80]} |"]
                continue
            pix = r.get("pixels", {})
            out += [f"| {side} | " + " | ".join(f"{loss.get(k, float('nan')):.4g}" for k in keys)
                    + f" | {pix.get('mean', '')} | {pix.get('std', '')} | {r['seconds']} |"]
    return out


def list_part():
    """The whole kept list, grouped by file: the mistake, what it does, the tests that catch it."""
    mistakes = every_mistake()
    files = sorted({m.file for m in mistakes},
                   key=lambda f: (ORDER.index(f) if f in ORDER else len(ORDER), f))
    out = wrap(f"{len(mistakes)} mistakes in {len(files)} files.")
    for f in files:
        mine = [m for m in mistakes if m.file == f]
        out += ["", f"### {f} ({len(mine)})", ""]
        for m in mine:
            caught = "caught by " + ", ".join(m.test_files())
            if m.missed:
                caught = "not run: " + m.missed
            shows = f" {m.shows[0].upper()}{m.shows[1:]}." if m.shows else ""
            out += wrap(f"**{m.says}**.{shows} ({caught})", "- ")
    return out


def rewrite(text, name, lines):
    """text with the part between <!-- NAME --> and <!-- end NAME --> replaced by lines."""
    begin, end = f"<!-- {name} -->", f"<!-- end {name} -->"
    head, rest = text.split(begin)
    _, tail = rest.split(end)
    return head + begin + "\n" + "\n".join(lines) + "\n" + end + tail


def page():
    """docs/mistakes.md's generated parts, from symptoms.json and every_mistake()."""
    path = os.path.join(DOCS, "mistakes.md")
    with open(os.path.join(DOCS, "mistakes", "symptoms.json")) as f:
        found = json.load(f)
    with open(path) as f:
        text = f.read()
    text = rewrite(text, "measured", measured_part(found))
    text = rewrite(text, "list", list_part())
    with open(path, "w") as f:
        f.write(text)


def main():
    p = argparse.ArgumentParser(prog="python -m tests.mistakes._symptoms", description=__doc__)
    p.add_argument("--data", help="Fashion-MNIST's class folders, e.g. fashion-mnist/test")
    p.add_argument("--only", nargs="*", metavar="ID", help="these IDs: " + ", ".join(
        mid for mid, _ in KINDS))
    p.add_argument("--work", default=os.path.join(ROOT, "runs", "mistakes"),
                   help="where the runs' grids are kept. default: runs/mistakes")
    p.add_argument("--page", action="store_true", help="only rewrite docs/mistakes.md")
    args = p.parse_args()
    if not args.page:
        if not args.data:
            p.error("--data DIR is needed to train (or --page alone)")
        unknown = set(args.only or ()) - {mid for mid, _ in KINDS}
        if unknown:
            p.error(f"--only: no such ID {sorted(unknown)}")
        torch.set_num_threads(1)
        os.makedirs(os.path.join(DOCS, "mistakes"), exist_ok=True)
        measure(args.data, args.only, args.work)
    page()


if __name__ == "__main__":
    main()
