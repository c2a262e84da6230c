"""What evaluate.py measures on: the images of a folder, read at one size; the outputs of
a translation and their targets, matched by name; and a network's features and class
probabilities over them (Inception, its weights file looked for in the cache folder, or
the small classifier of classifier.py)."""
import os
import numpy as np
import torch
from PIL import Image
from support.cli import Fail
from support.folders import cache_folder, find_images, load_folder, load_image, load_pair
from support import inception


def cached_weights():
    """Where the Inception weights file is looked for: the cache folder of the decoded
    images."""
    return os.path.join(cache_folder(), inception.WEIGHTS)


def load_inception(path, instead="give --inception-weights PATH"):
    """The FID Inception network with its weights, in eval mode, or one line saying where
    to put the file."""
    path = path or cached_weights()
    if not os.path.isfile(path):
        raise Fail(f"no Inception weights at {path}: download {inception.URL} there or {instead}")
    net = inception.InceptionV3()
    try:
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as e:
        raise Fail(f"{path} is not the FID Inception weights file ({type(e).__name__})")
    return net.eval()


def reads(ck):
    """The size and channels a network reads images at: a classifier's own (its checkpoint
    ck), or (None, 3) for Inception (ck None), which resizes every image to 299 itself."""
    return (None, 3) if ck is None else (ck["image_size"], ck["config"]["channels"])


def as_read(x, channels):
    """Images (B, C, S, S) in [0, 1] -> the channels a network reads: gray for a classifier
    of gray images, RGB from gray for an RGB one."""
    if channels == 1:
        return x.mean(1, keepdim=True)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


@torch.no_grad()
def features_and_probs(net, images, channels, device, batch=200):
    """(N, S, S, C) uint8 -> features and softmax probabilities, float64 numpy. float32
    throughout: the features feed a covariance, and bf16 rounding would move FD more than
    the models differ."""
    feats, probs = [], []
    for lo in range(0, len(images), batch):
        x = torch.from_numpy(images[lo:lo + batch]).to(device)
        # (B, C, S, S) in [0, 1]
        x = x.permute(0, 3, 1, 2).float() / 255
        f, logits = net(as_read(x, channels))
        feats.append(f.double().cpu())
        probs.append(logits.double().softmax(1).cpu())
    return torch.cat(feats).numpy(), torch.cat(probs).numpy()


def read_folder(root, size, classes=False):
    """A folder -> (N, S, S, C) uint8, labels, names; at the first image's size when size
    is None."""
    if size is None:
        files = find_images(root) if os.path.isdir(root) else []
        # load_folder names an empty folder
        size = min(pixels(files[0])) if files else 32
    return load_folder(root, size, classes=classes)


def pixels(path):
    """An image file's (width, height), or one line."""
    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, ValueError) as e:
        raise Fail(f"cannot read image {path}: {e}")


def read_pairs(samples, pairs):
    """Each output in SAMPLES and the target of the same name (PAIRS/B/, or the right half
    of a side-by-side pair A|B in PAIRS), at the output's size -> (N, C, S, S) each, in
    [0, 1]."""
    outputs = find_images(samples) if os.path.isdir(samples) else []
    if not outputs:
        raise Fail(f"no images found in {samples}")
    folder = os.path.join(pairs, "B") if os.path.isdir(os.path.join(pairs, "B")) else pairs
    # out/cat.png -> cat
    name = lambda f: os.path.splitext(os.path.basename(f))[0]
    targets = {name(f): f for f in find_images(folder)}
    X, Y = [], []
    for f in outputs:
        t = targets.get(name(f))
        if t is None:
            raise Fail(f"{f} has no target named {name(f)}.* in {folder}")
        size = min(pixels(f))
        w, h = pixels(t)
        try:
            X.append(load_image(f, size)[0])
            # A|B
            Y.append(load_pair(t, size)[..., 3:] if w == 2 * h else load_image(t, size)[0])
        except (OSError, ValueError) as e:
            raise Fail(f"cannot read {f} or {t}: {e}")
    return [np.stack(a).transpose(0, 3, 1, 2) / 255.0 for a in (X, Y)]
