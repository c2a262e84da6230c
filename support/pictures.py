"""Pictures out: tensors in [-1, 1] -> uint8 pixels, a grid, one PNG per sample, an animation.
Used by train.py (its sample grids), sample.py and evaluate.py.
"""
import math, os, shlex
import numpy as np
import torch
from PIL import Image
from support.checks import Fail, flag


def to_uint8(x):
    """(..., C, H, W) in [-1, 1] -> (..., H, W, C) uint8 numpy."""
    x = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.movedim(-3, -1).cpu().numpy()


def finite(x, ck, knobs):
    """Never a NaN image (it would be written black): samples holding NaN or inf stop the command
    in one line naming the knobs that drew them and the checkpoint's step; nothing is written."""
    if torch.isfinite(x).all():
        return
    named = {k: v for k, v in knobs.items() if isinstance(v, (int, float, str)) and v != ""}
    said = " ".join(as_flag(k, v) for k, v in named.items()) or "the default knobs"
    raise Fail(f"the samples hold NaN or inf: drawn with {said} from the checkpoint at step "
               f"{ck.get('step', '?')}; nothing written: try other knobs, or an earlier checkpoint")


def as_flag(name, v):
    """A knob as it is typed: --steps 50, --no-clip, --prompt 'a red cube'."""
    if isinstance(v, bool):
        return flag(name) if v else "--no-" + name.replace("_", "-")
    return f"{flag(name)} {shlex.quote(str(v))}"


def grid(x, nrow=None):
    """(n, C, H, W) in [-1, 1] -> one PIL image, nrow images a row, 2-pixel gaps."""
    n, C, H, W = x.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    canvas = np.zeros((rows * (H + 2) + 2, nrow * (W + 2) + 2, C), np.uint8)
    for i, im in enumerate(to_uint8(x)):
        r, c = divmod(i, nrow)
        top = 2 + r * (H + 2)
        left = 2 + c * (W + 2)
        canvas[top:top + H, left:left + W] = im
    return Image.fromarray(canvas[..., 0] if C == 1 else canvas)


def save_png(x, path):
    """One image (C, H, W) in [-1, 1] -> a PNG file (grayscale when C = 1)."""
    a = to_uint8(x)                                                   # (H, W, C)
    Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a).save(path)


def save_each(x, out, names=None, labels=None, lab=False):
    """(n, C, H, W) -> OUT/00000.png, 00001.png, ... (the lab's names with lab=True: 0.png, 1.png,
    ...), in a subfolder per class, named by names[label], when labels are given."""
    for i, im in enumerate(x):
        folder = out if labels is None else os.path.join(out, names[labels[i]])
        os.makedirs(folder, exist_ok=True)
        save_png(im, os.path.join(folder, f"{i}.png" if lab else f"{i:05d}.png"))
    where = " in class subfolders" if labels is not None else ""
    print(f"wrote {len(x)} images to {out}{where}")


def save_named(x, stems, out):
    """(n, C, H, W) -> OUT/<stem>.png each, named as the inputs they were translated from."""
    os.makedirs(out, exist_ok=True)
    for stem, im in zip(stems, x):
        save_png(im, os.path.join(out, stem + ".png"))
    print(f"wrote {len(x)} translations to {out}")


def save_animation(frames, out, nrow=None):
    """frames (F, n, C, H, W) -> OUT as a .gif of grids (nrow samples a row), and OUT_strip.png: a
    row per sample (at most 8), 8 frames spread over the whole animation."""
    stem = os.path.splitext(out)[0]
    pictures = [grid(f, nrow) for f in frames]
    pictures[0].save(stem + ".gif", save_all=True, append_images=pictures[1:], duration=60, loop=0)
    picks = torch.linspace(0, len(frames) - 1, 8).round().long()
    strip = frames[picks, :8].transpose(0, 1).flatten(0, 1)         # rows: samples, columns: frames
    grid(strip, nrow=len(picks)).save(stem + "_strip.png")
    print(f"wrote {stem}.gif ({len(frames)} frames) and {stem}_strip.png")
