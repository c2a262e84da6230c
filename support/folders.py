"""Folders of images in: each file decoded once (turned upright, made square, resized)
into one uint8 array, labelled by class folders, captions.txt or the lab's train.json, and
cached so that later runs start at once. Used by data.py (--data), sample.py, evaluate.py.
"""
import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from functools import partial
import numpy as np
from PIL import Image, ImageOps
from support.cli import Fail

EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


# ----------------------------------------------------------------------------- one file

def upright(im):
    """A PIL image as it is meant to be seen: turned as its EXIF orientation says (phones);
    16-bit or float pixels, which convert("RGB") would clip at 255, scaled to 8-bit gray."""
    im = ImageOps.exif_transpose(im)
    if not (im.mode.startswith("I;16") or im.mode in ("I", "F")):
        return im
    a = np.asarray(im, np.float64)
    # 16-bit: 65535; else the smallest usual range the values fit in (floats: [0, 1])
    top = next((t for t in (1, 255, 65535) if a.max() <= t), a.max())
    if im.mode.startswith("I;16"):
        top = 65535
    return Image.fromarray((a.clip(0, top) * (255 / top)).round().astype(np.uint8), "L")


def square(im, size, resize="crop"):
    """A PIL image -> (size, size, 3) RGB uint8: its centre square ("crop"), or the whole
    frame squashed into it ("squash": nothing at the edges is lost, the lab's 320x240)."""
    w, h = im.size
    s = min(w, h)
    im = im.convert("RGB")
    if resize == "crop":
        im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    return np.asarray(im.resize((size, size), Image.Resampling.BICUBIC))


def opened(path, size=None):
    """An image file, upright; with size, a JPEG decoded at the least scale that covers it."""
    with Image.open(path) as im:
        if size:
            im.draft("RGB", (size, size))
        return upright(im)


def load_image(path, size, resize="crop"):
    """One image file -> (size, size, 3) uint8, and whether it was grayscale."""
    im = opened(path, size)
    return square(im, size, resize), im.mode in ("1", "L", "LA")


def load_pair(path, size, resize="crop"):
    """A pair -> (size, size, 6) uint8, A's channels then B's: one side-by-side file A|B,
    or the two files (A, B) of the A/ and B/ folders."""
    if isinstance(path, tuple):
        a = opened(path[0])
        b = opened(path[1])
        if a.size != b.size:
            raise Fail(f"{path[1]} is {b.size[0]}x{b.size[1]} but its partner {path[0]} "
                       f"is {a.size[0]}x{a.size[1]}")
    else:
        im = opened(path)
        w, h = im.size
        if w % 2:
            raise Fail(f"{path} is {w} pixels wide: a side-by-side pair A|B needs an even "
                       "width")
        a = im.crop((0, 0, w // 2, h))
        b = im.crop((w // 2, 0, w, h))
    return np.concatenate([square(a, size, resize), square(b, size, resize)], -1)


def decode(path, size, paired, resize):
    """One file or pair -> (pixels, grayscale), or 'path: why' when it cannot be read."""
    try:
        if paired:
            return load_pair(path, size, resize), False
        return load_image(path, size, resize)
    except Fail:
        # a malformed pair stops the run, naming the file
        raise
    except Exception as e:
        # truncated, corrupt, not an image: skipped
        return f"{path}: {type(e).__name__}: {e}"


# ----------------------------------------------------------------------------- the files

def find_images(root):
    """The image files under root, recursively; hidden files and folders are not data."""
    found = []
    for d, dirs, fs in os.walk(root):
        dirs[:] = [x for x in dirs if not x.startswith(".")]
        found += [os.path.join(d, f) for f in fs
                  if f.lower().endswith(EXTENSIONS) and not f.startswith(".")]
    return sorted(found)


def find_pairs(root):
    """pix2pix data: files of one name in ROOT/A and ROOT/B, else side-by-side files A|B."""
    a_dir = os.path.join(root, "A")
    b_dir = os.path.join(root, "B")
    if not (os.path.isdir(a_dir) and os.path.isdir(b_dir)):
        return find_images(root)
    A = {os.path.relpath(f, a_dir): f for f in find_images(a_dir)}
    B = {os.path.relpath(f, b_dir): f for f in find_images(b_dir)}
    if lonely := sorted(set(A) ^ set(B)):
        f = lonely[0]
        raise Fail(f"{A.get(f) or B.get(f)} has no partner of the same name in "
                   f"{b_dir if f in A else a_dir} ({len(lonely)} file(s) without one)")
    return [(A[f], B[f]) for f in sorted(A)]


def class_folders(root, captions):
    """The immediate subfolders that hold images -> their names (the classes; for
    --captions "ankle-boot" is "ankle boot"), their files and each file's class."""
    names = sorted(d for d in os.listdir(root)
                   if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
    groups = {d: find_images(os.path.join(root, d)) for d in names}
    if empty := [d for d in names if not groups[d]]:
        print(f"warning: {len(empty)} folder(s) without images are not classes: "
              f"{', '.join(empty)}")
    names = [d for d in names if groups[d]]
    if not names:
        needs = "--captions needs captions.txt or" if captions else "--classes needs"
        raise Fail(f"{needs} one subfolder per class in {root}; found none")
    files = [f for d in names for f in groups[d]]
    labels = np.concatenate([np.full(len(groups[d]), i) for i, d in enumerate(names)])
    if captions:
        names = [" ".join(d.replace("-", " ").replace("_", " ").split()) for d in names]
    return names, files, labels


def read_captions(root, files):
    """ROOT/captions.txt, a `relative/path<TAB>caption` a line -> (labels, the captions)."""
    path = os.path.join(root, "captions.txt")
    try:
        # utf-8-sig: a byte order mark (Windows Notepad) is not text
        with open(path, encoding="utf-8-sig") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as e:
        raise Fail(f"{path} is not UTF-8 text (byte {e.start}): save it as UTF-8")
    table = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise Fail(f"{path} line {n}: expected 'filename<TAB>caption'")
        name, caption = line.split("\t", 1)
        table[name.strip()] = caption.strip()
    rel = [os.path.relpath(f, root) for f in files]
    if missing := [r for r in rel if r not in table]:
        raise Fail(f"{os.path.join(root, missing[0])} has no line in {path} "
                   f"({len(missing)} file(s) without one)")
    names = sorted(set(table[r] for r in rel))
    index = {c: i for i, c in enumerate(names)}
    return np.array([index[table[r]] for r in rel]), names


# ----------------------------------------------------------------------------- a folder

def load_folder(root, size, classes=False, paired=False, captions=False, label_file=None,
                objects=None, resize="crop"):
    """A folder of images -> (N, S, S, C) uint8, labels or None, names or None: the class
    folders', the captions of ROOT/captions.txt (else the class folders' names), or, with
    label_file (the lab's train.json, labels (N, K) multi-hot), objects.json's. Decoded
    once in parallel, then cached; reused while the folder is unchanged."""
    if not os.path.isdir(root):
        raise Fail(f"{root} is a file: give the folder that holds the images"
                   if os.path.exists(root) else f"no such folder: {root}")
    table = captions and os.path.isfile(os.path.join(root, "captions.txt"))
    folders = (classes or captions) and not table and not label_file
    labels = names = None
    if label_file:
        # the lab's train.json: a set of objects each
        from support.lab import read_labels
        files, labels, names = read_labels(root, label_file, objects)
        if not labels.any():
            raise Fail(f"--labels {label_file} gives every image an empty list of objects: "
                       "nothing to condition on; fill the lists, or drop --labels")
    elif folders:
        names, files, labels = class_folders(root, captions)
    else:
        files = find_pairs(root) if paired else find_images(root)
    if not files:
        raise Fail(f"no images found in {root} (looked for {' '.join(EXTENSIONS)}, "
                   "recursively)")
    if table:
        labels, names = read_captions(root, files)
    # the cache's key: each file's size and times (ctime: a file replaced), and the labels
    stats = [[stat(p) for p in (f if isinstance(f, tuple) else [f])] for f in files]
    check_memory(len(files), size, 6 if paired else 3)
    sets = None if labels is None else hashlib.sha1(labels).hexdigest()
    key = repr((size, paired, resize, stats, names, sets)).encode()
    name = os.path.basename(os.path.abspath(root))
    cache = f"{cache_folder()}/{name}-{size}px-{hashlib.sha1(key).hexdigest()[:16]}.npz"
    if found := read_cache(cache):
        return (*found, names)
    workers = min(os.cpu_count() or 1, max(1, len(files) // 256))
    print(f"decoding {len(files)} {'pairs' if paired else 'images'} from {root} "
          f"on {workers} process(es)")
    with ProcessPoolExecutor(workers) as pool:
        one = partial(decode, size=size, paired=paired, resize=resize)
        out = list(pool.map(one, files, chunksize=64))
    bad = [o for o in out if isinstance(o, str)]
    note = f"{len(bad)} unreadable image(s), e.g. {bad[0]}" if bad else ""
    if note:
        print(f"warning: skipped {note}")
    kept = [i for i, o in enumerate(out) if not isinstance(o, str)]
    if not kept:
        raise Fail(f"none of the {len(bad)} images in {root} could be read")
    images = np.stack([out[i][0] for i in kept])
    if all(out[i][1] for i in kept):
        # grayscale data: one channel
        images = images[..., :1]
    if labels is not None:
        labels = labels[kept]
    if folders and (lost := sorted(set(range(len(names))) - set(labels.tolist()))):
        raise Fail(f"no image of the class {names[lost[0]]} in {root} could be read "
                   f"({len(lost)} such class(es))")
    write_cache(cache, images, labels, note)
    return images, labels, names


def stat(path):
    """(path, size, mtime, ctime), or the path alone when it is gone (a dangling link)."""
    try:
        s = os.stat(path)
    except OSError:
        return path
    return path, s.st_size, s.st_mtime_ns, s.st_ctime_ns


def check_memory(n, size, channels):
    """Refuse data that would not fit in memory in one line, rather than allocate it."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        # no sysconf (Windows): no check
        return
    need = n * size * size * channels
    if need > memory / 2:
        raise Fail(f"{n} images at {size}x{size} need {need / 2**30:,.1f} GiB, more than "
                   f"half of this machine's {memory / 2**30:,.0f} GiB: choose a smaller "
                   "--image-size")


# ----------------------------------------------------------------------------- the cache

def cache_folder():
    """Where decoded folders (and evaluate.py's Inception weights) are kept."""
    home = os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))
    return os.path.join(home, "genmodels")


def read_cache(cache):
    """(images, labels or None) from the cache, or None when it has none or cannot be read.
    The files skipped when it was written are said again on every run."""
    if not os.path.exists(cache):
        return None
    try:
        with np.load(cache) as z:
            images = z["images"]
            labels = z["labels"] if "labels" in z else None
            note = str(z["skipped"])
    except Exception as e:
        # cut short, corrupt, an older layout: decoded again
        print(f"warning: the cache {cache} is unreadable ({type(e).__name__}); decoding "
              "again")
        return None
    if note:
        print(f"warning: skipped {note}")
    return images, labels


def write_cache(cache, images, labels, note):
    """Written whole, then renamed: a run cut short leaves no half file behind."""
    home = os.path.dirname(cache)
    arrays = dict(images=images, skipped=np.array(note))
    if labels is not None:
        arrays["labels"] = labels
    try:
        os.makedirs(home, exist_ok=True)
        tmp = f"{cache}.{os.getpid()}.tmp.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, cache)
    except OSError as e:
        print(f"warning: no cache, {home} is not writable ({e.strerror}); the next run "
              "decodes again")
        return
    print(f"cached for next time in {home}")
