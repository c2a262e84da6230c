"""The command line that train.py, sample.py and evaluate.py share: the models by name, a mistake
in the user's input as one line, a model's keywords as flags, checkpoints, the lock on --out, and
Ctrl-C.

Kept apart from train.py and data.py so that each stays short enough to read in one sitting.
"""
import argparse
import importlib
import inspect
import math
import os
import signal
import sys
import time
import torch


class Range:
    """Numbers of one kind between lo and hi (either end open or closed, None = unbounded)."""

    def __init__(self, kind, lo=None, hi=None, lo_open=False, hi_open=False):
        self.kind = kind                                    # int or float
        self.lo = lo
        self.hi = hi
        self.lo_open = lo_open
        self.hi_open = hi_open
        self.__name__ = kind.__name__                       # argparse names the type in errors

    def says(self):
        """The range in words: 'at least 1', 'in [0, 1)', 'above 0'."""
        if self.lo is not None and self.hi is not None:
            left = "(" if self.lo_open else "["
            right = ")" if self.hi_open else "]"
            return f"in {left}{self.lo}, {self.hi}{right}"
        if self.lo is not None:
            return f"above {self.lo}" if self.lo_open else f"at least {self.lo}"
        if self.hi is not None:
            return f"below {self.hi}" if self.hi_open else f"at most {self.hi}"
        return "a finite number"

    def holds(self, v):
        if isinstance(v, float) and not math.isfinite(v):   # nan and inf are never in range
            return False
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        if self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi):
            return False
        return True

    def __call__(self, text):
        """argparse's type: the text as a number in range, or argparse's one-line error."""
        try:
            v = self.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {self.kind.__name__} value: '{text}'")
        if not self.holds(v):
            raise argparse.ArgumentTypeError(f"must be {self.says()} (got {text})")
        return v


COUNT = Range(int, 1)                       # samples, steps, widths, a batch
COUNT0 = Range(int, 0)                      # the same, 0 = off or none
SEED = Range(int, 0, 2**63, hi_open=True)   # torch.manual_seed takes [0, 2^63)
PROBABILITY = Range(float, 0, 1)            # p_uncond, a dropout rate, --strength
WEIGHT = Range(float, 0)                    # a lambda, a loss weight, a clip
RATE = Range(float, 0, lo_open=True)        # a learning rate, a temperature: above 0, finite
DECAY = Range(float, 0, 1, hi_open=True)    # EMA decays, Adam's betas: [0, 1)
OPEN_UNIT = Range(float, 0, 1, lo_open=True, hi_open=True)   # a noise level beta_t: (0, 1)
REAL = Range(float)                         # any finite number

# The models' numeric keywords (__init__, sample, animate) by name: one range each.
RANGES = {
    # sizes and counts
    "T": COUNT, "ch": COUNT, "ae_ch": COUNT, "max_ch": COUNT, "ngf": COUNT, "ndf": COUNT,
    "hidden": COUNT, "z_dim": COUNT, "w_dim": COUNT, "z_channels": COUNT, "text_dim": COUNT,
    "codebook_size": COUNT, "n_mlp": COUNT, "n_layers": COUNT, "num_res_blocks": COUNT,
    "text_layers": COUNT, "max_len": COUNT, "mbstd_group": COUNT, "f": COUNT, "steps": COUNT,
    "frames": COUNT, "ch_mult": COUNT, "attn_res": COUNT,
    "d_repeats": COUNT, "g_steps": COUNT,                  # dcgan's D:G ratios (the lab report's)
    # counts where 0 means off, none or the paper's choice
    "n_blocks": COUNT0, "n_critic": COUNT, "history": COUNT0, "ae_steps": COUNT0, "mix": COUNT0,
    # weights of loss terms
    "beta": WEIGHT, "kl_weight": WEIGHT, "commitment": WEIGHT, "gp_lambda": WEIGHT,
    "lambda_cyc": WEIGHT, "lambda_identity": WEIGHT, "lambda_l1": WEIGHT, "gamma": WEIGHT,
    "lambda_cls": WEIGHT, "lambda_rec": WEIGHT,
    # probabilities and fractions
    "p_uncond": PROBABILITY, "mixing": PROBABILITY, "eta": PROBABILITY, "strength": PROBABILITY,
    "dropout": DECAY, "d_dropout": DECAY, "flip_labels": DECAY,
    # learning rates, scales and temperatures: above 0
    "lr": RATE, "ae_lr": RATE, "mapping_lr_mul": RATE, "sigma": RATE, "temperature": RATE,
    "clip": RATE,
    # decays and Adam's betas: [0, 1)
    "beta1": DECAY, "beta2": DECAY, "betas": DECAY, "w_avg_beta": DECAY,
    # the noise schedule: each beta_t in (0, 1)
    "beta_1": OPEN_UNIT, "beta_T": OPEN_UNIT,
    # classifier-free guidance and truncation: any finite number
    "guidance": REAL, "psi": REAL,
    # classifier guidance's scale s (ddpm.py, support/guidance.py): 0 is off
    "classifier_scale": WEIGHT,
    "fade_images": COUNT, "stable_images": COUNT, "eps_drift": WEIGHT,   # progan, stylegan
    # a model's own exceptions, "file.keyword"
    "srgan.B": COUNT0, "adv_weight": WEIGHT,                # srgan: 0 blocks, the weight of l_Gen
    "stargan.n_layers": COUNT0, "stargan.n_critic": COUNT,  # 0 layers: down to 2x2
}


class Fail(Exception):
    """An error in the user's input: printed as one line, exit status 1 (cli.Fail is this)."""


class Parser(argparse.ArgumentParser):
    """argparse, with a mistake on the command line as one line (error: ...) like every other."""
    def error(self, message):
        raise Fail(f"{message} (see {self.prog} --help)")


def flag(name):
    """A keyword's name as its flag: n -> -n, batch_size -> --batch-size."""
    return "-n" if name == "n" else "--" + name.replace("_", "-")


def check(name, value, rng=None):
    """A value that did not pass through argparse (a resumed run's, a model default), checked
    against its range: the same one line as on the command line."""
    rng = rng or RANGES[name]
    if value is not None and not rng.holds(value):
        raise Fail(f"argument {flag(name)}: must be {rng.says()} (got {value})")


def fits(flag_name, value, nbytes, device="cpu"):
    """A size that cannot fit is refused before it is allocated: nbytes against the GPU's free
    memory, or the machine's physical memory on the CPU (POSIX; elsewhere not checked)."""
    if str(device).startswith("cuda"):
        have = torch.cuda.mem_get_info(torch.device(device))[0]
        where = "free on the GPU"
    elif hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        have = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        where = "of this machine's memory"
    else:
        return
    if nbytes > have:
        raise Fail(f"{flag_name} {value} needs {nbytes / 2**30:.1f} GiB, more than the "
                   f"{have / 2**30:.1f} GiB {where}: choose a smaller {flag_name}")


def writable(flag_name, path):
    """An output file that could not be written is refused before the work, not after it."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise Fail(f"{flag_name} {path} is a folder: name a file")
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise Fail(f"cannot write {flag_name} {path}: {folder} is not a folder you can write to")


def command(main, argv):
    """A command's exit status: main(argv) run; a mistake in the user's input (Fail) printed as
    one line on stderr, status 1. Each command's cli() is this, around its own main."""
    try:
        main(argv)
    except Fail as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


fcntl = importlib.import_module("fcntl") if os.name == "posix" else None   # --out's lock (POSIX)

# The models by name: the one registration a new model needs (docs/protocol.md). Each name is a
# file at the root (vae.py) and the class in it that train.py, sample.py and bench.py drive.
MODELS = {
    "vae": "VAE",
    "gan": "GAN",
    "dcgan": "DCGAN",
    "dcgan-lab": "dcgan.DCGANLab",      # a class in another model's file: "file.Class"
    "pix2pix": "Pix2Pix",
    "cyclegan": "CycleGAN",
    "stylegan": "StyleGAN",
    "progan": "ProGAN",
    "ddpm": "DDPM",
    "ldm": "LDM",
    "stargan": "StarGAN",
    "srgan": "SRGAN",
}


def hyperparameters(fn):
    """The keyword-only arguments of a model's __init__ or sample, with their defaults."""
    params = inspect.signature(fn).parameters.values()
    return {p.name: p for p in params if p.kind == p.KEYWORD_ONLY}


def flag_help(fn):
    """The help of each keyword, from fn's docstring: a line `name: what it does (paper: X)`.

    The docstring of a model's __init__ (or sample) is where a reader looks up its keywords, so
    the same lines serve `--help`; a keyword left out is a mistake the tests catch."""
    lines = (inspect.getdoc(fn) or "").splitlines()
    found = {}
    for line in lines:
        name, sep, text = line.strip().partition(": ")
        if sep and name.isidentifier() and name not in found:
            found[name] = text.strip()
    return found


def ints(rng):
    """A tuple flag's type: "1,2,2" -> (1, 2, 2), each number in rng; "" -> () (--attn-res ''
    for none; an empty --ch-mult is refused with the network's checks, settings.network)."""
    def parse(text):
        return tuple(rng(v) for v in text.split(",")) if text else ()
    parse.__name__ = "list of numbers"
    return parse


def declared(module, name):
    """The range of a model keyword: its file's own ("gan.lr"), else RANGES[name]."""
    own = f"{module}.{name}"
    if own not in RANGES and name not in RANGES:
        raise KeyError(f"{own}: a numeric keyword with no range in support/cli.py RANGES")
    return RANGES.get(own, RANGES.get(name))


def add_flags(parser, *fns):
    """Each keyword argument of fns (a model's __init__; or its sample and animate) becomes a flag:
    ch_mult=(1, 2) -> --ch-mult 1,2, a bool -> --x/--no-x, a number -> checked against its
    declared range (support/cli.py); its help is the docstring's line for it (flag_help) and
    its default."""
    params = {}
    helps = {}
    for fn in fns:
        params |= hyperparameters(fn)
        helps |= flag_help(fn)
    module = fns[0].__module__
    for name, p in params.items():
        d = p.default
        flag = "--" + name.replace("_", "-")
        shown = "" if d is None or d is inspect.Parameter.empty else f" (default: {d})"
        kw = dict(dest=name, default=argparse.SUPPRESS, help=helps.get(name, "") + shown)
        if isinstance(d, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif isinstance(d, tuple):
            parser.add_argument(flag, type=ints(declared(module, name)), metavar="A,B,...", **kw)
        elif d is None or d is inspect.Parameter.empty:
            parser.add_argument(flag, metavar="PATH", **kw)      # an image file (sample.py)
        elif isinstance(d, (int, float)):
            parser.add_argument(flag, type=declared(module, name), **kw)
        else:
            parser.add_argument(flag, type=type(d), **kw)


def claim(out):
    """One run at a time in a folder: a lock on OUT/.lock, which the system releases however the
    process ends. Then a .tmp checkpoint left by a killed run is removed. Returns the lock file."""
    try:
        lock = open(os.path.join(out, ".lock"), "w")
    except OSError as e:
        raise Fail(f"cannot write into --out {out}: {e.strerror}")
    if fcntl:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise Fail(f"another run is training into {out} now: wait for it to end, "
                       "or choose another --out")
    if os.path.exists(tmp := os.path.join(out, "ckpt.pt.tmp")):
        os.remove(tmp)
        print(f"removed {tmp}, a checkpoint that a killed run did not finish writing")
    return lock


def model_class(name):
    """MODELS' class of that name, from its file: "ddpm" -> ddpm.DDPM, "dcgan-lab" ->
    dcgan.DCGANLab."""
    if name not in MODELS:
        raise Fail(f"unknown model '{name}': choose from {', '.join(MODELS)}")
    file, _, cls = MODELS[name].rpartition(".")
    return getattr(importlib.import_module(file or name), cls)


def build_model(name, config):
    """The model, built from its keywords (a checkpoint's config), or one line saying why not."""
    try:
        return model_class(name)(**config)
    except (ValueError, TypeError, RuntimeError) as e:         # RuntimeError: a negative width
        raise Fail(f"bad {name} configuration: {str(e).strip().splitlines()[0]}")


def read_checkpoint(path):
    """A file of plain data (weights_only: a pickle that would run code is refused), or one line."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise Fail(f"{path} is not a readable checkpoint ({type(e).__name__})")


def condition(ck, args, n, device):
    """sample.py's --label as a (n,) LongTensor, or None (an unconditional model, every class in
    turn, or --conditions, which sample.py reads with the checkpoint's object names)."""
    names = ck.get("class_names") or []
    k = ck["config"].get("num_classes", 0)
    if not k and (args.label is not None or args.conditions):
        flag = "--label" if args.label is not None else "--conditions"
        raise Fail(f"{flag} given, but this {ck['model']} was trained without classes")
    if args.label is None:
        return None
    if args.label in names:
        label = names.index(args.label)
    else:
        label = int(args.label) if args.label.isdigit() else -1
    if not 0 <= label < k:
        choices = f" or one of: {', '.join(names)}" if names else ""
        raise Fail(f"unknown label '{args.label}': use 0..{k - 1}" + choices)
    return torch.full((n,), label, dtype=torch.long, device=device)


def load_checkpoint(path):
    """A checkpoint of this project (a model in MODELS, its weights and config), or one line."""
    if not os.path.isfile(path):
        raise Fail(f"no checkpoint at {path}")
    ck = read_checkpoint(path)
    ours = (isinstance(ck, dict) and ck.get("model") in MODELS and "weights" in ck
            and isinstance(ck.get("config"), dict)
            and {"image_size", "channels"} <= ck["config"].keys())
    if not ours:
        raise Fail(f"{path} is not a checkpoint of this project")
    return ck


def compile_sampling(model, cuda):
    """sample.py --compile: torch.compile, in place, the networks the model names in its
    `sampling_networks` (dotted attribute paths: "G", "diffusion.net"); a module is compiled, a
    method is replaced by its compiled self. On CUDA with CUDA graphs ("reduce-overhead"): a
    1,000-step loop of small kernels is bound by their launches, not by the GPU's arithmetic."""
    mode = "reduce-overhead" if cuda else None
    for path in model.sampling_networks:
        *parents, name = path.split(".")
        owner = model
        for parent in parents:
            owner = getattr(owner, parent)
        f = getattr(owner, name)
        if isinstance(f, torch.nn.Module):
            f.compile(mode=mode)
        else:
            setattr(owner, name, torch.compile(f, mode=mode))


def compile_objectives(model):
    """train.py --compile: the objectives, networks and loss maths in one graph each; a model may
    name its own objectives in `compiled`."""
    for objective in getattr(model, "compiled", ("loss", "d_loss", "g_loss")):
        if hasattr(model, objective):
            setattr(model, objective, torch.compile(getattr(model, objective)))


def save_checkpoint(path, state):
    """Atomic: write a temporary file, then rename it over the old one."""
    torch.save(state, path + ".tmp")
    os.replace(path + ".tmp", path)


class Progress:
    """A long sampling loop, watched: one updating line on stderr (step i/N, it/s, ETA), shown
    once the loop has run 2 s, so short ones stay silent; to a log file, not a terminal, a whole
    line every 10 s; never with quiet. A model's sample() takes it as `progress` and wraps its
    loop in it: `for x in progress(steps, total)`."""

    def __init__(self, what="sampling", quiet=False):
        self.what = what
        self.quiet = quiet

    def __call__(self, steps, total):
        t0 = last = time.perf_counter()
        shown = False
        tty = sys.stderr.isatty()                   # a terminal: rewrite; a log: a line each 10 s
        every = 0.2 if tty else 10
        for i, x in enumerate(steps, 1):
            yield x
            now = time.perf_counter()
            if not self.quiet and now - t0 > 2 and (now - last > every or i == total):
                rate = i / (now - t0)
                last = now
                shown = True
                line = f"{self.what}: step {i}/{total} | {rate:.1f} it/s | "
                line += f"eta {(total - i) / rate:.0f} s "
                print("\r" + line if tty else line, end="" if tty else "\n", file=sys.stderr,
                      flush=True)
        if shown and tty:
            print(file=sys.stderr)


def watched(fn, what, quiet):
    """The progress keyword for a model's sample() or animate(), where it takes one."""
    if "progress" in inspect.signature(fn).parameters:
        return {"progress": Progress(what, quiet)}
    return {}


class Signals:
    """Ctrl-C (SIGINT), and SIGTERM, which clusters send before they kill a job, are noted here
    and acted on at the next step boundary, so a checkpoint always holds whole steps and --resume
    continues exactly. A second Ctrl-C stops at once, without saving."""
    def __enter__(self):
        self.caught = 0
        self.before = {s: signal.signal(s, self.note) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def note(self, signum, frame):
        if self.caught:
            raise KeyboardInterrupt
        self.caught = signum

    def __exit__(self, *exc):
        for s, handler in self.before.items():
            signal.signal(s, handler)
