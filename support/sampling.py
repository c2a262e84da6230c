"""sample.py's checks, before any work: the weights to load, the knobs as the model takes
them, and each flag that would be silently ignored (it does not apply to this model, this
checkpoint or the other flags given), or a size that cannot fit, refused in one line."""
import os
import torch
from PIL import Image
from support.cli import Fail, fits, flag, hyperparameters
from support.folders import load_image
from support.lab import read_conditions
from support.outputs import named
from support.pictures import animation, destination, to_folder
from support.translate import kind


def load_weights(model, ck, args):
    """The moving average of the weights when the checkpoint has it (--no-ema: the raw
    ones); an ldm still training its autoencoder has no diffusion to sample from yet."""
    ema = ck.get("ema")
    if args.no_ema and ema is None:
        raise Fail(f"--no-ema: {args.ckpt} has no moving average, only its raw weights: "
                   "drop it")
    try:
        model.load_state_dict(ck["weights"] if args.no_ema or ema is None else ema)
    # e.g. a class-conditional DDPM from before sets
    except (KeyError, RuntimeError) as e:
        why = str(e).strip().splitlines()[-1].strip().split(", the shape")[0]
        raise Fail(f"{args.ckpt}: its weights do not fit its own configuration (damaged, "
                   f"edited or from an older version of this code: {why})")
    # ldm's stage counter, in the raw weights (train.py's EMA copy does not count)
    done = (ck["weights"].get("_extra_state") or {}).get("ae_steps_done", 0)
    if done < getattr(model, "ae_steps", 0):
        raise Fail(f"{args.ckpt} is an ldm still in its first stage: {done} of "
                   f"{model.ae_steps} autoencoder steps done, no diffusion yet: train on "
                   f"with train.py ldm --resume --out {os.path.dirname(args.ckpt) or '.'}")


def given_knobs(draw, model, args, config, device):
    """The knobs given on the command line, as draw() takes them; an image knob (--init
    photo.png) read into (1, C, H, W) in [-1, 1] at the model's size."""
    accepts = hyperparameters(draw)
    images = getattr(model, "image_knobs", ())
    return {k: image_knob(v, config, device) if k in images else v
            for k, v in vars(args).items() if k in accepts}


def image_knob(path, config, device):
    try:
        im, _ = load_image(path, config["image_size"])
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise Fail(f"cannot read image {path}: {e}")
    if config["channels"] == 1:
        im = im.mean(-1, keepdims=True)
    return (torch.tensor(im).float().permute(2, 0, 1)[None] / 127.5 - 1).to(device)


def refuse(ck, model, args, knobs, used):
    """A flag that does not apply is refused by name; `used`: the knobs draw() runs with."""
    name = ck["model"]
    config = ck["config"]
    other = model.sample if args.gif else getattr(model, "animate", model.sample)
    if unused := set(vars(args)) & (set(hyperparameters(other)) - set(used)):
        mode = "with" if args.gif else "without"
        raise Fail(f"{flag(min(unused))} does not apply {mode} --gif for a {name}: drop it")
    for f in ("n", "label", "conditions", "nrow") if kind(model) else ():
        if getattr(args, f) is not None:
            raise Fail(f"{flag(f)} does not apply to a {name}: it translates each --input "
                       "image")
    if args.label is not None and args.conditions:
        raise Fail("--label and --conditions both say what to draw: give one of them")
    if args.conditions and args.n is not None:
        raise Fail("-n does not apply with --conditions: one sample is drawn per set in it")
    if args.nrow is not None and to_folder(args.out):
        raise Fail(f"--nrow applies to a grid, not to --out {args.out} (one PNG per "
                   "sample)")
    if args.gif and to_folder(args.out):
        raise Fail(f"--gif writes OUT.gif and OUT_strip.png: name a file, not --out "
                   f"{args.out}")
    # classifier-free guidance: towards a condition, with the unconditional eps that the
    # model learned where its condition was dropped in training (p_uncond > 0)
    if "guidance" in knobs:
        p_uncond = hyperparameters(type(model).__init__)["p_uncond"].default
        if not config.get("num_classes") and not config.get("vocab"):
            raise Fail(f"--guidance applies to a model trained with classes or captions: "
                       f"this {name} was trained with neither")
        if not config.get("p_uncond", p_uncond):
            raise Fail(f"--guidance needs a {name} trained with --p-uncond above 0 (this "
                       "one: 0): it never learned the unconditional eps")
        if config.get("vocab") and not knobs.get("prompt"):
            raise Fail("--guidance steers towards a --prompt: give one")
    if "eta" in knobs and used.get("sampler") != "ddim":
        raise Fail("--eta is DDIM's noise: it applies with --sampler ddim")
    if "variance" in knobs and used.get("sampler") != "ddpm":
        raise Fail("--variance is the DDPM step's: it applies with --sampler ddpm")
    if "strength" in knobs and (knobs.get("init") is None or "mask" in knobs):
        raise Fail("--strength applies to img2img: with --init and without --mask")
    # the reverse process visits at most the model's T steps
    if "steps" in knobs and knobs["steps"] > config.get("T", knobs["steps"]):
        raise Fail(f"--steps {knobs['steps']} is more than this {name}'s T = {config['T']} "
                   f"steps: give at most {config['T']}")
    # pix2pix's test-time modes, of layers this G may lack
    if "batch_stats" in knobs and config.get("norm") == "instance":
        raise Fail(f"--no-batch-stats applies to BatchNorm: this {name} has InstanceNorm "
                   "(--norm instance): drop it")
    if "dropout" in knobs and config.get("dropout") == 0:
        raise Fail(f"--no-dropout applies to a G with dropout: this {name} has none "
                   "(--dropout 0): drop it")


def conditions(ck, args, names, device):
    """The condition y of each sample: --label, the lab's --conditions (then -n is their
    number), or, for a conditional model, every class in turn, counted over all n samples,
    not per batch. -n is 64 when not given."""
    args.n = 64 if args.n is None else args.n
    y = condition(ck, args, args.n, device)
    if args.conditions:
        # the lab: one sample per set of objects, (n, K) multi-hot
        y = torch.from_numpy(read_conditions(args.conditions, names)).to(device)
        args.n = len(y)
    k = ck["config"].get("num_classes", 0)
    if y is None and k:
        y = torch.arange(args.n, device=device) % k
    return y


def check(args, used, config, device, files):
    """The sizes and the destination, before any work: a count that cannot fit is refused
    with the number, before it is allocated (or its files named); a bad --out costs nothing,
    and never replaces a file the user would lose (files(): a folder's, named under it; None
    for a translation, which checks its own)."""
    # a translation: one per --input
    if args.n is not None:
        if args.nrow is not None and args.nrow > args.n:
            raise Fail(f"--nrow {args.nrow} is more than the {args.n} samples: choose at most "
                       "-n")
        image = config["channels"] * config["image_size"] ** 2 * 4    # one sample, float32 bytes
        # the samples, on the CPU; with --gif every frame, on the device
        fits("-n", args.n, args.n * image)
        if args.gif:
            frames = min(used["frames"], used.get("steps", used["frames"]))
            fits("--frames", used["frames"], frames * args.n * image, device)
    if not to_folder(args.out):
        files = animation(args.out) if args.gif else [args.out]
    else:
        files = [os.path.join(args.out, f) for f in files()] if files else []
    destination(args.out, named(args, "out"), files)


def warn_of_a_long_prompt(model, knobs):
    """A caption model reads at most max_len words of --prompt: say which it read."""
    if knobs.get("prompt") and hasattr(model, "tokenize"):
        read = model.detokenize(model.tokenize([knobs["prompt"]]))[0].split()
        if len(read) == model.max_len:
            print(f"warning: the model reads at most {model.max_len} words of a prompt; "
                  f"it reads '{' '.join(read)}'")


def condition(ck, args, n, device):
    """sample.py's --label as a (n,) LongTensor, or None (no classes, every class in turn,
    or --conditions, read by sample.py with the checkpoint's object names)."""
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


def compile_sampling(model, cuda):
    """sample.py --compile: torch.compile, in place, the networks the model names in its
    `sampling_networks` (dotted paths: "G", "diffusion.net"). On CUDA with CUDA graphs
    ("reduce-overhead"): a 1,000-step loop of small kernels is bound by their launches."""
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
