"""Classifier guidance (Dhariwal & Nichol, 2021): a classifier of noised images, p_phi(y |
x_t, t), steers a DDPM's sampler by its gradient; the same hook takes a user's loss on
x0_hat.

    1. classifier  p_phi(y | x_t, t): a small CNN on x_t, the step's sinusoidal embedding added to
                   each conv's features; a softmax over K classes, or K sigmoids for the lab's sets
    2. training    x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, t ~ U{1..T} (Ho et al.'s
                   Eq. 4, the DDPM's own schedule); cross entropy, or binary cross entropy for sets
    3. guidance    eps_hat = eps_theta(x_t, t, y) - s sqrt(1 - alpha_bar_t) grad_{x_t} log p_phi(y |
                   x_t, t) (their Algorithm 2's eps form), in ddpm.py's DDPM.reverse; this file
                   gives it the hook grad(x_t, t, y) = grad_{x_t} log p_phi(y | x_t, t). For a set,
                   log p = the sum over the asked objects of log sigmoid: the others are left free
    4. a loss      log p = -L(x0_hat), x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps_theta) /
                   sqrt(alpha_bar_t) (Eq. 4 solved for x_0), differentiated through eps_theta;
                   sample.py's --target-colour: L = H W ||mean colour of x0_hat - target||^2

    python -m support.guidance --data DIR --classes --ddpm runs/ddpm/ckpt.pt --out
    noisy.pt python sample.py runs/ddpm/ckpt.pt --label 3 --classifier noisy.pt
    --classifier-scale 2
"""
import os
import sys
import torch
import torch.nn as nn
import torch.nn.functional as F
from ddpm import timestep_embedding
from support.cli import COUNT, OPEN_UNIT, SEED, Range, Fail, Parser, command
from support.cli import hyperparameters, ints, read_checkpoint, save_checkpoint
from support.classifier import KINDS, accuracy, fit, flipped, labelled, learnable, may_write
from support.classifier import training_flags

# ddpm.py's defaults (Ho et al.)
SCHEDULE = dict(T=1000, beta_1=1e-4, beta_T=0.02)


# ---------------------------------------------------------------------- 1. the classifier

class NoisyClassifier(nn.Module):
    """p_phi(y | x_t, t): x_t (B, C, S, S), step indices (B,) -> logits (B, K). Three
    convs with GroupNorm and SiLU, 2x2 averages between: smooth, so its gradient in x_t is
    a smooth guide."""

    def __init__(self, channels=1, num_classes=10, width=32):
        super().__init__()
        widths = (width, 2 * width, 4 * width)
        self.width = width
        self.time_mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.SiLU(),
                                      nn.Linear(4 * width, 4 * width))
        self.convs = nn.ModuleList(nn.Conv2d(c_in, c, 3, padding=1)
                                   for c_in, c in zip((channels,) + widths, widths))
        self.embs = nn.ModuleList(nn.Linear(4 * width, c) for c in widths)
        self.norms = nn.ModuleList(nn.GroupNorm(8, c) for c in widths)
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, x_t, t):
        emb = self.time_mlp(timestep_embedding(t, self.width).to(x_t))      # (B, 4 width)
        h = x_t
        layers = zip(self.convs, self.embs, self.norms)
        for i, (conv, emb_layer, norm) in enumerate(layers):
            # the step enters here
            h = F.silu(norm(conv(h) + emb_layer(emb)[:, :, None, None]))
            if i < 2:
                # (c, S, S) -> S/2
                h = F.avg_pool2d(h, 2)
        # (B, K) logits
        return self.head(h.mean((2, 3)))


def log_p(logits, y):
    """log p_phi(y | x_t, t) per sample: a softmax for class ids (B,), sigmoids for sets
    (B, K)."""
    if y.dim() == 1:
        # softmax over classes
        return F.log_softmax(logits, 1).gather(1, y[:, None])[:, 0]
    # sigmoids, asked ones
    return (F.logsigmoid(logits) * y).sum(1)


# ------------------------------------------------------------------------ 3, 4. the hooks

def classifier_grad(net):
    """3. The hook grad(x_t, t, y) = grad_{x_t} log p_phi(y | x_t, t), of x_t's shape. The
    samples are independent (GroupNorm is per sample), so the gradient of the batch's sum
    is each one's."""
    def grad(x_t, t, y):
        with torch.enable_grad():                        # sample() runs under no_grad
            x = x_t.detach().requires_grad_()
            return torch.autograd.grad(log_p(net(x, t), y).sum(), x)[0]
    return grad


def loss_grad(model, loss):
    """4. The hook for a user's loss L on x0_hat: grad(x_t, t, y) = -grad_{x_t} L(x0_hat),
    as if p(y | x_t) were exp(-L). x0_hat comes from one more call of eps_theta, with its
    gradient."""
    def grad(x_t, t, y):
        with torch.enable_grad():
            x = x_t.detach().float().requires_grad_()
            ab = model.alpha_bar[t].float().view(-1, 1, 1, 1)
            # Eq. 4 for x_0
            x0_hat = (x - (1 - ab).sqrt() * model.eps_theta(x, t, y)) / ab.sqrt()
            return -torch.autograd.grad(loss(x0_hat).sum(), x)[0]
    return grad


def colour_loss(target):
    """L(x0_hat) = H W ||the mean colour of x0_hat - target||^2, target in [-1, 1] (C,):
    times the pixel count, so that each pixel's gradient, 2 (mean - target), does not
    shrink with the size."""
    def loss(x0_hat):
        H, W = x0_hat.shape[2:]
        mean = x0_hat.mean((2, 3))                                           # (B, C)
        return H * W * (mean - target.to(mean)).pow(2).sum(1)
    return loss


# ---------------------------------------------------------------------- sample.py's flags

def flags(p, model):
    """sample.py's --target-colour (--classifier and --classifier-scale are sample()'s
    keywords)."""
    if "classifier" in hyperparameters(model.sample):
        p.add_argument("--target-colour", type=ints(Range(int, 0, 255)), metavar="R,G,B",
                       help="guide towards this mean colour, 0..255 (one value if grey)")


def guide(ck, model, args, knobs, device):
    """sample.py: --classifier FILE (a noisy classifier) or --target-colour R,G,B -> the
    hook in knobs["classifier"]; each checked against the checkpoint first. Returns the
    checkpoint, whose classes are the classifier's for an unconditional DDPM (then --label
    names the classifier's)."""
    path = knobs.get("classifier")
    rgb = getattr(args, "target_colour", None)
    if rgb is not None and args.gif:
        raise Fail("--target-colour does not apply with --gif: drop it")
    if path and rgb is not None:
        raise Fail("--classifier and --target-colour are two guides: give one of them")
    if "classifier_scale" in knobs and not path and rgb is None:
        raise Fail("--classifier-scale scales --classifier or --target-colour: give one")
    if rgb is not None:
        target = colour(rgb, ck["config"]["channels"])
        knobs["classifier"] = loss_grad(model, colour_loss(target.to(device)))
    if not path:
        return ck
    net, clf = load(path, ck, args.ckpt)
    knobs["classifier"] = classifier_grad(net.to(device))
    # the DDPM's own, or an unconditional DDPM's
    names = clf["class_names"]
    return dict(ck, config=dict(ck["config"], num_classes=len(names)), class_names=names)


def colour(rgb, channels):
    """--target-colour: 0..255 per channel (R,G,B, or one grey value) -> (C,) in [-1,
    1]."""
    if len(rgb) != channels:
        raise Fail(f"--target-colour: this model draws {channels} channel(s): give "
                   f"{'R,G,B' if channels == 3 else 'one value per channel'}")
    return torch.tensor(rgb, dtype=torch.float32) / 127.5 - 1


def load(path, ck, ckpt):
    """A noisy classifier's file -> (the network in eval mode, its dict), checked against
    the DDPM ck (at ckpt) it is to guide: the kind of file, the images, the schedule, the
    classes."""
    train = f"python -m support.guidance --ddpm {ckpt}"
    if not os.path.isfile(path):
        raise Fail(f"no classifier at --classifier {path}: train one with {train}")
    clf = read_checkpoint(path)
    kind = clf.get("model") if isinstance(clf, dict) else None
    if kind == "classifier" or isinstance(kind, dict):
        raise Fail(f"--classifier {path} is a classifier of clean images (evaluate.py's): "
                   f"guidance needs one of noised images: {train}")
    if kind != "noisy_classifier":
        raise Fail(f"--classifier {path} is not {KINDS['noisy_classifier']}")
    config = ck["config"]
    schedule = {k: config.get(k, v) for k, v in SCHEDULE.items()}
    if (clf["image_size"], clf["config"]["channels"], clf["schedule"]) != \
            (config["image_size"], config["channels"], schedule):
        raise Fail(f"--classifier {path} learned other images or noise levels than "
                   f"{ckpt} draws: train it with {train}")
    K = config.get("num_classes", 0)
    sets = clf["multilabel"]
    names = ck.get("class_names") or clf["class_names"]
    same = (clf["config"]["num_classes"], sets, clf["class_names"])
    if K and same != (K, bool((ck.get("args") or {}).get("labels")), names):
        raise Fail(f"--classifier {path} tells apart other classes than {ckpt} draws")
    if not K and sets:
        raise Fail(f"--classifier {path} tells sets apart: train the DDPM with --labels")
    net = NoisyClassifier(**clf["config"])
    net.load_state_dict(clf["weights"])
    return net.eval(), clf


# ---------------------------------------------------------------------------- 2. training

def parse(argv):
    p = Parser(prog="python -m support.guidance", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, metavar="DIR",
                   help="images: class subfolders (--classes), or the lab's (--labels)")
    p.add_argument("--out", default="noisy.pt", help="the file to write. default: noisy.pt")
    p.add_argument("--classes", action="store_true", help="DIR's subfolders are the classes")
    p.add_argument("--ddpm", metavar="CKPT", help="the DDPM to guide (schedule, size, classes)")
    p.add_argument("--T", type=COUNT, help="without --ddpm: the steps T. default: 1000")
    p.add_argument("--beta-1", type=OPEN_UNIT, help="without --ddpm: beta_1. default: 1e-4")
    p.add_argument("--beta-T", type=OPEN_UNIT, help="without --ddpm: beta_T. default: 0.02")
    p.add_argument("--image-size", type=Range(int, 4), help="without --ddpm. default: 32")
    p.add_argument("--steps", type=COUNT, default=2000, help="training steps. default: 2000")
    p.add_argument("--seed", type=SEED, default=0, help="the random seed. default: 0")
    training_flags(p)
    return p.parse_args(argv)


def setting(args):
    """The schedule and the image size: the --ddpm checkpoint's, or the flags' (not
    both)."""
    own = {k: getattr(args, k) for k in ("T", "beta_1", "beta_T", "image_size")}
    if not args.ddpm:
        return {k: SCHEDULE.get(k, 32) if v is None else v for k, v in own.items()}, None
    if given := [k for k, v in own.items() if v is not None]:
        flag = given[0].replace("_", "-")
        raise Fail(f"--{flag} is read from --ddpm {args.ddpm}: drop it")
    ck = read_checkpoint(args.ddpm) if os.path.isfile(args.ddpm) else None
    if not isinstance(ck, dict) or ck.get("model") != "ddpm":
        raise Fail(f"--ddpm {args.ddpm} is not a checkpoint of train.py ddpm")
    return {k: ck["config"].get(k, SCHEDULE.get(k)) for k in own}, ck


def noised(x, y, train, alpha_bar, args):
    """Batches (x_t, t) and their labels: x_0 drawn from the training images and flipped
    at random, t ~ U{1..T}, x_t by Eq. 4."""
    device = alpha_bar.device
    for _ in range(args.steps):
        idx = train[torch.randint(0, len(train), (args.batch_size,))]
        x_0 = flipped(x[idx].to(device))
        # t ~ U{1..T}, as t - 1
        t = torch.randint(0, len(alpha_bar), (len(x_0),), device=device)
        ab = alpha_bar[t].view(-1, 1, 1, 1)
        x_t = ab.sqrt() * x_0 + (1 - ab).sqrt() * torch.randn_like(x_0)   # Eq. 4
        yield (x_t, t), y[idx].to(device)


def main(argv):
    """Trains p_phi(y | x_t, t) on noised batches (classifier.py's fit); every tenth image
    held out, scored at the end at four noise levels."""
    args = parse(argv)
    if not args.classes and not args.labels:
        raise Fail("a classifier needs labels: --classes (DIR's subfolders) or --labels")
    may_write(args.out, "noisy_classifier")
    use, ck = setting(args)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    learnable(args, "--data", args.data, use["image_size"], device, drawn=True)
    x, y, names = labelled(args, args.data, use["image_size"])
    x = x.div(127.5).sub(1)                                                   # in [-1, 1]
    if ck and (x.shape[1], len(names)) != (ck["config"]["channels"],
                                           ck["config"]["num_classes"] or len(names)):
        raise Fail(f"--data {args.data} holds other channels or classes than --ddpm "
                   f"{args.ddpm} draws: give the DDPM's own data")
    beta = torch.linspace(use["beta_1"], use["beta_T"], use["T"], dtype=torch.float64)
    # as ddpm.py's schedule
    alpha_bar = torch.cumprod(1 - beta, 0).float().to(device)
    config = dict(channels=x.shape[1], num_classes=len(names), width=args.width)
    torch.manual_seed(args.seed)
    net = NoisyClassifier(**config).to(device)
    held = torch.arange(len(x)) % 10 == 0
    batches = noised(x, y, (~held).nonzero()[:, 0], alpha_bar, args)
    for step, loss in enumerate(fit(net, batches, args.lr), 1):
        if step % 100 == 0 or step == args.steps:
            print(f"step {step}/{args.steps}: loss {loss.item():.3f}", flush=True)
    found = held_out(net, x[held], y[held], alpha_bar)
    print("held-out accuracy by noise level: " +
          ", ".join(f"t = {t}: {a:.3f}" for t, a in found.items()))
    weights = {k: v.cpu() for k, v in net.state_dict().items()}
    save_checkpoint(args.out, dict(model="noisy_classifier", config=config, weights=weights,
                                   multilabel=bool(args.labels), class_names=list(names),
                                   image_size=use["image_size"], steps=args.steps,
                                   schedule={k: use[k] for k in SCHEDULE},
                                   held_out_accuracy=found))
    print(f"wrote {args.out}: {len(names)} {'objects' if args.labels else 'classes'}, "
          f"{use['image_size']}x{use['image_size']}, schedule of T = {use['T']}")


@torch.no_grad()
def held_out(net, x, y, alpha_bar):
    """The held-out images noised to t = 1, T/4, T/2 and 3T/4 -> the accuracy at each
    (sets: the lab's top-k accuracy), one fixed noise draw."""
    net.eval()
    T = len(alpha_bar)
    device = alpha_bar.device
    g = torch.Generator().manual_seed(0)
    found = {}
    for t in (1, T // 4, T // 2, 3 * T // 4):
        ab = alpha_bar[t - 1].cpu()
        # Eq. 4
        x_t = ab.sqrt() * x + (1 - ab).sqrt() * torch.randn(x.shape, generator=g)
        step = lambda b: torch.full((len(b),), t - 1, device=device)
        out = torch.cat([net(b.to(device), step(b)).cpu() for b in x_t.split(500)])
        found[t] = accuracy(out, y)
    return found


def cli(argv):
    """The command line: main, with a mistake in the user's input as one line and exit
    status 1."""
    return command(main, argv)


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
