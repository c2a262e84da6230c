"""The one training loop shared by every model in this repository.

    python train.py MODEL [--data PATH|shapes] [--image-size N] [--batch-size N] [--steps N]
                          [--out DIR] [--resume] [--compile] [--<model hyperparameter> ...]
    torchrun --nproc_per_node=4 train.py MODEL ...      # data parallel, one process per GPU
    python train.py vae --help                          # every flag of one model, with its default

A model file holds the maths (loss, or d_loss and g_loss; configure_optimizers; sample); data.py
reads the images. This file holds the rest: device, precision, the loop, EMA, checkpoints, logging
and the command line. main reads as the run does: settings, processes, data, model (and resume), loop.
"""
import argparse, copy, importlib, json, math, os, signal, sys, time
from contextlib import nullcontext
from types import SimpleNamespace
import torch
import torch.distributed as dist
import evaluate
from support.cli import MODELS, Fail, flag_help, Parser, Signals, add_flags, at_least, build_model, claim, compile_objectives, hyperparameters, \
    load_checkpoint, model_class, save_checkpoint, watched
from support.data import Batches, UnpairedBatches, dataset, grid, unpaired_dataset

TRAIN_DEFAULTS = dict(data="shapes", image_size=None, batch_size=None, steps=10_000, out=None, classes=False, flip=True,
                      labels=None, objects=None, resize="crop", direction="AtoB", captions=False, ema=None, compile=False,
                      seed=0, log_every=100, sample_every=1000, ckpt_every=1000, grid=64, quiet=False,
                      preview_sampler=None, preview_steps=None, eval_every=0, eval_n=500, eval_features="inception")


# ----------------------------------------------------------------------------- settings

def parse(argv):
    if not argv or argv[0].startswith("-"):
        print(__doc__.strip() + f"\n\nmodels: {', '.join(MODELS)}")
        sys.exit(0 if argv and argv[0] in ("-h", "--help") else 2)
    name, cls = argv[0], model_class(argv[0])
    p = Parser(prog=f"train.py {name}", argument_default=argparse.SUPPRESS, formatter_class=argparse.RawDescriptionHelpFormatter,
               description=(cls.__doc__ or importlib.import_module(name).__doc__).strip())
    p.add_argument("--data", help="a folder of images, or built in: 'shapes', or the lab's 'scenes'. default: shapes")
    p.add_argument("--image-size", type=int, help="default: 32 for shapes, 64 for a folder")
    p.add_argument("--batch-size", type=int, help=f"global batch. default: {getattr(cls, 'batch_size', 64)}")
    p.add_argument("--steps", type=int, help="total optimisation steps. default: 10000")
    p.add_argument("--out", help=f"default: runs/{name}")
    p.add_argument("--classes", action="store_true", help="subfolders are classes: train a conditional model")
    p.add_argument("--labels", metavar="JSON", help="the lab's train.json (file -> object names): condition on sets")
    p.add_argument("--objects", metavar="JSON", help="the lab's objects.json, object name -> index. default: beside --labels")
    p.add_argument("--resize", choices=["crop", "squash"], help="non-square images: centre-crop, or squash. default: crop")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, help="random horizontal flips. default: on")
    if getattr(cls, "paired", False):
        p.add_argument("--direction", choices=["AtoB", "BtoA"], help="translate A to B or B to A. default: AtoB")
    if getattr(cls, "captions", False):
        p.add_argument("--captions", action="store_true", help="condition on captions: --data's captions.txt "
                       "(filename<TAB>caption a line), else the class folders' names, or the shapes' names")
    p.add_argument("--ema", type=float, help=f"EMA decay of the weights, 0 = off. default: {getattr(cls, 'ema_decay', 0)}")
    p.add_argument("--compile", action="store_true", help="torch.compile the loss computation (networks included)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--quiet", action="store_true", help="no progress line on stderr while a grid is sampled")
    for flag, what in [("seed", "random seed"), ("log-every", "steps between progress lines"),
                       ("sample-every", "steps between sample grids"), ("ckpt-every", "steps between checkpoints"),
                       ("grid", "samples in each grid"), ("eval-every", "steps between quality checks (KID, FD; log.jsonl), 0 = off"),
                       ("eval-n", "samples per quality check, against as many training images")]:
        p.add_argument("--" + flag, type=int, help=f"{what}. default: {TRAIN_DEFAULTS[flag.replace('-', '_')]}")
    p.add_argument("--eval-features", metavar="PATH", help="a classifier of evaluate.py, or 'inception'. default: inception")
    if preview := getattr(cls, "preview", None):                # diffusion: the grids' own sampler, a fast one
        p.add_argument("--preview-sampler", choices=["ddpm", "ddim"], help=f"the grids' sampler. default: {preview['sampler']}")
        p.add_argument("--preview-steps", type=int, help=f"the grids' steps (1000 for the full chain). default: {preview['steps']}")
    add_flags(p.add_argument_group(f"{name} hyperparameters"), hyperparameters(cls.__init__), flag_help(cls.__init__))
    return name, cls, vars(p.parse_args(argv[1:]))


def settings(name, cls, given):
    """The settings given on this command line, else the resumed run's, else the defaults -> args, config
    (the model's keywords), checkpoint or None. Every check that needs no data is made here, at once."""
    hp = hyperparameters(cls.__init__)
    out = given.get("out", f"runs/{name}")
    ckpt_path, ck = os.path.join(out, "ckpt.pt"), None
    if given.get("resume"):
        ck = load_checkpoint(ckpt_path)
        if ck["model"] != name:
            raise Fail(f"{ckpt_path} holds a '{ck['model']}' model, not '{name}'")
        if not {"args", "step", "optimizers", "rng"} <= ck.keys():
            raise Fail(f"{ckpt_path} holds weights but not a run to resume (no step, optimizer or RNG state)")
    elif os.path.exists(ckpt_path):
        raise Fail(f"{ckpt_path} exists: add --resume to continue it, or choose another --out")
    args = {**TRAIN_DEFAULTS, **(ck["args"] if ck else {}), **{k: v for k, v in given.items() if k not in hp}, "out": out}
    config = {**{k: p.default for k, p in hp.items()}, **(ck["config"] if ck else {}), **{k: v for k, v in given.items() if k in hp}}
    own = dict(batch_size=getattr(cls, "batch_size", 64), ema=getattr(cls, "ema_decay", 0.0),   # the model's own defaults,
               **{f"preview_{k}": v for k, v in getattr(cls, "preview", {}).items()})      # its grids' fast sampler too
    args.update({k: v for k, v in own.items() if args[k] is None})
    at_least(1, **{k: args[k] for k in ("image_size", "batch_size", "log_every", "sample_every", "ckpt_every", "grid",
                                       "preview_steps")})
    if not 0 <= args["ema"] < 1:                                # nan fails this too
        raise Fail(f"--ema is a decay in [0, 1), 0 = off (got {args['ema']})")
    if ck and args["steps"] <= ck["step"]:
        raise Fail(f"{ckpt_path} has done {ck['step']} steps already: give --steps above {ck['step']} to train on")
    at_least(0, steps=args["steps"], eval_every=args["eval_every"])
    at_least(2, eval_n=args["eval_n"])                          # a covariance, and KID's subsets of n / 2
    counts = {k: v for k, v in config.items() if k in hp and type(hp[k].default) is int}   # widths, T, n_critic, ...
    at_least(1, **{k: v for k, v in counts.items() if hp[k].default > 0})
    at_least(0, **counts)
    try:
        os.makedirs(out, exist_ok=True)                         # --out a file, or in a read-only folder: said now,
    except OSError as e:                                        # not after every image is decoded
        raise Fail(f"cannot make the folder --out {out}: {e.strerror}")
    return args, config, ck


# ----------------------------------------------------------------------------- processes

def processes():
    """torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; a plain `python train.py` is process 0 of 1."""
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{os.environ.get('LOCAL_RANK', 0)}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    if world > 1:
        dist.init_process_group("nccl" if cuda else "gloo")
    return SimpleNamespace(rank=rank, world=world, cuda=cuda, device=device, lock=None,
                           autocast=torch.autocast("cuda", torch.bfloat16) if cuda else nullcontext(),
                           log=print if rank == 0 else (lambda *a, **k: None),
                           host=dist.new_group(backend="gloo") if world > 1 else None)   # small messages between CPUs


def agree(value, proc):
    """The largest value over all processes, so that every process takes the same branch (stop, fail)."""
    t = torch.tensor(float(value))
    if proc.world > 1:
        dist.all_reduce(t, dist.ReduceOp.MAX, group=proc.host)  # on the CPU: no wait for the GPU
    return t.item()


def first_process_first(fn, proc):
    """fn() in process 0, then in the others (process 0 decodes and caches the images once; the others
    read its cache). A mistake found by process 0 stops every process with the same line."""
    if proc.world == 1:
        return fn()
    result, message = None, [None]
    if proc.rank == 0:
        try:
            result = fn()
        except Fail as e:
            message = [str(e)]
    dist.broadcast_object_list(message, src=0, group=proc.host)
    if message[0]:
        raise Fail(message[0])
    return result if proc.rank == 0 else fn()


# ----------------------------------------------------------------------------- data, model, resume

def data(name, cls, args, config, ck, proc):
    """The images (N, S, S, C) uint8, their labels (class ids, caption ids, or (N, K) multi-hot sets) and the
    class, caption or object names; the data's size, channels and classes (K) go into the model's config."""
    if proc.rank == 0:
        proc.lock = claim(args["out"])                          # one run at a time in --out
    paired = getattr(cls, "paired", False)                      # pix2pix: (B, A) pairs instead of (x, label)
    text = args.get("captions", False)                          # ldm: captions, as token ids, instead of labels
    if getattr(cls, "unpaired", False):                         # cyclegan: domains A and B, labels = domain ids
        images, labels, names, size = unpaired_dataset(args["data"], args["image_size"])
    else:
        images, labels, names, size = dataset(args["data"], args["image_size"], args["classes"], paired,
                                              args["direction"], text, args["labels"], args["objects"], args["resize"])
    args["image_size"], channels = size, images.shape[-1] // (2 if paired else 1)
    config.update(image_size=size, channels=channels, num_classes=len(names) if names and not text else 0)
    if text:
        config["vocab"] = config["vocab"] or cls.vocabulary(names)
    if ck and (ck["config"]["image_size"], ck["config"]["channels"]) != (size, channels):
        raise Fail(f"{args['out']}/ckpt.pt was trained on {ck['config']['image_size']}px images with "
                   f"{ck['config']['channels']} channel(s); this data gives {size}px with {channels}")
    what = (f", {len(names)} " + ("captions" if text else "objects" if labels.ndim == 2 else "classes")) if names else ""
    if getattr(cls, "unpaired", False):
        what = f": {int((labels == 0).sum())} images in A, {int((labels == 1).sum())} in B, drawn independently"
    proc.log(f"{name}: {len(images)} {'pairs' if paired else 'images'} {size}x{size}x{channels}{what} from {args['data']}, "
             f"on {proc.device}" + (f" x {proc.world} processes" if proc.world > 1 else ""))
    return images, labels, names


def model_and_resume(name, config, args, ck, proc):
    """The model, optimizers and EMA copy (one seed: the same weights in every process), resumed from ck."""
    torch.manual_seed(args["seed"])
    model = build_model(name, config).to(proc.device)
    if proc.cuda:
        model = model.to(memory_format=torch.channels_last)
    try:
        opts = model.configure_optimizers()
    except ValueError as e:                                     # torch's own check: a negative or nan lr, ...
        raise Fail(f"bad {name} configuration: {e}")
    opts = list(opts) if isinstance(opts, (tuple, list)) else [opts]
    if config.get("ae") and not ck:                             # ldm: start from another run's autoencoder
        try:
            model.load_autoencoder(load_checkpoint(config["ae"]))
        except (KeyError, RuntimeError):
            raise Fail(f"{config['ae']} holds no autoencoder of this shape (same --f, --z-channels, --ae-ch)")
    ema = copy.deepcopy(model).eval().requires_grad_(False) if args["ema"] > 0 else None
    if not ck:
        return model, opts, ema, 0
    try:
        model.load_state_dict(ck["weights"])
        if ema is not None:
            ema.load_state_dict(ck["ema"] or ck["weights"])
        for opt, state in zip(opts, ck["optimizers"], strict=True):
            now = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]   # lr, betas, ... of this config
            opt.load_state_dict(state)                          # the moments and step counts of the resumed run
            for g, settings_now in zip(opt.param_groups, now):
                g.update(settings_now)                          # --resume --lr X trains with X, as printed
    except (RuntimeError, ValueError, KeyError, TypeError):
        raise Fail(f"{args['out']}/ckpt.pt does not fit this {name} configuration: resume without changing its shape flags")
    if changed := [f"{k} {ck['config'][k]} -> {v}" for k, v in config.items() if ck["config"].get(k, v) != v]:
        proc.log("changed on resume: " + ", ".join(changed))
    torch.set_rng_state(ck["rng"]["cpu"])
    if proc.cuda and ck["rng"]["cuda"] is not None:
        torch.cuda.set_rng_state(ck["rng"]["cuda"], proc.device)
    return model, opts, ema, ck["step"]


def sample_grid(model, ema, batches, args, step, proc):
    """The same noise every time (its own seed), so progress shows as the same samples sharpening."""
    if proc.rank != 0:
        return
    net, n, device = ema or model, args["grid"], proc.device
    knobs = {k: args[f"preview_{k}"] for k in getattr(net, "preview", {})} | watched(net.sample, "grid", args["quiet"])
    net.eval()
    with torch.random.fork_rng(devices=[device] if proc.cuda else []), proc.autocast:
        torch.manual_seed(args["seed"])
        if batches.paired:                                      # rows of input | output | target
            b, a = batches.batch(torch.arange(max(1, min(n // 3, 8, len(batches)))))
            x, nrow = torch.stack([a, net.sample(len(a), a), b], 1).flatten(0, 1), 6
        elif isinstance(batches, UnpairedBatches):              # rows of a | G(a) | F(G(a)) | b | F(b) | G(F(b))
            b, a = batches.batch(torch.arange(max(1, min(n // 6, 8))))
            ga, fb = net.sample(len(a), a), net.sample(len(b), b, direction="BtoA")
            x = torch.stack([a, ga, net.sample(len(a), ga, direction="BtoA"), b, fb, net.sample(len(b), fb)], 1)
            x, nrow = x.flatten(0, 1), 6
        elif batches.labels is not None:                        # a column per class (or caption)
            y = torch.unique(batches.labels, dim=0)[:n].to(device)
            x = net.sample(n, y[torch.arange(n, device=device) % len(y)], **knobs)
            nrow = len(y) if len(y) <= 16 else None
        else:
            x, nrow = net.sample(n, **knobs), None
    model.train()
    grid(x, nrow=nrow).save(os.path.join(args["out"], f"samples_{step:06d}.png"))


def quality(model, ema, batches, features, args, step, proc):
    """--eval-every: KID and FD of eval_n samples (the EMA's, for the labels or inputs of eval_n fixed training images)
    against those images (targets), on evaluate.py's features, into log.jsonl: to watch a run move, not to publish."""
    net, B = ema or model, args["batch_size"]
    knobs = {k: args[f"preview_{k}"] for k in getattr(net, "preview", {})} | watched(net.sample, "quality", args["quiet"])
    real, y = batches.batch(torch.randperm(len(batches), generator=torch.Generator().manual_seed(args["seed"]))[:args["eval_n"]])
    net.eval()
    with torch.random.fork_rng(devices=[proc.device] if proc.cuda else []), proc.autocast:
        torch.manual_seed(args["seed"])
        fake = torch.cat([net.sample(len(real[i:i + B]), None if y is None else y[i:i + B], **knobs) for i in range(0, len(real), B)])
    model.train()
    f_real, f_fake = features(real), features(fake)                    # (n, d) each
    (kid, kid_std), fd = evaluate.kid(f_real, f_fake, 50, len(real) // 2, args["seed"]), evaluate.fd(f_real, f_fake)
    proc.log(f"quality at step {step}: KID {kid:.4g} +- {kid_std:.2g}, FD {fd:.4g} ({len(real)} samples, {args['eval_features']})")
    with open(os.path.join(args["out"], "log.jsonl"), "a") as f:
        f.write(json.dumps({"step": step, "KID": kid, "KID_std": kid_std, "FD": fd, "eval_n": len(real)}) + "\n")


# ----------------------------------------------------------------------------- the loop

def train(model, opts, ema, batches, step, run, proc, features=None):
    """Steps until args["steps"]: each one D then G (adversarial models) or one loss, then the EMA."""
    args, out = run["args"], run["args"]["out"]
    params, terms = list(model.parameters()), {}
    nonfinite = torch.zeros((), dtype=torch.bool, device=proc.device)
    saved = step if step else None                              # the step of the checkpoint on disk

    def checkpoint():
        """Only weights that are finite are saved: a run that diverged keeps its last good checkpoint."""
        nonlocal saved
        if agree(nonfinite.item() or not all(torch.isfinite(p).all() for p in params), proc):
            kept = f"{out}/ckpt.pt (step {saved}) is the last good checkpoint" if saved else "no checkpoint was written"
            raise Fail(f"a loss became NaN/inf by step {step}; stopped: {kept}")
        if proc.rank == 0:                                      # plain data: state dicts, config, step, RNG states
            save_checkpoint(f"{out}/ckpt.pt", dict(
                **run, step=step, weights=model.state_dict(), ema=ema.state_dict() if ema else None,
                optimizers=[o.state_dict() for o in opts],
                rng=dict(cpu=torch.get_rng_state(), cuda=torch.cuda.get_rng_state(proc.device) if proc.cuda else None)))
        saved = step

    t0, s0 = time.perf_counter(), step                         # nn.Module starts in training mode
    with Signals() as signals:
        while not (stop := int(agree(signals.caught, proc))) and step < args["steps"]:
            terms.update(train_step(model, opts, ema, *batches(step), step, args["ema"], nonfinite, proc))
            step += 1
            if step % args["log_every"] == 0 or step == 1 or step == args["steps"]:
                values = torch.stack([v.float() for v in terms.values()]).tolist()   # the one host sync
                if agree(not all(map(math.isfinite, values)), proc):
                    checkpoint()                                # raises: keeps the last good checkpoint
                dt, t0 = time.perf_counter() - t0, time.perf_counter()
                speed, s0 = (step - s0) * args["batch_size"] / dt, step
                eta = (args["steps"] - step) * args["batch_size"] / max(speed, 1e-9)
                proc.log(f"step {step:>7}/{args['steps']} | " + "  ".join(f"{k} {v:.4g}" for k, v in zip(terms, values))
                         + f" | {speed:,.0f} img/s | eta {eta // 3600:.0f}h{eta % 3600 // 60:02.0f}m{eta % 60:02.0f}s")
                if proc.rank == 0:
                    with open(os.path.join(out, "log.jsonl"), "a") as f:
                        f.write(json.dumps({"step": step, **dict(zip(terms, values)), "img_per_s": speed}) + "\n")
            if step % args["ckpt_every"] == 0:
                checkpoint()
            if step % args["sample_every"] == 0 and step != args["steps"]:
                sample_grid(model, ema, batches, args, step, proc)
            if args["eval_every"] and step % args["eval_every"] == 0 and proc.rank == 0:
                quality(model, ema, batches, features, args, step, proc)
    checkpoint()
    if stop:
        proc.log(f"\ninterrupted ({signal.Signals(stop).name}) at step {step}: saved {out}/ckpt.pt; continue with --resume")
        sys.exit(128 + stop)
    sample_grid(model, ema, batches, args, step, proc)
    proc.log(f"done: {out}/ckpt.pt, samples in {out}")


def train_step(model, opts, ema, x, y, step, ema_decay, nonfinite, proc):
    """Step number step + 1 on the batch (x, y): the loss, or D then G on the same batch (adversarial; G every
    n_critic steps), then the EMA. Returns the terms, detached; nonfinite (a bool tensor) notes a NaN/inf, no sync."""
    params, terms, done = list(model.parameters()), {}, step + 1        # done: the steps taken after this one
    groups = [(opts[0], model.loss, "")] if len(opts) == 1 else \
        [(opts[0], model.d_loss, "D.")] + ([(opts[1], model.g_loss, "G.")] if done % getattr(model, "n_critic", 1) == 0 else [])
    for opt, objective, prefix in groups:
        with proc.autocast:
            out_terms = objective(x, y)
        total = sum(v for v in out_terms.values() if v.requires_grad)   # detached entries are only logged
        opt.zero_grad(set_to_none=True)
        total.backward()
        if proc.world > 1:
            all_reduce_grads(params, proc.world)
        opt.step()
        nonfinite |= ~torch.isfinite(total.detach())
        terms.update({(prefix if v.requires_grad else "") + k: v.detach() for k, v in out_terms.items()})
    if ema is not None:                                         # EMA with warm-up: short runs are usable too
        decay = min(ema_decay, (1 + done) / (10 + done))
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), params):
                p_ema.lerp_(p, 1 - decay)                       # p_ema <- decay * p_ema + (1 - decay) * p
            for b_ema, b in zip(ema.buffers(), model.buffers()):
                b_ema.copy_(b)                                  # BatchNorm statistics: copied, not averaged
    return terms


def all_reduce_grads(params, world):
    """Data parallel: average the gradients of all processes, as DistributedDataParallel does. Written
    out because the models are driven through loss / d_loss / g_loss, and DDP hooks only forward()."""
    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.flatten() for g in grads])             # one message, not one per tensor
    dist.all_reduce(flat)
    for g, f in zip(grads, flat.split([g.numel() for g in grads])):
        g.copy_(f.view_as(g) / world)


def main(argv):
    name, cls, given = parse(argv)
    args, config, ck = settings(name, cls, given)
    proc = processes()
    features = evaluate.features_of(args["eval_features"], proc.device) if args["eval_every"] else None   # fails now, not later
    try:
        images, labels, names = first_process_first(lambda: data(name, cls, args, config, ck, proc), proc)
        model, opts, ema, step = model_and_resume(name, config, args, ck, proc)
        if labels is not None:                                  # captions as token ids, or class ids
            labels = model.tokenize(names)[labels] if args.get("captions") else torch.from_numpy(labels)
        read = model.detokenize(model.tokenize(names)) if args.get("captions") else []   # the words the model reads
        if cut := [c for c, r in zip(names or [], read) if len(r.split()) == config["max_len"]]:
            proc.log(f"warning: {len(cut)} caption(s) reach --max-len {config['max_len']} words; later words are dropped: '{cut[0]}'")
        fits = proc.cuda and images.nbytes < 0.25 * torch.cuda.mem_get_info(proc.device)[0]   # the whole data on the GPU
        batches = (UnpairedBatches if getattr(cls, "unpaired", False) else Batches)(
                          torch.from_numpy(images), labels, args["batch_size"] // proc.world, proc.device, args["seed"],
                          proc.rank, proc.world, args["flip"], store=proc.device if fits or not proc.cuda else "cpu",
                          size=args["image_size"], paired=getattr(cls, "paired", False))
        if proc.rank > 0:
            torch.manual_seed(args["seed"] + 1000 * proc.rank + step)   # other processes draw other noise
        if args["compile"]:
            compile_objectives(model)
        proc.log(f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters; config {json.dumps(config)}")
        run = dict(model=name, config=config, args={k: v for k, v in args.items() if k not in ("resume", "compile")},
                   class_names=names)                           # what the checkpoint says of the run, besides weights
        train(model, opts, ema, batches, step, run, proc, features)
    finally:
        if proc.lock:
            proc.lock.close()
        if proc.world > 1:
            dist.destroy_process_group()


def cli(argv):
    """The command line: main, with a mistake in the user's input as one line and exit status 1."""
    try:
        main(argv)
    except Fail as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:                                   # before the loop, or a second Ctrl-C in it
        print("error: interrupted; nothing saved since the last checkpoint", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
