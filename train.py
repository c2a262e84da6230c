"""The one training loop shared by every model in this repository.

    python train.py MODEL [--data PATH|shapes] [--image-size N] [--batch-size N] [--steps N]
                          [--out DIR] [--resume] [--compile] [--<model hyperparameter> ...]
    torchrun --nproc_per_node=4 train.py MODEL ...      # data parallel, one process per GPU
    python train.py vae --help                          # every flag of one model, and its default
    python -m measure.curves runs/vae/log.jsonl --out curves.png     # its losses, KID, FD, lab

A model file holds the maths (loss, or d_loss and g_loss; configure_optimizers; sample). This file
holds the run: main, the loop, the step (the loss, or D then G, then the EMA), and checkpoints.
The rest of a run lives in support/: its settings (settings.py), processes (processes.py), data
(training_data.py), model and resume (resume.py), sample grids (preview.py), --eval-every
(quality.py); docs/protocol.md lists what this file reads from a model.
"""
import json
import math
import os
import shutil
import signal
import sys
import time
import torch
from support.cli import Fail, Signals, compile_objectives, save_checkpoint
from support.processes import (agree, all_reduce_grads, end, first_process_first, in_first,
                               processes, rng_states)
from support.preview import sample_grid
from support.quality import lab_sets, load_features, load_lab, quality
from support.resume import model_and_resume
from support.settings import parse, settings
from support.training_data import data, make_batches


def main(argv):
    """The run as it happens: settings, processes, data, model (and resume), the loop."""
    name, cls, given = parse(argv, __doc__)
    args, config, ck = settings(name, cls, given)               # every check that needs no data
    proc = processes()
    features = load_features(args, proc)                        # --eval-every: fails now, not later
    evaluator = load_lab(args, proc)                            # --lab-evaluator: the same
    try:
        images, labels, names = first_process_first(proc, data, name, cls, args, config, ck, proc)
        lab_check = lab_sets(evaluator, names, args)            # the test files' sets, as y
        model, opts, ema, step = model_and_resume(name, config, args, ck, proc)
        batches = make_batches(images, labels, names, model, args, proc)
        if args["compile"]:
            compile_objectives(model)
        millions = sum(p.numel() for p in model.parameters()) / 1e6
        proc.log(f"{millions:.2f}M parameters; config {json.dumps(config)}")
        kept = {k: v for k, v in args.items() if k not in ("resume", "compile")}
        run = dict(model=name, config=config, args=kept, class_names=names)   # the checkpoint's
        train(model, opts, ema, batches, step, run, proc, features, lab_check)
    finally:
        end(proc)


def train(model, opts, ema, batches, step, run, proc, features=None, lab_check=None):
    """Steps until args["steps"]: each one D then G (adversarial models) or one loss, then the EMA.
    Every --log-every steps a progress line; checkpoints, grids and quality checks on their own
    schedules; Ctrl-C or SIGTERM stops at the next step boundary, saved. A NaN loss, samples that
    are not finite or a full disk stop it in one line, the last good checkpoint kept."""
    args = run["args"]
    out = args["out"]
    params = list(model.parameters())
    terms = {}
    nonfinite = torch.zeros((), dtype=torch.bool, device=proc.device)
    saved = step if step else None                              # the step of the checkpoint on disk

    def kept():
        """What a run that stops now leaves: said by every error that stops it."""
        if saved:
            return f"{out}/ckpt.pt (step {saved}) is the last good checkpoint"
        return "no checkpoint was written"

    def checkpoint():
        """Only weights that are finite are saved: a run that diverged keeps its last good one."""
        nonlocal saved
        if agree(nonfinite.item() or not all(torch.isfinite(p).all() for p in params), proc):
            raise Fail(f"a loss became NaN/inf by step {step}; stopped: {kept()}")
        rng = rng_states(proc)                                  # every process's, in process 0
        in_first(proc, save, f"{out}/ckpt.pt", run, step, model, ema, opts, rng, kept())
        saved = step

    def samples():
        """OUT/samples_STEP.png; samples that are not finite, or a full disk, stop the run."""
        in_first(proc, sample_grid, model, ema, batches, args, step, proc, kept())

    t0 = time.perf_counter()                                    # nn.Module starts in training mode
    s0 = step
    with Signals() as signals:
        while not (stop := int(agree(signals.caught, proc))) and step < args["steps"]:
            terms.update(train_step(model, opts, ema, *batches(step), step, args["ema"],
                                    nonfinite, proc))
            step += 1
            if step % args["log_every"] == 0 or step == 1 or step == args["steps"]:
                values = torch.stack([v.float() for v in terms.values()]).tolist()   # 1 host sync
                if agree(not all(map(math.isfinite, values)), proc):
                    checkpoint()                                # raises: keeps the last good one
                speed = (step - s0) * args["batch_size"] / (time.perf_counter() - t0)
                t0 = time.perf_counter()
                s0 = step
                log(step, dict(zip(terms, values)), speed, args, proc)
            if step % args["ckpt_every"] == 0:
                checkpoint()
            if step % args["sample_every"] == 0 and step != args["steps"]:
                samples()
            if args["eval_every"] and step % args["eval_every"] == 0 and proc.rank == 0:
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
    (adversarial: d_repeats D steps on it, then, every n_critic steps, g_steps G steps), then the
    EMA. Returns the terms, detached; nonfinite (a bool tensor) notes a NaN/inf without a host
    sync."""
    params = list(model.parameters())
    terms = {}
    done = step + 1                                             # the steps taken after this one
    if len(opts) == 1:
        groups = [(opts[0], model.loss, "")]
    else:                                                       # D, then G every n_critic steps
        groups = [(opts[0], model.d_loss, "D.")] * getattr(model, "d_repeats", 1)   # one batch
        if done % getattr(model, "n_critic", 1) == 0:
            groups += [(opts[1], model.g_loss, "G.")] * getattr(model, "g_steps", 1)
    for opt, objective, prefix in groups:
        with proc.autocast:
            out_terms = objective(x, y)
        total = sum(v for v in out_terms.values() if v.requires_grad)   # detached: only logged
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
    """The moving average of the weights after step number `done`, with a warm-up so that short
    runs average too: the decay is ema_decay, or (1 + n) / (10 + n) after n steps where smaller."""
    decay = min(ema_decay, (1 + done) / (10 + done))
    for p_ema, p in zip(ema.parameters(), model.parameters()):
        p_ema.lerp_(p, 1 - decay)                               # p_ema <- decay p_ema + (1-decay) p
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)                                          # BatchNorm statistics: copied


def log(step, terms, speed, args, proc):
    """The progress line (step, each loss term, images/s, ETA), and the same in OUT/log.jsonl."""
    eta = (args["steps"] - step) * args["batch_size"] / max(speed, 1e-9)
    losses = "  ".join(f"{k} {v:.4g}" for k, v in terms.items())
    clock = f"{eta // 3600:.0f}h{eta % 3600 // 60:02.0f}m{eta % 60:02.0f}s"
    proc.log(f"step {step:>7}/{args['steps']} | {losses} | {speed:,.0f} img/s | eta {clock}")
    if proc.rank == 0:
        with open(os.path.join(args["out"], "log.jsonl"), "a") as f:
            f.write(json.dumps({"step": step, **terms, "img_per_s": speed}) + "\n")


def save(path, run, step, model, ema, opts, rng, kept):
    """Checkpoints are atomic (save_checkpoint: a temporary file, then a rename) and hold every
    piece of training state, as plain data: the run's settings, step, weights (with buffers and
    extra state: cyclegan's history), EMA, optimizers' moments, each process's RNG states.
    --resume continues from them bit for bit. A full disk stops the run; the old ckpt.pt is
    whole."""
    try:
        save_checkpoint(path, dict(**run, step=step, weights=model.state_dict(),
                                   ema=ema.state_dict() if ema else None,
                                   optimizers=[o.state_dict() for o in opts], rng=rng))
    except (OSError, RuntimeError) as e:                        # torch.save's: a RuntimeError
        if os.path.exists(path + ".tmp"):
            os.remove(path + ".tmp")                            # half a file: its space freed
        why = e.strerror if isinstance(e, OSError) else "the write failed"
        free = shutil.disk_usage(os.path.dirname(path) or ".").free / 2**20
        raise Fail(f"cannot write {path} ({why}; {free:.0f} MiB free there): {kept}")


def cli(argv):
    """The command line: main, with a mistake in the user's input as one line and exit status 1."""
    try:
        main(argv)
    except Fail as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:                                   # before the loop, or a 2nd Ctrl-C
        print("error: interrupted; nothing saved since the last checkpoint", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
