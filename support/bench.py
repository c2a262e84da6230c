"""One command that measures training and sampling speed on the device present (CUDA if there is one).

    python -m support.bench                                        # every model at its defaults: a markdown table
    python -m support.bench --model ddpm --ch 128 --ch-mult 1,2,2,2   # one model, its hyperparameters as train.py takes them
    python -m support.bench --quick --json bench.json              # every model in seconds (tiny sizes, 2 steps), and JSON
    python -m support.bench --peer                                 # ddpm's U-Net against diffusers' UNet2DModel (bench_peer.py)

Each row is one model with bf16 autocast and torch.compile on or off (bf16: CUDA only unless asked; compile:
not with --quick). It measures what train.py runs, with its own functions (model_and_resume, train_step,
compile_objectives, data): training images/s with one batch kept on the device; training images/s end to
end, each step's batch drawn by data.py's Batches from a folder of PNGs (written here, or --data) after it
was decoded and cached; the time to sample 64 images (diffusion: DDPM with all T steps, and DDIM 50), with
sample.py --compile's compile_sampling; and the peak memory: torch.cuda.max_memory_allocated on a GPU, on
the CPU the peak resident set of the whole process so far (getrusage), which only grows from row to row.
The device is synchronized only where a clock is read.
"""
import argparse, importlib, inspect, json, os, platform, sys, tempfile, time
from contextlib import nullcontext, redirect_stdout
from unittest import mock
import numpy as np
import torch
from PIL import Image
import train
from support.cli import MODELS, Fail, flag_help, Parser, add_flags, at_least, compile_objectives, compile_sampling, hyperparameters, model_class

resource = importlib.import_module("resource") if os.name == "posix" else None   # the CPU's peak memory


def parse(argv):
    p = Parser(prog="python -m support.bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
               argument_default=argparse.SUPPRESS)
    p.add_argument("--model", choices=list(MODELS), help="one model (its hyperparameters as flags). default: all")
    p.add_argument("--quick", action="store_true", help="seconds in all: 8-16px, narrow networks, "
                   "batch 4, 2 timed steps, 8 samples, 10 DDPM and 5 DDIM steps, no compile")
    p.add_argument("--image-size", type=int, help="default: the model's own")
    p.add_argument("--batch-size", type=int, help="default: the model's train.py default")
    p.add_argument("--steps", type=int, help="timed training steps, after 2 warm-up steps. default: 5")
    p.add_argument("-n", type=int, help="samples to time. default: 64")
    p.add_argument("--ddpm-steps", type=int, help="DDPM sampling steps. default: the model's T (1000)")
    p.add_argument("--ddim-steps", type=int, help="DDIM sampling steps. default: 50")
    p.add_argument("--bf16", choices=["off", "on", "both"], help="bf16 autocast. default: both on CUDA, off on the CPU")
    p.add_argument("--compile", choices=["off", "on", "both"], help="torch.compile. default: both (--quick: off)")
    p.add_argument("--data", help="a folder of images for the end-to-end figure. default: random PNGs, written here")
    p.add_argument("--json", help="also write the rows to this file")
    p.add_argument("--peer", action="store_true", help="ddpm against diffusers' UNet2DModel, on the CPU (bench_peer.py)")
    known, rest = p.parse_known_args(argv)
    if "model" in known:                                        # the model's keywords, as train.py's flags
        init = model_class(known.model).__init__
        add_flags(p.add_argument_group(f"{known.model} hyperparameters"), hyperparameters(init), flag_help(init))
    args = vars(p.parse_args(argv))
    quick, cuda = args.get("quick", False), torch.cuda.is_available()
    s = dict(quick=quick, steps=2 if quick else 5, n=8 if quick else 64, ddim_steps=5 if quick else 50,
             bf16="both" if cuda else "off", compile="off" if quick else "both", data=None, json=None, peer=False,
             image_size=None, batch_size=4 if quick else None, ddpm_steps=10 if quick else None)
    s.update({k: v for k, v in args.items() if k in s})
    s["config"] = {k: v for k, v in args.items() if k not in s and k != "model"}
    s["models"] = [args["model"]] if "model" in args else list(MODELS)
    at_least(1, **{k: s[k] for k in ("steps", "n", "ddim_steps", "image_size", "batch_size", "ddpm_steps")})
    return s


TINY = dict(ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_res=(4,))
QUICK = {"vae": (16, dict(ch=8)), "gan": (8, dict(hidden=16)), "dcgan": (16, dict(ngf=8, ndf=8)),       # --quick: tiny
         "pix2pix": (16, dict(ngf=8, ndf=8, n_layers=1)), "cyclegan": (16, dict(ngf=8, ndf=8, n_blocks=1, n_layers=1)),
         "stylegan": (8, dict(ch=8, max_ch=8)), "ddpm": (8, TINY), "ldm": (16, dict(f=2, ae_ch=32, **TINY))}


def image_size(name, s):
    default = inspect.signature(model_class(name).__init__).parameters["image_size"].default
    return s["image_size"] or (QUICK[name][0] if s["quick"] else default)


def write_folder(root, name, size, n):
    """n random PNGs in root: side-by-side pairs for pix2pix, A/ and B/ for cyclegan."""
    rng = np.random.default_rng(0)
    folders = [os.path.join(root, d) for d in ("A", "B")] if name == "cyclegan" else [root]
    for folder in folders:
        os.makedirs(folder, exist_ok=True)
        for i in range(n):
            wide = 2 * size if name == "pix2pix" else size
            Image.fromarray(rng.integers(0, 256, (size, wide, 3), dtype=np.uint8)).save(os.path.join(folder, f"{i}.png"))
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
    cls, size = model_class(name), image_size(name, s)
    B = s["batch_size"] or getattr(cls, "batch_size", 64)
    args = dict(train.TRAIN_DEFAULTS, data=folder, image_size=size, batch_size=B, out=out, seed=0,
                ema=getattr(cls, "ema_decay", 0.0))
    config = {**{k: p.default for k, p in hyperparameters(cls.__init__).items()}, **(QUICK[name][1] if s["quick"] else {}),
              **s["config"]}
    proc.autocast = torch.autocast(proc.device.type, torch.bfloat16) if bf16 else nullcontext()
    if proc.cuda:
        torch.cuda.reset_peak_memory_stats(proc.device)
    with mock.patch.dict(os.environ, {} if s["data"] else {"XDG_CACHE_HOME": os.path.join(out, "cache")}), \
            redirect_stdout(sys.stderr):                        # decoding and caching: said on stderr
        images, labels, names = train.data(name, cls, args, config, None, proc)   # decoded and cached here, not timed
    proc.lock.close()
    model, opts, ema, _ = train.model_and_resume(name, config, args, None, proc)
    if hasattr(model, "ae_steps_done"):                         # ldm: the diffusion stage, trained for most steps
        model.ae_steps_done = model.ae_steps
    Batches = train.UnpairedBatches if getattr(cls, "unpaired", False) else train.Batches
    batches = Batches(torch.from_numpy(images), None if labels is None else torch.from_numpy(labels), B, proc.device,
                      0, store=proc.device, size=size, paired=getattr(cls, "paired", False))
    if compiled:
        compile_objectives(model)
    nonfinite = torch.zeros((), dtype=torch.bool, device=proc.device)
    x, y = batches(0)
    step = lambda i, xy=None: train.train_step(model, opts, ema, *(xy or batches(i)), i, args["ema"], nonfinite, proc)
    timed(lambda i: step(i, (x, y)), 2, proc)                   # warm-up (and compilation)
    fixed = timed(lambda i: step(i, (x, y)), s["steps"], proc)
    folder_s = timed(step, s["steps"], proc)
    net = (ema or model).eval()
    if compiled:
        compile_sampling(net, proc.cuda)
    n, y_n = s["n"], None if y is None else y.repeat(-(-s["n"] // len(y)), *[1] * (y.dim() - 1))[:s["n"]]
    diffusion = "steps" in hyperparameters(net.sample)
    samplers = [dict(sampler="ddpm", steps=s["ddpm_steps"] or config["T"]), dict(sampler="ddim", steps=s["ddim_steps"])] \
        if diffusion else [{}]
    times = []
    with torch.no_grad(), proc.autocast:
        for knobs in samplers:
            timed(lambda i: net.sample(n, y_n, **({**knobs, "steps": 3} if diffusion else {})), 1, proc)   # warm-up
            times.append(timed(lambda i: net.sample(n, y_n, **knobs), 1, proc))
    memory = torch.cuda.max_memory_allocated(proc.device) if proc.cuda else \
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 if resource else float("nan")   # ru_maxrss: KiB
    return dict(model=name, bf16=bf16, compile=compiled, image_size=size, batch_size=B, steps=s["steps"],
                params=sum(p.numel() for p in model.parameters()), train_img_s=s["steps"] * B / fixed,
                train_img_s_folder=s["steps"] * B / folder_s, n=n, sample_s=times[0],
                ddpm_steps=samplers[0].get("steps"), ddim_s=times[1] if diffusion else None,
                ddim_steps=s["ddim_steps"] if diffusion else None, peak_mib=memory / 2**20, finite=not nonfinite.item())


def table(rows, device):
    n, ddpm, ddim = rows[0]["n"], rows[-1]["ddpm_steps"] or "T", rows[-1]["ddim_steps"] or "S"
    memory = "peak CUDA memory allocated" if device.type == "cuda" else "peak RSS of the process so far"
    lines = [f"| model | size | batch | params | bf16 | compile | train img/s, batch on {device.type} | train img/s, "
             f"from a folder | sample {n}, s (diffusion: DDPM {ddpm} steps) | sample {n}, DDIM {ddim}, s | {memory}, MiB |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ddim_s = f"{r['ddim_s']:.3g}" if r["ddim_s"] is not None else "-"
        lines.append(f"| {r['model']} | {r['image_size']} | {r['batch_size']} | {r['params'] / 1e6:.2f}M | "
                     f"{'on' if r['bf16'] else 'off'} | {'on' if r['compile'] else 'off'} | {r['train_img_s']:,.1f} | "
                     f"{r['train_img_s_folder']:,.1f} | {r['sample_s']:.3g} | {ddim_s} | {r['peak_mib']:,.0f} |")
    return "\n".join(lines)


def main(argv):
    s = parse(argv)
    if s["peer"]:
        return importlib.import_module("support.bench_peer").main(s)
    proc = train.processes()
    proc.log = lambda *a, **k: None
    both = {"off": [False], "on": [True], "both": [False, True]}
    rows, t0 = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name in s["models"]:
            size = image_size(name, s)
            B = s["batch_size"] or getattr(model_class(name), "batch_size", 64)
            folder = s["data"] or write_folder(os.path.join(tmp, name), name, size, max(2 * B, 8))
            for bf16 in both[s["bf16"]]:
                for compiled in both[s["compile"]]:
                    print(f"bench: {name} bf16 {bf16} compile {compiled} ...", file=sys.stderr, flush=True)
                    torch.manual_seed(0)
                    rows.append(row(name, s, bf16, compiled, folder, tmp, proc))
    device = torch.cuda.get_device_name(proc.device) if proc.cuda else f"{platform.processor() or platform.machine()} " \
        f"CPU, {torch.get_num_threads()} threads"
    print(f"bench.py {' '.join(argv)}: {device}, torch {torch.__version__}, {time.perf_counter() - t0:.0f} s in all\n")
    print(table(rows, proc.device))
    if s["json"]:
        with open(s["json"], "w") as f:
            json.dump(dict(argv=argv, device=device, torch=torch.__version__, rows=rows), f, indent=1)


def cli(argv):
    """The command line: main, with a mistake in the user's input as one line and exit status 1."""
    try:
        return main(argv) or 0
    except Fail as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
