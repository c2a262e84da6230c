"""evaluate.py's command line: its flags, each number with its declared range
(support/cli.py), and its figures as one table a person reads."""
import argparse
from support.classifier import classifier_flags
from support.cli import COUNT, SEED, Parser, Range
from support.features import cached_weights


# What each of evaluate.py's evaluations reads, beside its own flag: a flag given to an
# evaluation that does not read it would be ignored, so it is refused.
FEATURES = ("--features", "--classifier", "--inception-weights", "--splits", "--seed", "--json")
READS = {"--train-classifier": ("--out", "--resize", "--image-size", "--epochs", "--labels",
                                "--objects", "--batch-size", "--width", "--lr", "--seed"),
         "--conditions": ("--classifier", "--json"),
         "--pairs": ("--json",),
         "--ref": FEATURES + ("--kid-subsets", "--kid-size", "--k"),
         "SAMPLES": FEATURES}


def parse(argv, doc):
    """evaluate.py's arguments (doc: its docstring, for --help), or one line saying what
    is wrong."""
    # no abbreviated flags: each flag given is known by its full name
    p = Parser(prog="evaluate.py", description=doc, allow_abbrev=False,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("samples", nargs="?",
                   help="a folder of samples (class subfolders: conditional accuracy)")
    p.add_argument("--ref", help="a folder of real images: FD, KID, precision, recall, "
                   "density, coverage; class folders in both: per class too")
    p.add_argument("--json", help="also write the figures to this file")
    p.add_argument("--features", choices=["inception", "classifier"],
                   help="the features compared. default: the classifier's, if given")
    p.add_argument("--classifier", metavar="PATH",
                   help="from --train-classifier (or the lab's ResNet-18 file)")
    p.add_argument("--inception-weights", metavar="PATH",
                   help=f"the FID Inception weights file. default: {cached_weights()}")
    p.add_argument("--pairs", metavar="TARGETS",
                   help="translation: PSNR and SSIM against the same names' targets")
    p.add_argument("--conditions", metavar="JSON",
                   help="the lab: SAMPLES/0.png, 1.png, ... against test.json's sets")
    p.add_argument("--kid-subsets", type=COUNT, default=100, help="KID's subsets. default: 100")
    # MMD^2 divides by m (m - 1)
    p.add_argument("--kid-size", type=Range(int, 2), default=1000,
                   help="images per KID subset (at most a folder's). default: 1000")
    p.add_argument("--k", type=COUNT, default=3,
                   help="the k of the k-NN balls: precision, recall, density, coverage. "
                   "default: 3")
    p.add_argument("--splits", type=COUNT, default=10, help="IS splits. default: 10")
    p.add_argument("--seed", type=SEED, default=0,
                   help="seeds KID's subsets, the IS splits, the classifier. default: 0")
    classifier_flags(p.add_argument_group("training the classifier"))
    args = p.parse_args(argv)
    if not args.samples and not args.train_classifier:
        p.error("give SAMPLES (a folder of images) or --train-classifier DIR")
    applies(p, args, argv)
    return args


def applies(p, args, argv):
    """One evaluation at a time, and no flag it would ignore (READS), refused by name."""
    given = {a.split("=")[0] for a in argv if a.startswith("--")}
    if args.train_classifier and args.samples:
        given.add("SAMPLES")
    # each evaluation reads SAMPLES its own way
    modes = [m for m in READS if m in given]
    if len(modes) > 1:
        p.error(f"{modes[0]} and {modes[1]} ask for two evaluations: run evaluate.py once "
                "for each")
    mode = modes[0] if modes else "SAMPLES"
    if stray := sorted(given - set(READS[mode]) - {mode}):
        what = "SAMPLES alone" if mode == "SAMPLES" else mode
        p.error(f"{stray[0]} has no effect with {what}: drop it")
    if "--objects" in given and not args.labels:
        p.error("--objects names the objects of --labels: give --labels too, or drop it")


def table(r, args):
    """The dict of figures that evaluate.py computed -> lines of `name  value`."""
    images = f"{r.get('n', r.get('pairs'))} in {args.samples}"
    if "ref" in r:
        images += f", {r['n_ref']} in {r['ref']}"
    rows = [("images", images)]
    if "features" in r:
        rows.append(("features", f"{r['features']}, {r['feature_dim']}-d"))
    on_inception = r.get("features") == "inception"
    if "FD" in r:
        name = "FID" if on_inception else "FD (classifier features, not FID)"
        kid = f"{r['KID']:.4g} +- {r['KID_std']:.2g}"
        pr = f"{r['precision']:.3f}, {r['recall']:.3f}"
        rows += [(name, f"{r['FD']:.3f}"),
                 ("KID", f"{kid}  ({args.kid_subsets} subsets of {r['KID_subset']})"),
                 (f"precision, recall (k = {args.k})", pr),
                 ("density, coverage", f"{r['density']:.3f}, {r['coverage']:.3f}")]
    if "per_class" in r:
        per = r["per_class"]
        worst = max(per, key=lambda c: per[c]["FD"])
        pr = f"{r['intra_precision']:.3f}, {r['intra_recall']:.3f}"
        dc = f"{r['intra_density']:.3f}, {r['intra_coverage']:.3f}"
        rows += [(f"intra-class FD (mean of {len(per)})",
                  f"{r['intra_FD']:.3f}  (highest: {worst} {per[worst]['FD']:.3f})"),
                 ("intra-class KID", f"{r['intra_KID']:.4g}"),
                 ("per-class precision, recall", pr),
                 ("per-class density, coverage", dc)]
    if "IS" in r:
        on = "Inception" if on_inception else "classifier"
        IS = f"{r['IS']:.3f} +- {r['IS_std']:.3f}"
        rows.append((f"IS ({on}, {args.splits} splits)", IS))
    if "accuracy" in r:
        per_class = r["accuracy_per_class"]
        worst = min(per_class, key=per_class.get)
        rows.append(("conditional accuracy",
                     f"{r['accuracy']:.4f}  (lowest: {worst} {per_class[worst]:.2f})"))
    if "lab_accuracy" in r:
        se = r["lab_accuracy_se"]
        within = r["lab_spread"]
        acc = f"{r['lab_accuracy']:.4f}, standard error n/a (one condition"
        if se is not None:
            acc = f"{r['lab_accuracy']:.4f} +- {se:.4f} (standard error; {r['n']} conditions"
        spread = "n/a (no set asked for twice: repeat sets in the conditions file)"
        if within is not None:
            spread = f"{within:.4f}  (0: one image a set, whatever z)"
        rows += [("the lab's accuracy (top-k)", f"{acc} of {r['conditions']})"),
                 ("samples of one set: mean |x_i - x_j|", spread)]
    if "PSNR" in r:
        rows += [("mean L1 ([0, 1] scale)", f"{r['L1']:.4f}"),
                 ("PSNR", f"{r['PSNR']:.2f} dB"),
                 ("SSIM", f"{r['SSIM']:.4f}")]
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{w}}  {v}" for k, v in rows)
