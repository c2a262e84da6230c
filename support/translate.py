"""sample.py --input: an image-to-image model maps your images with its own mapping. A
grid has a row per image (--out FILE.png); a folder gets the outputs, named as their
inputs, no two alike (names), none over an input (--out DIR/). Errors are on the [0, 1]
pixel scale.

    pix2pix   G(A): rows of input | output, and | target when every input is a pair A|B
              (one side-by-side file, or the files of A/ and B/), with the mean L1 and
              PSNR against B
    cyclegan  G(x) and the way back F(G(x)) (F, then G, with --direction BtoA): rows of
              input | translation | reconstruction, and the mean cycle L1
    stargan   G(x, c) for every domain c, a class or one attribute alone: rows of input |
              each domain; a folder gets DIR/<domain>/<name>.png, the class folders that
              evaluate.py scores
    srgan     G's 4x upsampling beside bicubic's, of the same I^LR: an image at least the
              model's size S is cropped to S and downsampled by the model itself (as in
              training), with PSNR and SSIM against it; a smaller one is I^LR as it is

    python sample.py runs/pix2pix/ckpt.pt --input val/      # input | output | target
    python sample.py runs/stargan/ckpt.pt --input test/ --out t/   # t/<domain>/<name>.png
"""
import os
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from support.cli import Fail
from support.folders import find_images, find_pairs, load_image, load_pair
from support.outputs import named
from support.pictures import destination, finite, grid, save_each, to_folder


def read(f, ck, device, kind=None):
    """One file, or a pair of files (A, B) -> its images (C, s, s) in [-1, 1] at the
    model's size s = S: [A, B] for a pix2pix pair (B first for a model trained BtoA), else
    [x]. For srgan, an image smaller than S is read at its own shorter side s."""
    S = ck["config"]["image_size"]
    try:
        with Image.open(f[0] if isinstance(f, tuple) else f) as im:
            w, h = im.size
        if kind == "paired" and (isinstance(f, tuple) or w == 2 * h):
            A, B = np.split(load_pair(f, S), 2, -1)
            ims = [B, A] if ck["args"].get("direction") == "BtoA" else [A, B]
        else:
            ims = [load_image(f, min(w, h, S) if kind == "upscales" else S)[0]]
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise Fail(f"cannot read image {f}: {e}")
    x = [torch.tensor(im).float().permute(2, 0, 1) / 127.5 - 1 for im in ims]
    return [(a.mean(0, keepdim=True) if ck["config"]["channels"] == 1 else a).to(device)
            for a in x]


def inputs(paths, given="--input", kind=None):
    """Files and folders -> the image files (pix2pix: its pairs, (A, B) each)."""
    find = find_pairs if kind == "paired" else find_images
    files = [f for p in paths for f in (find(p) if os.path.isdir(p) else [p])]
    if not files:
        raise Fail(f"no images found in {given} {' '.join(paths)}")
    return files


def names(files, given="--input", taken=()):
    """A name for each input's output, no two alike and none in taken: the file's name
    (photos/cat.jpg -> cat); where inputs share it, their paths from the folder they all
    lie in, folders joined by _ (x/a.png, y/a.png -> x_a, y_a), and if still shared with
    the extension (a.png, a.bmp -> a_png, a_bmp). A file given twice is refused."""
    paths = [os.path.abspath(f[0] if isinstance(f, tuple) else f) for f in files]
    root = os.path.commonpath([os.path.dirname(p) for p in paths])
    ways = [lambda p: os.path.splitext(os.path.basename(p))[0],
            lambda p: os.path.splitext(os.path.relpath(p, root))[0].replace(os.sep, "_"),
            lambda p: os.path.relpath(p, root).replace(os.sep, "_").replace(".", "_")]
    found = [ways[0](p) for p in paths]
    for way in ways[1:]:
        found = [way(p) if found.count(n) > 1 or n in taken else n
                 for p, n in zip(paths, found)]
    if clash := [n for n in found if found.count(n) > 1 or n in taken]:
        twice = [p for p, n in zip(paths, found) if n == clash[0]]
        raise Fail(f"{given} {' and '.join(twice)} would each be written as {clash[0]}.png: "
                   "give each file once, or rename one")
    return found


def paired(ck, model, x, b, run, knobs):
    """pix2pix: G(A); with the targets B, the mean L1 and PSNR of G(A) against them."""
    out = run(lambda c: model.sample(len(c), c, **knobs), x)
    if b is None:
        return [x, out], ["input", "output"], None
    err = (out - b) / 2
    psnr = (-10 * torch.log10((err**2).mean((1, 2, 3)).clamp_min(1e-10))).mean()
    said = f"{len(b)} pairs: mean L1 {err.abs().mean():.4f}, PSNR {psnr:.2f} dB"
    return [x, out, b], ["input", "output", "target"], said


def unpaired(ck, model, x, b, run, knobs):
    """cyclegan: the translation t = G(x) (F(x) with --direction BtoA), and back."""
    back = "BtoA" if knobs.get("direction", "AtoB") == "AtoB" else "AtoB"
    t = run(lambda c: model.sample(len(c), c, **knobs), x)
    r = run(lambda c: model.sample(len(c), c, direction=back), t)
    said = f"{len(x)} images: mean cycle L1 {((r - x) / 2).abs().mean():.4f}"
    return [x, t, r], ["input", "translation", "reconstruction"], said


def domains(ck, model, x, b, run, knobs):
    """stargan: G(x, c) for each domain c: a class id 0..K-1, or for attributes (multi-hot
    labels) each attribute alone, one-hot."""
    K = ck["config"]["num_classes"]
    sets = ck["args"].get("labels") or ck["args"].get("data") == "scenes"
    c = torch.eye(K, device=x.device) if sets else torch.arange(K, device=x.device)

    def to_each(xb):
        # x_1 K times, x_2 K times ..., to c_1 .. c_K each
        xs = xb.repeat_interleave(K, 0)
        cs = c.repeat(len(xb), *[1] * (c.dim() - 1))
        return model.G(xs, cs).view(len(xb), K, *xb.shape[1:])

    t = run(to_each, x, K)                                           # (n, K, C, S, S)
    return [x, *t.unbind(1)], ["input", *domain_names(ck)], None


def domain_names(ck):
    """stargan's domains, by name: a folder each with --out DIR/."""
    return ck.get("class_names") or [str(k) for k in range(ck["config"]["num_classes"])]


def upscales(ck, model, x, b, run, knobs):
    """srgan: bicubic and G's 4x upsampling of I^LR, for images of one size."""
    import evaluate
    S = model.image_size
    lr = model.downsample(x) if x.shape[-1] == S else x          # I^LR, as in training
    bicubic = F.interpolate(lr, scale_factor=4, mode="bicubic").clamp(-1, 1)
    sr = run(lambda c: model.sample(len(c), c), lr)
    name = "SRResNet" if ck["config"].get("content") == "mse" else "SRGAN"
    if x.shape[-1] < S:
        return [bicubic, sr], ["bicubic", name], None
    scores = []
    hr = ((x + 1) / 2).cpu().numpy()
    for said, y in (("bicubic", bicubic), (name, sr)):
        a = ((y + 1) / 2).cpu().numpy()
        ssim = f", SSIM {evaluate.ssim(a, hr).mean():.4f}" if S >= 11 else ""
        scores.append(f"{said} PSNR {evaluate.psnr(a, hr):.2f} dB{ssim}")
    said = f"{len(x)} images at {S}px from {S // 4}px: {'; '.join(scores)}"
    return [bicubic, sr, x], ["bicubic", name, "original"], said


MAPPINGS = {"paired": paired, "unpaired": unpaired, "domains": domains,
            "upscales": upscales}


def kind(model):
    """The model's mapping of --input images, by its attribute (MAPPINGS), or None."""
    return next((k for k in MAPPINGS if getattr(model, k, False)), None)


def translate(ck, model, args, knobs, device, autocast):
    """Each --input image through the model's mapping: a grid, or with --out DIR/ the
    outputs (stargan's in a subfolder per domain)."""
    k = kind(model)
    if not args.input:
        raise Fail(f"a {ck['model']} maps images: give --input FILE or --input FOLDER")
    files = inputs(args.input, "--input", k)
    # --out DIR/: each output named, and checked, before any image is read
    folders = domain_names(ck) if k == "domains" else [""]
    if to_folder(args.out):
        stems = names(files)
        outputs = [os.path.join(args.out, d, s + ".png") for d in folders for s in stems]
        destination(args.out, named(args, "out"), outputs)
    images = [read(f, ck, device, k) for f in files]
    sides = sorted({ims[0].shape[-1] for ims in images}, reverse=True)
    if len(sides) > 1 and not to_folder(args.out):
        raise Fail(f"the --input images come in {len(sides)} sizes (one below "
                   f"{ck['config']['image_size']}px is upsampled at its own), which one "
                   "grid cannot hold: give --out DIR/")

    def run(f, x, per=1):
        """f on x in batches of --batch-size outputs (`per` an input), in float32."""
        batch = max(1, args.batch_size // per)
        with torch.no_grad(), autocast:
            return torch.cat([f(c).float() for c in x.split(batch)])

    # --out DIR/: subfolder -> outputs; srgan: a batch per size, the largest first
    saved, order = {}, []
    for side in sides:
        group = [i for i, ims in enumerate(images) if ims[0].shape[-1] == side]
        # the inputs, and their targets B when every input is a pair A|B
        x, *b = map(torch.stack, zip(*[images[i] for i in group]))
        b = b[0] if b else None
        columns, headings, said = MAPPINGS[k](ck, model, x, b, run, knobs)
        finite(torch.stack(columns), ck, knobs)
        if said:
            print(said)
        for folder, t in zip(folders, columns[1:]):
            saved.setdefault(folder, []).extend(t)
        order += group
    if to_folder(args.out):
        for folder, t in saved.items():
            save_each(t, args.out, [os.path.join(folder, stems[i] + ".png") for i in order])
        print(f"wrote {len(order) * len(saved)} translations to {args.out}")
    else:
        grid(torch.stack(columns, 1).flatten(0, 1), nrow=len(columns)).save(args.out)
        print(f"wrote {args.out}: rows of {' | '.join(headings)}")
