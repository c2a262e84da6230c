"""train.py --eval-every N: KID and FD of the EMA's samples against the training images they were
drawn for, every N steps, into log.jsonl: to watch a run move, not to publish (evaluate.py does
that, on held-out images).
"""
import json
import os
import torch
import evaluate
from support.preview import preview_knobs


def load_features(args, proc):
    """evaluate.py's features (a classifier's, or Inception's) when --eval-every asks for them;
    a missing file fails now, before any image is decoded."""
    if not args["eval_every"]:
        return None
    return evaluate.features_of(args["eval_features"], proc.device)


def quality(model, ema, batches, features, args, step, proc):
    """KID and FD of eval_n samples (the EMA's, for the labels or inputs of eval_n fixed training
    images) against those images (the targets), on features, logged and written to log.jsonl."""
    net = ema or model
    B = args["batch_size"]
    knobs = preview_knobs(net, args, "quality")
    order = torch.randperm(len(batches), generator=torch.Generator().manual_seed(args["seed"]))
    real, y = batches.batch(order[:args["eval_n"]])
    net.eval()
    with torch.random.fork_rng(devices=[proc.device] if proc.cuda else []), proc.autocast:
        torch.manual_seed(args["seed"])
        fake = []
        for i in range(0, len(real), B):
            fake.append(net.sample(len(real[i:i + B]), None if y is None else y[i:i + B], **knobs))
        fake = torch.cat(fake)
    model.train()
    f_real = features(real)                                     # (n, d)
    f_fake = features(fake)                                     # (n, d)
    half = max(2, len(real) // 2)                       # the unbiased MMD^2 needs 2 a subset
    kid, kid_std = evaluate.kid(f_real, f_fake, 50, half, args["seed"])
    fd = evaluate.fd(f_real, f_fake)
    proc.log(f"quality at step {step}: KID {kid:.4g} +- {kid_std:.2g}, FD {fd:.4g} "
             f"({len(real)} samples, {args['eval_features']})")
    record = {"step": step, "KID": kid, "KID_std": kid_std, "FD": fd, "eval_n": len(real)}
    with open(os.path.join(args["out"], "log.jsonl"), "a") as f:
        f.write(json.dumps(record) + "\n")
