"""Checkpoint in, pictures out.

    python sample.py runs/ddpm/ckpt.pt                          # a grid of 64 samples -> samples.png
    python sample.py runs/ddpm/ckpt.pt -n 10000 --out fid/      # one PNG per sample (for FID scripts)
    python sample.py runs/ddpm/ckpt.pt --label 3                # a conditional model: class 3 (or its name)
    python sample.py runs/ddpm/ckpt.pt --conditions test.json --out lab/   # the lab: lab/0.png, 1.png, ... a set each
    python sample.py runs/vae/ckpt.pt --gif                     # an animation, and a strip of its frames
    python sample.py runs/ddpm/ckpt.pt --help                   # the model's own sampling knobs

The model is rebuilt from the checkpoint alone; the EMA weights are used when it has them.
"""
import argparse, math, os, sys
from contextlib import nullcontext
import numpy as np
import torch
from PIL import Image
from support.data import find_images, find_pairs, grid, load_image, load_pair, to_uint8
from support.cli import (Fail, flag_help, Parser, add_flags, at_least, build_model, compile_sampling, condition, hyperparameters,
                 load_checkpoint, to_folder, watched)
from support.lab import read_conditions


def parse(argv):
    first = Parser(add_help=False)
    first.add_argument("ckpt", nargs="?")
    known, _ = first.parse_known_args(argv)
    if known.ckpt is None:
        print(__doc__.strip())
        sys.exit(0 if {"-h", "--help"} & set(argv) else 2)
    ck = load_checkpoint(known.ckpt)
    model = build_model(ck["model"], ck["config"])
    p = Parser(prog="sample.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ckpt")
    p.add_argument("-n", type=int, default=64, help="how many samples. default: 64")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="samples.png", help="a .png grid, or a folder ending in / for one PNG per sample")
    p.add_argument("--label", help="a class id or name, for a conditional model. default: every class in turn")
    p.add_argument("--conditions", metavar="JSON", help="the lab's test.json, a list of object-name lists: one sample "
                   "each, in that order (-n is their number), OUT/0.png, 1.png, ... or a grid")
    p.add_argument("--nrow", type=int, help="samples in a row of the grid. default: a square grid, or a column per class")
    p.add_argument("--gif", action="store_true", help="write the model's animation (OUT as .gif) and a strip of frames")
    p.add_argument("--batch-size", type=int, default=256, help="samples generated at once. default: 256")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights, not their moving average")
    p.add_argument("--quiet", action="store_true", help="no progress line on stderr while sampling")
    p.add_argument("--compile", action="store_true", help="torch.compile the sampling network (CUDA graphs on a GPU)")
    if getattr(model, "paired", False) or getattr(model, "unpaired", False):
        p.add_argument("--input", action="append", metavar="FILE|DIR", help="an image, or a folder of them, to translate "
                       "(pix2pix: side-by-side A|B pairs or A/ and B/ too; cyclegan: --direction BtoA); repeatable")
    knobs = {**hyperparameters(model.sample), **(hyperparameters(model.animate) if hasattr(model, "animate") else {})}
    helps = {**flag_help(model.sample), **(flag_help(model.animate) if hasattr(model, "animate") else {})}
    add_flags(p.add_argument_group(f"{ck['model']} sampling knobs"), knobs, helps)
    return ck, model, p.parse_args(argv)


def image_knob(path, config, device):
    """A file given to an image knob (--init photo.png) -> (1, C, H, W) in [-1, 1] at the model's size."""
    try:
        im, _ = load_image(path, config["image_size"])
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise Fail(f"cannot read image {path}: {e}")
    if config["channels"] == 1:
        im = im.mean(-1, keepdims=True)
    return (torch.tensor(im).float().permute(2, 0, 1)[None] / 127.5 - 1).to(device)


def as_tensor(im, channels, device):
    """(S, S, 3) uint8 -> (C, S, S) in [-1, 1]."""
    x = torch.tensor(im).float().permute(2, 0, 1) / 127.5 - 1
    return (x.mean(0, keepdim=True) if channels == 1 else x).to(device)


def side_by_side(path):
    """A file twice as wide as high holds a pair A|B."""
    with Image.open(path) as im:
        return im.size[0] == 2 * im.size[1]


def check(args, knobs, out):
    """The numbers and the destination, checked before any sampling: a bad --out costs nothing."""
    at_least(1, n=args.n, batch_size=args.batch_size, nrow=args.nrow, **{k: v for k, v in knobs.items() if k in ("steps", "frames")})
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


def translate(ck, model, args, knobs, device, autocast):
    """pix2pix: each --input -> G(A); with targets, rows of input | output | target and the mean L1
    and PSNR against them (on the [0, 1] pixel scale)."""
    if not args.input:
        raise Fail("pix2pix translates images: give --input FILE or --input FOLDER")
    size, C = ck["config"]["image_size"], ck["config"]["channels"]
    A, B, stems = [], [], []
    files = [f for p in args.input for f in (find_pairs(p) if os.path.isdir(p) else [p])]
    if not files:
        raise Fail(f"no images found in --input {' '.join(args.input)}")
    for f in files:
        try:
            pair = isinstance(f, tuple) or side_by_side(f)
            ims = np.split(load_pair(f, size), 2, -1) if pair else [load_image(f, size)[0]]
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise Fail(f"cannot read image {f}: {e}")
        if pair and ck["args"].get("direction") == "BtoA":
            ims = ims[::-1]
        A.append(as_tensor(ims[0], C, device))
        B.append(as_tensor(ims[1], C, device) if pair else None)
        stems.append(os.path.splitext(os.path.basename(f[0] if isinstance(f, tuple) else f))[0])
    a = torch.stack(A)
    with autocast:
        out = torch.cat([model.sample(len(c), c, **knobs).float() for c in a.split(args.batch_size)])
    if to_folder(args.out):
        os.makedirs(args.out, exist_ok=True)
        for stem, im in zip(stems, to_uint8(out)):
            Image.fromarray(im[..., 0] if C == 1 else im).save(os.path.join(args.out, stem + ".png"))
        print(f"wrote {len(out)} translations to {args.out}")
    if all(b is not None for b in B):
        b = torch.stack(B)
        err = (out - b) / 2                                              # on the [0, 1] pixel scale
        psnr = (-10 * torch.log10((err**2).mean((1, 2, 3)).clamp_min(1e-10))).mean()
        print(f"{len(b)} pairs: mean L1 {err.abs().mean():.4f}, PSNR {psnr:.2f} dB")
        rows = torch.stack([a, out, b], 1).flatten(0, 1)
    else:
        rows = torch.stack([a, out], 1).flatten(0, 1)
    if not to_folder(args.out):
        grid(rows, nrow=len(rows) // len(a)).save(args.out)
        print(f"wrote {args.out}: rows of input | output" + (" | target" if len(rows) == 3 * len(a) else ""))


def cycle(ck, model, args, knobs, device, autocast):
    """cyclegan: each --input x -> its translation G(x) (F(x) with --direction BtoA) and the way back,
    F(G(x)): rows of input | translation | reconstruction, and the mean cycle L1 on the [0, 1] scale."""
    if not args.input:
        raise Fail("cyclegan translates images: give --input FILE or --input FOLDER")
    size, C = ck["config"]["image_size"], ck["config"]["channels"]
    files = [f for p in args.input for f in (find_images(p) if os.path.isdir(p) else [p])]
    if not files:
        raise Fail(f"no images found in {' '.join(args.input)}")
    try:
        x = torch.stack([as_tensor(load_image(f, size)[0], C, device) for f in files])      # (n, C, S, S)
    except (OSError, ValueError) as e:
        raise Fail(f"cannot read image: {e}")
    back = "BtoA" if knobs.get("direction", "AtoB") == "AtoB" else "AtoB"
    with autocast:
        t = torch.cat([model.sample(len(c), c, **knobs).float() for c in x.split(args.batch_size)])
        r = torch.cat([model.sample(len(c), c, direction=back).float() for c in t.split(args.batch_size)])
    print(f"{len(x)} images: mean cycle L1 {((r - x) / 2).abs().mean():.4f}")
    if to_folder(args.out):
        os.makedirs(args.out, exist_ok=True)
        for f, im in zip(files, to_uint8(t)):
            stem = os.path.splitext(os.path.basename(f))[0]
            Image.fromarray(im[..., 0] if C == 1 else im).save(os.path.join(args.out, stem + ".png"))
        print(f"wrote {len(t)} translations to {args.out}")
    else:
        grid(torch.stack([x, t, r], 1).flatten(0, 1), nrow=3).save(args.out)
        print(f"wrote {args.out}: rows of input | translation | reconstruction")


def main(argv):
    ck, model, args = parse(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    autocast = torch.autocast("cuda", torch.bfloat16) if device.type == "cuda" else nullcontext()
    try:
        model.load_state_dict(ck["weights"] if args.no_ema or ck.get("ema") is None else ck["ema"])
    except (KeyError, RuntimeError) as e:                      # e.g. a class-conditional DDPM from before sets
        raise Fail(f"{args.ckpt}: its weights do not fit its own configuration (damaged, edited or from an older "
                   f"version of this code: {str(e).strip().splitlines()[-1].strip().split(', the shape')[0]})")
    model.to(device).eval()
    if args.compile:
        compile_sampling(model, device.type == "cuda")
    torch.manual_seed(args.seed)
    draw = model.animate if args.gif and hasattr(model, "animate") else model.sample
    accepts = hyperparameters(draw)
    knobs = {k: image_knob(v, ck["config"], device) if k in getattr(model, "image_knobs", ()) else v   # only those given
             for k, v in vars(args).items() if k in accepts}
    check(args, knobs, args.out)
    knobs |= watched(draw, "sampling", args.quiet)                     # a progress line on stderr, for diffusion
    if knobs.get("prompt") and hasattr(model, "tokenize"):                 # a caption model reads max_len words
        if len(read := model.detokenize(model.tokenize([knobs["prompt"]]))[0].split()) == model.max_len:
            print(f"warning: the model reads at most {model.max_len} words of a prompt; it reads '{' '.join(read)}'")
    names = ck.get("class_names") or [str(i) for i in range(ck["config"].get("num_classes", 0))]
    if args.gif and not hasattr(model, "animate"):
        raise Fail(f"a {ck['model']} has no animation")
    if getattr(model, "paired", False):
        return translate(ck, model, args, knobs, device, autocast)
    if getattr(model, "unpaired", False):
        return cycle(ck, model, args, knobs, device, autocast)
    k = ck["config"].get("num_classes", 0)
    y = condition(ck, args, args.n, device)
    if args.conditions:                                                  # the lab: one sample per set of objects
        y = torch.from_numpy(read_conditions(args.conditions, names)).to(device)   # (n, K) multi-hot
        args.n = len(y)
    if y is None and k:                                                  # every class in turn, counted over all
        y = torch.arange(args.n, device=device) % k                      # n samples, not within each batch

    if args.gif:
        with autocast:
            frames = model.animate(args.n, y, **knobs).float().cpu()           # (F, n, C, H, W)
        stem = os.path.splitext(args.out)[0]
        pictures = [grid(f) for f in frames]
        pictures[0].save(stem + ".gif", save_all=True, append_images=pictures[1:], duration=60, loop=0)
        picks = torch.linspace(0, len(frames) - 1, 8).round().long()
        strip = frames[picks, :8].transpose(0, 1).flatten(0, 1)         # rows: samples, columns: frames
        grid(strip, nrow=len(picks)).save(stem + "_strip.png")
        print(f"wrote {stem}.gif ({len(frames)} frames) and {stem}_strip.png")
        return

    samples = []
    for lo in range(0, args.n, args.batch_size):
        b = min(args.batch_size, args.n - lo)
        yb = y[lo:lo + b] if y is not None else None
        with autocast:
            samples.append(model.sample(b, yb, **knobs).float().cpu())
    x = torch.cat(samples)                                               # (n, C, H, W) in [-1, 1]
    labels = y.cpu() if k and not args.conditions else None             # class subfolders, not for sets
    if to_folder(args.out):
        for i, im in enumerate(x):
            folder = args.out if labels is None else os.path.join(args.out, names[labels[i]])
            os.makedirs(folder, exist_ok=True)
            a = to_uint8(im)                                             # (H, W, C)
            name = f"{i}.png" if args.conditions else f"{i:05d}.png"                # the lab's names: 0.png, 1.png, ...
            Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a).save(os.path.join(folder, name))
        print(f"wrote {args.n} images to {args.out}" + (" in class subfolders" if labels is not None else ""))
    else:
        grid(x, nrow=args.nrow or (k if labels is not None and args.label is None and args.n >= k else None)).save(args.out)
        print(f"wrote {args.out}")


def cli(argv):
    """The command line: main, with a mistake in the user's input as one line and exit status 1."""
    try:
        main(argv)
    except (Fail, ValueError) as e:                         # ValueError: knobs the model rejects (--sampler euler)
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
