"""Every number a command takes, with its declared range, checked in this one place.

A flag is declared with its range as its type, so argparse checks it before any work is done:
    p.add_argument("--k", type=COUNT, default=3, help="...")
    --k -1  ->  error: argument --k: must be at least 1 (got -1)
A model's keywords become flags by name (cli.add_flags), and take their range from RANGES; a
numeric keyword with no range there is refused when the flags are built, so a new flag is checked
by construction, not by remembering. `check(name, value)` applies the same range to a value that
did not come from the command line (a resumed run's, a default).
"""
import argparse
import math
import os
import sys


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
    "n_blocks": COUNT0, "n_critic": COUNT0, "history": COUNT0, "ae_steps": COUNT0, "mix": COUNT0,
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
    "beta1": DECAY, "beta2": DECAY, "w_avg_beta": DECAY,
    # the noise schedule: each beta_t in (0, 1)
    "beta_1": OPEN_UNIT, "beta_T": OPEN_UNIT,
    # classifier-free guidance and truncation: any finite number
    "guidance": REAL, "psi": REAL,
    # classifier guidance's scale s (ddpm.py, support/guidance.py): 0 is off
    "classifier_scale": WEIGHT,
    "fade_images": COUNT, "stable_images": COUNT, "eps_drift": WEIGHT,   # progan, stylegan
    # a model's own exceptions, "file.keyword"
    "gan.lr": WEIGHT, "dcgan.lr": WEIGHT,                   # 0 = the optimizer's paper
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
    import torch                                # here: scenes.py reads this file without torch
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
