"""Pictures out: tensors in [-1, 1] -> uint8 pixels, a grid, one PNG per sample, an
animation. Used by train.py (its sample grids), sample.py and evaluate.py.
"""
import math, os, shlex, tempfile
import numpy as np
import torch
from PIL import Image
from support.cli import Fail, flag
from support.outputs import spares


def to_uint8(x):
    """(..., C, H, W) in [-1, 1] -> (..., H, W, C) uint8 numpy."""
    x = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.movedim(-3, -1).cpu().numpy()


def finite(x, ck, knobs):
    """Never a NaN image (it would be written black): samples holding NaN or inf stop the
    command in one line naming the knobs that drew them and the checkpoint's step; nothing
    is written."""
    if torch.isfinite(x).all():
        return
    said = " ".join(as_flag(k, v) for k, v in knobs.items()
                    if isinstance(v, (int, float, str)) and v != "")
    raise Fail(f"the samples hold NaN or inf: drawn with {said or 'the default knobs'} from "
               f"the checkpoint at step {ck.get('step', '?')}; nothing written: try other "
               "knobs, or an earlier checkpoint")


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


def numbered(n, names=None, labels=None, lab=False):
    """sample.py --out DIR/'s files: 00000.png, 00001.png, ... (the lab's names with lab=True:
    0.png, 1.png, ...), in a subfolder per class, named by names[label], when labels are
    given."""
    return [os.path.join("" if labels is None else names[labels[i]],
                         f"{i}.png" if lab else f"{i:05d}.png") for i in range(n)]


def save_each(x, out, files):
    """(n, C, H, W) -> OUT/files[0], OUT/files[1], ..., each file's folder made."""
    for f, im in zip(files, x):
        path = os.path.join(out, f)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        save_png(im, path)


def save_animation(frames, out, nrow=None):
    """frames (F, n, C, H, W) -> OUT as a .gif of grids (nrow samples a row), and
    OUT_strip.png: a row per sample (at most 8), 8 frames spread over the whole animation."""
    gif, strip_png = animation(out)
    pictures = [grid(f, nrow) for f in frames]
    pictures[0].save(gif, save_all=True, append_images=pictures[1:], duration=60, loop=0)
    picks = torch.linspace(0, len(frames) - 1, 8).round().long()
    # rows: samples, columns: frames
    strip = frames[picks, :8].transpose(0, 1).flatten(0, 1)
    grid(strip, nrow=len(picks)).save(strip_png)
    print(f"wrote {gif} ({len(frames)} frames) and {strip_png}")


def animation(out):
    """--gif's files: OUT.gif and OUT_strip.png."""
    stem = os.path.splitext(out)[0]
    return [stem + ".gif", stem + "_strip.png"]


def to_folder(out):
    """--out DIR/ (or an existing folder): one PNG per sample, rather than one grid."""
    return out.endswith(os.sep) or os.path.isdir(out)


def destination(out, inputs, files):
    """--out, before any work: files (the paths the command writes) spare the user's
    (support/outputs.py's spares: never a checkpoint, a log or one of inputs); OUT is a
    picture's name or a folder; writable, found by writing (a read-only folder fails here,
    even for root on a read-only mount, not after the work)."""
    for f in files:
        spares("--out", f, inputs)
    picture = os.path.splitext(out)[1].lower() in Image.registered_extensions()
    if not to_folder(out) and not picture:
        raise Fail(f"--out {out}: name a picture (.png) or a folder (ending in /)")
    folder = out if to_folder(out) else os.path.dirname(out) or "."
    try:
        os.makedirs(folder, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as e:
        raise Fail(f"cannot write --out {out}: {e.strerror}")
