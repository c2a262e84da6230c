"""The sample grids train.py writes during a run (OUT/samples_STEP.png): the same noise every time,
so progress shows as the same samples sharpening; samples that are not finite are never written.
A diffusion model draws them with its `preview` sampler (few steps), which --preview-sampler and
--preview-steps replace.
"""
import os
import torch
from support.cli import Fail, watched
from support.data import UnpairedBatches
from support.pictures import grid


def preview_knobs(net, args, what):
    """The sample() keywords of a grid or a quality check: the preview sampler, a progress line."""
    knobs = {k: args[f"preview_{k}"] for k in getattr(net, "preview", {})}
    return knobs | watched(net.sample, what, args["quiet"])


def sample_grid(model, ema, batches, args, step, proc, kept):
    """OUT/samples_STEP.png from the EMA weights (else the model's), on its own seed; in process 0
    (in_first). Samples with a NaN/inf are never written: like a NaN loss, they stop the run, as
    does a full disk; the line ends with kept, what the run leaves."""
    net = ema or model
    n = args["grid"]
    device = proc.device
    knobs = preview_knobs(net, args, "grid")
    net.eval()
    with torch.random.fork_rng(devices=[device] if proc.cuda else []), proc.autocast:
        torch.manual_seed(args["seed"])
        if batches.paired:                                      # rows of input | output | target
            b, a = batches.batch(torch.arange(max(1, min(n // 3, 8, len(batches)))))
            x = torch.stack([a, net.sample(len(a), a), b], 1).flatten(0, 1)
            nrow = 6
        elif isinstance(batches, UnpairedBatches):              # a G(a) F(G(a)) b F(b) G(F(b))
            b, a = batches.batch(torch.arange(max(1, min(n // 6, 8))))
            ga = net.sample(len(a), a)
            fb = net.sample(len(b), b, direction="BtoA")
            fga = net.sample(len(a), ga, direction="BtoA")
            gfb = net.sample(len(b), fb)
            x = torch.stack([a, ga, fga, b, fb, gfb], 1).flatten(0, 1)
            nrow = 6
        elif batches.labels is not None:                        # a column per class (or caption)
            y = torch.unique(batches.labels, dim=0)[:n].to(device)
            x = net.sample(n, y[torch.arange(n, device=device) % len(y)], **knobs)
            nrow = len(y) if len(y) <= 16 else None
        else:
            x = net.sample(n, **knobs)
            nrow = None
    model.train()
    path = os.path.join(args["out"], f"samples_{step:06d}.png")
    if not torch.isfinite(x).all():
        flags = [f"--preview-{k} {args['preview_' + k]}" for k in getattr(net, "preview", {})]
        where = f" ({', '.join(flags)})" if flags else ""
        raise Fail(f"the samples of step {step}{where} hold NaN/inf: {path} not written; "
                   f"stopped: {kept}")
    try:
        grid(x, nrow=nrow).save(path)
    except OSError as e:                                        # a full disk
        raise Fail(f"cannot write {path} ({e.strerror}): {kept}")
