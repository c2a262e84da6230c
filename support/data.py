"""--data in: the built-in shapes (and the lab's scenes), folders of images (folders.py
decodes and caches them, imported when a run reads its data), pix2pix's pairs and
CycleGAN's two domains; then the batches, drawn on the device.
"""
import os
import numpy as np
import torch
from support.cli import Fail


# ----------------------------------------------------------------------------- built in

def shapes(n=12_000, size=32, seed=0):
    """The built-in dataset: a coloured circle, square or triangle on a dark background,
    labelled ("red circle"). Drawn with numpy at 2x and averaged down: smooth edges."""
    rng = np.random.default_rng(seed)
    colours = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (50, 90, 235),
               "yellow": (230, 200, 40)}
    kinds = ["circle", "square", "triangle"]
    names = [f"{c} {k}" for k in kinds for c in colours]    # label = kind * 4 + colour
    labels = rng.integers(0, len(names), n)
    S = 2 * size
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32) + 0.5    # (S, S) pixel centres
    images = np.empty((n, size, size, 3), np.uint8)
    chunk = max(1, min(500, 2**24 // S**2))                 # at most 64 MB a map
    for lo in range(0, n, chunk):
        lab = labels[lo:lo + chunk]
        m = len(lab)
        r = rng.uniform(0.18, 0.35, (m, 1, 1)).astype(np.float32) * S     # half-extent
        cx, cy = rng.uniform(0, 1, (2, m, 1, 1)).astype(np.float32) * (S - 2 * r) + r
        dx = np.abs(xx - cx)
        dy = yy - cy
        kind = (lab // len(colours))[:, None, None]
        circle = dx**2 + dy**2 < r**2
        square = (dx < 0.85 * r) & (np.abs(dy) < 0.85 * r)
        triangle = (np.abs(dy) < r) & (dx < (dy + r) / 2)
        inside = np.where(kind == 0, circle, np.where(kind == 1, square, triangle))
        colour = np.array(list(colours.values()), np.float32)[lab % len(colours)]
        colour = np.clip(colour + rng.normal(0, 12, (m, 3)), 0, 255).astype(np.float32)
        colour = colour[:, None, None]                                    # (m, 1, 1, 3)
        background = rng.uniform(0, 60, (m, 1, 1, 1)).astype(np.float32)
        cover = inside.reshape(m, size, 2, size, 2).sum((2, 4), dtype=np.float32) / 4
        cover = cover[..., None]
        images[lo:lo + m] = (cover * colour + (1 - cover) * background).round()
    return images, labels, names


def edges(images):
    """The built-in paired task, edges -> shapes: A is each shape's outline in its own colour
    on the image's background (its corner pixel); G learns to fill the shape in."""
    g = images.astype(np.float32).mean(-1)                                # (N, S, S)
    gx = np.abs(np.diff(g, axis=2, prepend=g[:, :, :1]))
    gy = np.abs(np.diff(g, axis=1, prepend=g[:, :1]))
    outline = (np.maximum(gx, gy) > 20)[..., None]
    return np.where(outline, images, images[:, :1, :1]).astype(np.uint8)


# ----------------------------------------------------------------------------- --data

def dataset(source, size=None, classes=False, paired=False, direction="AtoB", captions=False,
            label_file=None, objects=None, resize="crop"):
    """--data: 'shapes' (32x32 by default), 'scenes' (64x64, labelled) or a folder (64x64)
    -> images, labels, names, size. Labels and names are None unless --classes, --captions
    (the names are the captions) or --labels (the lab's train.json: (N, K) multi-hot).
    Paired data (pix2pix): A and B stacked on the channel axis, loaded at 286/256 of the
    size for the paper's random-crop jitter."""
    from support.folders import check_memory, load_folder
    size = size or (32 if source == "shapes" else 64)
    load = round(size * 286 / 256) if paired else size
    if label_file and source in ("shapes", "scenes"):
        raise Fail(f"--labels names the images of a folder: give that folder as --data "
                   f"(not the built-in {source})")
    if source == "scenes":
        from support import scenes
        check_memory(scenes.N, load, 3)
        images, labels, names = scenes.scenes(scenes.N, load)
    elif source == "shapes":
        check_memory(12_000, load, 6 if paired else 3)
        images, labels, names = shapes(size=load, seed=1234)
        if paired:
            images = np.concatenate([edges(images), images], -1)          # A | B
    else:
        images, labels, names = load_folder(source, load, classes and not paired, paired,
                                            captions, label_file, objects, resize)
    if paired and direction == "BtoA":
        images = np.concatenate(np.split(images, 2, -1)[::-1], -1)
    if not (classes or captions or label_file or source == "scenes"):
        return images, None, None, size
    return images, labels, names, size


def unpaired_dataset(source, size=None, resize="crop"):
    """CycleGAN's --data -> images (N_A + N_B, L, L, C), domain ids (0: A, 1: B), None, S.
    Built in: the shapes' circles (A) <-> squares (B), L = S. A folder: ROOT/A and ROOT/B
    (or the public datasets' trainA and trainB), any names and counts, loaded at L =
    286/256 of S for the paper's random-crop jitter, as pix2pix's pairs."""
    size = size or (32 if source == "shapes" else 64)
    if source == "shapes":
        images, labels, _ = shapes(size=size, seed=1234)
        # label = kind * 4 + colour
        a = images[labels // 4 == 0]
        b = images[labels // 4 == 1]
    else:
        a, b = load_domains(source, round(size * 286 / 256), resize)
    return np.concatenate([a, b]), np.repeat([0, 1], [len(a), len(b)]), None, size


def load_domains(root, size, resize="crop"):
    """The folders ROOT/A and ROOT/B, or ROOT/trainA and ROOT/trainB -> two uint8 arrays."""
    from support.folders import load_folder
    if not os.path.isdir(root):
        raise Fail(f"no such folder: {root}")
    for names in (("A", "B"), ("trainA", "trainB")):
        a, b = (os.path.join(root, n) for n in names)
        if os.path.isdir(a) and os.path.isdir(b):
            a = load_folder(a, size, resize=resize)[0]
            b = load_folder(b, size, resize=resize)[0]
            # one domain grayscale: both RGB
            if a.shape[-1] != b.shape[-1]:
                a, b = (np.repeat(x, 3, -1) if x.shape[-1] == 1 else x for x in (a, b))
            return a, b
    raise Fail(f"unpaired data needs two folders of images in {root}: A/ and B/ "
               f"(or trainA/ and trainB/)")


# ----------------------------------------------------------------------------- batches

class Batches:
    """Batches drawn without replacement, reshuffled each epoch. The order is a function of
    the step alone (epoch e: the permutation seeded by seed + e), so a resumed run sees the
    same batches; each process of a distributed run takes its slice of every global batch.
    Paired data gives (B, A) as (x, y), cropped and flipped together."""

    def __init__(self, images, labels, batch_size, device, seed, rank=0, world=1, flip=True,
                 store=None, size=None, paired=False):
        self.images = images.to(store or device)         # (N, L, L, C), on the GPU if fits
        self.labels = None if labels is None else labels.to(store or device)
        self.B = batch_size
        self.rank = rank
        self.world = world
        self.seed = seed
        self.flip = flip
        self.device = device
        self.size = size or images.shape[1]
        self.paired = paired
        self.per_epoch = len(images) // (batch_size * world)
        if self.per_epoch == 0:
            raise Fail(f"only {len(images)} images, fewer than one batch of {batch_size} x "
                       f"{world} process(es): lower --batch-size")
        self.epoch = None

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
        """The images at idx as (x, y) in [-1, 1]; augment: a random crop and flip."""
        idx = idx.to(self.images.device)
        x = self.images[idx].to(self.device, non_blocking=True)           # (B, L, L, C)
        y = None if self.labels is None else self.labels[idx].to(self.device, non_blocking=True)
        S = self.size
        L = x.shape[1]
        # a random (or the centre) S x S crop
        if L > S:
            if augment:
                o = torch.randint(0, L - S + 1, (2, len(idx), 1), device=x.device)
            else:
                o = torch.full((2, len(idx), 1), (L - S) // 2, device=x.device)
            r = torch.arange(S, device=x.device)
            n = torch.arange(len(idx), device=x.device)[:, None, None]
            x = x[n, (o[0] + r)[:, :, None], (o[1] + r)[:, None, :]]
        # (B, C, S, S) in [-1, 1]; channels_last on the GPU
        x = x.permute(0, 3, 1, 2).float() / 127.5 - 1
        if self.flip and augment:
            flip = torch.rand(len(idx), 1, 1, 1, device=x.device) < 0.5
            x = torch.where(flip, x.flip(3), x)
        x = x if x.is_cuda else x.contiguous()
        if self.paired:
            return x.chunk(2, 1)[::-1]                  # x = B (target), y = A (input)
        return x, y


class UnpairedBatches:
    """Unpaired batches (CycleGAN): the domain ids split the images into A and B, each drawn
    by a Batches of its own (its own shuffle, flips and epoch length), so the counts may
    differ and a batch's a and b are unrelated. Batches' arguments, the labels being the
    domain ids; gives (b, a) as (x, y), the order of pix2pix's pairs (target, input)."""

    paired = False                                      # as Batches has them
    labels = None

    def __init__(self, images, domain, batch_size, device, seed, *args, **kwargs):
        self.A = Batches(images[domain == 0], None, batch_size, device, seed, *args, **kwargs)
        # B's epochs: permutations of their own
        self.B = Batches(images[domain == 1], None, batch_size, device, seed + 1_000_000,
                         *args, **kwargs)

    def __call__(self, step):
        b = self.B(step)[0]
        a = self.A(step)[0]
        return b, a

    def __len__(self):
        return max(len(self.A), len(self.B))

    def batch(self, idx, augment=False):
        """The images at idx of each domain (wrapped around a smaller one): (b, a)."""
        b = self.B.batch(idx % len(self.B), augment)[0]
        a = self.A.batch(idx % len(self.A), augment)[0]
        return b, a
