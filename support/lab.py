"""The lab: conditions as sets of objects (i-CLEVR's JSON files), and its accuracy.

    train.json    {"CLEVR_train_001032_0.png": ["yellow sphere", "gray cylinder"], ...}
                  file -> objects
    objects.json  {"gray cube": 0, "red cube": 1, ...}              object -> index
    test.json     [["gray cube"], ["red cube", "blue sphere"], ...] conditions to sample

A set of K possible objects is a multi-hot vector y in {0, 1}^K, the form every
conditional model here takes (a class id is the one-hot case). The accuracy is the course
evaluator's: a multi-label classifier scores each sample, and for a sample asked for k
objects, each of them found among the classifier's k highest scores is a hit; accuracy =
hits / objects asked for, over all samples.

Read by folders.py (train.json), sample.py (test.json), evaluate.py (--conditions: the
score) and train.py (--lab-evaluator: the accuracy during training, support/quality.py); a
file of its own because the lab is one thing to read.
"""
import json, os
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from support.cli import Fail


# ------------------------------------------------------------------------ the lab's files

def read_json(path, what):
    """A JSON file -> its value, or one line naming the file."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            return json.load(f)
    except OSError as e:
        raise Fail(f"cannot read {what} {path}: {e.strerror}")
    # JSONDecodeError, UnicodeDecodeError
    except ValueError as e:
        raise Fail(f"{path} is not valid JSON: {str(e).splitlines()[0]}")


def read_objects(path):
    """The lab's objects.json, {"red cube": 0, ...} -> the object names in index order."""
    table = read_json(path, "--objects")
    if not isinstance(table, dict) or \
            sorted(v for v in table.values() if type(v) is int) != list(range(len(table))):
        raise Fail(f"{path} should map each object name to an index 0..K-1")
    return sorted(table, key=table.get)


def multi_hot(table, names, path):
    """{key: [object names]} -> (N, K) float32, 1 where an object is present: the
    condition as a set."""
    index = {n: i for i, n in enumerate(names)}
    y = np.zeros((len(table), len(names)), np.float32)
    for i, (key, objects) in enumerate(table.items()):
        if not isinstance(objects, list) or not all(isinstance(o, str) for o in objects):
            raise Fail(f"{path}: {key} should be a list of object names")
        for o in objects:
            if o not in index:
                raise Fail(f"{path}: unknown object '{o}' in {key} ({', '.join(names[:3])}, ...)")
            y[i, index[o]] = 1
    return y


def read_labels(root, labels, objects=None):
    """--labels train.json ({"file.png": ["red cube", ...]}, file names relative to
    --data) and --objects objects.json (default: the one beside train.json) -> the files,
    (N, K) float32 multi-hot, object names."""
    names = read_objects(objects or os.path.join(os.path.dirname(labels), "objects.json"))
    table = read_json(labels, "--labels")
    if not isinstance(table, dict) or not table:
        raise Fail(f"{labels} should map image file names to lists of object names")
    files = [os.path.join(root, f) for f in table]
    if missing := [f for f in files if not os.path.isfile(f)]:
        raise Fail(f"{missing[0]}, listed in {labels}, is missing ({len(missing)} such file(s))")
    return files, multi_hot(table, names, labels), names


def read_conditions(path, names):
    """The lab's test.json: a list of object-name lists -> (n, K) float32 multi-hot, named
    as the model's objects."""
    table = read_json(path, "--conditions")
    if not isinstance(table, list) or not table:
        raise Fail(f"{path} should be a list of conditions, each a list of object names")
    return multi_hot({f"condition {i}": c for i, c in enumerate(table)}, names, path)


# --------------------------------------------------------------------------- the accuracy

def hits(scores, asked):
    """scores (N, K) from the classifier, asked (N, K) multi-hot -> (hits (N,), k (N,)):
    how many of each sample's asked objects are among its k highest scores, k = the
    objects it asked for (top-k, not top-1). The k highest as the course's evaluator takes
    them, torch.topk on the CPU: a sigmoid saturated at 1.0 ties, and topk's choice among
    the tied is the course's number."""
    scores = torch.as_tensor(scores).cpu()
    asked = torch.as_tensor(asked).cpu() > 0
    # (N,) objects asked for
    k = asked.sum(1)
    h = torch.zeros_like(k)
    # the rows that ask for n
    for n in k.unique().tolist():
        rows = (k == n).nonzero()[:, 0]
        # (rows, n): the n highest
        top = scores[rows].topk(n, 1).indices
        # those among the asked
        h[rows] = asked[rows[:, None], top].sum(1)
    return h, k


def accuracy(scores, asked):
    """The lab's accuracy: the fraction of all asked objects that are hits, sum h / sum
    k."""
    h, k = hits(scores, asked)
    total = int(k.sum())
    # hits / objects asked for
    return int(h.sum()) / total if total else float("nan")


def standard_error(h, k):
    """The accuracy's standard error over the N samples. a = sum h / sum k is a ratio of
    sums; its variance (the delta method) is N / (N - 1) sum_i (h_i - a k_i)^2 / (sum
    k)^2."""
    h = torch.as_tensor(h, dtype=torch.float64)
    k = torch.as_tensor(k, dtype=torch.float64)
    N = len(h)
    if N < 2 or k.sum() == 0:
        return float("nan")
    a = h.sum() / k.sum()                                              # the accuracy
    return float((N / (N - 1) * ((h - a * k) ** 2).sum()).sqrt() / k.sum())


def spread(x, asked):
    """How different the samples of one set are: the mean |x_i - x_j| per pixel (x (N, C,
    S, S) in [0, 1]) over the pairs i < j asked for the same set. 0 when a generator draws
    one image per set whatever its z (mode collapse); 1/3 for independent uniform noise;
    nan when no set is asked for twice (repeat the conditions file's sets to measure
    it)."""
    keys = [tuple(row.nonzero()[:, 0].tolist()) for row in torch.as_tensor(asked) > 0]
    total, pairs = 0.0, 0
    for key in set(keys):
        rows = [i for i, other in enumerate(keys) if other == key]
        if len(rows) < 2:
            continue
        flat = x[rows].flatten(1).double()                               # (n, C S S)
        # (n, n) mean |x_i - x_j|
        d = torch.cdist(flat, flat, p=1) / flat.shape[1]
        # each pair i < j once
        total += float(d.triu(1).sum())
        pairs += len(rows) * (len(rows) - 1) // 2
    return total / pairs if pairs else float("nan")


@torch.no_grad()
def score(samples, conditions, net, ck, device):
    """SAMPLES/0.png, 1.png, ... (sample.py --conditions --out SAMPLES/) against the
    conditions they were asked for, scored by a multi-label classifier of evaluate.py -> a
    dict of figures."""
    names = ck["class_names"]
    objects = "its class names"
    # the course's file has none: the objects.json of the lab
    if not names:
        objects = os.path.join(os.path.dirname(conditions), "objects.json")
        names = read_objects(objects)
    K = ck["config"]["num_classes"]
    if K != len(names):
        raise Fail(f"--classifier scores {K} objects, but {objects} names {len(names)}")
    asked = read_conditions(conditions, names)
    if not asked.any():
        raise Fail(f"{conditions} asks for no objects: there is nothing to score")
    size = ck["image_size"]
    x = []
    for i in range(len(asked)):
        path = os.path.join(samples, f"{i}.png")
        try:
            with Image.open(path) as im:
                im = im.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
        except (OSError, ValueError) as e:
            raise Fail(f"cannot read {path}, the sample of condition {i} ({type(e).__name__})")
        x.append(torch.from_numpy(np.asarray(im).copy()))
    # (N, 3, S, S) in [0, 1]
    x = torch.stack(x).permute(0, 3, 1, 2).float().div(255)
    within = spread(x, asked)
    x = x.mean(1, keepdim=True) if ck["config"]["channels"] == 1 else x
    logits = torch.cat([net.to(device)(b.to(device))[1].float().cpu() for b in x.split(200)])
    h, k = hits(logits, asked)
    se = standard_error(h, k)
    # None, not nan, where a figure needs two conditions or a set asked for twice: JSON's null
    return {"samples": samples, "n": len(asked), "conditions": conditions,
            "lab_accuracy": int(h.sum()) / int(k.sum()),
            "lab_accuracy_se": None if np.isnan(se) else se,
            "lab_spread": None if np.isnan(within) else within}


@torch.no_grad()
def sampled_accuracy(x, asked, net, ck):
    """train.py's --lab-evaluator: samples x (n, C, S, S) in [-1, 1], one per condition of
    asked (n, K), read as score reads sample.py's PNGs (8-bit levels, resized bicubic to
    the evaluator's size, grey for a grey evaluator) -> the lab's accuracy."""
    size = ck["image_size"]
    # a PNG's levels, in [0, 1]
    x = ((x.float().clamp(-1, 1) + 1) * 127.5).round() / 255
    if x.shape[-1] != size:
        x = F.interpolate(x, (size, size), mode="bicubic", antialias=True).clamp(0, 1)
    x = x.mean(1, keepdim=True) if ck["config"]["channels"] == 1 else x
    device = next(net.parameters()).device
    # hits / objects asked for
    return accuracy(net(x.to(device))[1].float(), asked)


# ----------------------------------------------------------------- the course's evaluator

def basic_block(c_in, c_out, stride):
    """ResNet's BasicBlock as torchvision names it: conv1 bn1 relu conv2 bn2 (+
    downsample.0/.1 when the shape changes)."""
    b = nn.Module()
    b.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
    b.bn1 = nn.BatchNorm2d(c_out)
    b.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
    b.bn2 = nn.BatchNorm2d(c_out)
    b.downsample = None
    if stride != 1 or c_in != c_out:
        b.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                     nn.BatchNorm2d(c_out))
    return b


class ResNet18(nn.Module):
    """The course's evaluator: ResNet-18 (He et al., 2016) with fc = Linear(512, 24) +
    Sigmoid, saved from torchvision as {"model": state_dict}; written out under
    torchvision's parameter names, so that file loads without torchvision. Takes (B, 3,
    64, 64) in [0, 1], normalised to [-1, 1] as the course does (Normalize(0.5, 0.5));
    returns (features (B, 512), probabilities (B, 24)), as support/classifier.py's
    Classifier."""

    def __init__(self, num_classes=24):
        super().__init__()
        # (64, S/2, S/2)
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        widths = [64, 64, 128, 256, 512]
        # layer1..4: S/4 .. S/32
        for i in range(1, 5):
            stride = 1 if i == 1 else 2
            setattr(self, f"layer{i}", nn.Sequential(basic_block(widths[i - 1], widths[i], stride),
                                                     basic_block(widths[i], widths[i], 1)))
        self.fc = nn.Sequential(nn.Linear(512, num_classes), nn.Sigmoid())

    def forward(self, x):
        relu = torch.relu
        h = nn.functional.max_pool2d(relu(self.bn1(self.conv1(x * 2 - 1))), 3, 2, 1)
        for i in range(1, 5):
            for b in getattr(self, f"layer{i}"):
                skip = h if b.downsample is None else b.downsample(h)
                # y = F(x) + x
                h = relu(b.bn2(b.conv2(relu(b.bn1(b.conv1(h))))) + skip)
        # global average pool
        f = h.mean((2, 3))
        return f, self.fc(f)


def course_evaluator(state, path):
    """The course's checkpoint's state dict -> (ResNet18, a checkpoint-like dict for
    score)."""
    net = ResNet18(state["fc.0.weight"].shape[0])
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise Fail(f"{path} is not the course's ResNet-18 evaluator: {str(e).splitlines()[0]}")
    config = {"channels": 3, "num_classes": net.fc[0].out_features}
    return net.eval(), {"class_names": None, "image_size": 64, "config": config}
