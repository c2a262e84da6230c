"""What a run shows of itself as it trains: its sample grids (OUT/samples_STEP.png, the
same noise each time, so progress shows as the same samples sharpening), and with
--eval-every N the KID and FD of the EMA's samples against the training images they were
drawn for, into log.jsonl: to watch a run move, not to publish (evaluate.py does that, on
held-out images). With --lab-evaluator, also the lab's accuracy of one sample per
condition of each test file (python -m measure.curves).
"""
import json
import os
import torch
import evaluate
from support import lab, scenes
from support.cli import Fail, watched
from support.classifier import load_classifier
from support.data import UnpairedBatches
from support.pictures import grid


def preview_knobs(net, args, what):
    """The sample() keywords of a grid or a quality check: the preview sampler, progress."""
    knobs = {k: args[f"preview_{k}"] for k in getattr(net, "preview", {})}
    return knobs | watched(net.sample, what, args["quiet"])


def sample_grid(model, ema, batches, args, step, proc, kept):
    """OUT/samples_STEP.png from the EMA weights (else the model's), on its own seed.
    Samples with a NaN/inf are never written: like a NaN loss or a full disk, they stop
    the run (kept: what it leaves)."""
    net = ema or model
    n = args["grid"]
    device = proc.device
    knobs = preview_knobs(net, args, "grid")
    net.eval()
    with torch.random.fork_rng(devices=[device] if proc.cuda else []), proc.autocast:
        torch.manual_seed(args["seed"])
        if batches.paired:
            # rows of input | output | target
            b, a = batches.batch(torch.arange(max(1, min(n // 3, 8, len(batches)))))
            x = torch.stack([a, net.sample(len(a), a), b], 1).flatten(0, 1)
            nrow = 6
        elif isinstance(batches, UnpairedBatches):
            # rows of a G(a) F(G(a)) b F(b) G(F(b))
            b, a = batches.batch(torch.arange(max(1, min(n // 6, 8))))
            ga = net.sample(len(a), a)
            fb = net.sample(len(b), b, direction="BtoA")
            fga = net.sample(len(a), ga, direction="BtoA")
            gfb = net.sample(len(b), fb)
            x = torch.stack([a, ga, fga, b, fb, gfb], 1).flatten(0, 1)
            nrow = 6
        elif batches.labels is not None:
            # a column per class (or caption)
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


def load_features(args, proc):
    """evaluate.py's features (a classifier's, or Inception's): a missing file fails now.
    """
    return evaluate.features_of(args["eval_features"], proc.device)


def load_lab(args, proc):
    """--lab-evaluator (a multi-label classifier of evaluate.py, or the course's ResNet-18 file)
    and its test files (--lab-tests, else test.json and new_test.json beside --labels, else the
    built-in scenes' own), read before any image is decoded -> None, or (the network, its
    checkpoint dict, {name: (file, [[object names], ...])})."""
    path = args["lab_evaluator"]
    if not path:
        return None
    if not (args["labels"] or args["data"] == "scenes"):
        raise Fail("--lab-evaluator scores sets of objects: give --labels train.json, or "
                   "--data scenes")
    files = args["lab_tests"].split(",") if args["lab_tests"] else []
    if args["labels"] and not files:                            # the lab's layout
        beside = [os.path.join(os.path.dirname(args["labels"]), f"{n}.json")
                  for n in ("test", "new_test")]
        files = [f for f in beside if os.path.isfile(f)]
        if not files:
            raise Fail(f"--lab-evaluator: no test.json or new_test.json beside {args['labels']}: "
                       "give --lab-tests FILE[,FILE]")
    tests = {}
    for f in files:
        table = lab.read_json(f, "--lab-tests")
        if not isinstance(table, list) or not table:
            raise Fail(f"--lab-tests {f} should be a list of conditions, each a list of object "
                       "names, as [[\"red cube\"], ...]")
        tests[os.path.splitext(os.path.basename(f))[0]] = (f, table)
    if not files:                                               # --data scenes: its own
        for name, sets in zip(("test", "new_test"), scenes.conditions(0)):
            tests[name] = ("--data scenes", [[scenes.NAMES[i] for i in s] for s in sets])
    net, ck = load_classifier(path)
    return net.to(proc.device), ck, tests


def lab_sets(evaluator, names, args):
    """The test files' conditions as (n, K) multi-hot in the data's object order; an
    evaluator of other objects is refused."""
    net, ck, tests = evaluator
    theirs = ck["class_names"] or names                         # the course's file: none
    if ck["config"]["num_classes"] != len(names) or theirs != names:
        raise Fail(f"--lab-evaluator {args['lab_evaluator']} scores {len(theirs)} objects "
                   f"({', '.join(theirs[:2])}, ...), not the data's {len(names)} "
                   f"({', '.join(names[:2])}, ...): use the evaluator of these objects")
    asked = {k: lab.multi_hot({f"condition {i}": c for i, c in enumerate(table)}, names, where)
             for k, (where, table) in tests.items()}
    return net, ck, {k: torch.from_numpy(y) for k, y in asked.items()}


def quality(model, ema, batches, features, args, step, proc, lab_check=None):
    """KID and FD of eval_n samples (the EMA's, for the labels or inputs of eval_n fixed
    training images) against those images, into log.jsonl; with lab_check (lab_sets), the
    lab's accuracy of one sample per condition of each test file."""
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
        drawn = {}
        # one sample a condition of each test file
        for k, asked in (lab_check[2] if lab_check else {}).items():
            drawn[k] = torch.cat([net.sample(len(c), c.to(proc.device), **knobs)
                                  for c in asked.split(B)])
    model.train()
    f_real = features(real)                                     # (n, d)
    f_fake = features(fake)                                     # (n, d)
    half = max(2, len(real) // 2)                               # unbiased MMD^2: 2 at least
    kid, kid_std = evaluate.kid(f_real, f_fake, 50, half, args["seed"])
    fd = evaluate.fd(f_real, f_fake)
    proc.log(f"quality at step {step}: KID {kid:.4g} +- {kid_std:.2g}, FD {fd:.4g} "
             f"({len(real)} samples, {args['eval_features']})")
    record = {"step": step, "KID": kid, "KID_std": kid_std, "FD": fd, "eval_n": len(real)}
    for k, x in drawn.items():                                  # outside autocast
        record[f"lab_acc_{k}"] = lab.sampled_accuracy(x, lab_check[2][k], *lab_check[:2])
    if drawn:
        accs = ", ".join(f"{k} {record['lab_acc_' + k]:.3f}" for k in drawn)
        proc.log(f"lab accuracy at step {step}: {accs} (one sample a condition)")
    with open(os.path.join(args["out"], "log.jsonl"), "a") as f:
        f.write(json.dumps(record) + "\n")
