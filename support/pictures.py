"""Pictures out: tensors in [-1, 1] -> uint8 pixels, a grid, one PNG per sample, an
animation. Used by train.py (its sample grids), sample.py and evaluate.py.
"""
import math, os, shlex, tempfile, zipfile
import numpy as np
import torch
from PIL import Image
from support.cli import Fail, flag


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


def save_each(x, out, names=None, labels=None, lab=False):
    """(n, C, H, W) -> OUT/00000.png, 00001.png, ... (the lab's names with lab=True: 0.png,
    1.png, ...), in a subfolder per class, named by names[label], when labels are given."""
    for i, im in enumerate(x):
        folder = out if labels is None else os.path.join(out, names[labels[i]])
        os.makedirs(folder, exist_ok=True)
        save_png(im, os.path.join(folder, f"{i}.png" if lab else f"{i:05d}.png"))
    where = " in class subfolders" if labels is not None else ""
    print(f"wrote {len(x)} images to {out}{where}")


def save_named(x, stems, out):
    """(n, C, H, W) -> OUT/<stem>.png each, named as the inputs they were made from."""
    os.makedirs(out, exist_ok=True)
    for stem, im in zip(stems, x):
        save_png(im, os.path.join(out, stem + ".png"))


def save_animation(frames, out, nrow=None):
    """frames (F, n, C, H, W) -> OUT as a .gif of grids (nrow samples a row), and
    OUT_strip.png: a row per sample (at most 8), 8 frames spread over the whole animation."""
    stem = os.path.splitext(out)[0]
    pictures = [grid(f, nrow) for f in frames]
    pictures[0].save(stem + ".gif", save_all=True, append_images=pictures[1:], duration=60,
                     loop=0)
    picks = torch.linspace(0, len(frames) - 1, 8).round().long()
    # rows: samples, columns: frames
    strip = frames[picks, :8].transpose(0, 1).flatten(0, 1)
    grid(strip, nrow=len(picks)).save(stem + "_strip.png")
    print(f"wrote {stem}.gif ({len(frames)} frames) and {stem}_strip.png")


def to_folder(out):
    """--out DIR/ (or an existing folder): one PNG per sample, rather than one grid."""
    return out.endswith(os.sep) or os.path.isdir(out)


def destination(out, gif):
    """--out: never over a checkpoint; a picture's name or a folder; writable, found by
    writing (a read-only folder fails here, even for root on a read-only mount, not after
    the work)."""
    stem = os.path.splitext(out)[0]
    files = [stem + ".gif", stem + "_strip.png"] if gif else [out]
    if mine := [f for f in files if a_checkpoint(f)]:
        raise Fail(f"--out {out}: {mine[0]} is a checkpoint, and sample.py never writes over "
                   "one: choose another --out")
    picture = os.path.splitext(out)[1].lower() in Image.registered_extensions()
    if not to_folder(out) and not picture:
        raise Fail(f"--out {out}: name a picture (.png) or a folder (ending in /)")
    folder = out if to_folder(out) else os.path.dirname(out) or "."
    try:
        os.makedirs(folder, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as e:
        raise Fail(f"cannot write --out {out}: {e.strerror}")


def a_checkpoint(path):
    """A file torch.save wrote: a zip archive holding data.pkl, or (older torch) a pickle."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                return any(n.endswith("data.pkl") for n in z.namelist())
        with open(path, "rb") as f:
            # pickle protocol 2: torch's legacy save
            return f.read(2) == b"\x80\x02"
    # no such file, or not one to read
    except (OSError, zipfile.BadZipFile):
        return False
