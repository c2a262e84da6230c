"""The command line that train.py, sample.py and evaluate.py share: a mistake in the user's
input as one line (Fail), every number's declared range (RANGES), the models by name, a
model's keywords as flags, checkpoints, the lock on --out, Ctrl-C, a long loop's progress.
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


class Fail(Exception):
    """An error in the user's input: printed as one line, exit status 1."""


class Parser(argparse.ArgumentParser):
    """argparse, with a mistake on the command line as one line (error: ...)."""
    def error(self, message):
        raise Fail(f"{message} (see {self.prog} --help)")


def command(main, argv):
    """A command's exit status: main(argv), a Fail printed as one line on stderr (1)."""
    try:
        main(argv)
    except Fail as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


class Range:
    """An argparse type: numbers of one kind from lo to hi (None: unbounded; either end open
    or closed), a number out of range refused in one line."""

    def __init__(self, kind, lo=None, hi=None, lo_open=False, hi_open=False):
        self.kind = kind                                    # int or float
        self.lo = lo
        self.hi = hi
        self.lo_open = lo_open
        self.hi_open = hi_open
        self.__name__ = kind.__name__                       # for argparse's errors

    def says(self):
        """The range in words: 'at least 1', 'above 0', 'in [0, 1)'."""
        if self.lo is None:
            return "a finite number"
        if self.hi is None:
            return f"above {self.lo}" if self.lo_open else f"at least {self.lo}"
        left = "(" if self.lo_open else "["
        right = ")" if self.hi_open else "]"
        return f"in {left}{self.lo}, {self.hi}{right}"

    def __call__(self, text):
        try:
            v = self.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {self.__name__} value: '{text}'")
        lo, hi = self.lo, self.hi
        below = lo is not None and (v <= lo if self.lo_open else v < lo)
        above = hi is not None and (v >= hi if self.hi_open else v > hi)
        # nan and inf are never in range
        if isinstance(v, float) and not math.isfinite(v) or below or above:
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
    "ch": COUNT, "ae_ch": COUNT, "max_ch": COUNT, "ngf": COUNT, "ndf": COUNT,
    "hidden": COUNT, "z_dim": COUNT, "w_dim": COUNT, "z_channels": COUNT, "text_dim": COUNT,
    "codebook_size": COUNT, "max_len": COUNT, "mbstd_group": COUNT, "f": COUNT, "steps": COUNT,
    "frames": COUNT, "ch_mult": COUNT, "attn_res": COUNT, "ae_steps": COUNT,   # 0: see --ae
    # the noise schedule's steps: the papers use 1,000 to 4,000
    "T": Range(int, 1, 100_000),
    # layers and blocks, a module each: 100,000 take minutes to build, and more memory
    "n_mlp": Range(int, 1, 100), "n_layers": Range(int, 1, 100),
    "num_res_blocks": Range(int, 1, 100), "text_layers": Range(int, 1, 100),
    # D and G steps in one step (dcgan's D:G ratios), steps per G step: a step ends (Ctrl-C)
    "d_repeats": Range(int, 1, 100), "g_steps": Range(int, 1, 100), "n_critic": Range(int, 1, 100),
    # counts where 0 means off, none or the paper's choice
    "n_blocks": Range(int, 0, 100), "history": COUNT0, "mix": COUNT0,
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
    # classifier guidance's scale s (ddpm.py, support/guidance.py): 0 is off. The paper's are
    # 1 to 10; far past them s grad swamps eps (of size 1), samples saturate: 1000 at most
    "classifier_scale": Range(float, 0, 1000),
    "min_snr_gamma": RATE,                                  # ddpm's min-SNR-gamma: above 0
    "fade_images": COUNT, "stable_images": COUNT, "eps_drift": WEIGHT,   # progan, stylegan
    # a model's own exceptions, "file.keyword"
    "srgan.B": COUNT0, "adv_weight": WEIGHT,                # srgan: 0 blocks, the weight of l_Gen
    "stargan.n_layers": COUNT,                              # None layers: down to 2x2
}



# The models by name: the one registration a new model needs (docs/protocol.md). Each name is
# a file at the root (vae.py) and the class in it that train.py, sample.py and bench.py drive.
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


def model_class(name):
    """MODELS' class of that name, from its file: "ddpm" -> ddpm.DDPM, "dcgan-lab" ->
    dcgan.DCGANLab."""
    if name not in MODELS:
        raise Fail(f"unknown model '{name}': choose from {', '.join(MODELS)}")
    file, _, cls = MODELS[name].rpartition(".")
    return getattr(importlib.import_module(file or name), cls)


def build_model(name, config):
    """The model, built from its keywords (a checkpoint's config), or one line saying why."""
    try:
        return model_class(name)(**config)
    except (ValueError, TypeError, RuntimeError) as e:     # RuntimeError: a negative width
        raise Fail(f"bad {name} configuration: {str(e).strip().splitlines()[0]}")


def flag(name):
    """A keyword's name as its flag: n -> -n, batch_size -> --batch-size."""
    return "-n" if name == "n" else "--" + name.replace("_", "-")


def hyperparameters(fn):
    """The keyword-only arguments of a model's __init__ or sample, with their defaults."""
    params = inspect.signature(fn).parameters.values()
    return {p.name: p for p in params if p.kind == p.KEYWORD_ONLY}


def flag_help(fn):
    """Each keyword's help: its line `name: what it does (paper: X)` in fn's docstring, where
    a reader looks it up."""
    found = {}
    for line in (inspect.getdoc(fn) or "").splitlines():
        name, sep, text = line.strip().partition(": ")
        if sep and name.isidentifier() and name not in found:
            found[name] = text.strip()
    return found


def ints(rng):
    """A tuple flag's type: "1,2,2" -> (1, 2, 2), each number in rng; "" -> ()."""
    def parse(text):
        return tuple(rng(v) for v in text.split(",")) if text else ()
    parse.__name__ = "list of numbers"
    return parse


def declared(module, name):
    """The range of a model keyword: its file's own ("gan.lr"), else RANGES[name], or None."""
    return RANGES.get(f"{module}.{name}", RANGES.get(name))


def add_flags(parser, *fns):
    """Each keyword of fns (a model's __init__; or its sample and animate) becomes a flag, its
    help the docstring's line and its default: a bool gives --x/--no-x, a tuple --ch-mult 1,2,
    a number its declared range; None is the paper's value where the name has a range, else a
    file (PATH)."""
    params = {}
    helps = {}
    for fn in fns:
        params |= hyperparameters(fn)
        helps |= flag_help(fn)
    for name, p in params.items():
        d = p.default
        rng = declared(fns[0].__module__, name)
        kw = dict(dest=name, default=argparse.SUPPRESS, help=helps.get(name, ""))
        if d is None and rng:
            kw["help"] += " (default: the paper's)"
        elif d is not None:
            kw["help"] += f" (default: {d})"
        if isinstance(d, bool):
            parser.add_argument(flag(name), action=argparse.BooleanOptionalAction, **kw)
        elif isinstance(d, tuple):
            parser.add_argument(flag(name), type=ints(rng), metavar="A,B,...", **kw)
        elif d is None and not rng:
            parser.add_argument(flag(name), metavar="PATH", **kw)   # an image file
        else:
            parser.add_argument(flag(name), type=rng or type(d), **kw)


def fits(flag_name, value, nbytes, device="cpu", fix=None):
    """A size refused before it is allocated: nbytes against the GPU's free memory, or on the
    CPU the machine's physical memory (POSIX; elsewhere not checked). fix: what to do, if
    not a smaller flag_name."""
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
                   f"{have / 2**30:.1f} GiB {where}: {fix or f'choose a smaller {flag_name}'}")


def read_checkpoint(path):
    """A file of plain data (weights_only: a pickle that would run code is refused)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise Fail(f"{path} is not a readable checkpoint ({type(e).__name__})")


def load_checkpoint(path):
    """A checkpoint of this project (a model in MODELS, its weights and config)."""
    if not os.path.isfile(path):
        raise Fail(f"no checkpoint at {path}")
    ck = read_checkpoint(path)
    ours = (isinstance(ck, dict) and ck.get("model") in MODELS and "weights" in ck
            and isinstance(ck.get("config"), dict)
            and {"image_size", "channels"} <= ck["config"].keys())
    if not ours:
        raise Fail(f"{path} is not a checkpoint of this project")
    return ck


def save_checkpoint(path, state):
    """Atomic: write a temporary file, then rename it over the old one."""
    torch.save(state, path + ".tmp")
    os.replace(path + ".tmp", path)


def claim(out):
    """One run at a time in a folder: a lock on OUT/.lock that the system releases however
    the process ends (POSIX); a .tmp checkpoint left by a killed run is removed."""
    # a folder no file can be added to (read-only, even with a lock file left in it): said now,
    # not at the first grid
    from support.outputs import writable
    writable("--out", os.path.join(out, ".lock"))
    try:
        lock = open(os.path.join(out, ".lock"), "w")
    except OSError as e:
        raise Fail(f"cannot write into --out {out}: {e.strerror}")
    if os.name == "posix":
        import fcntl
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


def compile_objectives(model):
    """train.py --compile: each objective (networks and loss maths) one graph; a model may
    name its own objectives in `compiled`."""
    for objective in getattr(model, "compiled", ("loss", "d_loss", "g_loss")):
        if hasattr(model, objective):
            setattr(model, objective, torch.compile(getattr(model, objective)))


class Progress:
    """A long sampling loop, watched: one updating line on stderr (step i/N, it/s, ETA) once
    it has run 2 s, to a log file a whole line every 10 s, never with quiet. A model's
    sample() wraps its loop in it: `for x in progress(steps, total)`."""

    def __init__(self, what="sampling", quiet=False):
        self.what = what
        self.quiet = quiet

    def __call__(self, steps, total):
        t0 = last = time.perf_counter()
        shown = False
        tty = sys.stderr.isatty()
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
                end = "" if tty else "\n"
                print("\r" + line if tty else line, end=end, file=sys.stderr, flush=True)
        if shown and tty:
            print(file=sys.stderr)


def watched(fn, what, quiet):
    """The progress keyword for a model's sample() or animate(), where it takes one."""
    if "progress" in inspect.signature(fn).parameters:
        return {"progress": Progress(what, quiet)}
    return {}


class Signals:
    """Ctrl-C and SIGTERM (a cluster's warning before a kill) are acted on at the next step,
    so a checkpoint holds whole steps. A second Ctrl-C stops at once, unsaved."""
    def __enter__(self):
        self.caught = 0
        signals = (signal.SIGINT, signal.SIGTERM)
        self.before = {s: signal.signal(s, self.note) for s in signals}
        return self

    def note(self, signum, frame):
        if self.caught:
            raise KeyboardInterrupt
        self.caught = signum

    def __exit__(self, *exc):
        for s, handler in self.before.items():
            signal.signal(s, handler)
