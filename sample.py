"""Checkpoint in, pictures out. The model is rebuilt from the checkpoint alone; its moving
average of the weights (EMA) is used when it has one.

    python sample.py runs/ddpm/ckpt.pt                   # 64 samples: samples.png
    python sample.py runs/ddpm/ckpt.pt -n 10000 --out fid/    # one PNG each (FID)
    python sample.py runs/ddpm/ckpt.pt --label 3         # class 3 (or its name)
    python sample.py runs/ddpm/ckpt.pt --conditions test.json --out lab/   # the lab
    python sample.py runs/vae/ckpt.pt --gif              # an animation, a strip of frames
    python sample.py runs/pix2pix/ckpt.pt --input a.png  # translate an image
    python sample.py runs/stylegan/ckpt.pt --invert a.png     # invert a GAN, then edit
    python sample.py runs/ddpm/ckpt.pt --help            # the model's own sampling knobs
"""
import argparse, sys
from contextlib import nullcontext
import torch
from support.cli import COUNT, SEED, Fail, Parser, add_flags, build_model
from support.cli import hyperparameters, load_checkpoint, watched
from support.guidance import flags as guidance_flags, guide
from support.invert import invert_flags, inversion
from support.pictures import finite, grid, numbered, save_animation, save_each, to_folder
from support.sampling import check, compile_sampling, conditions, given_knobs
from support.sampling import load_weights, refuse, warn_of_a_long_prompt
from support.translate import kind, translate


def main(argv):
    ck, model, args = parse(argv)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    autocast = torch.autocast("cuda", torch.bfloat16) if cuda else nullcontext()
    load_weights(model, ck, args)
    # GAN inversion: support/invert.py
    if args.invert is not None:
        return inversion(ck, model, args, device)
    if args.gif and not hasattr(model, "animate"):
        raise Fail(f"a {ck['model']} has no animation")
    draw = model.animate if args.gif else model.sample
    knobs = given_knobs(draw, model, args, ck["config"], device)
    # the knobs draw() will run with: those given, and the defaults of the rest
    used = {k: p.default for k, p in hyperparameters(draw).items()} | knobs
    refuse(ck, model, args, knobs, used)
    # --classifier, --target-colour: their hook in knobs
    ck = guide(ck, model, args, knobs, device)
    k = ck["config"].get("num_classes", 0)
    names = ck.get("class_names") or [str(i) for i in range(k)]
    y = None if kind(model) else conditions(ck, args, names, device)
    # class subfolders (not the lab's sets), and in a grid a column per class
    labels = None if y is None or args.conditions else y.cpu()
    # --out DIR/'s files, named once -n is known to fit (a translation names its own)
    files = lambda: numbered(args.n, names, labels, bool(args.conditions))
    check(args, used, ck["config"], device, None if kind(model) else files)
    model.to(device).eval()
    if args.compile:
        compile_sampling(model, cuda)
    torch.manual_seed(args.seed)
    # a progress line on stderr, for diffusion
    knobs |= watched(draw, "sampling", args.quiet)
    warn_of_a_long_prompt(model, knobs)
    if kind(model):
        return translate(ck, model, args, knobs, device, autocast)
    if args.gif:
        with autocast:
            frames = model.animate(args.n, y, **knobs).float().cpu()   # (F, n, C, H, W)
        finite(frames, ck, used)
        return save_animation(frames, args.out, args.nrow)
    samples = []
    # a mixing table (--mix) is drawn at once: one set of w's for its rows and columns
    batch = args.n if knobs.get("mix") else args.batch_size
    for i in torch.arange(args.n).split(batch):
        with autocast:
            x = model.sample(len(i), y if y is None else y[i], **knobs)
        samples.append(x.float().cpu())
    x = torch.cat(samples)                                     # (n, C, H, W) in [-1, 1]
    finite(x, ck, used)
    if to_folder(args.out):
        save_each(x, args.out, files())
        where = " in class subfolders" if labels is not None else ""
        return print(f"wrote {len(x)} images to {args.out}{where}")
    by_class = labels is not None and args.label is None and args.n >= k
    grid(x, nrow=args.nrow or (k if by_class else None)).save(args.out)
    print(f"wrote {args.out}")


def parse(argv):
    """The checkpoint first, to build its model: its sample() keywords become flags."""
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
    p.add_argument("-n", type=COUNT, help="how many samples. default: 64")
    p.add_argument("--seed", type=SEED, default=0,
                   help="the random seed: the same seed, the same samples. default: 0")
    p.add_argument("--out", default="samples.png",
                   help="a .png grid, or a folder ending in / for one PNG per sample")
    p.add_argument("--label", help="a class id or name, for a conditional model. "
                                   "default: every class in turn")
    p.add_argument("--conditions", metavar="JSON",
                   help="the lab's test.json, a list of object-name lists: one sample "
                        "each, in that order (-n is their number), OUT/0.png, 1.png, "
                        "... or a grid")
    p.add_argument("--nrow", type=COUNT,
                   help="samples in a row of the grid. "
                        "default: a square grid, or a column per class")
    p.add_argument("--gif", action="store_true",
                   help="write the model's animation (OUT as .gif) and a strip of frames")
    p.add_argument("--batch-size", type=COUNT, default=256,
                   help="samples generated at once. default: 256")
    p.add_argument("--no-ema", action="store_true",
                   help="use the raw weights, not their moving average")
    p.add_argument("--quiet", action="store_true",
                   help="no progress line on stderr while sampling")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the sampling network (CUDA graphs on a GPU)")
    invert_flags(p)
    if kind(model):
        p.add_argument("--input", action="append", metavar="FILE|DIR",
                       help="an image, or a folder of them, to translate (pix2pix: "
                            "side-by-side A|B pairs or A/ and B/ too; cyclegan: "
                            "--direction BtoA; stargan: to every domain; srgan: 4x, "
                            "beside bicubic); repeatable")
    draws = [model.sample, model.animate] if hasattr(model, "animate") else [model.sample]
    add_flags(p.add_argument_group(f"{ck['model']} sampling knobs"), *draws)
    guidance_flags(p, model)
    return ck, model, p.parse_args(argv)


def cli(argv):
    """The command line: main, with a mistake in the user's input as one line, exit 1."""
    try:
        main(argv)
    # ValueError: knobs the model rejects (--sampler euler)
    except (Fail, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
