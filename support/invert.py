"""sample.py --invert: GAN inversion, after Image2StyleGAN (Abdal, Qin & Wonka, 2019):
find the latent whose image reconstructs a given one, then edit the image through it.

    inversion   latent* = argmin ||G(latent) - x||^2, the pixel MSE, by Adam (lr 0.01,
                betas (0.9, 0.999), the paper's) for --invert-steps steps, from the mean
                latent: w_avg for StyleGAN (the paper's start), z = 0, the prior's mean,
                for G(z) (progan, whose G normalises z: a random z)
    spaces      z: G(z) of gan.py, dcgan.py and progan.py (a growing G's image upsampled
                to the full size, as its samples are); w: StyleGAN's synthesis g with one w at
                every layer; w+: one w per layer, (L, w_dim), the paper's extended space,
                which reconstructs far better than w (the default for a StyleGAN)
    edits       style mixing (StyleGAN): the found w's before the middle layer, the coarse
                styles, another w's after; interpolation: (1 - t) latent* + t latent*',
                latent*' the next image's (a random one for a single image); truncation
                (StyleGAN): w_avg + psi (w - w_avg), psi = 0.5
    PSNR        10 log10(1 / MSE) on the [0, 1] pixel scale, as evaluate.py's

Left out: the paper's perceptual term (VGG-16 features: the project has no pretrained
feature network that needs no download, so the loss is the pixel MSE alone), its noise
optimisation (Image2StyleGAN++: StyleGAN's noise images are drawn once, by --seed, and held
fixed), and Pivotal Tuning (PTI, Roich et al., 2022), which goes on to fine-tune G around
the found w.

    python sample.py runs/stylegan/ckpt.pt --invert photo.png            # w+, 500 steps
    python sample.py runs/dcgan/ckpt.pt --invert held_out/ --out inverted/   # a folder
"""
import math
import os
import torch
from PIL import Image, ImageDraw
from support.cli import COUNT, Fail, flag, hyperparameters
from support.outputs import named
from support.pictures import destination, grid, save_each, to_folder
from support.sampling import condition
from support.translate import inputs, names, read


def invert_flags(p):
    """sample.py's flags of this mode."""
    g = p.add_argument_group("inversion (gan, dcgan, progan, stylegan)")
    g.add_argument("--invert", metavar="IMAGE|DIR",
                   help="find the latent that reconstructs each image and edit it; writes "
                        "OUT (rows of image | reconstruction | edits) and OUT's _loss.png")
    g.add_argument("--space", choices=("z", "w", "w+"),
                   help="the latent searched: z (gan, dcgan, progan), w or w+ (stylegan). "
                        "default: z, or w+ for a stylegan")
    g.add_argument("--invert-steps", type=COUNT, default=500,
                   help="Adam steps of the inversion (Image2StyleGAN: 5000). default: 500")


def invert(G, x, latent, steps, lr=0.01):
    """Image2StyleGAN's Algorithm 1, with the pixel MSE as its loss: from latent_0, Adam
    on L(latent) = ||G(latent) - x||^2 / N, N the pixels of an image, for `steps` steps.
    Each image's latent is its own: the loss sums the images' losses, so no image's
    gradient reaches another's latent. Returns latent* and L's mean over the images at each
    step."""
    latent = latent.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([latent], lr=lr, betas=(0.9, 0.999))
    curve = []
    for _ in range(steps):
        L = (G(latent) - x).pow(2).flatten(1).mean(1)       # ||G(latent) - x||^2 / N
        opt.zero_grad()
        L.sum().backward()
        opt.step()
        curve.append(L.mean().item())
    return latent.detach(), curve


def psnr(a, b):
    """Images in [-1, 1] -> each one's PSNR in dB on the [0, 1] scale: 10 log10(1/MSE)."""
    mse = ((a - b) / 2).pow(2).flatten(1).mean(1)
    return -10 * torch.log10(mse.clamp_min(1e-10))


class Latents:
    """A generator seen through one latent space: G(latent) -> images, the start latent, a
    random other latent, and the edits."""

    def __init__(self, model, space, n, y):
        self.model = model
        self.space = space
        self.y = y
        self.device = next(model.parameters()).device
        if space == "z":
            self.shape = (model.z_dim,)
            # a growing G (progan) draws at its phase's resolution: upsampled to image_size
            self.size = getattr(model, "image_size", None)
            return
        self.L = model.num_layers                         # StyleGAN's w's per image
        self.noise = model.noises(n)                      # held fixed, by --seed
        w_dim = model.w_avg.shape[0]
        self.shape = (w_dim,) if space == "w" else (self.L, w_dim)

    def start(self, n):
        """The mean latent: z = 0 (the prior's mean), or w_avg (Image2StyleGAN's). A G that
        normalises z (progan's pixel norm) has no image of z = 0, and its gradient there,
        1 / sqrt(eps), would swamp Adam's second moment: a z ~ N(0, I), by --seed."""
        if self.space != "z":
            return self.model.w_avg.expand(n, *self.shape).clone()
        if getattr(self.model, "normalises_z", False):
            return self.random(n)
        return torch.zeros(n, *self.shape, device=self.device)

    def random(self, n):
        """Another latent from the prior: z ~ N(0, I), or w = f(z)."""
        z = torch.randn(n, self.model.z_dim, device=self.device)
        if self.space == "z":
            return z
        w = self.model.mapping(z)
        return w if self.space == "w" else w[:, None].expand(-1, self.L, -1)

    def ws(self, latent):
        """w (B, w_dim) -> (B, L, w_dim), the same w at every layer; w+ is per layer."""
        return latent[:, None].expand(-1, self.L, -1) if self.space == "w" else latent

    def __call__(self, latent, lo=0):
        """G(latent): images lo, lo + 1, ... of the batch (their noise, their y)."""
        n = len(latent)
        if self.space == "z":
            y = None if self.y is None else self.y[lo:lo + n]
            x = self.model.generate(latent, y)
            return x if self.size is None else torch.nn.functional.interpolate(x, size=self.size)
        noise = [e[lo:lo + n] for e in self.noise]
        return self.model.synthesis(self.ws(latent), noise)

    def edits(self, found, other):
        """The edit strip's columns, each (n, C, H, W): style mixing and truncation for
        StyleGAN, then interpolation towards other at t = 1/4, 1/2, 3/4."""
        columns = []
        if self.space != "z":
            ws = self.ws(found)
            # style mixing: the coarse styles, before layer k, from found
            k = self.L // 2
            mixed = torch.cat([ws[:, :k], self.ws(other)[:, k:]], 1)
            columns.append(self.model.synthesis(mixed, self.noise))
            truncated = self.model.truncate(ws, 0.5)      # w_avg + psi (w - w_avg)
            columns.append(self.model.synthesis(truncated, self.noise))
        # (1 - t) found + t other
        for t in (0.25, 0.5, 0.75):
            columns.append(self(torch.lerp(found, other, t)))
        return columns


def refuse(ck, model, args):
    """What inversion cannot do, or a flag it would ignore: one line, before any work."""
    name = ck["model"]
    style = hasattr(model, "synthesis")
    if not style and not hasattr(model, "generate"):
        raise Fail(f"--invert finds a GAN generator's latent (gan, dcgan, progan, "
                   f"stylegan): a {name} has none")
    space = args.space or ("w+" if style else "z")
    if (space == "z") == style:
        raise Fail(f"--space {space} is not a {name}'s latent: use --space "
                   + ("w or w+" if style else "z"))
    flags = ["n", "conditions", "nrow", "gif", "compile"] + ["label"] * (space != "z")
    given = [f for f in flags if getattr(args, f) not in (None, False)]
    given += sorted(set(vars(args)) & set(hyperparameters(model.sample)))
    if given:
        raise Fail(f"{flag(given[0])} does not apply with --invert: drop it")
    if ck["config"].get("num_classes") and space == "z" and args.label is None:
        raise Fail(f"--invert on a conditional {name} needs --label, the images' class")
    if not os.path.exists(args.invert):
        raise Fail(f"--invert {args.invert}: no such file or folder")
    return space


def inversion(ck, model, args, device):
    """sample.py CKPT --invert IMAGE|DIR: invert each image in batches of --batch-size,
    print the PSNR of the reconstructions, write them with their edits and the loss curve:
    OUT, rows of image | reconstruction | edits, and OUT's _loss.png; or a folder OUT/ of
    the reconstructions named as their images, with edits.png and loss.png."""
    space = refuse(ck, model, args)
    files = inputs([args.invert], "--invert")
    out = args.out
    # OUT and OUT's _loss.png; a folder OUT/: the reconstructions, edits.png and loss.png
    strip = out
    plot = os.path.splitext(out)[0] + "_loss.png"
    stems = []
    if to_folder(out):
        stems = names(files, "--invert", taken=("edits", "loss"))
        strip = os.path.join(out, "edits.png")
        plot = os.path.join(out, "loss.png")
    recons = [os.path.join(out, s + ".png") for s in stems]
    destination(out, named(args, "out"), recons + [strip, plot])
    x = torch.stack([read(f, ck, device)[0] for f in files])
    model.to(device).eval()
    model.requires_grad_(False)                       # only the latents are trained
    torch.manual_seed(args.seed)
    n = len(x)
    y = condition(ck, args, n, device) if space == "z" else None
    G = Latents(model, space, n, y)
    found, curves = [], []
    for lo in range(0, n, args.batch_size):
        xb = x[lo:lo + args.batch_size]
        start = G.start(len(xb))
        latent, curve = invert(lambda v, lo=lo: G(v, lo), xb, start, args.invert_steps)
        found.append(latent)
        curves.append(torch.tensor(curve) * len(xb))
    found = torch.cat(found)
    curve = (sum(curves) / n).tolist()                # the mean over all n images
    with torch.no_grad():
        recon = G(found)
        other = found.roll(-1, 0) if n > 1 else G.random(1)
        edits = G.edits(found, other)
        columns = [x, recon.clamp(-1, 1)] + [e.clamp(-1, 1) for e in edits]
    db = psnr(recon, x)
    spread = f" (mean; min {db.min():.2f}, max {db.max():.2f})" if n > 1 else ""
    print(f"{n} image(s), {space} space, {args.invert_steps} steps: "
          f"PSNR {db.mean():.2f} dB{spread}")
    if to_folder(out):
        save_each(columns[1], out, [s + ".png" for s in stems])
        print(f"wrote {n} reconstructions to {out}")
    grid(torch.stack(columns, 1).flatten(0, 1).cpu(), nrow=len(columns)).save(strip)
    said = "mix (coarse styles) | truncated, psi 0.5 | " if space != "z" else ""
    print(f"wrote {strip}: rows of image | reconstruction | {said}towards the next "
          "image's latent, t = 1/4, 1/2, 3/4")
    loss_plot(curve, plot)
    print(f"wrote {plot}: the loss curve")


def loss_plot(curve, path):
    """The pixel MSE at each step, on a log scale, as a small PNG drawn with pillow."""
    im = Image.new("RGB", (360, 220), "white")
    d = ImageDraw.Draw(im)
    left, top, right, bottom = 52, 12, 348, 190
    d.rectangle([left, top, right, bottom], outline="black")
    logs = [math.log10(max(v, 1e-10)) for v in curve]
    lo, hi = min(logs), max(logs)
    span = hi - lo or 1.0
    xs = [left + (right - left) * i / max(len(logs) - 1, 1) for i in range(len(logs))]
    ys = [bottom - (bottom - top) * (v - lo) / span for v in logs]
    d.line(list(zip(xs, ys)), fill=(200, 30, 30), width=2)
    labels = [((4, top), f"{10 ** hi:.2g}"), ((4, bottom - 10), f"{10 ** lo:.2g}"),
              ((left, bottom + 6), "0"), ((right - 30, bottom + 6), str(len(curve))),
              ((left + 40, bottom + 6), "pixel MSE (log scale) by step")]
    for xy, text in labels:
        d.text(xy, text, fill="black")
    im.save(path)
