"""The one training loop shared by every model in this repository.

    python train.py MODEL [--data PATH|shapes] [--image-size N] [--batch-size N] [--steps N]
                          [--out DIR] [--resume] [--compile] [--<model hyperparameter> ...]
    torchrun --nproc_per_node=4 train.py MODEL ...      # data parallel, one process per GPU
    python train.py vae --help                          # every flag of one model, with its default

A model file holds the maths (loss, or d_loss and g_loss; configure_optimizers; sample). This file
holds the rest: data, device, precision, the loop, EMA, checkpoints, logging and the command line.
"""
import argparse, copy, hashlib, importlib, inspect, json, math, os, sys, time
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
import numpy as np
import torch
import torch.distributed as dist
from PIL import Image

MODELS = {"vae": "VAE", "gan": "GAN", "dcgan": "DCGAN", "pix2pix": "Pix2Pix", "ddpm": "DDPM", "ldm": "LDM"}
EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
TRAIN_DEFAULTS = dict(data="shapes", image_size=None, batch_size=None, steps=10_000, out=None, classes=False,
                      flip=True, ema=None, compile=False, seed=0, log_every=100, sample_every=1000,
                      ckpt_every=1000, grid=64)


class Fail(Exception):
    """An error in the user's input: printed as one line, exit status 1."""


# ----------------------------------------------------------------------------- data

def shapes(n=12_000, size=32, seed=0):
    """The built-in dataset: a coloured circle, square or triangle on a dark background, with its
    label ("red circle"). Drawn with numpy at 2x and averaged down, so the edges are smooth."""
    rng = np.random.default_rng(seed)
    colours = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (50, 90, 235), "yellow": (230, 200, 40)}
    kinds = ["circle", "square", "triangle"]
    names = [f"{c} {k}" for k in kinds for c in colours]                       # label = kind * 4 + colour
    labels = rng.integers(0, len(names), n)
    S = 2 * size
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32) + 0.5                       # (S, S) pixel centres
    images = np.empty((n, size, size, 3), np.uint8)
    for lo in range(0, n, 500):
        lab = labels[lo:lo + 500]
        m = len(lab)
        r = rng.uniform(0.18, 0.35, (m, 1, 1)).astype(np.float32) * S          # half the shape's extent
        cx, cy = rng.uniform(0, 1, (2, m, 1, 1)).astype(np.float32) * (S - 2 * r) + r
        dx, dy = np.abs(xx - cx), yy - cy
        kind = (lab // len(colours))[:, None, None]
        inside = np.where(kind == 0, dx**2 + dy**2 < r**2,                       # circle
                 np.where(kind == 1, (dx < 0.85 * r) & (np.abs(dy) < 0.85 * r),  # square
                          (np.abs(dy) < r) & (dx < (dy + r) / 2)))               # triangle, apex up
        colour = np.array(list(colours.values()), np.float32)[lab % len(colours)]
        colour = np.clip(colour + rng.normal(0, 12, (m, 3)), 0, 255).astype(np.float32)[:, None, None]
        background = rng.uniform(0, 60, (m, 1, 1, 1)).astype(np.float32)
        img = np.where(inside[..., None], colour, background)                  # (m, S, S, 3)
        images[lo:lo + m] = img.reshape(m, size, 2, size, 2, 3).mean((2, 4)).round()
    return images, labels, names


def load_image(path, size):
    """One image -> center-cropped, resized (size, size, 3) uint8, and whether it was grayscale."""
    with Image.open(path) as im:
        gray = im.mode in ("1", "L", "LA", "I", "I;16", "F")
        im.draft("RGB", (size, size))                          # JPEG: decode at a smaller scale, much faster
        w, h = im.size
        s = min(w, h)
        im = im.convert("RGB").crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        return np.asarray(im.resize((size, size), Image.Resampling.BICUBIC)), gray


def _decode(job):
    try:
        return load_image(*job)
    except Exception as e:                                     # truncated, corrupt, not an image
        return f"{job[0]}: {type(e).__name__}: {e}"


def find_images(root):
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.lower().endswith(EXTENSIONS))


def load_folder(root, size, classes):
    """A folder of images -> (N, S, S, C) uint8, labels or None, class names or None.
    Decoded once in parallel, then cached as one array; reused while the folder is unchanged."""
    if not os.path.isdir(root):
        raise Fail(f"no such folder: {root}")
    names = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))) if classes else None
    if classes and not names:
        raise Fail(f"--classes needs one subfolder per class in {root}; found none")
    groups = [find_images(os.path.join(root, d)) for d in names] if classes else [find_images(root)]
    files = [f for g in groups for f in g]
    if not files:
        raise Fail(f"no images found in {root} (looked for {' '.join(EXTENSIONS)}, recursively)")
    labels = np.concatenate([np.full(len(g), i) for i, g in enumerate(groups)]) if classes else None
    stamp = hashlib.sha1(repr((size, classes, [(f, os.stat(f).st_size, os.stat(f).st_mtime_ns) for f in files]))
                         .encode()).hexdigest()[:16]
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "genmodels",
                         f"{os.path.basename(os.path.abspath(root))}-{size}px-{stamp}.npz")
    if os.path.exists(cache):
        with np.load(cache) as z:
            return z["images"], (z["labels"] if classes else None), names
    workers = min(os.cpu_count() or 1, max(1, len(files) // 256))
    print(f"decoding {len(files)} images from {root} on {workers} process(es); cached for next time")
    jobs = [(f, size) for f in files]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            out = list(pool.map(_decode, jobs, chunksize=64))
    else:
        out = [_decode(j) for j in jobs]
    bad = [o for o in out if isinstance(o, str)]
    if bad:
        print(f"warning: skipped {len(bad)} unreadable image(s), e.g. {bad[0]}")
    keep = [i for i, o in enumerate(out) if not isinstance(o, str)]
    if not keep:
        raise Fail(f"none of the {len(files)} images in {root} could be read")
    images = np.stack([out[i][0] for i in keep])                                   # (N, S, S, 3)
    if all(out[i][1] for i in keep):
        images = images[..., :1]                                                   # grayscale data: 1 channel
    labels = labels[keep] if classes else None
    os.makedirs(os.path.dirname(cache), exist_ok=True)
    tmp = f"{cache}.{os.getpid()}.tmp.npz"
    np.savez(tmp, images=images, labels=labels if classes else np.zeros(0))
    os.replace(tmp, cache)
    return images, labels, names


class Batches:
    """Batches drawn without replacement, reshuffled each epoch. The order is a function of the
    step alone (epoch e uses the permutation seeded by seed + e), so a resumed run sees the same
    batches. Each process of a distributed run takes its own slice of every global batch."""

    def __init__(self, images, labels, batch_size, device, seed, rank=0, world=1, flip=True, store=None):
        self.images = images.to(store or device)                        # (N, S, S, C) uint8, on the GPU if it fits
        self.labels = None if labels is None else labels.to(store or device)
        self.B, self.rank, self.world, self.seed, self.flip = batch_size, rank, world, seed, flip
        self.device = torch.device(device)
        self.per_epoch = len(images) // (batch_size * world)
        if self.per_epoch == 0:
            raise Fail(f"only {len(images)} images, fewer than one batch of {batch_size} x {world} process(es): "
                       f"lower --batch-size")
        self.epoch, self.perm = None, None

    def __call__(self, step):
        epoch, i = divmod(step, self.per_epoch)
        if epoch != self.epoch:
            g = torch.Generator().manual_seed(self.seed + epoch)
            self.epoch, self.perm = epoch, torch.randperm(len(self.images), generator=g).to(self.images.device)
        lo = (i * self.world + self.rank) * self.B
        idx = self.perm[lo:lo + self.B]
        x = self.images[idx].to(self.device, non_blocking=True)            # (B, S, S, C) uint8
        y = None if self.labels is None else self.labels[idx].to(self.device, non_blocking=True)
        x = x.permute(0, 3, 1, 2).float() / 127.5 - 1                       # (B, C, S, S) in [-1, 1], channels_last
        if self.flip:
            flip = torch.rand(len(idx), 1, 1, 1, device=x.device) < 0.5      # random horizontal flip
            x = torch.where(flip, x.flip(3), x)
        return (x if x.is_cuda else x.contiguous()), y


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
            parser.add_argument(flag, type=lambda s: tuple(int(v) for v in s.split(",")), metavar="A,B,...", **kw)
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


def to_uint8(x):
    """(..., C, H, W) in [-1, 1] -> (..., H, W, C) uint8 numpy."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).movedim(-3, -1).cpu().numpy()


def grid(x, nrow=None):
    """(n, C, H, W) in [-1, 1] -> one PIL image, nrow images a row, 2-pixel gaps."""
    n, C, H, W = x.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    canvas = np.zeros((rows * (H + 2) + 2, nrow * (W + 2) + 2, C), np.uint8)
    for i, im in enumerate(to_uint8(x)):
        r, c = divmod(i, nrow)
        canvas[2 + r * (H + 2):2 + r * (H + 2) + H, 2 + c * (W + 2):2 + c * (W + 2) + W] = im
    return Image.fromarray(canvas[..., 0] if C == 1 else canvas)


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
    p.add_argument("--ema", type=float, help=f"EMA decay of the weights, 0 = off. default: {getattr(cls, 'ema_decay', 0)}")
    p.add_argument("--compile", action="store_true", help="torch.compile the networks")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    for flag in ("seed", "log-every", "sample-every", "ckpt-every", "grid"):
        p.add_argument("--" + flag, type=int, help=f"default: {TRAIN_DEFAULTS[flag.replace('-', '_')]}")
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
    if args["data"] == "shapes":
        size = args["image_size"] or 32
        images, labels, names = shapes(size=size, seed=1234)
    else:
        size = args["image_size"] or 64
        images, labels, names = load_folder(args["data"], size, args["classes"])
    if world > 1 and rank == 0:
        dist.barrier()
    args["image_size"] = size
    if not args["classes"]:
        labels, names = None, None
    config.update(image_size=size, channels=images.shape[-1], num_classes=len(names) if names else 0)
    if ck and (ck["config"]["image_size"], ck["config"]["channels"]) != (size, images.shape[-1]):
        raise Fail(f"{ckpt_path} was trained on {ck['config']['image_size']}px images with "
                   f"{ck['config']['channels']} channel(s); this data gives {size}px with {images.shape[-1]}")
    gpu_fits = cuda and images.nbytes < 0.25 * torch.cuda.mem_get_info(device)[0]
    batches = Batches(torch.from_numpy(images), None if labels is None else torch.from_numpy(labels),
                      args["batch_size"] // world, device, args["seed"], rank, world, args["flip"],
                      store=device if gpu_fits or not cuda else "cpu")
    log(f"{name}: {len(images)} images {size}x{size}x{images.shape[-1]}"
        f"{f', {len(names)} classes' if names else ''} from {args['data']}, on {device}"
        f"{f' x {world} processes' if world > 1 else ''}")

    # model, optimizers, EMA: the same initial weights in every process (same seed)
    torch.manual_seed(args["seed"])
    model = build_model(name, config).to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    opts = model.configure_optimizers()
    opts = list(opts) if isinstance(opts, (tuple, list)) else [opts]
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
    if args["compile"]:
        for m in model.children():
            m.compile()
    params = [p for p in model.parameters()]
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
            x = net.sample(args["grid"])
        model.train()
        grid(x).save(os.path.join(out, f"samples_{step:06d}.png"))

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
                groups = [(opts[0], model.loss, "")]
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


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except Fail as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
