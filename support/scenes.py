"""The lab's data, built in: S x S scenes of 1-3 non-overlapping objects on a plain grey
background, each object one of 3 shapes x 8 colours = 24, the condition being the set of
objects in the scene. i-CLEVR renders 3-D cubes, spheres and cylinders in CLEVR's 8
colours; here they are drawn flat, as a square, a circle and a triangle in the same
colours, so any machine makes them in seconds.

    python -m support.scenes --out scenes/ [-n 18000] [--image-size 64] [--seed 0] python
    -m support.scenes --out real/ --conditions scenes/test.json   # a perfect generator

writes the lab's layout: scenes/images/00000.png ..., scenes/train.json (file name ->
object names), scenes/objects.json (object name -> index) and two fixed lists of 32
conditions to sample: scenes/test.json, sets drawn as the training scenes are, and
scenes/new_test.json, sets of 2-3 objects that no training scene holds. `python train.py
ddpm --data scenes` draws the same scenes in memory instead (seed 0, at --image-size).
"""
import argparse, json, os, sys
import numpy as np
from PIL import Image
from support.cli import COUNT, SEED, Fail, Parser, command, fits
from support.outputs import named, spares
from support import lab

# CLEVR's RGB
COLOURS = {"gray": (87, 87, 87), "red": (173, 35, 35), "blue": (42, 75, 215),
           "green": (29, 105, 20), "brown": (129, 74, 25), "purple": (129, 38, 192),
           "cyan": (41, 208, 208), "yellow": (255, 238, 51)}
# i-CLEVR's cube, sphere and cylinder, drawn flat
SHAPES = ("square", "circle", "triangle")
# object id = shape * 8 + colour
NAMES = [f"{c} {s}" for s in SHAPES for c in COLOURS]
BACKGROUND = (160, 160, 160)
# i-CLEVR's training set: 18,009
N = 18_000
# an object's half size r, in fractions of the frame, and the least gap between two boxes
R = (0.10, 0.15)
GAP = 0.04
# The most objects that fit apart: each box with half the gap around it is a square of side at
# least 2 r + GAP, none overlapping, inside a frame of side 1 + GAP: (1.04 // 0.24)^2 = 16
MOST = int((1 + GAP) // (2 * R[0] + GAP)) ** 2
# draws of one object's place before its set is given up (18,000 scenes of 1-3 need 34)
TRIES = 10_000


def conditions(seed=0):
    """The two fixed lists of 32 conditions (sets of object ids): test, drawn as training
    scenes are, and new_test, sets of 2-3 objects that training never shows. Both depend
    on the seed alone."""
    rng = np.random.default_rng([seed, 1])
    new_test = set()
    while len(new_test) < 32:
        ids = rng.choice(len(NAMES), rng.integers(2, 4), replace=False)
        new_test.add(tuple(sorted(ids.tolist())))
    test = []
    while len(test) < 32:
        s = tuple(sorted(rng.choice(len(NAMES), rng.integers(1, 4), replace=False).tolist()))
        if s not in new_test:
            test.append(s)
    return test, sorted(new_test)


def layout(rng, excluded):
    """One scene: 1-3 distinct objects, as (id, cx, cy, r) in fractions of the frame; no
    two boxes [cx - r, cx + r] x [cy - r, cy + r] come within 0.04 of each other, and the
    set of ids is none of `excluded`."""
    while True:
        ids = rng.choice(len(NAMES), rng.integers(1, 4), replace=False)
        if tuple(sorted(ids.tolist())) not in excluded:
            break
    return place(rng, ids)


def place(rng, ids):
    """Objects ids -> (id, cx, cy, r) each: a random size and place, as layout draws
    them."""
    placed = []
    for i in ids:
        # rejection sampling: three boxes of at most 0.3 fit
        for _ in range(TRIES):
            r = rng.uniform(*R)
            # anywhere in the frame, edges included
            cx, cy = rng.uniform(r, 1 - r, 2)
            apart = [abs(cx - x) > r + q + GAP or abs(cy - y) > r + q + GAP
                     for _, x, y, q in placed]
            if all(apart):
                placed.append((int(i), cx, cy, r))
                break
        else:
            raise Fail(f"no room apart for object {len(placed) + 1} of {len(ids)} after "
                       f"{TRIES:,} tries: give smaller sets (the lab's have 1 to 3)")
    return placed


def draw(objects, size):
    """A scene's objects -> (size, size, 3) uint8. Drawn at 2x and averaged down, so edges
    are smooth; each object only within its own box."""
    S = 2 * size
    image = np.empty((S, S, 3), np.float32)
    image[:] = BACKGROUND
    for i, cx, cy, r in objects:
        shape, colour = divmod(i, len(COLOURS))
        # fractions -> pixels
        r, cx, cy = r * S, cx * S, cy * S
        box = (cx - r, cx + r + 1, cy - r, cy + r + 1)
        # the box, clipped
        x0, x1, y0, y1 = (max(0, int(v)) for v in box)
        # its pixel centres
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32) + 0.5
        dx = np.abs(xx - cx)
        dy = yy - cy
        if SHAPES[shape] == "circle":
            inside = dx**2 + dy**2 < r**2
        elif SHAPES[shape] == "square":
            inside = (dx < 0.85 * r) & (np.abs(dy) < 0.85 * r)
        else:
            # triangle, apex up
            inside = (np.abs(dy) < r) & (dx < (dy + r) / 2)
        image[y0:y1, x0:x1][inside] = list(COLOURS.values())[colour]
    corners = image[0::2, 0::2] + image[0::2, 1::2] + image[1::2, 0::2] + image[1::2, 1::2]
    # each 2x2 averaged
    return (corners / 4).round().astype(np.uint8)


def scenes(n=N, size=64, seed=0, layouts=False):
    """n scenes -> images (n, S, S, 3) uint8, labels (n, 24) float32 multi-hot, the object
    names (and each scene's objects with layouts=True). Scene i depends on (seed, i)
    alone, so the first 500 of 18,000 are the 500 of a smaller set, and every size draws
    the same scenes."""
    excluded = set(conditions(seed)[1])
    images = np.empty((n, size, size, 3), np.uint8)
    labels = np.zeros((n, len(NAMES)), np.float32)
    drawn = []
    for k in range(n):
        objects = layout(np.random.default_rng([seed, 0, k]), excluded)
        images[k] = draw(objects, size)
        labels[k, [i for i, *_ in objects]] = 1
        drawn.append(objects)
    return (images, labels, list(NAMES)) + ((drawn,) if layouts else ())


def write(out, n=N, size=64, seed=0):
    """The lab's files: OUT/images/*.png, train.json, objects.json, test.json,
    new_test.json."""
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    images, labels, names = scenes(n, size, seed)
    train = {}
    for k, (im, y) in enumerate(zip(images, labels)):
        Image.fromarray(im).save(os.path.join(out, "images", f"{k:05d}.png"))
        train[f"{k:05d}.png"] = [names[i] for i in np.flatnonzero(y)]
    test, new_test = conditions(seed)
    files = {"train": train,
             "objects": {c: i for i, c in enumerate(names)},
             "test": [[names[i] for i in s] for s in test],
             "new_test": [[names[i] for i in s] for s in new_test]}
    for name, value in files.items():
        with open(os.path.join(out, f"{name}.json"), "w") as f:
            json.dump(value, f, indent=1)
    print(f"wrote {n} scenes {size}x{size} to {out}/images, "
          f"and train.json, objects.json, test.json, new_test.json")


def read_sets(path):
    """A conditions file (test.json) -> its sets as lists of object ids, each in the
    file's order (lab.py's read_conditions gives multi-hot rows, where the order is
    lost)."""
    table = lab.read_json(path, "--conditions")
    if not isinstance(table, list) or not all(isinstance(c, list) and c for c in table):
        raise Fail(f"{path} should be a list of sets, each a list of object names")
    for i, names in enumerate(table):
        if unknown := [n for n in names if n not in NAMES]:
            raise Fail(f"{path}, condition {i}: {unknown[0]!r} is none of the 24 objects")
        if len(names) > MOST:
            raise Fail(f"{path}, condition {i}: {len(names)} objects, more than the {MOST} "
                       "that fit apart in a frame: give smaller sets")
    return [[NAMES.index(n) for n in names] for names in table]


def real(placed, out, size):
    """One real scene per set (placed: each set's objects), written as sample.py
    --conditions writes samples, OUT/0.png, 1.png, ...: what a perfect generator would
    draw, so evaluate.py on OUT gives the evaluator's own ceiling on those sets."""
    for i, objects in enumerate(placed):
        Image.fromarray(draw(objects, size)).save(os.path.join(out, f"{i}.png"))
    print(f"wrote {len(placed)} real scenes {size}x{size} to {out}, one per set")


def main(argv):
    p = Parser(prog="python -m support.scenes", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="the folder to write")
    p.add_argument("-n", type=COUNT, help=f"training scenes. default: {N}")
    p.add_argument("--conditions", metavar="JSON",
                   help="instead: a real scene per set of this file, the evaluator's ceiling")
    p.add_argument("--image-size", type=COUNT, default=64, help="the scenes' size. default: 64")
    p.add_argument("--seed", type=SEED, default=0,
                   help="the same seed, the same scenes and conditions. default: 0")
    a = p.parse_args(argv)
    if a.conditions and a.n is not None:
        raise Fail("-n does not apply with --conditions: one scene is drawn per set in it")
    n = a.n or N
    sets = read_sets(a.conditions) if a.conditions else []
    # the scenes, held at once (uint8)
    fits("-n", n, n * a.image_size**2 * 3)
    if os.path.isfile(a.out):
        raise Fail(f"--out {a.out} is a file: name a folder to write the scenes into")
    # the files written (real's, or write's), none over a file the user would lose
    files = [f"{i}.png" for i in range(len(sets))] if sets else [
        *(os.path.join("images", f"{k:05d}.png") for k in range(n)),
        "train.json", "objects.json", "test.json", "new_test.json"]
    given = named(a, "out")
    for f in files:
        spares("--out", os.path.join(a.out, f), given)
    # every set placed before anything is written: one that finds no room is refused
    placed = []
    for i, ids in enumerate(sets):
        try:
            placed.append(place(np.random.default_rng([a.seed, 1, i]), np.array(ids)))
        except Fail as e:
            raise Fail(f"{a.conditions}, condition {i}: {e}")
    try:
        os.makedirs(a.out, exist_ok=True)
    except OSError as e:
        raise Fail(f"cannot make the folder --out {a.out}: {e.strerror}")
    if sets:
        return real(placed, a.out, a.image_size)
    write(a.out, n, a.image_size, a.seed)


def cli(argv):
    """The command line: main, with a mistake in the user's input as one line and exit
    status 1."""
    return command(main, argv)


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
