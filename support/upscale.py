"""sample.py --input for SRGAN: each image upsampled 4x, beside bicubic upsampling of the same
input. An image at least the model's size S is cropped and resized to S, downsampled 4x by the
model itself (as in training), and upsampled back: a strip bicubic | G | original, and PSNR and
SSIM against the original for both. A smaller image is the low-resolution input as it is (its
centre square): a strip bicubic | G at 4 times its side."""
import os
import torch
import torch.nn.functional as F
from PIL import Image
import evaluate
from support.cli import Fail
from support.folders import find_images, load_image
from support.pictures import finite, grid, save_named, to_folder
from support.translate import as_tensor, stem


def read(files, size, C, device):
    """Each file -> its image (C, s, s) in [-1, 1]: s = S for an image at least S on its shorter
    side (full size), else that side."""
    images = []
    for f in files:
        try:
            with Image.open(f) as im:
                side = min(im.size)
            images.append(as_tensor(load_image(f, min(side, size))[0], C, device))
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise Fail(f"cannot read image {f}: {e}")
    return images


def upsample(model, lr, args, autocast):
    """Bicubic and G's 4x upsampling of the low-resolution batch lr (n, C, s, s); G in batches of
    --batch-size."""
    bicubic = F.interpolate(lr, scale_factor=4, mode="bicubic").clamp(-1, 1)
    with autocast:
        sr = torch.cat([model.sample(len(c), c).float() for c in lr.split(args.batch_size)])
    return bicubic, sr


def scores(name, out, hr):
    """PSNR and SSIM of out against hr (evaluate.py's, on the [0, 1] scale)."""
    a = ((out + 1) / 2).cpu().numpy()
    b = ((hr + 1) / 2).cpu().numpy()
    ssim = f", SSIM {evaluate.ssim(a, b).mean():.4f}" if hr.shape[-1] >= 11 else ""
    return f"{name} PSNR {evaluate.psnr(a, b):.2f} dB{ssim}"


def upscale(ck, model, args, knobs, device, autocast):
    """srgan: each --input -> G's 4x upsampling: --out FILE.png a grid with a strip per image
    (bicubic | G | original), --out DIR/ G's outputs named as their inputs; PSNR/SSIM printed."""
    if not args.input:
        raise Fail(f"{ck['model']} upsamples images: give --input FILE or --input FOLDER")
    size = ck["config"]["image_size"]
    files = [f for p in args.input for f in (find_images(p) if os.path.isdir(p) else [p])]
    if not files:
        raise Fail(f"no images found in --input {' '.join(args.input)}")
    images = read(files, size, ck["config"]["channels"], device)
    sides = sorted({x.shape[-1] for x in images}, reverse=True)      # full size first
    if len(sides) > 1 and not to_folder(args.out):
        raise Fail(f"the --input images come in {len(sides)} sizes (one below {size}px is "
                   "upsampled at its own), which one grid cannot hold: give --out DIR/")
    name = "SRResNet" if ck["config"].get("content") == "mse" else "SRGAN"
    rows = []
    outputs = []
    names = []
    for side in sides:                                               # a batch per size
        x = torch.stack([im for im in images if im.shape[-1] == side])
        names += [stem(f) for f, im in zip(files, images) if im.shape[-1] == side]
        full = side == size
        lr = model.downsample(x) if full else x                      # I^LR, as in training
        bicubic, sr = upsample(model, lr, args, autocast)
        finite(sr, ck, knobs)
        outputs += list(sr)
        if full:
            print(f"{len(x)} images at {size}px from {size // 4}px: "
                  f"{scores('bicubic', bicubic, x)}; {scores(name, sr, x)}")
        rows.append(torch.stack([bicubic, sr] + ([x] if full else []), 1))
    if to_folder(args.out):
        return save_named(outputs, names, args.out)
    strips = rows[0]
    grid(strips.flatten(0, 1), nrow=strips.shape[1]).save(args.out)
    original = " | original" if strips.shape[1] == 3 else ""
    print(f"wrote {args.out}: rows of bicubic | {name}{original}")
