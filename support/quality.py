"""train.py --eval-every N: KID and FD of the EMA's samples against the training images they were
drawn for, every N steps, into log.jsonl: to watch a run move, not to publish (evaluate.py does
that, on held-out images). With --lab-evaluator, also the lab's accuracy of one sample per
condition of each test file (lab_acc_test, lab_acc_new_test): the GAN's accuracy jumping while its
loss says nothing, as the lab report found, shows in the curves (python -m measure.curves).
"""
import json
import os
import torch
import evaluate
from support import lab, scenes
from support.cli import Fail
from support.classifier import load_classifier
from support.preview import preview_knobs


def load_features(args, proc):
    """evaluate.py's features (a classifier's, or Inception's) when --eval-every asks for them;
    a missing file fails now, before any image is decoded."""
    if not args["eval_every"]:
        return None
    return evaluate.features_of(args["eval_features"], proc.device)


def load_lab(args, proc):
    """--lab-evaluator: the evaluator (a multi-label classifier of evaluate.py, or the course's
    ResNet-18 file) and the test files (--lab-tests, else test.json and new_test.json beside
    --labels, else the built-in scenes' own), read before any image is decoded -> None, or
    (the network, its checkpoint dict, {name: (file, [[object names], ...])})."""
    path = args["lab_evaluator"]
    if not path:
        return None
    if not args["eval_every"]:
        raise Fail("--lab-evaluator is scored at each quality check: give --eval-every N too")
    if not (args["labels"] or args["data"] == "scenes"):
        raise Fail("--lab-evaluator scores sets of objects: give --labels train.json, or "
                   "--data scenes")
    files = args["lab_tests"].split(",") if args["lab_tests"] else []
    if args["labels"] and not files:                            # the lab's layout: beside it
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
    if not files:                                               # --data scenes: its own two lists
        for name, sets in zip(("test", "new_test"), scenes.conditions(0)):
            tests[name] = ("--data scenes", [[scenes.NAMES[i] for i in s] for s in sets])
    net, ck = load_classifier(path)
    return net.to(proc.device), ck, tests


def lab_sets(evaluator, names, args):
    """The test files' conditions as (n, K) multi-hot in the run's object order, once the data
    have named the objects; an evaluator of other objects is refused."""
    if evaluator is None:
        return None
    net, ck, tests = evaluator
    theirs = ck["class_names"] or names                         # the course's file: objects.json's
    if ck["config"]["num_classes"] != len(names) or theirs != names:
        raise Fail(f"--lab-evaluator {args['lab_evaluator']} scores {len(theirs)} objects "
                   f"({', '.join(theirs[:2])}, ...), not the data's {len(names)} "
                   f"({', '.join(names[:2])}, ...): use the evaluator of these objects")
    asked = {k: lab.multi_hot({f"condition {i}": c for i, c in enumerate(table)}, names, where)
             for k, (where, table) in tests.items()}
    return net, ck, {k: torch.from_numpy(y) for k, y in asked.items()}


def quality(model, ema, batches, features, args, step, proc, lab_check=None):
    """KID and FD of eval_n samples (the EMA's, for the labels or inputs of eval_n fixed training
    images) against those images (the targets), on features, logged and written to log.jsonl; with
    lab_check (lab_sets), the lab's accuracy of one sample per condition of each test file."""
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
        for k, asked in (lab_check[2] if lab_check else {}).items():    # one sample a condition
            drawn[k] = torch.cat([net.sample(len(c), c.to(proc.device), **knobs)
                                  for c in asked.split(B)])
    model.train()
    f_real = features(real)                                     # (n, d)
    f_fake = features(fake)                                     # (n, d)
    half = max(2, len(real) // 2)                       # the unbiased MMD^2 needs 2 a subset
    kid, kid_std = evaluate.kid(f_real, f_fake, 50, half, args["seed"])
    fd = evaluate.fd(f_real, f_fake)
    proc.log(f"quality at step {step}: KID {kid:.4g} +- {kid_std:.2g}, FD {fd:.4g} "
             f"({len(real)} samples, {args['eval_features']})")
    record = {"step": step, "KID": kid, "KID_std": kid_std, "FD": fd, "eval_n": len(real)}
    for k, x in drawn.items():                                  # outside autocast: as evaluate.py
        record[f"lab_acc_{k}"] = lab.sampled_accuracy(x, lab_check[2][k], *lab_check[:2])
    if drawn:
        accs = ", ".join(f"{k} {record['lab_acc_' + k]:.3f}" for k in drawn)
        proc.log(f"lab accuracy at step {step}: {accs} (one sample a condition)")
    with open(os.path.join(args["out"], "log.jsonl"), "a") as f:
        f.write(json.dumps(record) + "\n")
