"""evaluate.py's small classifier: a CNN trained on a labelled folder
(--train-classifier). Its features stand in for Inception's on small images, and its
predictions score the conditional accuracy; with the lab's train.json it is multi-label.
The lab's own ResNet-18 file loads too.

`fit` is the one training loop of both small classifiers: this one, on augmented images,
and guidance.py's classifier of noised images x_t."""
import math
import os
import torch
import torch.nn as nn
import torch.nn.functional as F
from support.cli import COUNT, RATE, Range, Fail, fits, read_checkpoint, save_checkpoint
from support.folders import find_images, load_folder
from support.outputs import writable
from support import lab

KINDS = {"classifier": "a classifier of evaluate.py", "noisy_classifier": "a noisy classifier"}


def block(cin, cout):
    """conv 3x3 -> batch norm -> ReLU, at the same size."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())


class Classifier(nn.Module):
    """A small CNN: (B, C, S, S) in [0, 1] -> (features (B, 4 width), logits (B, K)). The
    features keep a 4 x 4 layout before the last layer: a global average would lose where
    things are."""

    def __init__(self, channels=1, num_classes=10, width=32):
        super().__init__()
        self.net = nn.Sequential(
            block(channels, width), nn.MaxPool2d(2),                      # (w, S/2, S/2)
            block(width, 2 * width), nn.MaxPool2d(2),                     # (2w, S/4, S/4)
            block(2 * width, 4 * width), nn.AdaptiveAvgPool2d(4),         # (4w, 4, 4)
            # (4w,): the features
            nn.Flatten(), nn.Linear(64 * width, 4 * width), nn.ReLU())
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, x):
        f = self.net(x * 2 - 1)
        return f, self.head(f)


# -------------------------------------------------------- both small classifiers train so

def training_flags(p):
    """The flags both small classifiers train with, into an argparse parser or group."""
    p.add_argument("--labels", metavar="JSON",
                   help="the lab's train.json (files in DIR -> object names): multi-label")
    p.add_argument("--objects", metavar="JSON", help="objects.json. default: beside --labels")
    p.add_argument("--batch-size", type=COUNT, default=128, help="images a step. default: 128")
    p.add_argument("--width", type=COUNT, default=32,
                   help="channels of the first conv; features are 4x. default: 32")
    p.add_argument("--lr", type=RATE, default=1e-3, help="Adam's learning rate. default: 1e-3")


def may_write(path, kind):
    """--out: a file that can be written, and overwritten only if it holds the same kind,
    never a model's ckpt.pt."""
    writable("--out", path, kind=kind)
    old = read_checkpoint(path) if os.path.exists(path) else {"model": kind}
    if not isinstance(old, dict) or old.get("model") != kind:
        raise Fail(f"--out {path} exists and is not {KINDS[kind]}: choose another --out")


def learnable(args, flag, root, size, device, drawn=False):
    """A labelled folder a classifier can learn from, read from its listing before any image
    is decoded: 2 classes or more (objects with --labels), each with an image among those
    trained on (every tenth is held out), and a batch whose images and first features fit in
    memory: --batch-size drawn anew each step (drawn), else at most the images trained on."""
    if not os.path.isdir(root):
        raise Fail(f"{flag} {root} is not a folder: give the folder of labelled images")
    if args.labels:
        y, names = lab.read_labels(root, args.labels, args.objects)[1:]
        y = torch.from_numpy(y)
    else:
        names = sorted(d for d in os.listdir(root)
                       if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
        counts = torch.tensor([len(find_images(os.path.join(root, d))) for d in names], dtype=int)
        y = torch.arange(len(names)).repeat_interleave(counts)
    kind = "object" if args.labels else "class"
    if len(names) < 2:
        found = f"one {kind} ({names[0]})" if names else f"no {kind}"
        where = "in objects.json" if args.labels else "(one subfolder per class)"
        raise Fail(f"{flag} {root} has {found}: a classifier needs at least 2 to tell apart "
                   f"{where}")
    trained = y[torch.arange(len(y)) % 10 != 0]
    # images of each class, or of each object
    if y.dim() == 1:
        per = torch.bincount(trained, minlength=len(names))
    else:
        per = trained.sum(0)
    if missing := [n for n, c in zip(names, per.tolist()) if c == 0]:
        raise Fail(f"{flag} {root}: no image of the {kind} {missing[0]} to train on "
                   f"({len(missing)} such; every tenth image is held out): give each at least 2")
    batch = args.batch_size if drawn else min(args.batch_size, len(trained))
    # float32: the images (RGB at most) and the first conv's features
    step = batch * size * size * (3 + args.width) * 4
    fits("--batch-size", f"{batch} ({size}x{size}, --width {args.width})", step, device)


def labelled(args, root, size, **kw):
    """A labelled folder -> images (N, C, S, S) float in [0, 255], labels y: class ids
    (N,) or, with --labels, the lab's sets (N, K) multi-hot; and the names of the classes
    or objects."""
    images, labels, names = load_folder(root, size, not args.labels, label_file=args.labels,
                                        objects=args.objects, **kw)
    y = torch.from_numpy(labels if args.labels else labels.astype("int64"))
    return torch.from_numpy(images).permute(0, 3, 1, 2).float(), y, names


def flipped(x):
    """Each image of x (B, C, S, S) mirrored left-right with probability 1/2."""
    return torch.where(torch.rand(len(x), 1, 1, 1, device=x.device) < 0.5, x.flip(3), x)


def fit(net, batches, lr):
    """The training loop: Adam on each batch (inputs, y) -> yields the step's loss. Class
    ids y (B,) are fitted by cross entropy, the lab's sets (B, K) by a sigmoid per
    object."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for inputs, y in batches:
        net.train()
        out = net(*inputs)
        # Classifier: (features, logits)
        logits = out[1] if isinstance(out, tuple) else out
        objective = F.binary_cross_entropy_with_logits if y.dim() == 2 else F.cross_entropy
        loss = objective(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        yield loss


def accuracy(out, y):
    """How often the logits out name y: the argmax for class ids, the lab's top-k for
    sets."""
    if y.dim() == 2:
        return lab.accuracy(out, y)
    return float((out.argmax(1) == y).float().mean())


# --------------------------------------------------------------- evaluate.py's classifier

def classifier_flags(group):
    """evaluate.py's flags for --train-classifier, into an argparse group."""
    group.add_argument("--train-classifier", metavar="DIR",
                       help="a labelled folder, DIR/<class>/*.png")
    group.add_argument("--out", default="classifier.pt",
                       help="the file to write. default: classifier.pt")
    group.add_argument("--resize", choices=["crop", "squash"], default="crop",
                       help="non-square images: crop the centre, or squash the whole frame. "
                            "default: crop")
    # two halvings: S/4
    group.add_argument("--image-size", type=Range(int, 4), default=32,
                       help="the classifier's input size, at least 4. default: 32")
    group.add_argument("--epochs", type=COUNT, default=10,
                       help="passes over the images. default: 10")
    training_flags(group)


def load_classifier(path):
    """A classifier file -> (the network, in eval mode, and its checkpoint dict): one that
    --train-classifier wrote, or the lab's ResNet-18 evaluator ({"model": state_dict})."""
    if not os.path.isfile(path):
        raise Fail(f"no classifier at {path}: train one with "
                   f"python evaluate.py --train-classifier DIR --out {path}")
    ck = read_checkpoint(path)
    if isinstance(ck, dict) and isinstance(ck.get("model"), dict) and "fc.0.weight" in ck["model"]:
        # the lab's own ResNet-18 file
        return lab.course_evaluator(ck["model"], path)
    if not isinstance(ck, dict) or ck.get("model") != "classifier":
        raise Fail(f"{path} is not {KINDS['classifier']}")
    net = Classifier(**ck["config"])
    net.load_state_dict(ck["weights"])
    return net.eval(), ck


def blur_window(channels, device):
    """SSIM's Gaussian window (evaluate.py), as a depthwise conv's weight (C, 1, 11,
    11)."""
    from evaluate import gaussian_window
    w = torch.tensor(gaussian_window(), dtype=torch.float32, device=device)
    return w.expand(channels, 1, 11, 11)


def augmented(x, y, train, args):
    """Batches of the training images, each epoch in a new order, flipped, and blurred by
    SSIM's window at a random strength: samples are often blurry, and a CNN trained on
    sharp images only misnames them."""
    g = torch.Generator().manual_seed(args.seed)
    C = x.shape[1]
    w = blur_window(C, x.device)
    for _ in range(args.epochs):
        for idx in train[torch.randperm(len(train), generator=g)].split(args.batch_size):
            idx = idx.to(x.device)
            xb = flipped(x[idx])
            a = torch.rand(len(xb), 1, 1, 1, device=x.device)
            blurred = F.conv2d(F.pad(xb, (5,) * 4, mode="replicate"), w, groups=C)
            yield ((1 - a) * xb + a * blurred,), y[idx]


def train_classifier(args, device):
    """--train-classifier DIR: every tenth image held out, the rest trained on (fit). With
    --labels (the lab's train.json) multi-label: K sigmoid outputs, scored by the lab's
    accuracy."""
    may_write(args.out, "classifier")
    learnable(args, "--train-classifier", args.train_classifier, args.image_size, device)
    x, y, names = labelled(args, args.train_classifier, args.image_size, resize=args.resize)
    x = x.div(255).to(device)                                                  # in [0, 1]
    y = y.to(device)
    held = torch.arange(len(x)) % 10 == 0
    train = (~held).nonzero()[:, 0]
    config = dict(channels=x.shape[1], num_classes=len(names), width=args.width)
    net = Classifier(**config).to(device)
    # steps an epoch
    epoch = math.ceil(len(train) / args.batch_size)
    for step, loss in enumerate(fit(net, augmented(x, y, train, args), args.lr), 1):
        if step % epoch == 0:
            acc = held_out_accuracy(net, x[held], y[held])
            print(f"epoch {step // epoch}/{args.epochs}: loss {loss.item():.3f}, "
                  f"held-out accuracy {acc:.4f} ({int(held.sum())} images)")
    weights = {k: v.cpu() for k, v in net.state_dict().items()}
    save_checkpoint(args.out, dict(model="classifier", config=config, class_names=list(names),
                                   image_size=args.image_size, weights=weights,
                                   held_out_accuracy=acc, multilabel=y.dim() == 2))
    print(f"wrote {args.out}: {len(names)} classes, {config['channels']} channel(s), "
          f"{args.image_size}x{args.image_size}")


@torch.no_grad()
def held_out_accuracy(net, x, y):
    """How often the classifier names the held-out images right (sets: the lab's top-k
    accuracy); nan when none is held out."""
    net.eval()
    if len(x) == 0:
        return float("nan")
    return accuracy(torch.cat([net(b)[1] for b in x.split(500)]), y)
