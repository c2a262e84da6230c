"""Checkpoint in, pictures out.

    python sample.py runs/ddpm/ckpt.pt                     # a grid of 64 samples: samples.png
    python sample.py runs/ddpm/ckpt.pt -n 10000 --out fid/ # one PNG per sample (for FID scripts)
    python sample.py runs/ddpm/ckpt.pt --label 3           # conditional: class 3 (or its name)
    python sample.py runs/ddpm/ckpt.pt --conditions test.json --out lab/  # the lab: a set each
    python sample.py runs/vae/ckpt.pt --gif                # an animation, and a strip of frames
    python sample.py runs/pix2pix/ckpt.pt --input a.png    # translate an image (pix2pix, cyclegan)
    python sample.py runs/stylegan/ckpt.pt --invert a.png  # invert a GAN: reconstruct, then edit
    python sample.py runs/ddpm/ckpt.pt --help              # the model's own sampling knobs

The model is rebuilt from the checkpoint alone; the EMA weights are used when it has them.
"""
import argparse, os, sys
from contextlib import nullcontext
import torch
from PIL import Image
from support.cli import COUNT, SEED, Fail, fits, flag
from support.cli import (Parser, add_flags, build_model, compile_sampling, condition,
                         hyperparameters, load_checkpoint, watched)
from support.folders import load_image
from support.guidance import flags as guidance_flags, guide
from support.invert import invert_flags, inversion
from support.lab import read_conditions
from support.pictures import (destination, finite, grid, save_animation, save_each,
                              to_folder)
from support.domains import domains
from support.translate import cycle, translate
from support.upscale import upscale

# a model's attribute -> the function that runs it on sample.py's --input images
TRANSLATORS = {"paired": translate, "unpaired": cycle, "domains": domains,
               "upscales": upscale}


def main(argv):
    ck, model, args = parse(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    autocast = torch.autocast("cuda", torch.bfloat16) if device.type == "cuda" else nullcontext()
    load_weights(model, ck, args)
    if args.invert is not None:                          # GAN inversion: support/invert.py
        return inversion(ck, model, args, device)
    if args.gif and not hasattr(model, "animate"):
        raise Fail(f"a {ck['model']} has no animation")
    draw = model.animate if args.gif else model.sample
    knobs = given_knobs(draw, model, args, ck["config"], device)
    used = settings(draw, knobs)
    applies(ck, model, args, knobs, used)
    ck = guide(ck, model, args, knobs, device)     # --classifier, --target-colour: their hook
    translates = translator(model)
    k = ck["config"].get("num_classes", 0)
    names = ck.get("class_names") or [str(i) for i in range(k)]
    y = None if translates else conditions(ck, args, names, device)
    check(args, used, ck["config"], device)
    model.to(device).eval()
    if args.compile:
        compile_sampling(model, device.type == "cuda")
    torch.manual_seed(args.seed)
    knobs |= watched(draw, "sampling", args.quiet)      # a progress line on stderr, for diffusion
    warn_of_a_long_prompt(model, knobs)
    if translates:
        return translates(ck, model, args, knobs, device, autocast)
    if args.gif:
        with autocast:
            frames = model.animate(args.n, y, **knobs).float().cpu()           # (F, n, C, H, W)
        finite(frames, ck, used)
        return save_animation(frames, args.out, args.nrow)
    samples = []
    batch = args.n if knobs.get("mix") else args.batch_size    # a mixing table: one set of w's
    for lo in range(0, args.n, batch):
        b = min(batch, args.n - lo)
        yb = y[lo:lo + b] if y is not None else None
        with autocast:
            samples.append(model.sample(b, yb, **knobs).float().cpu())
    x = torch.cat(samples)                                             # (n, C, H, W) in [-1, 1]
    finite(x, ck, used)
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
    p.add_argument("-n", type=COUNT, help="how many samples. default: 64")
    p.add_argument("--seed", type=SEED, default=0,
                   help="the random seed: the same seed, the same samples. default: 0")
    p.add_argument("--out", default="samples.png",
                   help="a .png grid, or a folder ending in / for one PNG per sample")
    p.add_argument("--label",
                   help="a class id or name, for a conditional model. default: every class in turn")
    p.add_argument("--conditions", metavar="JSON",
                   help="the lab's test.json, a list of object-name lists: one sample each, in "
                        "that order (-n is their number), OUT/0.png, 1.png, ... or a grid")
    p.add_argument("--nrow", type=COUNT,
                   help="samples in a row of the grid. "
                        "default: a square grid, or a column per class")
    p.add_argument("--gif", action="store_true",
                   help="write the model's animation (OUT as .gif) and a strip of frames")
    p.add_argument("--batch-size", type=COUNT, default=256,
                   help="samples generated at once. default: 256")
    p.add_argument("--no-ema", action="store_true",
                   help="use the raw weights, not their moving average")
    p.add_argument("--quiet", action="store_true", help="no progress line on stderr while sampling")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the sampling network (CUDA graphs on a GPU)")
    invert_flags(p)
    if translator(model):
        p.add_argument("--input", action="append", metavar="FILE|DIR",
                       help="an image, or a folder of them, to translate (pix2pix: side-by-side "
                            "A|B pairs or A/ and B/ too; cyclegan: --direction BtoA; stargan: "
                            "to every domain; srgan: 4x, beside bicubic); repeatable")
    draws = [model.sample, model.animate] if hasattr(model, "animate") else [model.sample]
    add_flags(p.add_argument_group(f"{ck['model']} sampling knobs"), *draws)
    guidance_flags(p, model)
    return ck, model, p.parse_args(argv)


def translator(model):
    """What sample.py does with --input for this model (TRANSLATORS), or None: it draws samples."""
    return next((TRANSLATORS[a] for a in TRANSLATORS if getattr(model, a, False)), None)


def load_weights(model, ck, args):
    """The moving average of the weights when the checkpoint has it (--no-ema: the raw ones); an
    ldm still training its autoencoder has no diffusion to sample from yet."""
    if args.no_ema and ck.get("ema") is None:
        raise Fail(f"--no-ema: {args.ckpt} has no moving average, only its raw weights: drop it")
    try:
        model.load_state_dict(ck["weights"] if args.no_ema or ck.get("ema") is None else ck["ema"])
    except (KeyError, RuntimeError) as e:           # e.g. a class-conditional DDPM from before sets
        why = str(e).strip().splitlines()[-1].strip().split(", the shape")[0]
        raise Fail(f"{args.ckpt}: its weights do not fit its own configuration (damaged, edited "
                   f"or from an older version of this code: {why})")
    stage = ck["weights"].get("_extra_state") or {}     # ldm's stage counter, in the raw weights
    done = stage.get("ae_steps_done", 0)                # (train.py's EMA copy does not count)
    if done < getattr(model, "ae_steps", 0):
        raise Fail(f"{args.ckpt} is an ldm still in its first stage: {done} of {model.ae_steps} "
                   f"autoencoder steps done, no diffusion yet: train on with train.py ldm "
                   f"--resume --out {os.path.dirname(args.ckpt) or '.'}")


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


def settings(draw, knobs):
    """The knobs draw() will run with: those given, and the defaults of the rest."""
    return {k: p.default for k, p in hyperparameters(draw).items()} | knobs


def applies(ck, model, args, knobs, used):
    """A flag that would be silently ignored (it does not apply to this model, this checkpoint or
    the other flags given) is refused by name, before any work."""
    name = ck["model"]
    draws = [model.sample, model.animate] if hasattr(model, "animate") else [model.sample]
    given = set(vars(args)) & set().union(*map(hyperparameters, draws))
    if unused := sorted(given - set(hyperparameters(model.animate if args.gif else model.sample))):
        mode = "with" if args.gif else "without"
        raise Fail(f"{flag(unused[0])} does not apply {mode} --gif for a {name}: drop it")
    if translator(model):
        for f, v in (("-n", args.n), ("--label", args.label), ("--conditions", args.conditions),
                     ("--nrow", args.nrow)):
            if v is not None:
                raise Fail(f"{f} does not apply to a {name}: it translates each --input image")
    if args.label is not None and args.conditions:
        raise Fail("--label and --conditions both say what to draw: give one of them")
    if args.conditions and args.n is not None:
        raise Fail("-n does not apply with --conditions: one sample is drawn per set in it")
    if args.nrow is not None and to_folder(args.out):
        raise Fail(f"--nrow applies to a grid, not to --out {args.out} (one PNG per sample)")
    if args.gif and to_folder(args.out):
        raise Fail(f"--gif writes OUT.gif and OUT_strip.png: name a file, not --out {args.out}")
    if "guidance" in knobs:
        guided(ck, model, knobs)
    if "eta" in knobs and used.get("sampler") != "ddim":
        raise Fail("--eta is DDIM's noise: it applies with --sampler ddim")
    if "variance" in knobs and used.get("sampler") != "ddpm":
        raise Fail("--variance is the DDPM step's: it applies with --sampler ddpm")
    if "strength" in knobs and (knobs.get("init") is None or knobs.get("mask") is not None):
        raise Fail("--strength applies to img2img: with --init and without --mask")


def guided(ck, model, knobs):
    """Classifier-free guidance needs a condition to steer towards, and a model that learned the
    unconditional eps too (the condition dropped with p_uncond > 0 in training)."""
    config = ck["config"]
    p_uncond = config.get("p_uncond", hyperparameters(type(model).__init__)["p_uncond"].default)
    if not config.get("num_classes") and not config.get("vocab"):
        raise Fail(f"--guidance applies to a model trained with classes or captions: this "
                   f"{ck['model']} was trained with neither")
    if not p_uncond:
        raise Fail(f"--guidance needs a {ck['model']} trained with --p-uncond above 0 (this one: "
                   "0): it never learned the unconditional eps")
    if config.get("vocab") and not knobs.get("prompt"):
        raise Fail("--guidance steers towards a --prompt: give one")


def check(args, used, config, device):
    """The destination and the sizes, checked before any sampling: a bad --out costs nothing, and
    a count that cannot fit is refused with the number, before it is allocated."""
    destination(args.out, args.gif)
    if args.n is None:                                       # a translation: one per --input
        return
    if args.nrow is not None and args.nrow > args.n:
        raise Fail(f"--nrow {args.nrow} is more than the {args.n} samples: choose at most -n")
    image = config["channels"] * config["image_size"] ** 2 * 4       # one sample, float32 bytes
    fits("-n", args.n, args.n * image)                               # the samples, on the CPU
    if args.gif:                                                     # every frame, on the device
        frames = min(used["frames"], used.get("steps", used["frames"]))
        fits("--frames", used["frames"], frames * args.n * image, device)


def warn_of_a_long_prompt(model, knobs):
    """A caption model reads at most max_len words of --prompt: say which it read."""
    if knobs.get("prompt") and hasattr(model, "tokenize"):
        read = model.detokenize(model.tokenize([knobs["prompt"]]))[0].split()
        if len(read) == model.max_len:
            print(f"warning: the model reads at most {model.max_len} words of a prompt; "
                  f"it reads '{' '.join(read)}'")


def conditions(ck, args, names, device):
    """The condition y of each sample: --label, the lab's --conditions (then -n is their number),
    or, for a conditional model, every class in turn, counted over all n samples, not per batch.
    -n is 64 when not given."""
    args.n = 64 if args.n is None else args.n
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
