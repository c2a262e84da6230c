"""The one training loop shared by every model in this repository.

    python train.py MODEL [--data PATH|shapes] [--image-size N] [--batch-size N]
                          [--steps N] [--out DIR] [--resume] [--compile] [--<keyword> N ...]
    torchrun --nproc_per_node=4 train.py MODEL ...      # one process per GPU
    python train.py vae --help                          # every flag of a model, its default

A model file holds the maths (loss, or d_loss and g_loss; configure_optimizers; sample). This
file holds the run: the device, the data, the model with its optimizers and EMA, the loop, the
step, checkpoints. Flags and their checks: support/settings.py; torchrun's helpers and
--resume: support/processes.py; grids and --eval-every: support/quality.py.
"""
import copy
import json
import math
import os
import shutil
import signal
import sys
import time
from contextlib import nullcontext
from types import SimpleNamespace
import torch
import torch.distributed as dist
from support.cli import Fail, Signals, build_model, claim, command, compile_objectives
from support.cli import load_checkpoint, save_checkpoint
from support.data import Batches, UnpairedBatches, dataset, unpaired_dataset
from support.processes import agree, all_reduce_grads, end, first_process_first
from support.processes import in_first, own_noise, resume, rng_states, share_scale
from support.settings import parse, settings


def main(argv):
    """The run: settings, processes, data, model (fresh or resumed), the loop."""
    name, cls, given = parse(argv, __doc__)
    # every check that needs no data, before any image is decoded
    args, config, ck = settings(name, cls, given)
    proc = processes()
    features = evaluator = lab_check = None
    # --eval-every's features and the lab's evaluator: a missing file fails now
    if args["eval_every"]:
        from support import quality
        features = quality.load_features(args, proc)
        evaluator = quality.load_lab(args, proc)
    try:
        images, labels, names = first_process_first(proc, data, name, cls, args, config, ck, proc)
        if evaluator:                                           # the test files' sets, as y
            lab_check = quality.lab_sets(evaluator, names, args)
        model, opts, ema = build(name, config, args, ck, proc)
        share_scale(model, proc)                                # ldm: one latent scale
        step = 0
        if ck:
            step = resume(ck, model, opts, ema, name, config, args, proc)
        else:
            own_noise(proc, args["seed"])                       # process k > 0: its own seed
        batches = make_batches(images, labels, names, model, args, proc)
        if args["compile"]:
            compile_objectives(model)
        millions = sum(p.numel() for p in model.parameters()) / 1e6
        proc.log(f"{millions:.2f}M parameters; config {json.dumps(config)}")
        kept = {k: v for k, v in args.items() if k not in ("resume", "compile")}
        # what every checkpoint holds beside the weights
        run = dict(model=name, config=config, args=kept, class_names=names)
        train(model, opts, ema, batches, step, run, proc, features, lab_check)
    finally:
        end(proc)


def processes():
    """This process: torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; `python train.py` is
    process 0 of 1. The device: CUDA when available."""
    rank = int(os.environ.get("RANK", 0))
    world = int(os.environ.get("WORLD_SIZE", 1))
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{os.environ.get('LOCAL_RANK', 0)}" if cuda else "cpu")
    autocast = nullcontext()
    if cuda:                                                    # TF32 and bf16 autocast
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
        autocast = torch.autocast("cuda", torch.bfloat16)
    host = None
    if world > 1:
        dist.init_process_group("nccl" if cuda else "gloo")
        host = dist.new_group(backend="gloo")                  # small messages, on CPUs
    log = print if rank == 0 else (lambda *a, **k: None)
    return SimpleNamespace(rank=rank, world=world, cuda=cuda, device=device, lock=None,
                           autocast=autocast, log=log, host=host)


def data(name, cls, args, config, ck, proc):
    """--data -> images (N, S, S, C) uint8, labels (class ids, caption ids, or (N, K) sets) and
    their names; the images' size, channels and classes go into the model's config."""
    if proc.rank == 0:
        proc.lock = claim(args["out"])                          # one run at a time in --out
    paired = getattr(cls, "paired", False)                      # pix2pix: (B, A) pairs
    unpaired = getattr(cls, "unpaired", False)                  # cyclegan: A and B
    text = args.get("captions", False)                          # ldm: captions' token ids
    if unpaired:                                                # labels: the domain ids
        images, labels, names, size = unpaired_dataset(args["data"], args["image_size"],
                                                       args["resize"])
    else:
        images, labels, names, size = dataset(
            args["data"], args["image_size"], args["classes"], paired, args["direction"], text,
            args["labels"], args["objects"], args["resize"])
    args["image_size"] = size
    channels = images.shape[-1] // (2 if paired else 1)
    num_classes = len(names) if names and not text else 0
    config.update(image_size=size, channels=channels, num_classes=num_classes)
    if text:
        config["vocab"] = config["vocab"] or cls.vocabulary(names)
    was = ck and (ck["config"]["image_size"], ck["config"]["channels"])
    if ck and was != (size, channels):
        raise Fail(f"{args['out']}/ckpt.pt was trained on {was[0]}px images with {was[1]} "
                   f"channel(s); this data gives {size}px with {channels}")
    what = ""
    if unpaired:
        a = int((labels == 0).sum())
        what = f": {a} images in A, {len(labels) - a} in B, drawn independently"
    elif names:
        kind = "captions" if text else "objects" if labels.ndim == 2 else "classes"
        what = f", {len(names)} {kind}"
    items = "pairs" if paired else "images"
    where = f"on {proc.device}" + (f" x {proc.world} processes" if proc.world > 1 else "")
    proc.log(f"{name}: {len(images)} {items} {size}x{size}x{channels}{what} "
             f"from {args['data']}, {where}")
    return images, labels, names


def build(name, config, args, ck, proc):
    """The model, its optimizers (a list) and its EMA copy or None, from one seed: the same
    weights in every process. A fresh ldm run may start from another run's autoencoder."""
    torch.manual_seed(args["seed"])
    model = build_model(name, config).to(proc.device)
    if proc.cuda:
        model = model.to(memory_format=torch.channels_last)
    try:
        opts = model.configure_optimizers()
    except ValueError as e:                                     # a negative lr, ...
        raise Fail(f"bad {name} configuration: {e}")
    opts = list(opts) if isinstance(opts, (tuple, list)) else [opts]
    if config.get("ae") and not ck:
        try:
            model.load_autoencoder(load_checkpoint(config["ae"]))
        except (KeyError, RuntimeError):
            raise Fail(f"{config['ae']} holds no autoencoder of this shape "
                       "(same --f, --z-channels, --ae-ch)")
    ema = copy.deepcopy(model).eval().requires_grad_(False) if args["ema"] > 0 else None
    return model, opts, ema


def make_batches(images, labels, names, model, args, proc):
    """This process's batches: (x, y) for step i is batches(i). Captions become the model's
    token ids; the whole data sits on the GPU when it fits in a quarter of its free memory."""
    captions = args.get("captions")
    if labels is not None:
        labels = model.tokenize(names)[labels] if captions else torch.from_numpy(labels)
    read = model.detokenize(model.tokenize(names)) if captions else []   # the words it reads
    max_len = getattr(model, "max_len", None)
    if cut := [c for c, r in zip(names or [], read) if len(r.split()) == max_len]:
        proc.log(f"warning: {len(cut)} caption(s) reach --max-len {max_len} words; "
                 f"later words are dropped: '{cut[0]}'")
    free = torch.cuda.mem_get_info(proc.device)[0] if proc.cuda else 0
    fits = proc.cuda and images.nbytes < 0.25 * free
    Draw = UnpairedBatches if getattr(model, "unpaired", False) else Batches
    store = proc.device if fits or not proc.cuda else "cpu"
    return Draw(torch.from_numpy(images), labels, args["batch_size"] // proc.world,
                proc.device, args["seed"], proc.rank, proc.world, args["flip"], store=store,
                size=args["image_size"], paired=getattr(model, "paired", False))


def train(model, opts, ema, batches, step, run, proc, features=None, lab_check=None):
    """Steps until args["steps"], a progress line every --log-every steps; checkpoints, grids
    and quality checks on their own schedules. Ctrl-C or SIGTERM stops at the next step, saved;
    a NaN loss, samples that are not finite or a full disk stop it, the last good checkpoint
    kept."""
    args = run["args"]
    out = args["out"]
    params = list(model.parameters())
    terms = {}
    nonfinite = torch.zeros((), dtype=torch.bool, device=proc.device)
    saved = step or None                                        # the checkpoint on disk

    def kept():
        """What a run that stops now leaves: said by every error that stops it."""
        if saved:
            return f"{out}/ckpt.pt (step {saved}) is the last good checkpoint"
        return "no checkpoint was written"

    def checkpoint():
        """Only finite weights are saved: a run that diverged keeps its last good one."""
        nonlocal saved
        if agree(nonfinite.item() or not all(torch.isfinite(p).all() for p in params), proc):
            raise Fail(f"a loss became NaN/inf by step {step}; stopped: {kept()}")
        rng = rng_states(proc)                                  # every process's, in 0
        in_first(proc, save, f"{out}/ckpt.pt", run, step, model, ema, opts, rng, kept())
        saved = step

    def samples():
        """OUT/samples_STEP.png; samples that are not finite, or a full disk, stop the run."""
        from support.quality import sample_grid
        in_first(proc, sample_grid, model, ema, batches, args, step, proc, kept())

    t0 = time.perf_counter()
    s0 = step
    with Signals() as signals:
        while not (stop := int(agree(signals.caught, proc))) and step < args["steps"]:
            terms.update(train_step(model, opts, ema, *batches(step), step, args["ema"],
                                    nonfinite, proc))
            step += 1
            if step % args["log_every"] == 0 or step == 1 or step == args["steps"]:
                # one host sync for all the terms
                values = torch.stack([v.float() for v in terms.values()]).tolist()
                if agree(not all(map(math.isfinite, values)), proc):
                    checkpoint()                                # raises, keeps the last good
                speed = (step - s0) * args["batch_size"] / (time.perf_counter() - t0)
                t0 = time.perf_counter()
                s0 = step
                log(step, dict(zip(terms, values)), speed, args, proc)
            if step % args["ckpt_every"] == 0:
                checkpoint()
            if step % args["sample_every"] == 0 and step != args["steps"]:
                samples()
            if args["eval_every"] and step % args["eval_every"] == 0 and proc.rank == 0:
                from support.quality import quality
                quality(model, ema, batches, features, args, step, proc, lab_check)
    checkpoint()
    if stop:
        proc.log(f"\ninterrupted ({signal.Signals(stop).name}) at step {step}: saved "
                 f"{out}/ckpt.pt; continue with --resume")
        sys.exit(128 + stop)
    samples()
    proc.log(f"done: {out}/ckpt.pt, samples in {out}")


def train_step(model, opts, ema, x, y, step, ema_decay, nonfinite, proc):
    """Step number step + 1 on the batch (x, y): the loss, or D then G on the same batch
    (d_repeats D steps, then every n_critic steps g_steps G steps), then the EMA. Returns
    the terms, detached; nonfinite (a bool tensor) notes a NaN/inf without a host sync."""
    params = list(model.parameters())
    terms = {}
    # the steps taken after this one
    done = step + 1
    if len(opts) == 1:
        groups = [(opts[0], model.loss, "")]
    # D, then G every n_critic steps
    else:
        # d_repeats D steps on the one batch
        groups = [(opts[0], model.d_loss, "D.")] * getattr(model, "d_repeats", 1)
        if done % getattr(model, "n_critic", 1) == 0:
            groups += [(opts[1], model.g_loss, "G.")] * getattr(model, "g_steps", 1)
    for opt, objective, prefix in groups:
        with proc.autocast:
            out_terms = objective(x, y)
        # detached: only logged
        total = sum(v for v in out_terms.values() if v.requires_grad)
        opt.zero_grad(set_to_none=True)
        total.backward()
        if proc.world > 1:
            all_reduce_grads(params, proc.world)
        opt.step()
        nonfinite |= ~torch.isfinite(total.detach())
        terms.update({(prefix if v.requires_grad else "") + k: v.detach()
                      for k, v in out_terms.items()})
    if ema is not None:
        update_ema(ema, model, done, ema_decay)
    return terms


@torch.no_grad()
def update_ema(ema, model, done, ema_decay):
    """The moving average of the weights after step number `done`, with a warm-up so that
    short runs average too: the decay is ema_decay, or (1 + n) / (10 + n) after n steps
    where smaller."""
    decay = min(ema_decay, (1 + done) / (10 + done))
    for p_ema, p in zip(ema.parameters(), model.parameters()):
        # p_ema <- decay p_ema + (1-decay) p
        p_ema.lerp_(p, 1 - decay)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        # BatchNorm statistics: copied
        b_ema.copy_(b)


def log(step, terms, speed, args, proc):
    """The progress line (step, each loss term, images/s, ETA), and the same in
    OUT/log.jsonl."""
    eta = (args["steps"] - step) * args["batch_size"] / max(speed, 1e-9)
    losses = "  ".join(f"{k} {v:.4g}" for k, v in terms.items())
    clock = f"{eta // 3600:.0f}h{eta % 3600 // 60:02.0f}m{eta % 60:02.0f}s"
    proc.log(f"step {step:>7}/{args['steps']} | {losses} | {speed:,.0f} img/s | eta {clock}")
    if proc.rank == 0:
        with open(os.path.join(args["out"], "log.jsonl"), "a") as f:
            f.write(json.dumps({"step": step, **terms, "img_per_s": speed}) + "\n")


def save(path, run, step, model, ema, opts, rng, kept):
    """The whole training state as plain data (settings, step, weights, buffers and extra
    state, EMA, optimizers' moments, each process's RNG states), written atomically:
    --resume continues bit for bit. A full disk stops the run; the old ckpt.pt stays whole."""
    try:
        save_checkpoint(path, dict(**run, step=step, weights=model.state_dict(),
                                   ema=ema.state_dict() if ema else None,
                                   optimizers=[o.state_dict() for o in opts], rng=rng))
    except (OSError, RuntimeError) as e:                        # torch.save: RuntimeError
        if os.path.exists(path + ".tmp"):
            # half a file: its space freed
            os.remove(path + ".tmp")
        why = e.strerror if isinstance(e, OSError) else "the write failed"
        free = shutil.disk_usage(os.path.dirname(path) or ".").free / 2**20
        raise Fail(f"cannot write {path} ({why}; {free:.0f} MiB free there): {kept}")


def cli(argv):
    """main, with a mistake in the user's input as one line and exit status 1."""
    try:
        return command(main, argv)
    except KeyboardInterrupt:                                   # a 2nd Ctrl-C
        print("error: interrupted; nothing saved since the last checkpoint", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
