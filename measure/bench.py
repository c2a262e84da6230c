"""Training and sampling speed on the device present (CUDA if any), one row a model.

    python -m measure.bench                             # every model at its defaults
    python -m measure.bench --model ddpm --ch 128 --ch-mult 1,2,2,2   # train.py's flags
    python -m measure.bench --quick --json bench.json   # every model, tiny, in seconds
    python -m measure.bench --peer                      # ddpm's U-Net against diffusers'

Each row is one model with bf16 autocast and torch.compile on or off (bf16: CUDA only
unless asked; compile: not with --quick). It measures what train.py runs, with its own
functions (data, build, train_step, compile_objectives): training images/s with one batch
kept on the device; training images/s end to end, each step's batch drawn from a folder of
PNGs (written here, or --data) after it was decoded and cached; the time to sample 64 images
(diffusion: DDPM with all T steps, and DDIM 50), with sample.py --compile's
compile_sampling; and the peak memory: torch.cuda.max_memory_allocated on a GPU, on the CPU
the peak resident set of the whole process so far (getrusage), which only grows from row to
row. The device is synchronized only where a clock is read.
"""
import argparse
import importlib
import inspect
import json
import os
import platform
import sys
import tempfile
import time
from contextlib import nullcontext, redirect_stdout
from unittest import mock
import numpy as np
import torch
from PIL import Image
from train import build, data, make_batches, processes, train_step
from support.cli import COUNT, MODELS, Fail, Parser, add_flags, compile_objectives
from support.cli import hyperparameters, model_class
from support.outputs import named, writable
from support.sampling import compile_sampling
from support.settings import TRAIN_DEFAULTS, network

# the peak memory on the CPU (POSIX)
resource = importlib.import_module("resource") if os.name == "posix" else None


def parse(argv):
    p = Parser(prog="python -m measure.bench", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter,
               argument_default=argparse.SUPPRESS)
    p.add_argument("--model", choices=list(MODELS),
                   help="one model (its hyperparameters as flags). default: all")
    p.add_argument("--quick", action="store_true", help="seconds in all: 8-16px, narrow "
                   "networks, batch 4, 2 timed steps, 8 samples, 10 DDPM and 5 DDIM steps, "
                   "no compile")
    p.add_argument("--image-size", type=COUNT,
                   help="the images' side. default: the model's own")
    p.add_argument("--batch-size", type=COUNT,
                   help="images per training step. default: the model's train.py default")
    p.add_argument("--steps", type=COUNT,
                   help="timed training steps, after 2 warm-up steps. default: 5")
    p.add_argument("-n", type=COUNT, help="samples to time. default: 64")
    p.add_argument("--ddpm-steps", type=COUNT,
                   help="DDPM sampling steps. default: the model's T (1000)")
    p.add_argument("--ddim-steps", type=COUNT, help="DDIM sampling steps. default: 50")
    p.add_argument("--bf16", choices=["off", "on", "both"],
                   help="bf16 autocast. default: both on CUDA, off on the CPU")
    p.add_argument("--compile", choices=["off", "on", "both"],
                   help="torch.compile. default: both (--quick: off)")
    p.add_argument("--data", help="a folder of images for the end-to-end figure. "
                   "default: random PNGs, written here")
    p.add_argument("--json", help="also write the rows to this file")
    p.add_argument("--peer", action="store_true",
                   help="ddpm against diffusers' UNet2DModel, on the CPU (bench_peer.py)")
    known, rest = p.parse_known_args(argv)
    # its keywords, as train.py's flags
    if "model" in known:
        init = model_class(known.model).__init__
        group = p.add_argument_group(f"{known.model} hyperparameters")
        add_flags(group, init)
    args = vars(p.parse_args(argv))
    quick = args.get("quick", False)
    cuda = torch.cuda.is_available()
    s = dict(quick=quick, steps=2 if quick else 5, n=8 if quick else 64,
             ddim_steps=5 if quick else 50, bf16="both" if cuda else "off",
             compile="off" if quick else "both", data=None, json=None, peer=False,
             image_size=None, batch_size=4 if quick else None,
             ddpm_steps=10 if quick else None)
    s.update({k: v for k, v in args.items() if k in s})
    s["config"] = {k: v for k, v in args.items() if k not in s and k != "model"}
    s["models"] = [args["model"]] if "model" in args else list(MODELS)
    if s["json"]:
        writable("--json", s["json"], named(s, "json"))
    # train.py's checks, before work
    for name in s["models"]:
        labelled = getattr(model_class(name), "domains", False)
        network(name, config(name, s), image_size(name, s), batch_size(name, s), labelled)
    return s


TINY = dict(ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_res=(4,))
# --quick: (image size, tiny keywords) of each model
QUICK = {
    "vae": (16, dict(ch=8)),
    "gan": (8, dict(hidden=16)),
    "dcgan": (16, dict(ngf=8, ndf=8)),
    "dcgan-lab": (16, dict(ngf=8, ndf=8)),
    "pix2pix": (16, dict(ngf=8, ndf=8, n_layers=1)),
    "cyclegan": (16, dict(ngf=8, ndf=8, n_blocks=1, n_layers=1)),
    "stylegan": (8, dict(ch=8, max_ch=8)),
    "ddpm": (8, TINY),
    "ldm": (16, dict(f=2, ae_ch=32, **TINY)),
    "stargan": (8, dict(ngf=4, ndf=4, n_blocks=1)),
    "progan": (8, dict(ch=8, max_ch=8, z_dim=8)),
    "srgan": (8, dict(B=1, ngf=4, ndf=4, content="mse")),
}


def quick(name):
    """A model's --quick size and keywords; a model not listed runs at its defaults."""
    return QUICK.get(name, (None, {}))


def image_size(name, s):
    init = inspect.signature(model_class(name).__init__)
    default = init.parameters["image_size"].default
    return s["image_size"] or (s["quick"] and quick(name)[0]) or default


def batch_size(name, s):
    return s["batch_size"] or getattr(model_class(name), "batch_size", 64)


def config(name, s):
    """A model's keywords in a row: its defaults, then --quick's, then the flags given."""
    init = hyperparameters(model_class(name).__init__)
    defaults = {k: p.default for k, p in init.items()}
    return {**defaults, **(quick(name)[1] if s["quick"] else {}), **s["config"]}


def write_folder(root, name, size, n):
    """n random PNGs in root: side-by-side pairs for a paired model, A/ and B/ for an
    unpaired one, or as StarGAN's two domains."""
    rng = np.random.default_rng(0)
    cls = model_class(name)
    two = getattr(cls, "unpaired", False) or getattr(cls, "domains", False)
    folders = [os.path.join(root, d) for d in ("A", "B")] if two else [root]
    wide = 2 * size if getattr(cls, "paired", False) else size
    for folder in folders:
        os.makedirs(folder, exist_ok=True)
        for i in range(n):
            pixels = rng.integers(0, 256, (size, wide, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(os.path.join(folder, f"{i}.png"))
    return root


def sync(proc):
    if proc.cuda:
        torch.cuda.synchronize(proc.device)


def timed(fn, n, proc):
    """Seconds for fn(0) .. fn(n - 1), the device synchronized before and after only."""
    sync(proc)
    t = time.perf_counter()
    for i in range(n):
        fn(i)
    sync(proc)
    return time.perf_counter() - t


def row(name, s, bf16, compiled, folder, out, proc):
    """One model, one setting of bf16 and compile: the figures of one row."""
    cls = model_class(name)
    size = image_size(name, s)
    B = batch_size(name, s)
    args = dict(TRAIN_DEFAULTS, data=folder, image_size=size, batch_size=B, out=out,
                seed=0, ema=getattr(cls, "ema_decay", 0.0),
                classes=getattr(cls, "domains", False))
    keywords = config(name, s)
    proc.autocast = nullcontext()
    if bf16:
        proc.autocast = torch.autocast(proc.device.type, torch.bfloat16)
    if proc.cuda:
        torch.cuda.reset_peak_memory_stats(proc.device)
    cache = {} if s["data"] else {"XDG_CACHE_HOME": os.path.join(out, "cache")}
    # the data decoded and cached, not timed; what it says goes to stderr
    with mock.patch.dict(os.environ, cache), redirect_stdout(sys.stderr):
        images, labels, names = data(name, cls, args, keywords, None, proc)
    proc.lock.close()
    model, opts, ema = build(name, keywords, args, None, proc)
    # ldm: the diffusion stage, as in most of a run's steps
    if hasattr(model, "ae_steps_done"):
        model.ae_steps_done = model.ae_steps
    batches = make_batches(images, labels, names, model, args, proc)
    if compiled:
        compile_objectives(model)
    nonfinite = torch.zeros((), dtype=torch.bool, device=proc.device)
    x, y = batches(0)

    def step(i, xy=None):
        x, y = xy or batches(i)
        return train_step(model, opts, ema, x, y, i, args["ema"], nonfinite, proc)
    # warm-up (and compilation)
    timed(lambda i: step(i, (x, y)), 2, proc)
    fixed = timed(lambda i: step(i, (x, y)), s["steps"], proc)
    folder_s = timed(step, s["steps"], proc)
    net = (ema or model).eval()
    if compiled:
        compile_sampling(net, proc.cuda)
    n = s["n"]
    y_n = None if y is None else y.repeat(-(-n // len(y)), *[1] * (y.dim() - 1))[:n]
    diffusion = "steps" in hyperparameters(net.sample)
    samplers = [{}]
    if diffusion:
        samplers = [dict(sampler="ddpm", steps=s["ddpm_steps"] or keywords["T"]),
                    dict(sampler="ddim", steps=s["ddim_steps"])]
    times = []
    with torch.no_grad(), proc.autocast:
        for knobs in samplers:
            warm = {**knobs, "steps": 3} if diffusion else {}
            timed(lambda i: net.sample(n, y_n, **warm), 1, proc)
            times.append(timed(lambda i: net.sample(n, y_n, **knobs), 1, proc))
    if proc.cuda:
        memory = torch.cuda.max_memory_allocated(proc.device)
    elif resource:
        memory = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024   # KiB
    else:
        memory = float("nan")
    return dict(model=name, bf16=bf16, compile=compiled, image_size=size, batch_size=B,
                steps=s["steps"], params=sum(p.numel() for p in model.parameters()),
                train_img_s=s["steps"] * B / fixed, train_img_s_folder=s["steps"] * B / folder_s,
                n=n, sample_s=times[0], ddpm_steps=samplers[0].get("steps"),
                ddim_s=times[1] if diffusion else None,
                ddim_steps=s["ddim_steps"] if diffusion else None, peak_mib=memory / 2**20,
                finite=not nonfinite.item())


def table(rows, device):
    n = rows[0]["n"]
    diffusion = [r for r in rows if r["ddpm_steps"]]
    diffusion = diffusion or [dict(ddpm_steps="T", ddim_steps="S")]
    ddpm = diffusion[0]["ddpm_steps"]
    ddim = diffusion[0]["ddim_steps"]
    memory = "peak RSS of the process so far"
    if device.type == "cuda":
        memory = "peak CUDA memory allocated"
    head = ["model", "size", "batch", "params", "bf16", "compile",
            f"train img/s, batch on {device.type}", "train img/s, from a folder",
            f"sample {n}, s (diffusion: DDPM {ddpm} steps)", f"sample {n}, DDIM {ddim}, s",
            f"{memory}, MiB"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for r in rows:
        cells = [r["model"], r["image_size"], r["batch_size"], f"{r['params'] / 1e6:.2f}M",
                 "on" if r["bf16"] else "off", "on" if r["compile"] else "off",
                 f"{r['train_img_s']:,.1f}", f"{r['train_img_s_folder']:,.1f}",
                 f"{r['sample_s']:.3g}", f"{r['ddim_s']:.3g}" if r["ddim_s"] is not None else "-",
                 f"{r['peak_mib']:,.0f}"]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def main(argv):
    s = parse(argv)
    if s["peer"]:
        return importlib.import_module("measure.bench_peer").main(s)
    proc = processes()
    proc.log = lambda *a, **k: None
    both = {"off": [False], "on": [True], "both": [False, True]}
    rows = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name in s["models"]:
            size = image_size(name, s)
            B = batch_size(name, s)
            folder = s["data"]
            folder = folder or write_folder(os.path.join(tmp, name), name, size, max(2 * B, 8))
            for bf16 in both[s["bf16"]]:
                for compiled in both[s["compile"]]:
                    print(f"bench: {name} bf16 {bf16} compile {compiled} ...", file=sys.stderr,
                          flush=True)
                    torch.manual_seed(0)
                    rows.append(row(name, s, bf16, compiled, folder, tmp, proc))
    if proc.cuda:
        device = torch.cuda.get_device_name(proc.device)
    else:
        cpu = platform.processor() or platform.machine()
        device = f"{cpu} CPU, {torch.get_num_threads()} threads"
    took = time.perf_counter() - t0
    print(f"bench.py {' '.join(argv)}: {device}, torch {torch.__version__}, "
          f"{took:.0f} s in all\n")
    print(table(rows, proc.device))
    if s["json"]:
        with open(s["json"], "w") as f:
            json.dump(dict(argv=argv, device=device, torch=torch.__version__, rows=rows), f,
                      indent=1)


def cli(argv):
    """The command line: main, with a mistake in the user's input as one line and exit
    status 1."""
    try:
        return main(argv) or 0
    except Fail as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
