"""Data in and pictures out, shared by train.py and sample.py: the built-in shapes (and scenes.py's
scenes), folders of images decoded once into a cached uint8 array (labelled by class folders, captions
or the lab's train.json, read by lab.py), batches drawn on the GPU, and image grids.

Kept apart from train.py so the training loop stays short enough to read in one sitting.
"""
import hashlib, math, os
from concurrent.futures import ProcessPoolExecutor
import numpy as np
import torch
from PIL import Image, ImageOps
from support.cli import Fail
from support.lab import read_labels
from support import scenes

EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


# ----------------------------------------------------------------------------- images in

def shapes(n=12_000, size=32, seed=0):
    """The built-in dataset: a coloured circle, square or triangle on a dark background, with its
    label ("red circle"). Drawn with numpy at 2x and averaged down, so the edges are smooth."""
    rng = np.random.default_rng(seed)
    colours = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (50, 90, 235), "yellow": (230, 200, 40)}
    kinds = ["circle", "square", "triangle"]
    names = [f"{c} {k}" for k in kinds for c in colours]                       # label = kind * 4 + colour
    labels = rng.integers(0, len(names), n)
    S = 2 * size
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32) + 0.5                       # (S, S) pixel centres
    images = np.empty((n, size, size, 3), np.uint8)
    chunk = max(1, min(500, 2**24 // S**2))                                    # images drawn at once: <= 64 MB a map
    for lo in range(0, n, chunk):
        lab = labels[lo:lo + chunk]
        m = len(lab)
        r = rng.uniform(0.18, 0.35, (m, 1, 1)).astype(np.float32) * S          # half the shape's extent
        cx, cy = rng.uniform(0, 1, (2, m, 1, 1)).astype(np.float32) * (S - 2 * r) + r
        dx, dy = np.abs(xx - cx), yy - cy
        kind = (lab // len(colours))[:, None, None]
        inside = np.where(kind == 0, dx**2 + dy**2 < r**2,                       # circle
                 np.where(kind == 1, (dx < 0.85 * r) & (np.abs(dy) < 0.85 * r),  # square
                          (np.abs(dy) < r) & (dx < (dy + r) / 2)))               # triangle, apex up
        colour = np.array(list(colours.values()), np.float32)[lab % len(colours)]
        colour = np.clip(colour + rng.normal(0, 12, (m, 3)), 0, 255).astype(np.float32)[:, None, None]
        background = rng.uniform(0, 60, (m, 1, 1, 1)).astype(np.float32)
        cover = inside.reshape(m, size, 2, size, 2).sum((2, 4), dtype=np.float32)[..., None] / 4   # (m, size, size, 1)
        images[lo:lo + m] = (cover * colour + (1 - cover) * background).round()   # each pixel: its 2x2 average
    return images, labels, names


def upright(im):
    """A PIL image as it is meant to be seen: turned as its EXIF orientation says (phone photos), and
    16-bit or float pixels (modes I;16, I, F) scaled to 8 bits, which convert("RGB") would clip at 255:
    16-bit by 255/65535, floats in [0, 1] by 255."""
    im = ImageOps.exif_transpose(im)
    if not (im.mode.startswith("I;16") or im.mode in ("I", "F")):
        return im
    a = np.asarray(im, np.float64)
    top = 65535 if im.mode.startswith("I;16") else next((t for t in (1, 255, 65535) if a.max() <= t), a.max())
    return Image.fromarray((a.clip(0, top) * (255 / top)).round().astype(np.uint8), "L")


def square(im, size, resize="crop"):
    """A PIL image -> center-cropped to a square (resize="crop"), or the whole frame squashed into one
    ("squash": nothing at the edges is lost, the lab's 320x240 -> 64x64), at (size, size): RGB uint8 (size, size, 3)."""
    w, h = im.size
    s = min(w, h)
    im = im.convert("RGB")
    if resize == "crop":
        im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    return np.asarray(im.resize((size, size), Image.Resampling.BICUBIC))


def load_image(path, size, resize="crop"):
    """One image file -> (size, size, 3) uint8, and whether it was grayscale."""
    with Image.open(path) as im:
        im.draft("RGB", (size, size))                          # JPEG: decode at a smaller scale, much faster
        im = upright(im)
        return square(im, size, resize), im.mode in ("1", "L", "LA")


def load_pair(path, size):
    """A pair -> (size, size, 6) uint8, A's channels then B's. `path` is one side-by-side file A|B,
    or the two files (A, B) of the A/ and B/ folders."""
    if isinstance(path, tuple):
        with Image.open(path[0]) as a, Image.open(path[1]) as b:
            a, b = upright(a), upright(b)
            if a.size != b.size:
                raise Fail(f"{path[1]} is {b.size[0]}x{b.size[1]} but its partner {path[0]} is {a.size[0]}x{a.size[1]}")
            return np.concatenate([square(a, size), square(b, size)], -1)
    with Image.open(path) as im:
        im = upright(im)
        w, h = im.size
        if w % 2:
            raise Fail(f"{path} is {w} pixels wide: a side-by-side pair A|B needs an even width")
        return np.concatenate([square(im.crop((0, 0, w // 2, h)), size), square(im.crop((w // 2, 0, w, h)), size)], -1)


def _decode(job):
    path, size, paired, resize = job
    try:
        return (load_pair(path, size), False) if paired else load_image(path, size, resize)
    except Fail:
        raise                                                  # a malformed pair stops the run, naming the file
    except Exception as e:                                     # truncated, corrupt, not an image: skipped
        return f"{path}: {type(e).__name__}: {e}"


def find_images(root):
    """The image files under root, recursively; hidden files and folders (.ipynb_checkpoints) are not data."""
    found = []
    for d, dirs, fs in os.walk(root):
        dirs[:] = [x for x in dirs if not x.startswith(".")]
        found += [os.path.join(d, f) for f in fs if f.lower().endswith(EXTENSIONS) and not f.startswith(".")]
    return sorted(found)


def find_pairs(root):
    """pix2pix data: matching files in ROOT/A and ROOT/B, else side-by-side files A|B anywhere in ROOT."""
    a_dir, b_dir = os.path.join(root, "A"), os.path.join(root, "B")
    if not (os.path.isdir(a_dir) and os.path.isdir(b_dir)):
        return find_images(root)
    A, B = ({os.path.relpath(f, d): f for f in find_images(d)} for d in (a_dir, b_dir))
    lonely = sorted(set(A) ^ set(B))
    if lonely:
        f = lonely[0]
        raise Fail(f"{A.get(f) or B.get(f)} has no partner of the same name in {b_dir if f in A else a_dir}"
                   f" ({len(lonely)} file(s) without one)")
    return [(A[f], B[f]) for f in sorted(A)]


def read_captions(root, files):
    """ROOT/captions.txt, one `relative/path<TAB>caption` per line -> (labels, the distinct captions)."""
    table = {}
    try:
        with open(os.path.join(root, "captions.txt"), encoding="utf-8-sig") as f:     # -sig: a BOM is not text
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
        raise Fail(f"{os.path.join(root, missing[0])} has no line in {root}/captions.txt ({len(missing)} file(s) without one)")
    names = sorted(set(table[r] for r in rel))
    index = {c: i for i, c in enumerate(names)}
    return np.array([index[table[r]] for r in rel]), names


def load_folder(root, size, classes=False, paired=False, captions=False, label_file=None, objects=None, resize="crop"):
    """A folder of images -> (N, S, S, C) uint8, labels or None, class names (or captions) or None.
    Decoded once in parallel, then cached as one array; reused while the folder is unchanged.
    Captions come from ROOT/captions.txt, else from the class folders' names. With label_file (the
    lab's train.json) the labels are (N, K) float32 multi-hot and the names are objects.json's."""
    if not os.path.isdir(root):
        raise Fail(f"--data {root} is a file: give the folder that holds the images" if os.path.exists(root) else
                   f"no such folder: {root}")
    table = captions and os.path.isfile(os.path.join(root, "captions.txt"))
    folders = (classes or captions) and not table and not label_file   # the subfolders are the classes
    names, groups = None, [] if label_file else [find_pairs(root) if paired else find_images(root)]
    if folders:                                                 # hidden and empty folders are not classes
        names = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
        groups = [find_images(os.path.join(root, d)) for d in names]
        if empty := [d for d, g in zip(names, groups) if not g]:
            print(f"warning: {len(empty)} folder(s) without images are not classes: {', '.join(empty)}")
        names, groups = [d for d, g in zip(names, groups) if g], [g for g in groups if g]
        if not names:
            raise Fail(f"{'--captions needs captions.txt or' if captions else '--classes needs'} one subfolder per "
                       f"class in {root}; found none")
    files = [f for g in groups for f in g]
    labels = np.concatenate([np.full(len(g), i) for i, g in enumerate(groups)]) if folders else None
    if label_file:                                              # the lab's train.json: a set of objects per image
        files, labels, names = read_labels(root, label_file, objects)
    if not files:
        raise Fail(f"no images found in {root} (looked for {' '.join(EXTENSIONS)}, recursively)")
    stats, keep, bad = [], [], []                               # a dangling link, a file deleted since: skipped
    for i, f in enumerate(files):
        try:
            stats.append([(p, (st := os.stat(p)).st_size, st.st_mtime_ns, st.st_ctime_ns) for p in (f if isinstance(f, tuple) else [f])])
            keep.append(i)
        except OSError as e:
            bad.append(f"{e.filename}: {e.strerror}")
    files, labels = [files[i] for i in keep], (None if labels is None else labels[keep])
    if table:
        labels, names = read_captions(root, files)
    elif captions:
        names = [" ".join(n.replace("-", " ").replace("_", " ").split()) for n in names]   # "ankle-boot" -> "ankle boot"
    classes = folders or table or bool(label_file)
    check_memory(len(files), size, 6 if paired else 3)
    sets = hashlib.sha1(labels).hexdigest() if label_file else None                  # train.json edited: decoded again
    stamp = hashlib.sha1(repr((size, classes, paired, stats, names, resize, sets)).encode()).hexdigest()[:16]   # ctime: a file replaced
    home = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "genmodels")
    cache = os.path.join(home, f"{os.path.basename(os.path.abspath(root))}-{size}px-{stamp}.npz")
    if os.path.exists(cache):
        try:
            with np.load(cache) as z:
                images, labels, skipped = z["images"], (z["labels"] if classes else None), z["skipped"]
            if len(skipped):
                print(f"warning: skipped {skipped[0]}")
            return images, labels, names
        except Exception as e:                                  # cut short, corrupt, an older layout: decoded again
            print(f"warning: the cache {cache} is unreadable ({type(e).__name__}); decoding again")
    workers = min(os.cpu_count() or 1, max(1, len(files) // 256))
    print(f"decoding {len(files)} {'pairs' if paired else 'images'} from {root} on {workers} process(es)")
    with ProcessPoolExecutor(workers) as pool:
        out = list(pool.map(_decode, [(f, size, paired, resize) for f in files], chunksize=64))
    bad += [o for o in out if isinstance(o, str)]
    skipped = [f"{len(bad)} unreadable image(s), e.g. {bad[0]}"] if bad else []
    if bad:
        print(f"warning: skipped {skipped[0]}")
    keep = [i for i, o in enumerate(out) if not isinstance(o, str)]
    if not keep:
        raise Fail(f"none of the {len(bad)} images in {root} could be read")
    images = np.stack([out[i][0] for i in keep])                                   # (N, S, S, 3)
    if all(out[i][1] for i in keep):
        images = images[..., :1]                                                   # grayscale data: 1 channel
    labels = labels[keep] if classes else None
    if folders and (lost := sorted(set(range(len(names))) - set(labels.tolist()))):
        raise Fail(f"no image of the class {names[lost[0]]} in {root} could be read ({len(lost)} such class(es))")
    try:
        os.makedirs(home, exist_ok=True)
        tmp = f"{cache}.{os.getpid()}.tmp.npz"
        np.savez(tmp, images=images, labels=labels if classes else np.zeros(0), skipped=np.array(skipped))
        os.replace(tmp, cache)
        sizes = [e.stat().st_size for e in os.scandir(home) if e.name.endswith(".npz")]
        print(f"cached for next time in {home}: {len(sizes)} file(s), {sum(sizes) / 2**20:,.0f} MB (old ones may go)")
    except OSError as e:
        print(f"warning: no cache, {home} is not writable ({e.strerror}); the next run decodes again")
    return images, labels, names


def check_memory(n, size, channels):
    """Refuse data that would not fit in memory in one line, rather than try to allocate it."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):              # no sysconf (Windows): no check
        return
    if n * size * size * channels > memory / 2:
        raise Fail(f"{n} images at {size}x{size} need {n * size * size * channels / 2**30:,.1f} GiB, more than half "
                   f"of this machine's {memory / 2**30:,.0f} GiB: choose a smaller --image-size")


def edges(images):
    """The built-in paired task, edges -> shapes: A is each shape's outline, in its own colour, on the
    image's own background (its corner pixel), so what G must learn is to fill the shape in."""
    g = images.astype(np.float32).mean(-1)                                         # (N, S, S)
    gx = np.abs(np.diff(g, axis=2, prepend=g[:, :, :1]))
    gy = np.abs(np.diff(g, axis=1, prepend=g[:, :1]))
    return np.where((np.maximum(gx, gy) > 20)[..., None], images, images[:, :1, :1]).astype(np.uint8)


def dataset(source, size=None, classes=False, paired=False, direction="AtoB", captions=False, label_file=None,
            objects=None, resize="crop"):
    """--data: 'shapes' (32x32 by default), 'scenes' (64x64, always labelled) or a folder (64x64 by default)
    -> images, labels, names, size. Labels and names are None unless --classes, --captions (then names
    are the captions) or --labels (the lab's train.json: (N, K) multi-hot, names objects.json's). Paired
    data (pix2pix) holds A and B stacked on the channel axis, loaded at 286/256 of the size for the
    paper's random-crop jitter."""
    size = size or (32 if source == "shapes" else 64)
    load = round(size * 286 / 256) if paired else size          # pix2pix: resize to 286, random crop 256
    if label_file and source in ("shapes", "scenes"):
        raise Fail(f"--labels names the images of a folder: give that folder as --data (not the built-in {source})")
    if source == "scenes":                                      # the lab's built-in data: sets of 1-3 objects
        check_memory(scenes.N, load, 3)
        images, labels, names = scenes.scenes(scenes.N, load)
    elif source == "shapes":
        check_memory(12_000, load, 6 if paired else 3)
        images, labels, names = shapes(size=load, seed=1234)
        if paired:
            images = np.concatenate([edges(images), images], -1)                # (N, L, L, 6): A | B
    else:
        images, labels, names = load_folder(source, load, classes and not paired, paired, captions, label_file, objects, resize)
    if paired and direction == "BtoA":
        images = np.concatenate(np.split(images, 2, -1)[::-1], -1)
    keep = classes or captions or label_file or source == "scenes"
    return images, (labels if keep else None), (names if keep else None), size


def load_domains(root, size):
    """Unpaired data (CycleGAN): the folders ROOT/A and ROOT/B, or the public datasets' ROOT/trainA and
    ROOT/trainB, with any file names and any counts -> two uint8 arrays (N_A, S, S, C), (N_B, S, S, C)."""
    if not os.path.isdir(root):
        raise Fail(f"no such folder: {root}")
    for names in (("A", "B"), ("trainA", "trainB")):
        folders = [os.path.join(root, n) for n in names]
        if all(map(os.path.isdir, folders)):
            a, b = (load_folder(f, size)[0] for f in folders)
            if a.shape[-1] != b.shape[-1]:                                         # one domain grayscale: both RGB
                a, b = (np.repeat(x, 3, -1) if x.shape[-1] == 1 else x for x in (a, b))
            return a, b
    raise Fail(f"unpaired data needs two folders of images in {root}: A/ and B/ (or trainA/ and trainB/)")


def unpaired_dataset(source, size=None):
    """CycleGAN's --data -> images (N_A + N_B, L, L, C), domain ids (0 for A, 1 for B), None, size S.
    The built-in task: the shapes' circles (A) <-> squares (B), in the same four colours, L = S. A folder
    is loaded at L = 286/256 of the size for the paper's random-crop jitter, as pix2pix's pairs."""
    size = size or (32 if source == "shapes" else 64)
    if source == "shapes":
        images, labels, _ = shapes(size=size, seed=1234)
        a, b = images[labels // 4 == 0], images[labels // 4 == 1]                 # label = kind * 4 + colour
    else:
        a, b = load_domains(source, round(size * 286 / 256))
    return np.concatenate([a, b]), np.repeat([0, 1], [len(a), len(b)]), None, size


class Batches:
    """Batches drawn without replacement, reshuffled each epoch. The order is a function of the
    step alone (epoch e uses the permutation seeded by seed + e), so a resumed run sees the same
    batches. Each process of a distributed run takes its own slice of every global batch.
    Paired data returns (B, A) as (x, y), both cropped and flipped together."""

    def __init__(self, images, labels, batch_size, device, seed, rank=0, world=1, flip=True, store=None,
                 size=None, paired=False):
        self.images = images.to(store or device)                        # (N, L, L, C) uint8, on the GPU if it fits
        self.labels = None if labels is None else labels.to(store or device)
        self.B, self.rank, self.world, self.seed, self.flip = batch_size, rank, world, seed, flip
        self.device, self.size, self.paired = torch.device(device), size or images.shape[1], paired
        self.per_epoch = len(images) // (batch_size * world)
        if self.per_epoch == 0:
            raise Fail(f"only {len(images)} images, fewer than one batch of {batch_size} x {world} process(es): "
                       f"lower --batch-size")
        self.epoch, self.perm = None, None

    def __call__(self, step):
        epoch, i = divmod(step, self.per_epoch)
        if epoch != self.epoch:
            g = torch.Generator().manual_seed(self.seed + epoch)
            self.epoch, self.perm = epoch, torch.randperm(len(self.images), generator=g).to(self.images.device)
        lo = (i * self.world + self.rank) * self.B
        return self.batch(self.perm[lo:lo + self.B], augment=True)

    def __len__(self):
        return len(self.images)

    def batch(self, idx, augment=False):
        idx = idx.to(self.images.device)
        x = self.images[idx].to(self.device, non_blocking=True)            # (B, L, L, C) uint8
        y = None if self.labels is None else self.labels[idx].to(self.device, non_blocking=True)
        S, L = self.size, x.shape[1]
        if L > S:                                                           # a random (or the centre) S x S crop
            o = torch.randint(0, L - S + 1, (2, len(idx), 1), device=x.device) if augment else \
                torch.full((2, len(idx), 1), (L - S) // 2, device=x.device)
            r = torch.arange(S, device=x.device)
            x = x[torch.arange(len(idx), device=x.device)[:, None, None], (o[0] + r)[:, :, None], (o[1] + r)[:, None, :]]
        x = x.permute(0, 3, 1, 2).float() / 127.5 - 1                       # (B, C, S, S) in [-1, 1], channels_last
        if self.flip and augment:
            flip = torch.rand(len(idx), 1, 1, 1, device=x.device) < 0.5      # random horizontal flip
            x = torch.where(flip, x.flip(3), x)
        x = x if x.is_cuda else x.contiguous()
        return (x.chunk(2, 1)[::-1]) if self.paired else (x, y)            # pairs: x = B (target), y = A (input)


class UnpairedBatches:
    """Unpaired batches (CycleGAN): the domain ids split the images into A and B, each drawn by a Batches
    of its own (its own shuffle, flips and epoch length), so the counts may differ and the a and b of a
    batch are unrelated. Takes Batches' arguments, the labels being the domain ids; returns (b, a) as
    (x, y), the order of pix2pix's pairs (target, input)."""

    paired, labels = False, None                                        # as Batches has them, for train.py

    def __init__(self, images, domain, batch_size, device, seed, *args, **kwargs):
        self.A, self.B = (Batches(images[domain == d], None, batch_size, device, seed + 1_000_000 * d, *args, **kwargs)
                          for d in (0, 1))                         # B's epochs get permutations of their own

    def __call__(self, step):
        return self.B(step)[0], self.A(step)[0]

    def __len__(self):
        return max(len(self.A), len(self.B))

    def batch(self, idx, augment=False):
        """The images at positions idx of each domain (wrapped around a smaller one): (b, a)."""
        b, a = (d.batch(idx % len(d), augment)[0] for d in (self.B, self.A))
        return b, a


def to_uint8(x):
    """(..., C, H, W) in [-1, 1] -> (..., H, W, C) uint8 numpy."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).movedim(-3, -1).cpu().numpy()


def grid(x, nrow=None):
    """(n, C, H, W) in [-1, 1] -> one PIL image, nrow images a row, 2-pixel gaps."""
    n, C, H, W = x.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    canvas = np.zeros((rows * (H + 2) + 2, nrow * (W + 2) + 2, C), np.uint8)
    for i, im in enumerate(to_uint8(x)):
        r, c = divmod(i, nrow)
        canvas[2 + r * (H + 2):2 + r * (H + 2) + H, 2 + c * (W + 2):2 + c * (W + 2) + W] = im
    return Image.fromarray(canvas[..., 0] if C == 1 else canvas)
