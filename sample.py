"""Checkpoint in, pictures out.

    python sample.py runs/ddpm/ckpt.pt                     # a grid of 64 samples: samples.png
    python sample.py runs/ddpm/ckpt.pt -n 10000 --out fid/ # one PNG per sample (for FID scripts)
    python sample.py runs/ddpm/ckpt.pt --label 3           # conditional: class 3 (or its name)
    python sample.py runs/ddpm/ckpt.pt --conditions test.json --out lab/  # the lab: a set each
    python sample.py runs/vae/ckpt.pt --gif                # an animation, and a strip of frames
    python sample.py runs/pix2pix/ckpt.pt --input a.png    # translate an image (pix2pix, cyclegan)
    python sample.py runs/ddpm/ckpt.pt --help              # the model's own sampling knobs

The model is rebuilt from the checkpoint alone; the EMA weights are used when it has them.
"""
import argparse, math, os, sys
from contextlib import nullcontext
import torch
from PIL import Image
from support.cli import (Fail, Parser, add_flags, at_least, build_model, compile_sampling,
                         condition, hyperparameters, load_checkpoint, to_folder, watched)
from support.folders import load_image
from support.lab import read_conditions
from support.pictures import grid, save_animation, save_each
from support.translate import cycle, translate


def main(argv):
    ck, model, args = parse(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    autocast = torch.autocast("cuda", torch.bfloat16) if device.type == "cuda" else nullcontext()
    load_weights(model, ck, args)
    model.to(device).eval()
    if args.compile:
        compile_sampling(model, device.type == "cuda")
    torch.manual_seed(args.seed)
    draw = model.animate if args.gif and hasattr(model, "animate") else model.sample
    knobs = given_knobs(draw, model, args, ck["config"], device)
    check(args, knobs, args.out)
    knobs |= watched(draw, "sampling", args.quiet)      # a progress line on stderr, for diffusion
    warn_of_a_long_prompt(model, knobs)
    if args.gif and not hasattr(model, "animate"):
        raise Fail(f"a {ck['model']} has no animation")
    if getattr(model, "paired", False):
        return translate(ck, model, args, knobs, device, autocast)
    if getattr(model, "unpaired", False):
        return cycle(ck, model, args, knobs, device, autocast)
    k = ck["config"].get("num_classes", 0)
    names = ck.get("class_names") or [str(i) for i in range(k)]
    y = conditions(ck, args, names, device)
    if args.gif:
        with autocast:
            frames = model.animate(args.n, y, **knobs).float().cpu()           # (F, n, C, H, W)
        return save_animation(frames, args.out)
    samples = []
    for lo in range(0, args.n, args.batch_size):
        b = min(args.batch_size, args.n - lo)
        yb = y[lo:lo + b] if y is not None else None
        with autocast:
            samples.append(model.sample(b, yb, **knobs).float().cpu())
    x = torch.cat(samples)                                             # (n, C, H, W) in [-1, 1]
    labels = y.cpu() if k and not args.conditions else None           # class subfolders, not sets
    if to_folder(args.out):
        return save_each(x, args.out, names, labels, lab=bool(args.conditions))
    by_class = labels is not None and args.label is None and args.n >= k   # a column per class
    grid(x, nrow=args.nrow or (k if by_class else None)).save(args.out)
    print(f"wrote {args.out}")


def parse(argv):
    """The checkpoint first, to build its model: the model's sample() keywords become flags."""
    first = Parser(add_help=False)
    first.add_argument("ckpt", nargs="?", help="a checkpoint written by train.py")
    known, _ = first.parse_known_args(argv)
    if known.ckpt is None:
        print(__doc__.strip())
        sys.exit(0 if {"-h", "--help"} & set(argv) else 2)
    ck = load_checkpoint(known.ckpt)
    model = build_model(ck["model"], ck["config"])
    p = Parser(prog="sample.py", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ckpt", help="a checkpoint written by train.py (runs/MODEL/ckpt.pt)")
    p.add_argument("-n", type=int, default=64, help="how many samples. default: 64")
    p.add_argument("--seed", type=int, default=0,
                   help="the random seed: the same seed, the same samples. default: 0")
    p.add_argument("--out", default="samples.png",
                   help="a .png grid, or a folder ending in / for one PNG per sample")
    p.add_argument("--label",
                   help="a class id or name, for a conditional model. default: every class in turn")
    p.add_argument("--conditions", metavar="JSON",
                   help="the lab's test.json, a list of object-name lists: one sample each, in "
                        "that order (-n is their number), OUT/0.png, 1.png, ... or a grid")
    p.add_argument("--nrow", type=int,
                   help="samples in a row of the grid. "
                        "default: a square grid, or a column per class")
    p.add_argument("--gif", action="store_true",
                   help="write the model's animation (OUT as .gif) and a strip of frames")
    p.add_argument("--batch-size", type=int, default=256,
                   help="samples generated at once. default: 256")
    p.add_argument("--no-ema", action="store_true",
                   help="use the raw weights, not their moving average")
    p.add_argument("--quiet", action="store_true", help="no progress line on stderr while sampling")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the sampling network (CUDA graphs on a GPU)")
    if getattr(model, "paired", False) or getattr(model, "unpaired", False):
        p.add_argument("--input", action="append", metavar="FILE|DIR",
                       help="an image, or a folder of them, to translate (pix2pix: side-by-side "
                            "A|B pairs or A/ and B/ too; cyclegan: --direction BtoA); repeatable")
    draws = [model.sample, model.animate] if hasattr(model, "animate") else [model.sample]
    add_flags(p.add_argument_group(f"{ck['model']} sampling knobs"), *draws)
    return ck, model, p.parse_args(argv)


def load_weights(model, ck, args):
    """The moving average of the weights when the checkpoint has it (--no-ema: the raw ones)."""
    try:
        model.load_state_dict(ck["weights"] if args.no_ema or ck.get("ema") is None else ck["ema"])
    except (KeyError, RuntimeError) as e:           # e.g. a class-conditional DDPM from before sets
        why = str(e).strip().splitlines()[-1].strip().split(", the shape")[0]
        raise Fail(f"{args.ckpt}: its weights do not fit its own configuration (damaged, edited "
                   f"or from an older version of this code: {why})")


def given_knobs(draw, model, args, config, device):
    """The knobs given on the command line, as draw() takes them; an image knob (--init
    photo.png) is read into (1, C, H, W) in [-1, 1] at the model's size."""
    accepts = hyperparameters(draw)
    images = getattr(model, "image_knobs", ())
    knobs = {}
    for k, v in vars(args).items():                                   # only those given
        if k in accepts:
            knobs[k] = image_knob(v, config, device) if k in images else v
    return knobs


def image_knob(path, config, device):
    """A file given to an image knob -> (1, C, H, W) in [-1, 1] at the model's size."""
    try:
        im, _ = load_image(path, config["image_size"])
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise Fail(f"cannot read image {path}: {e}")
    if config["channels"] == 1:
        im = im.mean(-1, keepdims=True)
    return (torch.tensor(im).float().permute(2, 0, 1)[None] / 127.5 - 1).to(device)


def check(args, knobs, out):
    """The numbers and the destination, checked before any sampling: a bad --out costs nothing."""
    counts = {k: v for k, v in knobs.items() if k in ("steps", "frames")}
    at_least(1, n=args.n, batch_size=args.batch_size, nrow=args.nrow, **counts)
    if bad := [k for k, v in knobs.items() if isinstance(v, float) and not math.isfinite(v)]:
        raise Fail(f"--{bad[0].replace('_', '-')} must be a finite number (got {knobs[bad[0]]})")
    if not 0 <= knobs.get("strength", 0) <= 1:
        raise Fail(f"--strength is a fraction of the chain, in [0, 1] (got {knobs['strength']})")
    if not to_folder(out) and os.path.splitext(out)[1].lower() not in Image.registered_extensions():
        raise Fail(f"--out {out}: name a picture (.png) or a folder (ending in /)")
    try:
        os.makedirs(out if to_folder(out) else os.path.dirname(out) or ".", exist_ok=True)
    except OSError as e:
        raise Fail(f"cannot write --out {out}: {e.strerror}")


def warn_of_a_long_prompt(model, knobs):
    """A caption model reads at most max_len words of --prompt: say which it read."""
    if knobs.get("prompt") and hasattr(model, "tokenize"):
        read = model.detokenize(model.tokenize([knobs["prompt"]]))[0].split()
        if len(read) == model.max_len:
            print(f"warning: the model reads at most {model.max_len} words of a prompt; "
                  f"it reads '{' '.join(read)}'")


def conditions(ck, args, names, device):
    """The condition y of each sample: --label, the lab's --conditions (then -n is their number),
    or, for a conditional model, every class in turn, counted over all n samples, not per batch."""
    y = condition(ck, args, args.n, device)
    if args.conditions:                                   # the lab: one sample per set of objects
        y = torch.from_numpy(read_conditions(args.conditions, names)).to(device)  # (n, K) multi-hot
        args.n = len(y)
    k = ck["config"].get("num_classes", 0)
    if y is None and k:
        y = torch.arange(args.n, device=device) % k
    return y


def cli(argv):
    """The command line: main, with a mistake in the user's input as one line and exit status 1."""
    try:
        main(argv)
    except (Fail, ValueError) as e:      # ValueError: knobs the model rejects (--sampler euler)
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
