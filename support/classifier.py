"""evaluate.py's small classifier: a CNN trained on a labelled folder (--train-classifier). Its
features stand in for Inception's on small images, and its predictions score the conditional
accuracy; with the lab's train.json it is multi-label. The lab's own ResNet-18 file loads too."""
import os
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from support.cli import COUNT, RATE, Range, writable
from support.cli import Fail, read_checkpoint, save_checkpoint
from support.folders import load_folder
from support import lab


def block(cin, cout):
    """conv 3x3 -> batch norm -> ReLU, at the same size."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())


class Classifier(nn.Module):
    """A small CNN: (B, C, S, S) in [0, 1] -> (features (B, 4 width), logits (B, K)). The features
    keep a 4 x 4 layout before the last layer: a global average would lose where things are."""

    def __init__(self, channels=1, num_classes=10, width=32):
        super().__init__()
        self.net = nn.Sequential(
            block(channels, width), nn.MaxPool2d(2),                      # (w, S/2, S/2)
            block(width, 2 * width), nn.MaxPool2d(2),                     # (2w, S/4, S/4)
            block(2 * width, 4 * width), nn.AdaptiveAvgPool2d(4),         # (4w, 4, 4)
            nn.Flatten(), nn.Linear(64 * width, 4 * width), nn.ReLU())    # (4w,): the features
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, x):
        f = self.net(x * 2 - 1)
        return f, self.head(f)


def classifier_flags(group):
    """evaluate.py's flags for --train-classifier, into an argparse group."""
    group.add_argument("--train-classifier", metavar="DIR",
                       help="a labelled folder, DIR/<class>/*.png")
    group.add_argument("--out", default="classifier.pt",
                       help="the file to write. default: classifier.pt")
    group.add_argument("--labels", metavar="JSON",
                       help="the lab's train.json (files in DIR -> object names): multi-label")
    group.add_argument("--objects", metavar="JSON",
                       help="the lab's objects.json. default: beside --labels")
    group.add_argument("--resize", choices=["crop", "squash"], default="crop",
                       help="non-square images: crop the centre, or squash the whole frame. "
                            "default: crop")
    group.add_argument("--image-size", type=Range(int, 4), default=32,      # two halvings: S/4
                       help="the classifier's input size, at least 4. default: 32")
    group.add_argument("--epochs", type=COUNT, default=10,
                       help="passes over the images. default: 10")
    group.add_argument("--batch-size", type=COUNT, default=128, help="images a step. default: 128")
    group.add_argument("--width", type=COUNT, default=32,
                       help="channels of the first conv; features are 4x. default: 32")
    group.add_argument("--lr", type=RATE, default=1e-3, help="Adam's learning rate. default: 1e-3")


def may_write(path):
    """--out: a file that can be written, and not a file of another kind (a model's ckpt.pt):
    only a classifier of evaluate.py is overwritten."""
    writable("--out", path)
    if os.path.exists(path):
        try:
            ck = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:
            ck = None
        if not isinstance(ck, dict) or ck.get("model") != "classifier":
            raise Fail(f"--out {path} exists and is not a classifier of evaluate.py: choose "
                       f"another --out (it is not overwritten)")


def load_classifier(path):
    """A classifier file -> (the network, in eval mode, and its checkpoint dict): one that
    --train-classifier wrote, or the lab's ResNet-18 evaluator ({"model": state_dict})."""
    if not os.path.isfile(path):
        raise Fail(f"no classifier at {path}: train one with "
                   f"python evaluate.py --train-classifier DIR --out {path}")
    ck = read_checkpoint(path)
    if isinstance(ck, dict) and isinstance(ck.get("model"), dict) and "fc.0.weight" in ck["model"]:
        return lab.course_evaluator(ck["model"], path)             # the lab's own ResNet-18 file
    if not isinstance(ck, dict) or ck.get("model") != "classifier":
        raise Fail(f"{path} is not a classifier of evaluate.py")
    net = Classifier(**ck["config"])
    net.load_state_dict(ck["weights"])
    return net.eval(), ck


def blur_window(channels, device):
    """A Gaussian window, 11 x 11 and sigma 1.5 as SSIM's, as a depthwise conv's weight."""
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()                       # (11, 11), sums to 1
    return torch.tensor(w, dtype=torch.float32, device=device).expand(channels, 1, 11, 11)


def train_classifier(args, device):
    """--train-classifier DIR: every tenth image of each class held out, the rest trained on with
    Adam. With --labels (the lab's train.json) multi-label: K sigmoid outputs, BCE, scored by the
    lab's accuracy."""
    may_write(args.out)
    images, labels, names = load_folder(args.train_classifier, args.image_size, not args.labels,
                                        label_file=args.labels, objects=args.objects,
                                        resize=args.resize)
    if len(names) < 2:                              # one class: every answer right, accuracy 1.0
        raise Fail(f"--train-classifier {args.train_classifier} has one class ({names[0]}): a "
                   f"classifier needs at least 2 to tell apart")
    held = np.arange(len(images)) % 10 == 0
    multi = labels.ndim == 2
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255).to(device)   # in [0, 1]
    y = torch.from_numpy(labels).to(device)
    if not multi:
        y = y.long()
    objective = F.cross_entropy
    if multi:
        objective = F.binary_cross_entropy_with_logits                # each object present or not
    config = dict(channels=x.shape[1], num_classes=len(names), width=args.width)
    net = Classifier(**config).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    g = torch.Generator().manual_seed(args.seed)
    train = torch.from_numpy(np.flatnonzero(~held))
    w = blur_window(x.shape[1], device)
    for epoch in range(args.epochs):
        net.train()
        for idx in train[torch.randperm(len(train), generator=g)].split(args.batch_size):
            idx = idx.to(device)
            xb = x[idx]
            flip = torch.rand(len(xb), 1, 1, 1, device=device) < 0.5
            xb = torch.where(flip, xb.flip(3), xb)                             # random flips
            # and blurs of random strength: samples are often blurry, and a CNN trained on
            # sharp images only misnames them
            a = torch.rand(len(xb), 1, 1, 1, device=device)
            blurred = F.conv2d(F.pad(xb, (5,) * 4, mode="replicate"), w, groups=xb.shape[1])
            xb = (1 - a) * xb + a * blurred
            loss = objective(net(xb)[1], y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        acc = held_out_accuracy(net, x[held], y[held], multi)
        print(f"epoch {epoch + 1}/{args.epochs}: loss {loss.item():.3f}, "
              f"held-out accuracy {acc:.4f} ({held.sum()} images)")
    weights = {k: v.cpu() for k, v in net.state_dict().items()}
    save_checkpoint(args.out, dict(model="classifier", config=config, class_names=list(names),
                                   image_size=args.image_size, weights=weights,
                                   held_out_accuracy=acc, multilabel=multi))
    print(f"wrote {args.out}: {len(names)} classes, {config['channels']} channel(s), "
          f"{args.image_size}x{args.image_size}")


@torch.no_grad()
def held_out_accuracy(net, x, y, multi):
    """How often the classifier names the held-out images right (multi-label: the lab's top-k
    accuracy); nan when none is held out."""
    net.eval()
    if len(x) == 0:
        return float("nan")
    out = torch.cat([net(b)[1] for b in x.split(500)])
    if multi:
        return lab.accuracy(out, y)
    return float((out.argmax(1) == y).float().mean())
