"""train.py's command line: its flags, their defaults, and every check that needs no data.

parse reads the flags of one model (its keywords become flags: cli.add_flags); settings merges
them with a resumed run's and the defaults, and refuses a bad number or folder at once, before any
image is decoded.
"""
import argparse
import importlib
import os
import sys
from support.cli import (MODELS, Fail, Parser, add_flags, at_least, hyperparameters,
                         load_checkpoint, model_class)

TRAIN_DEFAULTS = dict(data="shapes", image_size=None, batch_size=None, steps=10_000, out=None,
                      classes=False, flip=True, labels=None, objects=None, resize="crop",
                      direction="AtoB", captions=False, ema=None, compile=False, seed=0,
                      log_every=100, sample_every=1000, ckpt_every=1000, grid=64, quiet=False,
                      preview_sampler=None, preview_steps=None, eval_every=0, eval_n=500,
                      eval_features="inception")
COUNTS = [("seed", "random seed"),                              # the integer flags: (flag, what)
          ("log-every", "steps between progress lines (and log.jsonl records)"),
          ("sample-every", "steps between sample grids"),
          ("ckpt-every", "steps between checkpoints"),
          ("grid", "samples in each grid"),
          ("eval-every", "steps between quality checks (KID, FD; log.jsonl), 0 = off"),
          ("eval-n", "samples per quality check, against as many training images")]


def parse(argv, usage):
    """MODEL and its flags -> name, the model's class, the flags given (no defaults filled in)."""
    if not argv or argv[0].startswith("-"):
        print(usage.strip() + f"\n\nmodels: {', '.join(MODELS)}")
        sys.exit(0 if argv and argv[0] in ("-h", "--help") else 2)
    name = argv[0]
    cls = model_class(name)
    p = Parser(prog=f"train.py {name}", argument_default=argparse.SUPPRESS,
               formatter_class=argparse.RawDescriptionHelpFormatter,
               description=(cls.__doc__ or importlib.import_module(name).__doc__).strip())
    p.add_argument("--data", help="a folder of images, or built in: 'shapes', or the lab's "
                   "'scenes'. default: shapes")
    p.add_argument("--image-size", type=int, help="the images' side after cropping and "
                   "resizing. default: 32 for shapes, 64 for a folder")
    p.add_argument("--batch-size", type=int, help="images per step, over all processes. "
                   f"default: {getattr(cls, 'batch_size', 64)}")
    p.add_argument("--steps", type=int, help="total optimisation steps. default: 10000")
    p.add_argument("--out", help="the run's folder: ckpt.pt, sample grids, log.jsonl. "
                   f"default: runs/{name}")
    p.add_argument("--classes", action="store_true",
                   help="subfolders are classes: train a conditional model")
    p.add_argument("--labels", metavar="JSON",
                   help="the lab's train.json (file -> object names): condition on sets")
    p.add_argument("--objects", metavar="JSON", help="the lab's objects.json, object name -> "
                   "index. default: beside --labels")
    p.add_argument("--resize", choices=["crop", "squash"],
                   help="non-square images: centre-crop, or squash. default: crop")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction,
                   help="random horizontal flips. default: on")
    if getattr(cls, "paired", False):
        p.add_argument("--direction", choices=["AtoB", "BtoA"],
                       help="translate A to B or B to A. default: AtoB")
    if getattr(cls, "captions", False):
        p.add_argument("--captions", action="store_true", help="condition on captions: --data's "
                       "captions.txt (filename<TAB>caption a line), else the class folders' "
                       "names, or the shapes' names")
    p.add_argument("--ema", type=float, help="EMA decay of the weights, 0 = off. "
                   f"default: {getattr(cls, 'ema_decay', 0)}")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the loss computation (networks included)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--quiet", action="store_true",
                   help="no progress line on stderr while a grid is sampled")
    for flag, what in COUNTS:
        default = TRAIN_DEFAULTS[flag.replace("-", "_")]
        p.add_argument("--" + flag, type=int, help=f"{what}. default: {default}")
    p.add_argument("--eval-features", metavar="PATH", help="the quality check's features: a "
                   "classifier of evaluate.py, or 'inception'. default: inception")
    if preview := getattr(cls, "preview", None):          # diffusion: the grids' own, fast sampler
        p.add_argument("--preview-sampler", choices=["ddpm", "ddim"],
                       help=f"the grids' sampler. default: {preview['sampler']}")
        p.add_argument("--preview-steps", type=int, help="the grids' sampling steps (1000 for the "
                       f"full chain). default: {preview['steps']}")
    group = p.add_argument_group(f"{name} hyperparameters")
    add_flags(group, cls.__init__)
    return name, cls, vars(p.parse_args(argv[1:]))


def settings(name, cls, given):
    """The settings given on this command line, else the resumed run's, else the defaults -> args,
    config (the model's keywords), checkpoint or None. Every check that needs no data is made here.
    """
    hp = hyperparameters(cls.__init__)
    out = given.get("out", f"runs/{name}")
    ckpt_path = os.path.join(out, "ckpt.pt")
    ck = None
    if given.get("resume"):
        ck = load_checkpoint(ckpt_path)
        if ck["model"] != name:
            raise Fail(f"{ckpt_path} holds a '{ck['model']}' model, not '{name}'")
        if not {"args", "step", "optimizers", "rng"} <= ck.keys():
            raise Fail(f"{ckpt_path} holds weights but not a run to resume "
                       "(no step, optimizer or RNG state)")
    elif os.path.exists(ckpt_path):
        raise Fail(f"{ckpt_path} exists: add --resume to continue it, or choose another --out")
    given_args = {k: v for k, v in given.items() if k not in hp}
    given_config = {k: v for k, v in given.items() if k in hp}
    args = {**TRAIN_DEFAULTS, **(ck["args"] if ck else {}), **given_args, "out": out}
    defaults = {k: p.default for k, p in hp.items()}
    config = {**defaults, **(ck["config"] if ck else {}), **given_config}
    own = dict(batch_size=getattr(cls, "batch_size", 64),       # the model's own defaults,
               ema=getattr(cls, "ema_decay", 0.0),
               **{f"preview_{k}": v for k, v in getattr(cls, "preview", {}).items()})   # its grids'
    args.update({k: v for k, v in own.items() if args[k] is None})
    positive = ("image_size", "batch_size", "log_every", "sample_every", "ckpt_every", "grid",
                "preview_steps")
    at_least(1, **{k: args[k] for k in positive})
    if not 0 <= args["ema"] < 1:                                # nan fails this too
        raise Fail(f"--ema is a decay in [0, 1), 0 = off (got {args['ema']})")
    if ck and args["steps"] <= ck["step"]:
        raise Fail(f"{ckpt_path} has done {ck['step']} steps already: "
                   f"give --steps above {ck['step']} to train on")
    at_least(0, steps=args["steps"], eval_every=args["eval_every"])
    at_least(2, eval_n=args["eval_n"])                          # a covariance; KID: subsets of n/2
    counts = {k: v for k, v in config.items()                   # widths, T, n_critic, ...
              if k in hp and type(hp[k].default) is int}
    at_least(1, **{k: v for k, v in counts.items() if hp[k].default > 0})
    at_least(0, **counts)
    try:
        os.makedirs(out, exist_ok=True)                         # --out a file, or read-only: said
    except OSError as e:                                        # now, not after decoding images
        raise Fail(f"cannot make the folder --out {out}: {e.strerror}")
    return args, config, ck
