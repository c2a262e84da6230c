"""Folders of images in: each file decoded once (turned upright, cropped square, resized) into one
uint8 array, labelled by class folders, captions.txt or the lab's train.json (read by lab.py), and
cached so that later runs start at once. Used by data.py (--data), sample.py and evaluate.py.
"""
import hashlib, os
from concurrent.futures import ProcessPoolExecutor
import numpy as np
from PIL import Image, ImageOps
from support.cli import Fail
from support.lab import read_labels

EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


# ----------------------------------------------------------------------------- one file

def upright(im):
    """A PIL image as it is meant to be seen: turned as its EXIF orientation says (phone photos),
    and 16-bit or float pixels (modes I;16, I, F) scaled to 8 bits, which convert("RGB") would clip
    at 255: 16-bit by 255/65535, floats in [0, 1] by 255."""
    im = ImageOps.exif_transpose(im)
    if not (im.mode.startswith("I;16") or im.mode in ("I", "F")):
        return im
    a = np.asarray(im, np.float64)
    if im.mode.startswith("I;16"):
        top = 65535
    else:                                                      # the smallest usual range it fits in
        top = next((t for t in (1, 255, 65535) if a.max() <= t), a.max())
    return Image.fromarray((a.clip(0, top) * (255 / top)).round().astype(np.uint8), "L")


def square(im, size, resize="crop"):
    """A PIL image -> center-cropped to a square (resize="crop"), or the whole frame squashed into
    one ("squash": nothing at the edges is lost, the lab's 320x240 -> 64x64), at (size, size):
    RGB uint8 (size, size, 3)."""
    w, h = im.size
    s = min(w, h)
    im = im.convert("RGB")
    if resize == "crop":
        left = (w - s) // 2
        top = (h - s) // 2
        im = im.crop((left, top, left + s, top + s))
    return np.asarray(im.resize((size, size), Image.Resampling.BICUBIC))


def load_image(path, size, resize="crop"):
    """One image file -> (size, size, 3) uint8, and whether it was grayscale."""
    with Image.open(path) as im:
        im.draft("RGB", (size, size))                 # JPEG: decode at a smaller scale, much faster
        im = upright(im)
        return square(im, size, resize), im.mode in ("1", "L", "LA")


def load_pair(path, size):
    """A pair -> (size, size, 6) uint8, A's channels then B's. `path` is one side-by-side file A|B,
    or the two files (A, B) of the A/ and B/ folders."""
    if isinstance(path, tuple):
        with Image.open(path[0]) as a, Image.open(path[1]) as b:
            a = upright(a)
            b = upright(b)
            if a.size != b.size:
                raise Fail(f"{path[1]} is {b.size[0]}x{b.size[1]} but its partner {path[0]} is "
                           f"{a.size[0]}x{a.size[1]}")
            return np.concatenate([square(a, size), square(b, size)], -1)
    with Image.open(path) as im:
        im = upright(im)
        w, h = im.size
        if w % 2:
            raise Fail(f"{path} is {w} pixels wide: a side-by-side pair A|B needs an even width")
        a = square(im.crop((0, 0, w // 2, h)), size)
        b = square(im.crop((w // 2, 0, w, h)), size)
        return np.concatenate([a, b], -1)


def decode(job):
    """One file or pair -> (pixels, grayscale), or 'path: why' when it cannot be read."""
    path, size, paired, resize = job
    try:
        if paired:
            return load_pair(path, size), False
        return load_image(path, size, resize)
    except Fail:
        raise                                    # a malformed pair stops the run, naming the file
    except Exception as e:                           # truncated, corrupt, not an image: skipped
        return f"{path}: {type(e).__name__}: {e}"


# ----------------------------------------------------------------------------- finding the files

def find_images(root):
    """The image files under root, recursively; hidden files and folders (.ipynb_checkpoints) are
    not data."""
    found = []
    for d, dirs, fs in os.walk(root):
        dirs[:] = [x for x in dirs if not x.startswith(".")]
        found += [os.path.join(d, f) for f in fs
                  if f.lower().endswith(EXTENSIONS) and not f.startswith(".")]
    return sorted(found)


def find_pairs(root):
    """pix2pix data: matching files in ROOT/A and ROOT/B, else side-by-side files A|B anywhere in
    ROOT."""
    a_dir = os.path.join(root, "A")
    b_dir = os.path.join(root, "B")
    if not (os.path.isdir(a_dir) and os.path.isdir(b_dir)):
        return find_images(root)
    A = {os.path.relpath(f, a_dir): f for f in find_images(a_dir)}
    B = {os.path.relpath(f, b_dir): f for f in find_images(b_dir)}
    lonely = sorted(set(A) ^ set(B))
    if lonely:
        f = lonely[0]
        raise Fail(f"{A.get(f) or B.get(f)} has no partner of the same name in "
                   f"{b_dir if f in A else a_dir} ({len(lonely)} file(s) without one)")
    return [(A[f], B[f]) for f in sorted(A)]


def class_folders(root, captions):
    """The immediate subfolders that hold images -> their names (the classes) and their files.
    Hidden and empty folders are not classes."""
    names = sorted(d for d in os.listdir(root)
                   if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
    groups = [find_images(os.path.join(root, d)) for d in names]
    if empty := [d for d, g in zip(names, groups) if not g]:
        print(f"warning: {len(empty)} folder(s) without images are not classes: {', '.join(empty)}")
    names = [d for d, g in zip(names, groups) if g]
    groups = [g for g in groups if g]
    if not names:
        needs = "--captions needs captions.txt or" if captions else "--classes needs"
        raise Fail(f"{needs} one subfolder per class in {root}; found none")
    return names, groups


def read_captions(root, files):
    """ROOT/captions.txt, one `relative/path<TAB>caption` per line -> (labels, the distinct
    captions)."""
    table = {}
    try:
        with open(os.path.join(root, "captions.txt"), encoding="utf-8-sig") as f:  # BOM: not text
            lines = f.read().splitlines()
    except UnicodeDecodeError as e:
        raise Fail(f"{root}/captions.txt is not UTF-8 text (byte {e.start}): save it as UTF-8")
    for n, line in enumerate(lines, 1):
        if line.strip():
            if "\t" not in line:
                raise Fail(f"{root}/captions.txt line {n}: expected 'filename<TAB>caption'")
            name, caption = line.split("\t", 1)
            table[name.strip()] = caption.strip()
    rel = [os.path.relpath(f, root) for f in files]
    missing = [r for r in rel if r not in table]
    if missing:
        raise Fail(f"{os.path.join(root, missing[0])} has no line in {root}/captions.txt "
                   f"({len(missing)} file(s) without one)")
    names = sorted(set(table[r] for r in rel))
    index = {c: i for i, c in enumerate(names)}
    return np.array([index[table[r]] for r in rel]), names


def stat_files(files):
    """Each file's (path, size, mtime, ctime) for the cache's key, the positions of the files that
    are there, and 'path: why' for the others (a dangling link, a file deleted since: skipped)."""
    stats, keep, bad = [], [], []
    for i, f in enumerate(files):
        paths = f if isinstance(f, tuple) else [f]
        try:
            found = [os.stat(p) for p in paths]
        except OSError as e:
            bad.append(f"{e.filename}: {e.strerror}")
            continue
        stats.append([(p, s.st_size, s.st_mtime_ns, s.st_ctime_ns) for p, s in zip(paths, found)])
        keep.append(i)
    return stats, keep, bad


# ----------------------------------------------------------------------------- a folder

def load_folder(root, size, classes=False, paired=False, captions=False, label_file=None,
                objects=None, resize="crop"):
    """A folder of images -> (N, S, S, C) uint8, labels or None, class names (or captions) or None.
    Decoded once in parallel, then cached as one array; reused while the folder is unchanged.
    Captions come from ROOT/captions.txt, else from the class folders' names. With label_file (the
    lab's train.json) the labels are (N, K) float32 multi-hot and the names are objects.json's."""
    if not os.path.isdir(root):
        if os.path.exists(root):
            raise Fail(f"{root} is a file: give the folder that holds the images")
        raise Fail(f"no such folder: {root}")
    table = captions and os.path.isfile(os.path.join(root, "captions.txt"))
    folders = (classes or captions) and not table and not label_file  # the subfolders: classes
    names = None
    labels = None
    if label_file:                                     # the lab's train.json: a set of objects each
        files, labels, names = read_labels(root, label_file, objects)
        if not labels.any():                           # all y = 0: the null condition throughout
            raise Fail(f"--labels {label_file} gives every image an empty list of objects: "
                       "nothing to condition on; fill the lists, or drop --labels")
    elif folders:
        names, groups = class_folders(root, captions)
        files = [f for g in groups for f in g]
        labels = np.concatenate([np.full(len(g), i) for i, g in enumerate(groups)])
    else:
        files = find_pairs(root) if paired else find_images(root)
    if not files:
        raise Fail(f"no images found in {root} (looked for {' '.join(EXTENSIONS)}, recursively)")
    stats, keep, bad = stat_files(files)
    files = [files[i] for i in keep]
    if labels is not None:
        labels = labels[keep]
    if table:
        labels, names = read_captions(root, files)
    elif captions:                                     # "ankle-boot" -> "ankle boot"
        names = [" ".join(n.replace("-", " ").replace("_", " ").split()) for n in names]
    classes = folders or table or bool(label_file)
    check_memory(len(files), size, 6 if paired else 3)
    sets = hashlib.sha1(labels).hexdigest() if label_file else None   # train.json edited: decoded
    key = (size, classes, paired, stats, names, resize, sets)         # ctime: a file replaced
    cache = cache_file(root, size, key)
    if found := read_cache(cache, classes):
        return (*found, names)
    workers = min(os.cpu_count() or 1, max(1, len(files) // 256))
    print(f"decoding {len(files)} {'pairs' if paired else 'images'} from {root} "
          f"on {workers} process(es)")
    with ProcessPoolExecutor(workers) as pool:
        out = list(pool.map(decode, [(f, size, paired, resize) for f in files], chunksize=64))
    bad += [o for o in out if isinstance(o, str)]
    skipped = [f"{len(bad)} unreadable image(s), e.g. {bad[0]}"] if bad else []
    if bad:
        print(f"warning: skipped {skipped[0]}")
    keep = [i for i, o in enumerate(out) if not isinstance(o, str)]
    if not keep:
        raise Fail(f"none of the {len(bad)} images in {root} could be read")
    images = np.stack([out[i][0] for i in keep])                       # (N, S, S, 3)
    if all(out[i][1] for i in keep):
        images = images[..., :1]                                       # grayscale data: 1 channel
    labels = labels[keep] if classes else None
    if folders and (lost := sorted(set(range(len(names))) - set(labels.tolist()))):
        raise Fail(f"no image of the class {names[lost[0]]} in {root} could be read "
                   f"({len(lost)} such class(es))")
    write_cache(cache, images, labels, skipped)
    return images, labels, names


def check_memory(n, size, channels):
    """Refuse data that would not fit in memory in one line, rather than try to allocate it."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):               # no sysconf (Windows): no check
        return
    need = n * size * size * channels
    if need > memory / 2:
        raise Fail(f"{n} images at {size}x{size} need {need / 2**30:,.1f} GiB, more than half of "
                   f"this machine's {memory / 2**30:,.0f} GiB: choose a smaller --image-size")


# ----------------------------------------------------------------------------- the cache

def cache_folder():
    """Where decoded folders (and evaluate.py's Inception weights) are kept."""
    home = os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))
    return os.path.join(home, "genmodels")


def cache_file(root, size, key):
    """The cache file of a folder: its name, the size, and a hash of everything that was read."""
    stamp = hashlib.sha1(repr(key).encode()).hexdigest()[:16]
    name = os.path.basename(os.path.abspath(root))
    return os.path.join(cache_folder(), f"{name}-{size}px-{stamp}.npz")


def read_cache(cache, classes):
    """(images, labels) from the cache, or None when it has none or cannot be read."""
    if not os.path.exists(cache):
        return None
    try:
        with np.load(cache) as z:
            images = z["images"]
            labels = z["labels"] if classes else None
            skipped = z["skipped"]
    except Exception as e:                   # cut short, corrupt, an older layout: decoded again
        print(f"warning: the cache {cache} is unreadable ({type(e).__name__}); decoding again")
        return None
    if len(skipped):
        print(f"warning: skipped {skipped[0]}")                      # said again on every run
    return images, labels


def write_cache(cache, images, labels, skipped):
    """Written whole, then renamed: a run cut short leaves no half file behind."""
    home = os.path.dirname(cache)
    try:
        os.makedirs(home, exist_ok=True)
        tmp = f"{cache}.{os.getpid()}.tmp.npz"
        kept = np.zeros(0) if labels is None else labels
        np.savez(tmp, images=images, labels=kept, skipped=np.array(skipped))
        os.replace(tmp, cache)
        sizes = [e.stat().st_size for e in os.scandir(home) if e.name.endswith(".npz")]
        print(f"cached for next time in {home}: {len(sizes)} file(s), "
              f"{sum(sizes) / 2**20:,.0f} MB (old ones may go)")
    except OSError as e:
        print(f"warning: no cache, {home} is not writable ({e.strerror}); "
              f"the next run decodes again")
