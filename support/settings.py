"""train.py's command line: parse reads a model's flags (its keywords too, cli.add_flags);
settings merges them with a resumed run's and the defaults, and makes every check that needs
no data, before any image is decoded."""
import argparse
import importlib
import inspect
import os
import sys
import torch
from support.cli import COUNT, COUNT0, DECAY, SEED, Range, fits
from support.cli import (MODELS, Fail, Parser, add_flags, build_model, flag, hyperparameters,
                         load_checkpoint, model_class)

TRAIN_DEFAULTS = dict(data="shapes", image_size=None, batch_size=None, steps=10_000,
                      out=None, classes=False, flip=True, labels=None, objects=None,
                      resize="crop", direction="AtoB", captions=False, ema=None,
                      compile=False, seed=0, log_every=100, sample_every=1000,
                      ckpt_every=1000, grid=64, quiet=False, preview_sampler=None,
                      preview_steps=None, eval_every=0, eval_n=500,
                      eval_features="inception", lab_evaluator=None, lab_tests=None)
# the integer flags: (flag, range, what); --eval-n: a covariance, and KID's subsets of n/2
COUNTS = [("seed", SEED, "random seed"),
          ("log-every", COUNT, "steps between progress lines (and log.jsonl records)"),
          ("sample-every", COUNT, "steps between sample grids"),
          ("ckpt-every", COUNT, "steps between checkpoints"),
          ("grid", COUNT, "samples in each grid"),
          ("eval-every", COUNT0, "steps between quality checks (KID, FD, the lab's "
           "accuracy; log.jsonl, plotted by python -m measure.curves), 0 = off"),
          ("eval-n", Range(int, 2), "samples per quality check, against as many training "
           "images")]
BUILT_IN = ("shapes", "scenes")                         # --data that is not a folder
# ddpm.py's and ldm.py's GroupNorm(32, c): widths split in 32 groups
GROUPS = 32
UNLABELLED = {"pix2pix": "its condition is the input image of each pair",
              "cyclegan": "it translates between two unlabelled domains",
              "srgan": "its condition is the low-resolution image"}
# train.py's flags that act only beside another setting, as a model's `needs`: flag ->
# {setting: the value it needs, a tuple of them, or bool: any that is set}; --labels' sets
# replace class folders, and captions are their names
NEEDS = {"eval_n": {"eval_every": bool}, "eval_features": {"eval_every": bool},
         "lab_evaluator": {"eval_every": bool}, "lab_tests": {"lab_evaluator": bool},
         "objects": {"labels": bool}, "classes": {"labels": None, "captions": False},
         "captions": {"labels": None}, "resize": {"folder": True}}
# a need in words; the setting that is no one flag
SAID = {True: "set", bool: "set", None: "unset", False: "unset"}
# needs that are no one flag, in words
WORDS = {"conditional": "the model is conditional (--classes, --labels, --data scenes, "
                        "ldm's --captions)",
         "folder": "--data is a folder (the built-in shapes and scenes are drawn square)"}


def parse(argv, usage):
    """MODEL and its flags -> name, the model's class, the flags given (no defaults)."""
    if not argv or argv[0].startswith("-"):
        print(usage.strip() + f"\n\nmodels: {', '.join(MODELS)}")
        sys.exit(0 if argv and argv[0] in ("-h", "--help") else 2)
    name = argv[0]
    cls = model_class(name)
    p = Parser(prog=f"train.py {name}", argument_default=argparse.SUPPRESS,
               formatter_class=argparse.RawDescriptionHelpFormatter,
               description=(cls.__doc__ or importlib.import_module(name).__doc__).strip())
    p.add_argument("--data", help="a folder of images, or built in: 'shapes', or the "
                   "lab's 'scenes' (a folder of either name: give ./shapes). default: shapes")
    p.add_argument("--image-size", type=COUNT, help="the images' side after cropping and "
                   "resizing. default: 32 for shapes, 64 for a folder")
    p.add_argument("--batch-size", type=COUNT, help="images per step, over all processes "
                   "(torchrun: a multiple of them). "
                   f"default: {getattr(cls, 'batch_size', 64)}")
    p.add_argument("--steps", type=COUNT0, help="total optimisation steps. default: 10000")
    p.add_argument("--out", help="the run's folder: ckpt.pt, sample grids, log.jsonl. "
                   f"default: runs/{name}")
    p.add_argument("--classes", action="store_true",
                   help="subfolders are classes: train a conditional model")
    p.add_argument("--labels", metavar="JSON",
                   help="the lab's train.json (file -> object names): condition on sets")
    p.add_argument("--objects", metavar="JSON",
                   help="the lab's objects.json, object name -> index. "
                   "default: beside --labels")
    p.add_argument("--resize", choices=["crop", "squash"],
                   help="non-square images: centre-crop, or squash. default: crop")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction,
                   help="random horizontal flips. default: on")
    if getattr(cls, "paired", False):
        p.add_argument("--direction", choices=["AtoB", "BtoA"],
                       help="translate A to B or B to A. default: AtoB")
    if getattr(cls, "captions", False):
        p.add_argument("--captions", action="store_true",
                       help="condition on captions: --data's captions.txt "
                       "(filename<TAB>caption a line), else the class folders' names, or the "
                       "shapes' names")
    p.add_argument("--ema", type=DECAY, help="EMA decay of the weights, 0 = off. "
                   f"default: {getattr(cls, 'ema_decay', 0)}")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the loss computation (networks included)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--quiet", action="store_true", help="no progress line while a grid is sampled")
    for flag, rng, what in COUNTS:
        default = TRAIN_DEFAULTS[flag.replace("-", "_")]
        p.add_argument("--" + flag, type=rng, help=f"{what}. default: {default}")
    p.add_argument("--eval-features", metavar="PATH",
                   help="the quality check's features: a classifier of evaluate.py, or "
                   "'inception'. default: inception")
    p.add_argument("--lab-evaluator", metavar="PATH",
                   help="the lab's accuracy at each quality check too (--labels or --data "
                   "scenes): a multi-label classifier of evaluate.py or the course's "
                   "ResNet-18 file; one sample per condition of each test file")
    p.add_argument("--lab-tests", metavar="JSON[,JSON]",
                   help="the lab's test files. default: test.json and new_test.json beside "
                   "--labels; the built-in lists for scenes")
    # diffusion: the grids' own, fast sampler
    if preview := getattr(cls, "preview", None):
        p.add_argument("--preview-sampler", choices=["ddpm", "ddim"],
                       help=f"the grids' sampler. default: {preview['sampler']}")
        p.add_argument("--preview-steps", type=COUNT, help="the grids' sampling steps "
                       f"(1000: the full chain). default: {preview['steps']}")
    add_flags(p.add_argument_group(f"{name} hyperparameters"), cls.__init__)
    return name, cls, vars(p.parse_args(argv[1:]))


def settings(name, cls, given):
    """The flags given on this command line, else the resumed run's, else the defaults ->
    args, config (the model's keywords), checkpoint or None. Every check that needs no
    data."""
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
        raise Fail(f"{ckpt_path} exists: add --resume to continue it, or choose another "
                   "--out")
    given_args = {k: v for k, v in given.items() if k not in hp}
    given_config = {k: v for k, v in given.items() if k in hp}
    args = {**TRAIN_DEFAULTS, **(ck["args"] if ck else {}), **given_args, "out": out}
    defaults = {k: p.default for k, p in hp.items()}
    config = {**defaults, **(ck["config"] if ck else {}), **given_config}
    # the model's own defaults, and its grids' sampler
    own = dict(batch_size=getattr(cls, "batch_size", 64),
               ema=getattr(cls, "ema_decay", 0.0),
               **{f"preview_{k}": v for k, v in getattr(cls, "preview", {}).items()})
    args.update({k: v for k, v in own.items() if args[k] is None})
    if getattr(cls, "domains", False) and args["data"] == "shapes":
        args["classes"] = True                                  # stargan: 12 domains
    if ck and args["steps"] <= ck["step"]:
        raise Fail(f"{ckpt_path} has done {ck['step']} steps already: "
                   f"give --steps above {ck['step']} to train on")
    applies(name, args)
    labelled = args["classes"] or args["labels"] or args["data"] == "scenes"
    needs(cls, given, {**args, **config, "conditional": bool(labelled or args.get("captions")),
                       "folder": args["data"] not in BUILT_IN})
    if given.get("preview_steps", 0) > config.get("T", 0):
        raise Fail(f"--preview-steps is more than the model's T = {config['T']}: give at most T")
    for k, p in hp.items():
        # a file keyword (ldm's --ae)
        path = config.get(k)
        if p.default is None and isinstance(path, str) and not os.path.isfile(path):
            raise Fail(f"no checkpoint at --{k.replace('_', '-')} {config[k]}")
    world = int(os.environ.get("WORLD_SIZE", 1))               # torchrun's processes
    if args["batch_size"] % world:
        raise Fail(f"--batch-size {args['batch_size']} is not a multiple of the {world} "
                   f"processes: give a multiple of {world}")
    size = args["image_size"] or (32 if args["data"] == "shapes" else 64)
    image = 3 * size * size * 4                                 # bytes: float32 RGB
    device = "cpu"
    if torch.cuda.is_available():
        device = f"cuda:{os.environ.get('LOCAL_RANK', 0)}"
    # one batch; a grid, sampled at once
    fits("--image-size", size, args["batch_size"] // world * image, device)
    network(name, config, size, args["batch_size"] // world, labelled, device)
    fits("--grid", args["grid"], args["grid"] * image, device)
    # --out a file, or read-only: said now, not after decoding images
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise Fail(f"cannot make the folder --out {out}: {e.strerror}")
    return args, config, ck


def applies(name, args):
    """Flags that do not apply to this model or to each other, and a --data that names two
    things, refused by name."""
    given = [f"--{f}" for f in ("classes", "labels") if args[f]]
    given += ["--data scenes"] if args["data"] == "scenes" else []     # labelled: sets
    if given and name in UNLABELLED:
        raise Fail(f"{given[0]} does not apply to {name}: {UNLABELLED[name]}; "
                   f"drop {given[0]}")
    if (data := args["data"]) in BUILT_IN and os.path.isdir(data):
        raise Fail(f"--data {data} names the built-in data and the folder ./{data}: "
                   f"give --data ./{data} for the folder, or rename it")


def needs(cls, given, setting):
    """A flag given where it has no effect (NEEDS; a model's `needs`), refused, its need said."""
    for key, need in (NEEDS | getattr(cls, "needs", {})).items():
        for other, test in need.items():
            v = setting.get(other)
            met = bool(v) if test is bool else v in test if type(test) is tuple else v == test
            if key in given and not met:
                what = " or ".join(test) if type(test) is tuple else SAID.get(test, test)
                unless = WORDS.get(other, f"{flag(other)} is {what}")
                raise Fail(f"{flag(key)} has no effect unless {unless}: change that, or drop it")


def network(name, config, size, batch, labelled=False, device="cpu"):
    """Network shapes that cannot work, refused with the reason before any work
    (GroupNorm's widths, the text encoder's heads, attention at no level, a minibatch-std
    group that does not divide a process's batch); then the model is built on the meta
    device (no memory), so its own checks run now too, and its weights, gradients, Adam's
    moments and EMA copy must fit the device's memory. Used by train.py and bench.py."""
    c = config
    if c.get("mbstd_group") and batch % c["mbstd_group"]:
        raise Fail(f"--mbstd-group {c['mbstd_group']} does not divide the batch of "
                   f"{batch} (per process): choose a divisor of it")
    for key in ("ch", "ae_ch"):
        if "ch_mult" in c and c.get(key) and c[key] % GROUPS:
            raise Fail(f"--{key.replace('_', '-')} {c[key]} is not a multiple of {GROUPS}: "
                       f"GroupNorm splits each width in {GROUPS} groups")
    if "text_dim" in c:
        encoder = importlib.import_module(name).TextEncoder
        heads = inspect.signature(encoder).parameters["heads"].default
        if c["text_dim"] % heads:
            raise Fail(f"--text-dim {c['text_dim']} is not a multiple of the text encoder's "
                       f"{heads} attention heads")
    if c.get("ch_mult") == ():
        raise Fail("--ch-mult '' gives the U-Net no level: "
                   "give at least one multiple, as 1")
    f = c.get("f", 1)                                           # ldm: the latent's size
    if "ch_mult" in c and size % f == 0:                        # the U-Net of ddpm.py
        what = f"the latent's size {size // f} (--image-size {size} / --f {f})"
        what = what if "f" in c else f"--image-size {size}"
        halvings = len(c["ch_mult"]) - 1
        mult = ",".join(map(str, c["ch_mult"]))
        if size // f % 2**halvings:
            raise Fail(f"{what} does not halve {halvings} times (--ch-mult {mult}): "
                       f"give a multiple of {2**halvings}")
        levels = [size // f >> i for i in range(halvings + 1)]
        if stray := [r for r in c["attn_res"] if r not in levels]:
            raise Fail(f"--attn-res {stray[0]} matches no level of the U-Net, whose "
                       f"resolutions are {', '.join(map(str, levels))}")
    if c.get("history"):                                        # cyclegan's 2 buffers
        fits("--history", c["history"], 2 * c["history"] * 3 * size * size * 4)
    classes = 2 if labelled else 0
    config = {"image_size": size, "channels": 3, "num_classes": classes, **config}
    with torch.device("meta"):
        model = build_model(name, config)
    # float32 weights, their gradients, Adam's two moments, an EMA copy; and the buffers
    n = sum(p.numel() for p in model.parameters())
    nbytes = 5 * 4 * n + sum(b.numel() * b.element_size() for b in model.buffers())
    fits(f"a {name} of", f"{n:,} parameters", nbytes, device, "choose smaller widths")
