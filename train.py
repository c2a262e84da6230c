"""The one training loop shared by every model in this repository.

    python train.py MODEL [--data PATH|shapes] [--image-size N] [--batch-size N] [--steps N]
                          [--out DIR] [--resume] [--compile] [--<model hyperparameter> ...]
    torchrun --nproc_per_node=4 train.py MODEL ...      # data parallel, one process per GPU
    python train.py vae --help                          # every flag of one model, with its default

A model file holds the maths (loss, or d_loss and g_loss; configure_optimizers; sample); data.py
reads the images. This file holds the rest: device, precision, the loop, EMA, checkpoints, logging
and the command line.
"""
import argparse, copy, importlib, inspect, json, math, os, sys, time
from contextlib import nullcontext
import torch
import torch.distributed as dist
from data import Batches, Fail, UnpairedBatches, dataset, grid, unpaired_dataset

MODELS = {"vae": "VAE", "gan": "GAN", "dcgan": "DCGAN", "pix2pix": "Pix2Pix", "cyclegan": "CycleGAN", "stylegan": "StyleGAN",
          "ddpm": "DDPM", "ldm": "LDM"}
TRAIN_DEFAULTS = dict(data="shapes", image_size=None, batch_size=None, steps=10_000, out=None, classes=False,
                      flip=True, direction="AtoB", captions=False, ema=None, compile=False, seed=0, log_every=100, sample_every=1000,
                      ckpt_every=1000, grid=64)


# ----------------------------------------------------------------------------- models and checkpoints

def model_class(name):
    if name not in MODELS:
        raise Fail(f"unknown model '{name}': choose from {', '.join(MODELS)}")
    return getattr(importlib.import_module(name), MODELS[name])


def hyperparameters(fn):
    """The keyword-only arguments of a model's __init__ or sample, with their defaults."""
    return {p.name: p for p in inspect.signature(fn).parameters.values() if p.kind == p.KEYWORD_ONLY}


def add_flags(parser, params):
    """Each keyword argument becomes a flag: ch_mult=(1, 2) -> --ch-mult 1,2, a bool -> --x/--no-x."""
    for name, p in params.items():
        d, flag = p.default, "--" + name.replace("_", "-")
        kw = dict(dest=name, default=argparse.SUPPRESS, help=f"default: {d}")
        if isinstance(d, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif isinstance(d, tuple):
            parser.add_argument(flag, type=lambda s: tuple(int(v) for v in s.split(",") if v), metavar="A,B,...", **kw)
        elif d is None or d is inspect.Parameter.empty:
            parser.add_argument(flag, metavar="PATH", **kw)           # an image file (sample.py)
        else:
            parser.add_argument(flag, type=type(d), **kw)


def build_model(name, config):
    try:
        return model_class(name)(**config)
    except (ValueError, TypeError) as e:
        raise Fail(f"bad {name} configuration: {e}")


def load_checkpoint(path):
    if not os.path.isfile(path):
        raise Fail(f"no checkpoint at {path}")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise Fail(f"{path} is not a readable checkpoint ({type(e).__name__})")
    if not isinstance(ck, dict) or ck.get("model") not in MODELS:
        raise Fail(f"{path} is not a checkpoint of this project")
    return ck


def save_checkpoint(path, state):
    """Atomic: write a temporary file, then rename it over the old one."""
    torch.save(state, path + ".tmp")
    os.replace(path + ".tmp", path)


# ----------------------------------------------------------------------------- training

def parse(argv):
    if not argv or argv[0].startswith("-"):
        print(__doc__.strip() + f"\n\nmodels: {', '.join(MODELS)}")
        sys.exit(0 if argv and argv[0] in ("-h", "--help") else 2)
    name, cls = argv[0], model_class(argv[0])
    p = argparse.ArgumentParser(prog=f"train.py {name}", argument_default=argparse.SUPPRESS,
                                description=(cls.__doc__ or importlib.import_module(name).__doc__).strip(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="a folder of images, or 'shapes' (built in). default: shapes")
    p.add_argument("--image-size", type=int, help="default: 32 for shapes, 64 for a folder")
    p.add_argument("--batch-size", type=int, help=f"global batch. default: {getattr(cls, 'batch_size', 64)}")
    p.add_argument("--steps", type=int, help="total optimisation steps. default: 10000")
    p.add_argument("--out", help=f"default: runs/{name}")
    p.add_argument("--classes", action="store_true", help="subfolders are classes: train a conditional model")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, help="random horizontal flips. default: on")
    if getattr(cls, "paired", False):
        p.add_argument("--direction", choices=["AtoB", "BtoA"], help="translate A to B or B to A. default: AtoB")
    if "vocab" in hyperparameters(cls.__init__):
        p.add_argument("--captions", action="store_true", help="condition on captions: captions.txt in --data "
                       "(filename<TAB>caption per line), else the class folders' names, or the shapes' names")
    p.add_argument("--ema", type=float, help=f"EMA decay of the weights, 0 = off. default: {getattr(cls, 'ema_decay', 0)}")
    p.add_argument("--compile", action="store_true", help="torch.compile the loss computation (networks included)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    for flag, what in [("seed", "random seed"), ("log-every", "steps between progress lines"),
                       ("sample-every", "steps between sample grids"), ("ckpt-every", "steps between checkpoints"),
                       ("grid", "samples in each grid")]:
        p.add_argument("--" + flag, type=int, help=f"{what}. default: {TRAIN_DEFAULTS[flag.replace('-', '_')]}")
    add_flags(p.add_argument_group(f"{name} hyperparameters"), hyperparameters(cls.__init__))
    return name, cls, vars(p.parse_args(argv[1:]))


def main(argv):
    name, cls, given = parse(argv)
    hp = hyperparameters(cls.__init__)
    out = given.get("out", f"runs/{name}")
    ckpt_path = os.path.join(out, "ckpt.pt")
    ck = None
    if given.get("resume"):
        ck = load_checkpoint(ckpt_path)
        if ck["model"] != name:
            raise Fail(f"{ckpt_path} holds a '{ck['model']}' model, not '{name}'")
    elif os.path.exists(ckpt_path):
        raise Fail(f"{ckpt_path} exists: add --resume to continue it, or choose another --out")
    # settings: given on this command line, else the resumed run's, else the defaults
    args = {**TRAIN_DEFAULTS, **(ck["args"] if ck else {}), **{k: v for k, v in given.items() if k not in hp}}
    args["out"] = out
    config = {**{k: p.default for k, p in hp.items()}, **(ck["config"] if ck else {}),
              **{k: v for k, v in given.items() if k in hp}}
    args["batch_size"] = args["batch_size"] or getattr(cls, "batch_size", 64)
    args["ema"] = getattr(cls, "ema_decay", 0.0) if args["ema"] is None else args["ema"]

    # processes and device: torchrun sets RANK / WORLD_SIZE / LOCAL_RANK
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{os.environ.get('LOCAL_RANK', 0)}" if cuda else "cpu")
    if world > 1:
        dist.init_process_group("nccl" if cuda else "gloo")
    if cuda:
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    autocast = torch.autocast("cuda", torch.bfloat16) if cuda else nullcontext()
    log = print if rank == 0 else (lambda *a, **k: None)

    # data
    if args["batch_size"] % world:
        raise Fail(f"--batch-size {args['batch_size']} does not split evenly over {world} processes")
    if rank > 0:
        dist.barrier()                                          # the first process decodes and caches first
    paired = getattr(cls, "paired", False)                     # pix2pix: (B, A) pairs instead of (x, label)
    text = args.get("captions", False)                          # ldm: captions, as token ids, instead of labels
    unpaired = getattr(cls, "unpaired", False)                 # cyclegan: domains A and B, labels = domain ids
    images, labels, names, size = unpaired_dataset(args["data"], args["image_size"]) if unpaired else \
        dataset(args["data"], args["image_size"], args["classes"], paired, args["direction"], text)
    if world > 1 and rank == 0:
        dist.barrier()
    args["image_size"], channels = size, images.shape[-1] // (2 if paired else 1)
    config.update(image_size=size, channels=channels, num_classes=len(names) if names and not text else 0)
    if text:
        config["vocab"] = config["vocab"] or cls.vocabulary(names)
    if ck and (ck["config"]["image_size"], ck["config"]["channels"]) != (size, channels):
        raise Fail(f"{ckpt_path} was trained on {ck['config']['image_size']}px images with "
                   f"{ck['config']['channels']} channel(s); this data gives {size}px with {channels}")
    log(f"{name}: {len(images)} {'pairs' if paired else 'images'} {size}x{size}x{channels}"
        f"{f', {len(names)} ' + ('captions' if text else 'classes') if names else ''} from {args['data']}, on {device}"
        f"{f' x {world} processes' if world > 1 else ''}")
    if unpaired:
        log(f"unpaired: {int((labels == 0).sum())} images in A, {int((labels == 1).sum())} in B, drawn independently")

    # model, optimizers, EMA: the same initial weights in every process (same seed)
    torch.manual_seed(args["seed"])
    model = build_model(name, config).to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    opts = model.configure_optimizers()
    opts = list(opts) if isinstance(opts, (tuple, list)) else [opts]
    if config.get("ae") and not ck:                             # ldm: start from another run's autoencoder
        try:
            model.load_autoencoder(load_checkpoint(config["ae"]))
        except (KeyError, RuntimeError):
            raise Fail(f"{config['ae']} holds no autoencoder of this shape (same --f, --z-channels, --ae-ch)")
    labels = None if labels is None else model.tokenize(names)[labels] if text else torch.from_numpy(labels)
    gpu_fits = cuda and images.nbytes < 0.25 * torch.cuda.mem_get_info(device)[0]
    batches = (UnpairedBatches if unpaired else Batches)(torch.from_numpy(images), labels, args["batch_size"] // world,
                      device, args["seed"], rank, world, args["flip"], store=device if gpu_fits or not cuda else "cpu",
                      size=size, paired=paired)
    ema = copy.deepcopy(model).eval().requires_grad_(False) if args["ema"] > 0 else None
    step = 0
    if ck:
        try:
            model.load_state_dict(ck["weights"])
        except RuntimeError:
            raise Fail(f"{ckpt_path} does not fit this {name} configuration: resume without changing its shape flags")
        for o, s in zip(opts, ck["optimizers"]):
            o.load_state_dict(s)
        if ema is not None:
            ema.load_state_dict(ck["ema"] or ck["weights"])
        step = ck["step"]
        torch.set_rng_state(ck["rng"]["cpu"])
        if cuda and ck["rng"]["cuda"] is not None:
            torch.cuda.set_rng_state(ck["rng"]["cuda"], device)
    if rank > 0:
        torch.manual_seed(args["seed"] + 1000 * rank + step)          # other processes draw other noise
    if args["compile"]:                                         # the objectives: networks and loss maths in one graph
        for objective in getattr(model, "compiled", ("loss", "d_loss", "g_loss")):
            if hasattr(model, objective):
                setattr(model, objective, torch.compile(getattr(model, objective)))
    params = list(model.parameters())
    log(f"{sum(p.numel() for p in params) / 1e6:.2f}M parameters; config {json.dumps(config)}")
    os.makedirs(out, exist_ok=True)

    def checkpoint():
        """Save only weights that are finite: a run that diverged keeps its last good checkpoint."""
        if nonfinite.item() or not all(torch.isfinite(p).all() for p in params):
            raise Fail(f"loss became NaN/inf by step {step}; stopped. The last good checkpoint is kept in {out}")
        if rank == 0:
            save_checkpoint(ckpt_path, dict(
                model=name, config=config, step=step,
                args={k: v for k, v in args.items() if k not in ("resume", "compile")}, class_names=names,
                weights=model.state_dict(), ema=ema.state_dict() if ema else None,
                optimizers=[o.state_dict() for o in opts],
                rng=dict(cpu=torch.get_rng_state(), cuda=torch.cuda.get_rng_state(device) if cuda else None)))

    def sample_grid():
        """The same noise every time (its own seed, apart from the training RNG), so progress shows
        as the same samples sharpening."""
        if rank != 0:
            return
        net = ema or model
        net.eval()
        with torch.random.fork_rng(devices=[device] if cuda else []), autocast:
            torch.manual_seed(args["seed"])
            if paired:                                          # rows of input | output | target
                b, a = batches.batch(torch.arange(min(args["grid"], 8 * 3) // 3, device=batches.images.device))
                x, nrow = torch.stack([a, net.sample(len(a), a), b], 1).flatten(0, 1), 6
            elif unpaired:                                      # rows of a | G(a) | F(G(a)) | b | F(b) | G(F(b))
                b, a = batches.batch(torch.arange(min(args["grid"], 8 * 6) // 6))
                ga, fb = net.sample(len(a), a), net.sample(len(b), b, direction="BtoA")
                x = torch.stack([a, ga, net.sample(len(a), ga, direction="BtoA"), b, fb, net.sample(len(b), fb)], 1)
                x, nrow = x.flatten(0, 1), 6
            elif batches.labels is not None:                    # a column per class (or caption)
                y = torch.unique(batches.labels, dim=0)[:args["grid"]].to(device)
                x = net.sample(args["grid"], y[torch.arange(args["grid"], device=device) % len(y)])
                nrow = len(y) if len(y) <= 16 else None
            else:
                x, nrow = net.sample(args["grid"]), None
        model.train()
        grid(x, nrow=nrow).save(os.path.join(out, f"samples_{step:06d}.png"))

    n_critic = getattr(model, "n_critic", 1)
    terms = {}
    nonfinite = torch.zeros((), dtype=torch.bool, device=device)
    t0, s0 = time.perf_counter(), step
    model.train()
    try:
        while step < args["steps"]:
            x, y = batches(step)
            step += 1
            if len(opts) == 1:
                groups, terms = [(opts[0], model.loss, "")], {}
            else:                                               # adversarial: D step, then G step on the same batch
                groups = [(opts[0], model.d_loss, "D.")] + ([(opts[1], model.g_loss, "G.")] if step % n_critic == 0 else [])
            for opt, objective, prefix in groups:
                with autocast:
                    out_terms = objective(x, y)
                total = sum(v for v in out_terms.values() if v.requires_grad)   # detached entries are only logged
                opt.zero_grad(set_to_none=True)
                total.backward()
                if world > 1:
                    all_reduce_grads(params, world)
                opt.step()
                nonfinite |= ~torch.isfinite(total.detach())
                terms.update({(prefix if v.requires_grad else "") + k: v.detach() for k, v in out_terms.items()})
            if ema is not None:                                 # EMA with warm-up: short runs are usable too
                decay = min(args["ema"], (1 + step) / (10 + step))
                with torch.no_grad():
                    torch._foreach_lerp_(list(ema.parameters()), params, 1 - decay)
                    for b_ema, b in zip(ema.buffers(), model.buffers()):
                        b_ema.copy_(b)
            if step % args["log_every"] == 0 or step == 1 or step == args["steps"]:
                values = torch.stack([v.float() for v in terms.values()]).tolist()   # the one host sync
                if not all(map(math.isfinite, values)):
                    checkpoint()                                # raises: keeps the last good checkpoint
                dt, t0 = time.perf_counter() - t0, time.perf_counter()
                speed = (step - s0) * args["batch_size"] / dt
                eta = (args["steps"] - step) * args["batch_size"] / max(speed, 1e-9)
                s0 = step
                log(f"step {step:>7}/{args['steps']} | " + "  ".join(f"{k} {v:.4g}" for k, v in zip(terms, values))
                    + f" | {speed:,.0f} img/s | eta {eta // 3600:.0f}h{eta % 3600 // 60:02.0f}m{eta % 60:02.0f}s")
                if rank == 0:
                    with open(os.path.join(out, "log.jsonl"), "a") as f:
                        f.write(json.dumps({"step": step, **dict(zip(terms, values)), "img_per_s": speed}) + "\n")
            if step % args["ckpt_every"] == 0:
                checkpoint()
            if step % args["sample_every"] == 0 and step != args["steps"]:
                sample_grid()
    except KeyboardInterrupt:
        checkpoint()
        log(f"\ninterrupted at step {step}: saved {ckpt_path}; continue with --resume")
        sys.exit(130)
    checkpoint()
    sample_grid()
    log(f"done: {ckpt_path}, samples in {out}")
    if world > 1:
        dist.destroy_process_group()


def all_reduce_grads(params, world):
    """Data parallel: average the gradients of all processes, as DistributedDataParallel does. Written
    out because the models are driven through loss / d_loss / g_loss, and DDP hooks only forward()."""
    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.flatten() for g in grads])             # one message, not one per tensor
    dist.all_reduce(flat)
    for g, f in zip(grads, flat.split([g.numel() for g in grads])):
        g.copy_(f.view_as(g) / world)


def cli(argv):
    """The command line: main, with a mistake in the user's input as one line and exit status 1."""
    try:
        main(argv)
    except Fail as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
