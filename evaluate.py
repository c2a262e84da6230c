"""The lecture's metrics for a folder of samples, each written from its paper.

    python evaluate.py SAMPLES --ref REAL                       # FID, KID, precision/recall, IS (Inception)
    python evaluate.py SAMPLES --ref REAL --classifier clf.pt   # the same on a small classifier's features,
                                                                # and conditional accuracy for class subfolders
    python evaluate.py OUTPUTS --pairs TARGETS                  # translation: PSNR and SSIM against targets
    python evaluate.py --train-classifier DIR --out clf.pt      # a classifier for DIR/<class>/*.png
    python evaluate.py --train-classifier DIR --labels train.json   # multi-label, for the lab (see lab.py)
    python evaluate.py SAMPLES --conditions test.json --classifier clf.pt   # the lab's accuracy of SAMPLES/0.png ...

    1. FD      ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)), Gaussians fitted to features;
               FID on Inception's 2048-d features (Heusel et al., 2017)
    2. KID     unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3, averaged over subsets (Binkowski et al., 2018)
    3. P / R   precision: samples inside the real k-NN manifold; recall: real images inside the
               samples' one; each ball reaches a point's k-th neighbour, k = 3 (Kynkaanniemi et al., 2019)
    4. IS      exp(E_x KL(p(y | x) || p(y))), per split (Salimans et al., 2016)
    5. acc     how often the classifier names the class of the subfolder a sample was asked for
    6. PSNR    10 log10(1 / MSE) on the [0, 1] scale; SSIM (Wang et al., 2004), Gaussian window 11,
               sigma 1.5, K1 0.01, K2 0.03, averaged over the map

The Inception network needs its weights file (see inception.py; --inception-weights PATH, or in the
cache folder). Figures on the classifier's features are for comparing runs here: they are not FID.
"""
import argparse, json, math, os, sys
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from support.cli import Fail, read_checkpoint, save_checkpoint
from support.data import find_images, load_folder, load_image, load_pair, to_uint8
from support import inception, lab


def cached_weights():
    """Where the Inception weights file is looked for: the cache folder of data.py's decoded images."""
    return os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "genmodels", inception.WEIGHTS)


# ----------------------------------------------------------------------------- the metrics (float64)

def frechet_distance(mu1, S1, mu2, S2):
    """Eq. 1: the Frechet distance of N(mu1, S1) and N(mu2, S2). Tr (S1 S2)^(1/2) = Tr (S1^(1/2) S2 S1^(1/2))^(1/2),
    similar matrices, and the right one is symmetric: two eigen-decompositions, no complex roots."""
    w, V = np.linalg.eigh(S1)
    root1 = (V * np.sqrt(w.clip(0))) @ V.T                                 # S1^(1/2)
    M = root1 @ S2 @ root1
    tr_sqrt = np.sqrt(np.linalg.eigvalsh((M + M.T) / 2).clip(0)).sum()     # Tr (S1 S2)^(1/2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(S1) + np.trace(S2) - 2 * tr_sqrt)


def fd(f1, f2):
    """Features (N, d), (M, d) -> the Frechet distance of the Gaussians fitted to them."""
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    return frechet_distance(f1.mean(0), np.cov(f1, rowvar=False), f2.mean(0), np.cov(f2, rowvar=False))


def mmd2(x, y):
    """Eq. 2: the unbiased MMD^2 with the cubic polynomial kernel; the diagonals k(x_i, x_i) are left out."""
    d, m, n = x.shape[1], len(x), len(y)
    k = lambda a, b: (a @ b.T / d + 1) ** 3                                # k(x, y) = (x.y / d + 1)^3
    Kxx, Kyy, Kxy = k(x, x), k(y, y), k(x, y)
    return ((Kxx.sum() - np.trace(Kxx)) / (m * (m - 1)) + (Kyy.sum() - np.trace(Kyy)) / (n * (n - 1))
            - 2 * Kxy.mean())


def kid(f1, f2, subsets=100, size=1000, seed=0):
    """KID: MMD^2 on `subsets` random subsets of `size` from each set -> (mean, std)."""
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    rng, size = np.random.default_rng(seed), min(size, len(f1), len(f2))
    v = [mmd2(f1[rng.choice(len(f1), size, replace=False)], f2[rng.choice(len(f2), size, replace=False)])
         for _ in range(subsets)]
    return float(np.mean(v)), float(np.std(v))


def radii(f, k):
    """The distance from each point of f to its k-th nearest neighbour, itself left out."""
    return torch.cat([torch.cdist(b, f).kthvalue(k + 1, 1).values for b in f.split(1000)])   # the 1st is itself, at 0


def coverage(points, f, r):
    """The fraction of `points` inside at least one ball B(f_i, r_i)."""
    return float(torch.cat([(torch.cdist(b, f) <= r).any(1) for b in points.split(1000)]).double().mean())


def precision_recall(real, fake, k=3):
    """Eq. 3: precision = samples inside the real manifold, recall = real points inside the samples' one."""
    real, fake = torch.as_tensor(np.asarray(real), dtype=torch.float64), torch.as_tensor(np.asarray(fake), dtype=torch.float64)
    return coverage(fake, real, radii(real, k)), coverage(real, fake, radii(fake, k))


def inception_score(p, splits=10):
    """Eq. 4: p (N, K) = p(y | x) -> exp(E_x KL(p(y | x) || p(y))) on each split, p(y) its mean -> (mean, std)."""
    s = []
    for q in np.array_split(np.asarray(p, np.float64), splits):
        p_y = q.mean(0, keepdims=True)                                     # p(y) = E_x p(y | x), (1, K)
        kl = (q * (np.log(q + 1e-12) - np.log(p_y + 1e-12))).sum(1)        # KL(p(y | x) || p(y)), (n,)
        s.append(math.exp(kl.mean()))
    return float(np.mean(s)), float(np.std(s))


def psnr(x, y):
    """Eq. 6: 10 log10(1 / MSE) per image of (N, C, H, W) in [0, 1], averaged."""
    mse = ((np.asarray(x, np.float64) - np.asarray(y, np.float64)) ** 2).reshape(len(x), -1).mean(1)
    return float((10 * np.log10(1 / np.maximum(mse, 1e-10))).mean())


def gaussian_window(size=11, sigma=1.5):
    g = np.exp(-((np.arange(size) - size // 2) ** 2) / (2 * sigma**2))
    return np.outer(g, g) / np.outer(g, g).sum()                           # (size, size), sums to 1


def ssim(x, y, K1=0.01, K2=0.03, L=1.0):
    """Eq. 6: SSIM per image of (N, C, H, W) in [0, 1], the mean of the map over valid windows and channels."""
    x, y = torch.as_tensor(np.asarray(x), dtype=torch.float64), torch.as_tensor(np.asarray(y), dtype=torch.float64)
    C = x.shape[1]
    w = torch.tensor(gaussian_window()).expand(C, 1, 11, 11)
    mean = lambda a: F.conv2d(a, w, groups=C)                              # Gaussian-weighted local mean, valid windows
    mu_x, mu_y = mean(x), mean(y)
    var_x, var_y, cov = mean(x * x) - mu_x**2, mean(y * y) - mu_y**2, mean(x * y) - mu_x * mu_y
    C1, C2 = (K1 * L) ** 2, (K2 * L) ** 2
    s = ((2 * mu_x * mu_y + C1) * (2 * cov + C2)) / ((mu_x**2 + mu_y**2 + C1) * (var_x + var_y + C2))
    return s.mean((1, 2, 3)).numpy()


# ----------------------------------------------------------------------------- the feature networks

def block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())


class Classifier(nn.Module):
    """A small CNN: (B, C, S, S) in [0, 1] -> (features (B, 4 width), logits (B, K)). The features keep
    a 4 x 4 layout before the last layer: a global average would throw away where things are."""

    def __init__(self, channels=1, num_classes=10, width=32):
        super().__init__()
        self.net = nn.Sequential(block(channels, width), nn.MaxPool2d(2),             # (w, S/2, S/2)
                                 block(width, 2 * width), nn.MaxPool2d(2),            # (2w, S/4, S/4)
                                 block(2 * width, 4 * width), nn.AdaptiveAvgPool2d(4),  # (4w, 4, 4)
                                 nn.Flatten(), nn.Linear(64 * width, 4 * width), nn.ReLU())   # (4w,): the features
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, x):
        f = self.net(x * 2 - 1)
        return f, self.head(f)


def load_classifier(path):
    if not os.path.isfile(path):
        raise Fail(f"no classifier at {path}: train one with python evaluate.py --train-classifier DIR --out {path}")
    ck = read_checkpoint(path)
    if isinstance(ck, dict) and isinstance(ck.get("model"), dict) and "fc.0.weight" in ck["model"]:
        return lab.course_evaluator(ck["model"], path)                    # the lab's own ResNet-18 file
    if not isinstance(ck, dict) or ck.get("model") != "classifier":
        raise Fail(f"{path} is not a classifier of evaluate.py")
    net = Classifier(**ck["config"])
    net.load_state_dict(ck["weights"])
    return net.eval(), ck


def load_inception(path, instead="give --inception-weights PATH"):
    path = path or cached_weights()
    if not os.path.isfile(path):
        raise Fail(f"no Inception weights at {path}: download {inception.URL} there or {instead}")
    net = inception.InceptionV3()
    try:
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as e:
        raise Fail(f"{path} is not the FID Inception weights file ({type(e).__name__})")
    return net.eval()


def features_of(spec, device):
    """train.py --eval-features: a classifier's path, or 'inception' (the weights file in the cache folder) ->
    a function from samples (B, C, H, W) in [-1, 1] to features (B, d), read as evaluate.py reads PNGs."""
    net, ck = (load_inception(None, "give --eval-features a classifier"), None) if spec == "inception" else load_classifier(spec)
    net.to(device)
    size, C = (ck["image_size"], ck["config"]["channels"]) if ck else (None, 3)      # Inception resizes to 299 itself
    resize = (lambda x: x) if size is None else lambda x: F.interpolate(x.float(), size, mode="bilinear", antialias=True)
    return lambda x: run(net, to_uint8(resize(x)), C, device)[0]          # uint8, as if written to PNG and read back


@torch.no_grad()
def run(net, images, channels, device, batch=200):
    """(N, S, S, C) uint8 -> features and softmax probabilities, float64 numpy. float32 throughout: the
    features feed a covariance, and bf16 rounding would move FD more than the models differ."""
    feats, probs = [], []
    for lo in range(0, len(images), batch):
        x = torch.from_numpy(images[lo:lo + batch]).to(device).permute(0, 3, 1, 2).float() / 255   # (B, C, S, S)
        x = x.mean(1, keepdim=True) if channels == 1 else x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        f, logits = net(x)
        feats.append(f.double().cpu()), probs.append(logits.double().softmax(1).cpu())
    return torch.cat(feats).numpy(), torch.cat(probs).numpy()


def read(root, size, classes=False):
    """A folder -> (N, S, S, C) uint8, labels, names; at the first image's size when size is None."""
    if size is None:
        files = find_images(root) if os.path.isdir(root) else []
        size = min(pixels(files[0])) if files else 32                    # load_folder names an empty folder
    return load_folder(root, size, classes=classes)


def pixels(path):
    try:
        with Image.open(path) as im:
            return im.size                                                 # (width, height)
    except (OSError, ValueError) as e:
        raise Fail(f"cannot read image {path}: {e}")


# ----------------------------------------------------------------------------- the commands

def train_classifier(args, device):
    """--train-classifier DIR: every tenth image of each class held out, the rest trained on with Adam. With
    --labels (the lab's train.json) multi-label: K sigmoid outputs, BCE, scored by the lab's accuracy."""
    images, labels, names = load_folder(args.train_classifier, args.image_size, not args.labels, label_file=args.labels,
                                        objects=args.objects, resize=args.resize)
    held, multi = np.arange(len(images)) % 10 == 0, labels.ndim == 2
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255).to(device)   # (N, C, S, S) in [0, 1]
    y = torch.from_numpy(labels).to(device) if multi else torch.from_numpy(labels).long().to(device)
    config = dict(channels=x.shape[1], num_classes=len(names), width=args.width)
    net = Classifier(**config).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    g = torch.Generator().manual_seed(args.seed)
    train = torch.from_numpy(np.flatnonzero(~held))
    w = torch.tensor(gaussian_window(11, 1.5), dtype=torch.float32, device=device).expand(x.shape[1], 1, 11, 11)
    for epoch in range(args.epochs):
        net.train()
        for idx in train[torch.randperm(len(train), generator=g)].split(args.batch_size):
            xb = x[idx.to(device)]
            xb = torch.where(torch.rand(len(xb), 1, 1, 1, device=device) < 0.5, xb.flip(3), xb)   # random flips
            a = torch.rand(len(xb), 1, 1, 1, device=device)                # and blur: samples are often blurry, and a
            xb = (1 - a) * xb + a * F.conv2d(F.pad(xb, (5,) * 4, mode="replicate"), w, groups=xb.shape[1])  # sharp-only CNN misnames them
            logits = net(xb)[1]                                                # BCE: each object present or not
            loss = (F.binary_cross_entropy_with_logits if multi else F.cross_entropy)(logits, y[idx.to(device)])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            out = torch.cat([net(b)[1] for b in x[held].split(500)]) if held.any() else None
            acc = float("nan") if out is None else lab.accuracy(out, y[held]) if multi else float((out.argmax(1) == y[held]).float().mean())
        print(f"epoch {epoch + 1}/{args.epochs}: loss {loss.item():.3f}, held-out accuracy {acc:.4f} ({held.sum()} images)")
    save_checkpoint(out := args.out, dict(model="classifier", config=config, class_names=list(names), image_size=args.image_size,
                              weights={k: v.cpu() for k, v in net.state_dict().items()}, held_out_accuracy=acc, multilabel=multi))
    print(f"wrote {out}: {len(names)} classes, {config['channels']} channel(s), {args.image_size}x{args.image_size}")


def translation(args):
    """--pairs TARGETS: each output against the target of the same name (TARGETS/B/, or the right half
    of a side-by-side pair A|B), at the output's size."""
    outputs = find_images(args.samples) if os.path.isdir(args.samples) else []
    if not outputs:
        raise Fail(f"no images found in {args.samples}")
    tdir = os.path.join(args.pairs, "B") if os.path.isdir(os.path.join(args.pairs, "B")) else args.pairs
    targets = {os.path.splitext(os.path.basename(f))[0]: f for f in find_images(tdir)}
    X, Y = [], []
    for f in outputs:
        stem = os.path.splitext(os.path.basename(f))[0]
        if stem not in targets:
            raise Fail(f"{f} has no target named {stem}.* in {tdir}")
        size, t = min(pixels(f)), targets[stem]
        w, h = pixels(t)
        try:
            X.append(load_image(f, size)[0])
            Y.append(load_pair(t, size)[..., 3:] if w == 2 * h else load_image(t, size)[0])     # A|B: B is the target
        except (OSError, ValueError) as e:
            raise Fail(f"cannot read {f} or {targets[stem]}: {e}")
    x, y = (np.stack(a).transpose(0, 3, 1, 2) / 255.0 for a in (X, Y))
    if min(x.shape[2:]) < 11:
        raise Fail(f"SSIM's window is 11x11 but the images are {x.shape[2]}x{x.shape[3]}")
    return {"pairs": len(x), "L1": float(np.abs(x - y).mean()), "PSNR": psnr(x, y), "SSIM": float(ssim(x, y).mean())}


def measure(args, device):
    """SAMPLES (and --ref REAL) -> a dict of figures."""
    use = args.features or ("classifier" if args.classifier else "inception")
    if use == "classifier" and not args.classifier:
        raise Fail("--features classifier needs --classifier PATH (make one with --train-classifier DIR)")
    clf, ck = load_classifier(args.classifier) if args.classifier else (None, None)
    net = (clf if use == "classifier" else load_inception(args.inception_weights)).to(device)
    size, C = (ck["image_size"], ck["config"]["channels"]) if use == "classifier" else (None, 3)   # Inception: resized to 299
    split = os.path.isdir(args.samples) and any(os.path.isdir(os.path.join(args.samples, d)) for d in os.listdir(args.samples))
    images, labels, names = read(args.samples, size, classes=split)
    f, p = run(net, images, C, device)
    r = {"samples": args.samples, "n": len(images), "features": use, "feature_dim": f.shape[1]}
    order = np.random.default_rng(args.seed).permutation(len(p))          # class subfolders come in order: mix the splits
    r["IS"], r["IS_std"] = inception_score(p[order], args.splits)
    if split and clf is not None:                                          # conditional accuracy: the subfolder is the class asked for
        unknown = [n for n in names if n not in ck["class_names"]]
        if unknown:
            raise Fail(f"subfolder '{unknown[0]}' of {args.samples} is not a class of {args.classifier} "
                       f"({', '.join(ck['class_names'])})")
        q = p if use == "classifier" else run(clf, read(args.samples, ck["image_size"], True)[0], ck["config"]["channels"], device)[1]
        pred = q.argmax(1)                                                 # the class the classifier names
        asked = np.array([ck["class_names"].index(names[i]) for i in labels])
        r["accuracy"] = float((pred == asked).mean())
        r["accuracy_per_class"] = {n: float((pred == asked)[labels == i].mean()) for i, n in enumerate(names)}
    if args.ref:
        ref = read(args.ref, size)[0]
        g = run(net, ref, C, device)[0]
        r.update(ref=args.ref, n_ref=len(ref), FD=fd(g, f))
        if min(len(f), len(g)) < 2 or args.kid_size < 2:
            raise Fail("KID needs at least 2 images in each folder")
        r["KID"], r["KID_std"] = kid(g, f, args.kid_subsets, args.kid_size, args.seed)
        r["KID_subset"] = min(args.kid_size, len(f), len(g))
        if min(len(f), len(g)) <= args.k:
            raise Fail(f"precision/recall with k = {args.k} needs more than {args.k} images in each folder")
        r["precision"], r["recall"] = precision_recall(g, f, args.k)
    return r


def table(r, args):
    """The figures as one readable table."""
    name = "FID" if r.get("features") == "inception" else "FD (classifier features, not FID)"
    rows = [("images", f"{r.get('n', r.get('pairs'))} in {args.samples}" + (f", {r['n_ref']} in {r['ref']}" if "ref" in r else ""))]
    if "features" in r:
        rows.append(("features", f"{r['features']}, {r['feature_dim']}-d"))
    if "FD" in r:
        rows += [(name, f"{r['FD']:.3f}"),
                 ("KID", f"{r['KID']:.4g} +- {r['KID_std']:.2g}  ({args.kid_subsets} subsets of {r['KID_subset']})"),
                 (f"precision, recall (k = {args.k})", f"{r['precision']:.3f}, {r['recall']:.3f}")]
    if "IS" in r:
        rows.append((f"IS ({'Inception' if r['features'] == 'inception' else 'classifier'}, {args.splits} splits)",
                     f"{r['IS']:.3f} +- {r['IS_std']:.3f}"))
    if "accuracy" in r:
        worst = min(r["accuracy_per_class"], key=r["accuracy_per_class"].get)
        rows.append(("conditional accuracy", f"{r['accuracy']:.4f}  (lowest: {worst} {r['accuracy_per_class'][worst]:.2f})"))
    if "lab_accuracy" in r:
        rows.append(("the lab's accuracy (top-k)", f"{r['lab_accuracy']:.4f}  ({r['n']} conditions of {r['conditions']})"))
    if "PSNR" in r:
        rows += [("mean L1 ([0, 1] scale)", f"{r['L1']:.4f}"), ("PSNR", f"{r['PSNR']:.2f} dB"), ("SSIM", f"{r['SSIM']:.4f}")]
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{w}}  {v}" for k, v in rows)


def parse(argv):
    p = argparse.ArgumentParser(prog="evaluate.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("samples", nargs="?", help="a folder of generated images (class subfolders: conditional accuracy)")
    p.add_argument("--ref", help="a folder of real images: FD, KID, precision and recall against it")
    p.add_argument("--json", help="also write the figures to this file")
    p.add_argument("--features", choices=["inception", "classifier"],
                   help="default: classifier when --classifier is given, else inception")
    p.add_argument("--classifier", metavar="PATH", help="a classifier from --train-classifier")
    p.add_argument("--inception-weights", metavar="PATH", help=f"default: {cached_weights()}")
    p.add_argument("--pairs", metavar="TARGETS", help="translation: PSNR and SSIM against the targets of the same names")
    p.add_argument("--conditions", metavar="JSON", help="the lab: SAMPLES/0.png, 1.png, ... against test.json's sets (lab.py)")
    p.add_argument("--kid-subsets", type=int, default=100, help="default: 100")
    p.add_argument("--kid-size", type=int, default=1000, help="images per KID subset (fewer if a folder has fewer). default: 1000")
    p.add_argument("--k", type=int, default=3, help="the k of precision/recall. default: 3")
    p.add_argument("--splits", type=int, default=10, help="IS splits. default: 10")
    p.add_argument("--seed", type=int, default=0)
    t = p.add_argument_group("training the classifier")
    t.add_argument("--train-classifier", metavar="DIR", help="a labelled folder, DIR/<class>/*.png")
    t.add_argument("--out", default="classifier.pt", help="where to write it. default: classifier.pt")
    t.add_argument("--labels", metavar="JSON", help="the lab's train.json (files in DIR -> object names): multi-label")
    t.add_argument("--objects", metavar="JSON", help="the lab's objects.json. default: beside --labels")
    t.add_argument("--resize", choices=["crop", "squash"], default="crop", help="non-square images. default: crop")
    t.add_argument("--image-size", type=int, default=32, help="default: 32")
    t.add_argument("--epochs", type=int, default=10, help="default: 10")
    t.add_argument("--batch-size", type=int, default=128, help="default: 128")
    t.add_argument("--width", type=int, default=32, help="channels of the first conv; features are 4x. default: 32")
    t.add_argument("--lr", type=float, default=1e-3, help="default: 1e-3")
    args = p.parse_args(argv)
    if not args.samples and not args.train_classifier:
        p.error("give SAMPLES (a folder of images) or --train-classifier DIR")
    return args


def main(argv):
    args = parse(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(args.seed)
    if args.train_classifier:
        return train_classifier(args, device)
    if args.conditions and not args.classifier:
        raise Fail("--conditions needs --classifier PATH, a multi-label one (--train-classifier DIR --labels train.json)")
    r = (lab.score(args.samples, args.conditions, *load_classifier(args.classifier), device) if args.conditions else
         translation(args) if args.pairs else measure(args, device))
    print(table(r, args))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=1)
        print(f"wrote {args.json}")


def cli(argv):
    """The command line: main, with a mistake in the user's input as one line and exit status 1."""
    try:
        main(argv)
    except Fail as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
