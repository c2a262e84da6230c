"""sample.py --input: image-to-image models, pix2pix (paired) and CycleGAN (unpaired), translate
the user's images, and report how close they came (to the targets, or back to the input)."""
import os
import numpy as np
import torch
from PIL import Image
from support.cli import Fail
from support.folders import find_images, find_pairs, load_image, load_pair
from support.pictures import finite, grid, save_named, to_folder


def as_tensor(im, channels, device):
    """(S, S, 3) uint8 -> (C, S, S) in [-1, 1]."""
    x = torch.tensor(im).float().permute(2, 0, 1) / 127.5 - 1
    return (x.mean(0, keepdim=True) if channels == 1 else x).to(device)


def side_by_side(path):
    """A file twice as wide as high holds a pair A|B."""
    with Image.open(path) as im:
        return im.size[0] == 2 * im.size[1]


def stem(path):
    """photos/cat.jpg -> cat: an output is named as its input."""
    return os.path.splitext(os.path.basename(path))[0]


def translate(ck, model, args, knobs, device, autocast):
    """pix2pix: each --input -> G(A); with targets, rows of input | output | target and the mean
    L1 and PSNR against them (on the [0, 1] pixel scale)."""
    if not args.input:
        raise Fail("pix2pix translates images: give --input FILE or --input FOLDER")
    size = ck["config"]["image_size"]
    C = ck["config"]["channels"]
    files = [f for p in args.input for f in (find_pairs(p) if os.path.isdir(p) else [p])]
    if not files:
        raise Fail(f"no images found in --input {' '.join(args.input)}")
    A, B, stems = [], [], []
    for f in files:
        try:
            pair = isinstance(f, tuple) or side_by_side(f)
            ims = np.split(load_pair(f, size), 2, -1) if pair else [load_image(f, size)[0]]
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise Fail(f"cannot read image {f}: {e}")
        if pair and ck["args"].get("direction") == "BtoA":
            ims = ims[::-1]
        A.append(as_tensor(ims[0], C, device))
        B.append(as_tensor(ims[1], C, device) if pair else None)
        stems.append(stem(f[0] if isinstance(f, tuple) else f))
    a = torch.stack(A)
    with autocast:
        out = torch.cat([model.sample(len(c), c, **knobs).float()
                         for c in a.split(args.batch_size)])
    finite(out, ck, knobs)
    if to_folder(args.out):
        save_named(out, stems, args.out)
    columns = [a, out]
    if all(b is not None for b in B):
        b = torch.stack(B)
        err = (out - b) / 2                                           # on the [0, 1] pixel scale
        psnr = (-10 * torch.log10((err**2).mean((1, 2, 3)).clamp_min(1e-10))).mean()
        print(f"{len(b)} pairs: mean L1 {err.abs().mean():.4f}, PSNR {psnr:.2f} dB")
        columns.append(b)
    if not to_folder(args.out):
        grid(torch.stack(columns, 1).flatten(0, 1), nrow=len(columns)).save(args.out)
        target = " | target" if len(columns) == 3 else ""
        print(f"wrote {args.out}: rows of input | output{target}")


def cycle(ck, model, args, knobs, device, autocast):
    """cyclegan: each --input x -> its translation G(x) (F(x) with --direction BtoA) and the way
    back, F(G(x)): rows of input | translation | reconstruction, and the mean cycle L1 on the
    [0, 1] scale."""
    if not args.input:
        raise Fail("cyclegan translates images: give --input FILE or --input FOLDER")
    size = ck["config"]["image_size"]
    C = ck["config"]["channels"]
    files = [f for p in args.input for f in (find_images(p) if os.path.isdir(p) else [p])]
    if not files:
        raise Fail(f"no images found in {' '.join(args.input)}")
    try:
        x = [as_tensor(load_image(f, size)[0], C, device) for f in files]
    except (OSError, ValueError) as e:
        raise Fail(f"cannot read image: {e}")
    x = torch.stack(x)                                                # (n, C, S, S)
    back = "BtoA" if knobs.get("direction", "AtoB") == "AtoB" else "AtoB"
    with autocast:
        t = torch.cat([model.sample(len(c), c, **knobs).float() for c in x.split(args.batch_size)])
        r = torch.cat([model.sample(len(c), c, direction=back).float()
                       for c in t.split(args.batch_size)])
    finite(torch.cat([t, r]), ck, knobs)
    print(f"{len(x)} images: mean cycle L1 {((r - x) / 2).abs().mean():.4f}")
    if to_folder(args.out):
        save_named(t, [stem(f) for f in files], args.out)
    else:
        grid(torch.stack([x, t, r], 1).flatten(0, 1), nrow=3).save(args.out)
        print(f"wrote {args.out}: rows of input | translation | reconstruction")
