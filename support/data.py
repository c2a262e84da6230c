"""--data in: the built-in shapes (and scenes.py's scenes), folders of images (folders.py reads and
caches them), pix2pix's pairs and CycleGAN's two domains; then batches drawn on the device.

Kept apart from train.py so the training loop stays short enough to read in one sitting.
"""
import os
import numpy as np
import torch
from support.cli import Fail
from support import scenes
from support.folders import check_memory, load_folder


# ----------------------------------------------------------------------------- the built-in data

def shapes(n=12_000, size=32, seed=0):
    """The built-in dataset: a coloured circle, square or triangle on a dark background, with its
    label ("red circle"). Drawn with numpy at 2x and averaged down, so the edges are smooth."""
    rng = np.random.default_rng(seed)
    colours = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (50, 90, 235),
               "yellow": (230, 200, 40)}
    kinds = ["circle", "square", "triangle"]
    names = [f"{c} {k}" for k in kinds for c in colours]              # label = kind * 4 + colour
    labels = rng.integers(0, len(names), n)
    S = 2 * size
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32) + 0.5              # (S, S) pixel centres
    images = np.empty((n, size, size, 3), np.uint8)
    chunk = max(1, min(500, 2**24 // S**2))                   # images drawn at once: <= 64 MB a map
    for lo in range(0, n, chunk):
        lab = labels[lo:lo + chunk]
        m = len(lab)
        r = rng.uniform(0.18, 0.35, (m, 1, 1)).astype(np.float32) * S   # half the shape's extent
        cx, cy = rng.uniform(0, 1, (2, m, 1, 1)).astype(np.float32) * (S - 2 * r) + r
        dx = np.abs(xx - cx)
        dy = yy - cy
        kind = (lab // len(colours))[:, None, None]
        inside = np.where(kind == 0, dx**2 + dy**2 < r**2,                         # circle
                 np.where(kind == 1, (dx < 0.85 * r) & (np.abs(dy) < 0.85 * r),    # square
                          (np.abs(dy) < r) & (dx < (dy + r) / 2)))                 # triangle
        colour = np.array(list(colours.values()), np.float32)[lab % len(colours)]
        colour = np.clip(colour + rng.normal(0, 12, (m, 3)), 0, 255).astype(np.float32)
        colour = colour[:, None, None]                                             # (m, 1, 1, 3)
        background = rng.uniform(0, 60, (m, 1, 1, 1)).astype(np.float32)
        cover = inside.reshape(m, size, 2, size, 2).sum((2, 4), dtype=np.float32)[..., None] / 4
        images[lo:lo + m] = (cover * colour + (1 - cover) * background).round()   # 2x2 averages
    return images, labels, names


def edges(images):
    """The built-in paired task, edges -> shapes: A is each shape's outline, in its own colour, on
    the image's own background (its corner pixel), so what G must learn is to fill the shape in."""
    g = images.astype(np.float32).mean(-1)                                         # (N, S, S)
    gx = np.abs(np.diff(g, axis=2, prepend=g[:, :, :1]))
    gy = np.abs(np.diff(g, axis=1, prepend=g[:, :1]))
    outline = (np.maximum(gx, gy) > 20)[..., None]
    return np.where(outline, images, images[:, :1, :1]).astype(np.uint8)


# ----------------------------------------------------------------------------- --data

def dataset(source, size=None, classes=False, paired=False, direction="AtoB", captions=False,
            label_file=None, objects=None, resize="crop"):
    """--data: 'shapes' (32x32 by default), 'scenes' (64x64, always labelled) or a folder (64x64 by
    default) -> images, labels, names, size. Labels and names are None unless --classes,
    --captions (then names are the captions) or --labels (the lab's train.json: (N, K) multi-hot,
    names objects.json's). Paired data (pix2pix) holds A and B stacked on the channel axis, loaded
    at 286/256 of the size for the paper's random-crop jitter."""
    size = size or (32 if source == "shapes" else 64)
    load = round(size * 286 / 256) if paired else size        # pix2pix: resize to 286, crop 256
    if label_file and source in ("shapes", "scenes"):
        raise Fail(f"--labels names the images of a folder: give that folder as --data "
                   f"(not the built-in {source})")
    if source == "scenes":                                  # the lab's built-in data: 1-3 objects
        check_memory(scenes.N, load, 3)
        images, labels, names = scenes.scenes(scenes.N, load)
    elif source == "shapes":
        check_memory(12_000, load, 6 if paired else 3)
        images, labels, names = shapes(size=load, seed=1234)
        if paired:
            images = np.concatenate([edges(images), images], -1)          # (N, L, L, 6): A | B
    else:
        images, labels, names = load_folder(source, load, classes and not paired, paired,
                                            captions, label_file, objects, resize)
    if paired and direction == "BtoA":
        images = np.concatenate(np.split(images, 2, -1)[::-1], -1)
    keep = classes or captions or label_file or source == "scenes"
    if not keep:
        return images, None, None, size
    return images, labels, names, size


def load_domains(root, size):
    """Unpaired data (CycleGAN): the folders ROOT/A and ROOT/B, or the public datasets' ROOT/trainA
    and ROOT/trainB, with any file names and any counts -> two uint8 arrays (N_A, S, S, C),
    (N_B, S, S, C)."""
    if not os.path.isdir(root):
        raise Fail(f"no such folder: {root}")
    for names in (("A", "B"), ("trainA", "trainB")):
        folders = [os.path.join(root, n) for n in names]
        if all(map(os.path.isdir, folders)):
            a = load_folder(folders[0], size)[0]
            b = load_folder(folders[1], size)[0]
            if a.shape[-1] != b.shape[-1]:                      # one domain grayscale: both RGB
                a, b = (np.repeat(x, 3, -1) if x.shape[-1] == 1 else x for x in (a, b))
            return a, b
    raise Fail(f"unpaired data needs two folders of images in {root}: A/ and B/ "
               f"(or trainA/ and trainB/)")


def unpaired_dataset(source, size=None):
    """CycleGAN's --data -> images (N_A + N_B, L, L, C), domain ids (0 for A, 1 for B), None, size
    S. The built-in task: the shapes' circles (A) <-> squares (B), in the same four colours, L = S.
    A folder is loaded at L = 286/256 of the size for the paper's random-crop jitter, as pix2pix's
    pairs."""
    size = size or (32 if source == "shapes" else 64)
    if source == "shapes":
        images, labels, _ = shapes(size=size, seed=1234)
        a = images[labels // 4 == 0]                                  # label = kind * 4 + colour
        b = images[labels // 4 == 1]
    else:
        a, b = load_domains(source, round(size * 286 / 256))
    return np.concatenate([a, b]), np.repeat([0, 1], [len(a), len(b)]), None, size


# ----------------------------------------------------------------------------- batches

class Batches:
    """Batches drawn without replacement, reshuffled each epoch. The order is a function of the
    step alone (epoch e uses the permutation seeded by seed + e), so a resumed run sees the same
    batches. Each process of a distributed run takes its own slice of every global batch.
    Paired data returns (B, A) as (x, y), both cropped and flipped together."""

    def __init__(self, images, labels, batch_size, device, seed, rank=0, world=1, flip=True,
                 store=None, size=None, paired=False):
        self.images = images.to(store or device)         # (N, L, L, C) uint8, on the GPU if it fits
        self.labels = None if labels is None else labels.to(store or device)
        self.B = batch_size
        self.rank = rank
        self.world = world
        self.seed = seed
        self.flip = flip
        self.device = torch.device(device)
        self.size = size or images.shape[1]
        self.paired = paired
        self.per_epoch = len(images) // (batch_size * world)
        if self.per_epoch == 0:
            raise Fail(f"only {len(images)} images, fewer than one batch of {batch_size} x {world} "
                       f"process(es): lower --batch-size")
        self.epoch = None
        self.perm = None

    def __call__(self, step):
        epoch, i = divmod(step, self.per_epoch)
        if epoch != self.epoch:
            g = torch.Generator().manual_seed(self.seed + epoch)
            self.epoch = epoch
            self.perm = torch.randperm(len(self.images), generator=g).to(self.images.device)
        lo = (i * self.world + self.rank) * self.B
        return self.batch(self.perm[lo:lo + self.B], augment=True)

    def __len__(self):
        return len(self.images)

    def batch(self, idx, augment=False):
        idx = idx.to(self.images.device)
        x = self.images[idx].to(self.device, non_blocking=True)           # (B, L, L, C) uint8
        y = None if self.labels is None else self.labels[idx].to(self.device, non_blocking=True)
        S = self.size
        L = x.shape[1]
        if L > S:                                           # a random (or the centre) S x S crop
            if augment:
                o = torch.randint(0, L - S + 1, (2, len(idx), 1), device=x.device)
            else:
                o = torch.full((2, len(idx), 1), (L - S) // 2, device=x.device)
            r = torch.arange(S, device=x.device)
            n = torch.arange(len(idx), device=x.device)[:, None, None]
            x = x[n, (o[0] + r)[:, :, None], (o[1] + r)[:, None, :]]
        x = x.permute(0, 3, 1, 2).float() / 127.5 - 1    # (B, C, S, S) in [-1, 1], channels_last
        if self.flip and augment:
            flip = torch.rand(len(idx), 1, 1, 1, device=x.device) < 0.5   # random horizontal flip
            x = torch.where(flip, x.flip(3), x)
        x = x if x.is_cuda else x.contiguous()
        if self.paired:
            return x.chunk(2, 1)[::-1]                     # pairs: x = B (target), y = A (input)
        return x, y


class UnpairedBatches:
    """Unpaired batches (CycleGAN): the domain ids split the images into A and B, each drawn by a
    Batches of its own (its own shuffle, flips and epoch length), so the counts may differ and the
    a and b of a batch are unrelated. Takes Batches' arguments, the labels being the domain ids;
    returns (b, a) as (x, y), the order of pix2pix's pairs (target, input)."""

    paired = False                                              # as Batches has them, for train.py
    labels = None

    def __init__(self, images, domain, batch_size, device, seed, *args, **kwargs):
        self.A = Batches(images[domain == 0], None, batch_size, device, seed, *args, **kwargs)
        self.B = Batches(images[domain == 1], None, batch_size, device, seed + 1_000_000,
                         *args, **kwargs)                 # B's epochs get permutations of their own

    def __call__(self, step):
        b = self.B(step)[0]
        a = self.A(step)[0]
        return b, a

    def __len__(self):
        return max(len(self.A), len(self.B))

    def batch(self, idx, augment=False):
        """The images at positions idx of each domain (wrapped around a smaller one): (b, a)."""
        b = self.B.batch(idx % len(self.B), augment)[0]
        a = self.A.batch(idx % len(self.A), augment)[0]
        return b, a
