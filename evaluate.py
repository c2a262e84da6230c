"""The lecture's metrics for a folder of samples, each written from its paper.

    python evaluate.py SAMPLES --ref REAL                      # FID, KID, precision/recall, IS
    python evaluate.py SAMPLES/ --ref REAL/                    # class folders: per class too
    python evaluate.py SAMPLES --ref REAL --classifier clf.pt  # the same on a small classifier's
                                          # features, and conditional accuracy for class subfolders
    python evaluate.py OUTPUTS --pairs TARGETS                 # translation: PSNR and SSIM
    python evaluate.py --train-classifier DIR --out clf.pt     # a classifier for DIR/<class>/*.png
    python evaluate.py --train-classifier DIR --labels train.json   # multi-label, for the lab
    python evaluate.py SAMPLES --conditions test.json --classifier clf.pt   # the lab's accuracy
    python evaluate.py --ppl runs/stylegan/ckpt.pt --classifier clf.pt      # path length

    1. FD      ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)), Gaussians fitted to
               features; FID on Inception's 2048-d features (Heusel et al., 2017)
    2. KID     unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3, averaged over subsets
               (Binkowski et al., 2018)
    3. P / R   precision: samples inside the real k-NN manifold; recall: real images inside the
               samples' one; each ball reaches a point's k-th neighbour, k = 3, distances exact
               (Kynkaanniemi et al., 2019)
    3b. D / C  density: how many real balls hold each sample, over k; coverage: the real balls
               that hold a sample (Naeem et al., 2020)
    3c. intra  class folders in SAMPLES and REAL: each class's samples against that class's real
               images, FD (intra-FID, Miyato & Koyama, 2018), KID, P/R, D/C, averaged over classes
    4. IS      exp(E_x KL(p(y | x) || p(y))), per split (Salimans et al., 2016); p(y | x) the
               softmax of Inception's logits without the fc bias, as the reference code has it
    5. acc     how often the classifier names the class of the subfolder a sample was asked for
    6. PSNR    10 log10(1 / MSE) on the [0, 1] scale; SSIM (Wang et al., 2004), Gaussian window
               11, sigma 1.5, K1 0.01, K2 0.03, averaged over the map
    7. PPL     a StyleGAN's path length in W at the path's start, E[d(g(w_1), g(lerp(w_1, w_2;
               eps))) / eps^2], eps = 1e-4, d the squared distance of the features (LPIPS in the
               paper), the 1% tails left out (Karras et al., 2020)

The Inception network needs its weights file (see support/inception.py;
--inception-weights PATH, or in the cache folder). Figures on the classifier's features
are for comparing runs here: they are not FID. The classifier, reading the folders, the
flags and the table live in support/ (classifier.py, features.py, report.py); the lab's
files and accuracy in support/lab.py.
"""
import json, math, os, sys
import numpy as np
import torch
import torch.nn.functional as F
from support.cli import Fail, build_model, command, load_checkpoint
from support.classifier import load_classifier, train_classifier
from support.features import as_read, features_and_probs, load_inception, read_folder
from support.features import read_pairs, reads
from support.outputs import named, writable
from support.pictures import to_uint8
from support.report import parse, table
from support import lab


# ------------------------------------------------------------------ the metrics (float64)

def frechet_distance(mu1, S1, mu2, S2):
    """Eq. 1: the Frechet distance of N(mu1, S1) and N(mu2, S2). Tr (S1 S2)^(1/2) = Tr
    (S1^(1/2) S2 S1^(1/2))^(1/2): similar matrices, and the right one is symmetric: two
    eigen-decompositions, no complex roots."""
    w, V = np.linalg.eigh(S1)
    root1 = (V * np.sqrt(w.clip(0))) @ V.T                                 # S1^(1/2)
    M = root1 @ S2 @ root1
    # Tr (S1 S2)^(1/2)
    tr_sqrt = np.sqrt(np.linalg.eigvalsh((M + M.T) / 2).clip(0)).sum()
    d2 = ((mu1 - mu2) ** 2).sum() + np.trace(S1) + np.trace(S2) - 2 * tr_sqrt
    # a squared distance: below 0 only by rounding
    return float(np.maximum(d2, 0))


def gaussian(f):
    """Features (N, d) -> the mean and covariance of the Gaussian fitted to them."""
    f = np.asarray(f, np.float64)
    return f.mean(0), np.cov(f, rowvar=False)


def fd(f1, f2):
    """Features (N, d), (M, d) -> the Frechet distance of the Gaussians fitted to them."""
    return frechet_distance(*gaussian(f1), *gaussian(f2))


def mmd2(x, y):
    """Eq. 2: the unbiased MMD^2 with the cubic polynomial kernel; the diagonals k(x_i,
    x_i) are left out."""
    m, d = x.shape
    n = len(y)
    # k(x, y) = (x.y / d + 1)^3
    k = lambda a, b: (a @ b.T / d + 1) ** 3
    Kxx = k(x, x)
    Kyy = k(y, y)
    # E k(x, x'), x' != x
    xx = (Kxx.sum() - np.trace(Kxx)) / (m * (m - 1))
    # E k(y, y'), y' != y
    yy = (Kyy.sum() - np.trace(Kyy)) / (n * (n - 1))
    return xx + yy - 2 * k(x, y).mean()


def kid(f1, f2, subsets=100, size=1000, seed=0):
    """KID: MMD^2 on `subsets` random subsets of `size` from each set -> (mean, std)."""
    f1 = np.asarray(f1, np.float64)
    f2 = np.asarray(f2, np.float64)
    rng = np.random.default_rng(seed)
    size = min(size, len(f1), len(f2))
    pick = lambda f: f[rng.choice(len(f), size, replace=False)]
    v = [mmd2(pick(f1), pick(f2)) for _ in range(subsets)]
    return float(np.mean(v)), float(np.std(v))


def sq_distances(a, b):
    """||a_i - b_j||^2, (len(a), len(b)), by one matrix product: |a|^2 + |b|^2 - 2 a.b.
    Fast, but cancellation can put two copies of a point 1e-6 apart; its error stays below
    err, (len(a), 1).
    """
    a2 = (a * a).sum(1, keepdim=True)
    b2 = (b * b).sum(1)
    return (a2 + b2 - 2 * a @ b.T).clamp(min=0), 1e-9 * (a2 + b2.max())


def exact(a, b, rows, cols):
    """||a_i - b_j||^2 of the pairs (rows, cols), summed from the differences: copies at
    0."""
    return torch.cat([((a[i] - b[j]) ** 2).sum(1)
                      for i, j in zip(rows.split(2**14), cols.split(2**14))])


def radii(f, k):
    """The squared distance from each point of f to its k-th nearest neighbour, itself
    left out; exact: every pair the matrix product cannot rule out is measured again."""
    r = []
    for b in f.split(1000):
        D, err = sq_distances(b, f)
        # the candidates
        near = D <= D.kthvalue(k + 1, 1, keepdim=True).values + 2 * err
        rows, cols = near.nonzero(as_tuple=True)
        D.fill_(math.inf)
        D[rows, cols] = exact(b, f, rows, cols)
        # the 1st is itself, at 0
        r.append(D.kthvalue(k + 1, 1).values)
    return torch.cat(r)


def in_balls(points, f, r):
    """How many balls B(f_i, r_i) hold each of `points` (r: squared radii), and whether each
    ball holds any point; a pair too close to its ball's edge for the matrix product to tell
    is measured exactly."""
    counts = []
    held = torch.zeros(len(f), dtype=torch.bool)
    for b in points.split(1000):
        D, err = sq_distances(b, f)
        rows, cols = ((D - r).abs() <= err).nonzero(as_tuple=True)
        D[rows, cols] = exact(b, f, rows, cols)
        inside = D <= r
        counts.append(inside.sum(1))
        held |= inside.any(0)
    return torch.cat(counts), held


def as64(f):
    """Features (N, d), numpy or torch -> a float64 tensor."""
    return torch.as_tensor(np.asarray(f, np.float64))


def precision_recall(real, fake, k=3):
    """Eq. 3: precision = samples inside the real manifold, recall = real points inside
    the samples' one."""
    real, fake = as64(real), as64(fake)
    held_fake = in_balls(fake, real, radii(real, k))[0] > 0
    held_real = in_balls(real, fake, radii(fake, k))[0] > 0
    return float(held_fake.double().mean()), float(held_real.double().mean())


def density_coverage(real, fake, k=3):
    """Naeem et al., 2020, with B_i = B(X_i, NND_k(X_i)) the ball of real point X_i out to
    its k-th neighbour: density = 1/(k M) sum_j sum_i 1[Y_j in B_i] (how many real balls
    hold a sample, over k: 1 on average for samples drawn as the real points are);
    coverage = 1/N sum_i 1[some Y_j in B_i] (the real balls that hold a sample)."""
    real, fake = as64(real), as64(fake)
    counts, held = in_balls(fake, real, radii(real, k))
    density = float(counts.sum()) / (k * len(fake))
    return density, float(held.double().mean())


def inception_score(p, splits=10):
    """Eq. 4: p (N, K) = p(y | x) -> exp(E_x KL(p(y | x) || p(y))) on each split, p(y) its
    mean -> (mean, std)."""
    if len(p) < splits:
        raise Fail(f"IS with --splits {splits} needs at least {splits} images ({len(p)} here): "
                   f"give a smaller --splits")
    s = []
    for q in np.array_split(np.asarray(p, np.float64), splits):
        # p(y) = E_x p(y | x), (1, K)
        p_y = q.mean(0, keepdims=True)
        # KL(p(y | x) || p(y)), (n,)
        kl = (q * (np.log(q + 1e-12) - np.log(p_y + 1e-12))).sum(1)
        s.append(math.exp(kl.mean()))
    return float(np.mean(s)), float(np.std(s))


def psnr(x, y):
    """Eq. 6: 10 log10(1 / MSE) per image of (N, C, H, W) in [0, 1], averaged."""
    mse = ((np.asarray(x, np.float64) - np.asarray(y, np.float64)) ** 2).reshape(len(x), -1).mean(1)
    return float((10 * np.log10(1 / np.maximum(mse, 1e-10))).mean())


def gaussian_window(size=11, sigma=1.5):
    g = np.exp(-((np.arange(size) - size // 2) ** 2) / (2 * sigma**2))
    # (size, size), sums to 1
    return np.outer(g, g) / np.outer(g, g).sum()


def ssim(x, y, K1=0.01, K2=0.03, L=1.0):
    """Eq. 6: SSIM per image of (N, C, H, W) in [0, 1], the mean of the map over valid
    windows and channels."""
    x = torch.as_tensor(np.asarray(x, np.float64))
    y = torch.as_tensor(np.asarray(y, np.float64))
    C = x.shape[1]
    w = torch.tensor(gaussian_window()).expand(C, 1, 11, 11)
    # Gaussian-weighted local mean, valid windows
    mean = lambda a: F.conv2d(a, w, groups=C)
    mu_x = mean(x)
    mu_y = mean(y)
    var_x = mean(x * x) - mu_x**2
    var_y = mean(y * y) - mu_y**2
    cov = mean(x * y) - mu_x * mu_y
    C1 = (K1 * L) ** 2
    C2 = (K2 * L) ** 2
    s = (2 * mu_x * mu_y + C1) * (2 * cov + C2)
    s = s / ((mu_x**2 + mu_y**2 + C1) * (var_x + var_y + C2))          # the SSIM map
    return s.mean((1, 2, 3)).numpy()


# --------------------------------------------------------------------------- the commands

def features_of(spec, device):
    """train.py --eval-features: a classifier's path, or 'inception' (the weights file in
    the cache folder) -> a function from samples (B, C, H, W) in [-1, 1] to features (B,
    d), read as evaluate.py reads PNGs (as uint8, at the classifier's size)."""
    ck = None
    if spec == "inception":
        net = load_inception(None, "give --eval-features a classifier")
    else:
        net, ck = load_classifier(spec)
    net.to(device)
    size, C = reads(ck)

    def features(x):
        if size is not None:
            x = F.interpolate(x.float(), size, mode="bilinear", antialias=True)
        return features_and_probs(net, to_uint8(x), C, device)[0]

    return features


def measure(args, device):
    """SAMPLES (and --ref REAL) -> a dict of figures: IS, conditional accuracy, FD, KID,
    P/R."""
    use, net, (size, C), clf, ck = feature_network(args, device)
    folder = args.samples
    split = has_classes(folder)
    images, labels, names = read_folder(folder, size, classes=split)
    f, p = features_and_probs(net, images, C, device)
    r = {"samples": folder, "n": len(images), "features": use, "feature_dim": f.shape[1]}
    # class folders: the splits mixed
    order = np.random.default_rng(args.seed).permutation(len(p))
    r["IS"], r["IS_std"] = inception_score(p[order], args.splits)
    # conditional accuracy: the subfolder is the class asked for
    if split and clf is not None:
        classes = ck["class_names"]
        if unknown := [n for n in names if n not in classes]:
            raise Fail(f"subfolder '{unknown[0]}' of {folder} is not a class of {args.classifier}")
        if use != "classifier":
            p = features_and_probs(clf, read_folder(folder, ck["image_size"], True)[0],
                                   ck["config"]["channels"], device)[1]
        # the class the classifier names
        pred = p.argmax(1)
        hit = pred == np.array([classes.index(names[i]) for i in labels])
        r["accuracy"] = float(hit.mean())
        r["accuracy_per_class"] = {n: float(hit[labels == i].mean()) for i, n in enumerate(names)}
    if args.ref:
        # class folders in both: each class against its own real images too
        by_class = split and has_classes(args.ref)
        ref, ref_labels, ref_names = read_folder(args.ref, size, classes=by_class)
        # a covariance needs two points
        if min(len(f), len(ref)) < 2:
            raise Fail(f"FD and KID need at least 2 images in each folder ({len(f)} in "
                       f"{folder}, {len(ref)} in {args.ref})")
        g = features_and_probs(net, ref, C, device)[0]
        r.update(ref=args.ref, n_ref=len(ref), FD=fd(g, f))
        r["KID"], r["KID_std"] = kid(g, f, args.kid_subsets, args.kid_size, args.seed)
        r["KID_subset"] = min(args.kid_size, len(f), len(g))
        if min(len(f), len(g)) <= args.k:
            raise Fail(f"precision/recall with k = {args.k} needs more than {args.k} images "
                       f"in each folder")
        r["precision"], r["recall"] = precision_recall(g, f, args.k)
        r["density"], r["coverage"] = density_coverage(g, f, args.k)
        if by_class:
            r.update(intra_class(f, labels, names, g, ref_labels, ref_names, args))
    return r


def has_classes(folder):
    """A folder of class subfolders (sample.py's --out DIR/ of a conditional model)."""
    return os.path.isdir(folder) and any(os.path.isdir(os.path.join(folder, d))
                                         for d in os.listdir(folder))


def intra_class(f, labels, names, g, ref_labels, ref_names, args):
    """Each class's samples against the real images of that class: intra-FID (Miyato &
    Koyama, 2018: FID per class, averaged), and per class KID, precision, recall, density
    and coverage -> the figures of each class and their means over the classes."""
    if missing := [n for n in names if n not in ref_names]:
        raise Fail(f"class folder '{missing[0]}' of {args.samples} has none of its name in "
                   f"--ref {args.ref}")
    per = {}
    for c, name in enumerate(names):
        fc = f[labels == c]
        # the real class of the same name
        real_c = ref_names.index(name)
        gc = g[ref_labels == real_c]
        n = min(len(fc), len(gc))
        if n <= max(1, args.k):
            warn(f"class '{name}' left out of the per-class figures: {len(fc)} samples and "
                 f"{len(gc)} real images, fewer than the {max(1, args.k) + 1} each needs")
            continue
        if n <= f.shape[1]:
            warn(f"class '{name}': {n} images for {f.shape[1]}-d features, so its covariance "
                 "is singular: its FD is a rough figure")
        per[name] = dict(n=len(fc), n_ref=len(gc), FD=fd(gc, fc),
                         KID=kid(gc, fc, args.kid_subsets, args.kid_size, args.seed)[0])
        per[name]["precision"], per[name]["recall"] = precision_recall(gc, fc, args.k)
        per[name]["density"], per[name]["coverage"] = density_coverage(gc, fc, args.k)
    if not per:
        return {}
    figures = ("FD", "KID", "precision", "recall", "density", "coverage")
    means = {f"intra_{m}": float(np.mean([v[m] for v in per.values()])) for m in figures}
    return {**means, "per_class": per}


def warn(message):
    """A figure given with a caveat: one line on stderr."""
    print(f"warning: {message}", file=sys.stderr)


def path_distances(model, features, z, y=None, epsilon=1e-4):
    """StyleGAN2's path length at the path's start (Karras et al., 2020; the 2019 paper's
    Eq. 4 in W): z (2B, z_dim) -> per pair d(g(w_1), g(lerp(w_1, w_2; epsilon))) / epsilon^2,
    w = f(z), d the squared distance of the features (the paper's: LPIPS), the noise
    shared by each pair."""
    w1, w2 = model.mapping(z, y).chunk(2)
    # a step of epsilon from w_1 towards w_2, in W
    w_eps = torch.lerp(w1, w2, epsilon)
    # the same w at every layer, (2B, L, w_dim)
    ws = torch.cat([w1, w_eps])[:, None].expand(-1, model.num_layers, -1)
    noise = [torch.cat([e, e]) for e in model.noises(len(w1))]
    f1, f2 = features(model.synthesis(ws, noise)).chunk(2)
    # d: the squared distance of the two images' features
    d = ((f1 - f2) ** 2).sum(1)
    return d / epsilon**2


def trimmed_mean(d):
    """The mean of d with its lowest and highest 1% left out, as the paper's code does:
    a few pairs across a sharp change of the image would otherwise dominate."""
    lo, hi = np.percentile(d, [1, 99])
    return float(d[(d >= lo) & (d <= hi)].mean())


@torch.no_grad()
def path_length(args, device):
    """--ppl CKPT: PPL over --ppl-n pairs of a StyleGAN checkpoint (its EMA weights), on
    the features of --features."""
    ck = load_checkpoint(args.ppl)
    model = build_model(ck["model"], ck["config"])
    if not hasattr(model, "mapping"):
        raise Fail(f"--ppl measures paths in W, through a mapping w = f(z): a {ck['model']} "
                   "has none; give a stylegan checkpoint")
    model.load_state_dict(ck.get("ema") or ck["weights"])
    model.to(device).eval()
    use, features = float_features(args, device)
    K = ck["config"].get("num_classes", 0)
    d = []
    for lo in range(0, args.ppl_n, 100):
        b = min(100, args.ppl_n - lo)
        z = torch.randn(2 * b, model.z_dim, device=device)
        # a pair shares its class: every class in turn
        y = None if not K else (torch.arange(b, device=device) % K).repeat(2)
        d.append(path_distances(model, features, z, y).cpu())
    return {"ppl": args.ppl, "pairs": args.ppl_n, "features": use,
            "PPL": trimmed_mean(torch.cat(d).numpy())}


def feature_network(args, device):
    """--features' network, a classifier's (--classifier) or Inception's -> its name, the
    network, the size and channels it reads; and the classifier with its checkpoint, if
    given (measure's conditional accuracy reads it whatever the features)."""
    use = args.features or ("classifier" if args.classifier else "inception")
    if use == "classifier" and not args.classifier:
        raise Fail("--features classifier needs --classifier PATH (from --train-classifier DIR)")
    clf, ck = load_classifier(args.classifier) if args.classifier else (None, None)
    net = (clf if use == "classifier" else load_inception(args.inception_weights)).to(device)
    return use, net, reads(ck if use == "classifier" else None), clf, ck


def float_features(args, device):
    """--features' network as a function of images (B, C, H, W) in [-1, 1], not rounded to
    8 bits: PPL's pairs differ by far less than one level."""
    use, net, (size, C), _, _ = feature_network(args, device)

    def features(x):
        # [0, 1], at the network's size and channels
        x = (x.float() + 1) / 2
        if size is not None:
            x = F.interpolate(x, size, mode="bilinear", antialias=True)
        return net(as_read(x, C))[0].double()

    return use, features


def translation(args):
    """--pairs TARGETS: each output against the target of the same name -> L1, PSNR,
    SSIM."""
    # (N, C, S, S) in [0, 1]
    x, y = read_pairs(args.samples, args.pairs)
    if min(x.shape[2:]) < 11:
        raise Fail(f"SSIM's window is 11x11 but the images are {x.shape[2]}x{x.shape[3]}")
    return {"pairs": len(x), "L1": float(np.abs(x - y).mean()), "PSNR": psnr(x, y),
            "SSIM": float(ssim(x, y).mean())}


def main(argv):
    args = parse(argv, __doc__)
    if args.json:
        writable("--json", args.json, named(args, "json", "out"))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(args.seed)
    if args.train_classifier:
        return train_classifier(args, device)
    if args.conditions and not args.classifier:
        raise Fail("--conditions needs --classifier PATH, a multi-label one (--labels)")
    if args.conditions:
        r = lab.score(args.samples, args.conditions, *load_classifier(args.classifier), device)
    elif args.pairs:
        r = translation(args)
    elif args.ppl:
        r = path_length(args, device)
    else:
        r = measure(args, device)
    print(table(r, args))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=1)
        print(f"wrote {args.json}")


def cli(argv):
    """The command line: main, with a mistake in the user's input as one line and exit
    status 1."""
    return command(main, argv)


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
