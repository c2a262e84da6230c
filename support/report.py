"""evaluate.py's figures as one table a person reads."""


def table(r, args):
    """The dict of figures that evaluate.py computed -> lines of `name  value`."""
    name = "FID" if r.get("features") == "inception" else "FD (classifier features, not FID)"
    images = f"{r.get('n', r.get('pairs'))} in {args.samples}"
    if "ref" in r:
        images += f", {r['n_ref']} in {r['ref']}"
    rows = [("images", images)]
    if "features" in r:
        rows.append(("features", f"{r['features']}, {r['feature_dim']}-d"))
    if "FD" in r:
        kid = f"{r['KID']:.4g} +- {r['KID_std']:.2g}"
        rows += [(name, f"{r['FD']:.3f}"),
                 ("KID", f"{kid}  ({args.kid_subsets} subsets of {r['KID_subset']})"),
                 (f"precision, recall (k = {args.k})", f"{r['precision']:.3f}, {r['recall']:.3f}")]
    if "IS" in r:
        on = "Inception" if r["features"] == "inception" else "classifier"
        rows.append((f"IS ({on}, {args.splits} splits)", f"{r['IS']:.3f} +- {r['IS_std']:.3f}"))
    if "accuracy" in r:
        per_class = r["accuracy_per_class"]
        worst = min(per_class, key=per_class.get)
        rows.append(("conditional accuracy",
                     f"{r['accuracy']:.4f}  (lowest: {worst} {per_class[worst]:.2f})"))
    if "lab_accuracy" in r:
        rows.append(("the lab's accuracy (top-k)",
                     f"{r['lab_accuracy']:.4f}  ({r['n']} conditions of {r['conditions']})"))
    if "PSNR" in r:
        rows += [("mean L1 ([0, 1] scale)", f"{r['L1']:.4f}"), ("PSNR", f"{r['PSNR']:.2f} dB"),
                 ("SSIM", f"{r['SSIM']:.4f}")]
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{w}}  {v}" for k, v in rows)
