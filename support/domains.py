"""sample.py --input for a multi-domain model (StarGAN): each image translated to every domain the
model learned, G(x, c) for each c in turn.

    python sample.py runs/stargan/ckpt.pt --input photos/          # a grid: input | each domain
    python sample.py runs/stargan/ckpt.pt --input test/ --out t/   # t/<domain>/<name>.png

A grid has a row per input: the input, then its translation to each domain in the order printed.
A folder gets one subfolder per domain, named as the domain, holding each input's translation to
it: the class folders evaluate.py's classifier scores (is each translation in the domain it was
asked for?). A domain is a class (the model was trained with --classes), or, for a model trained
on sets of attributes (--labels), one attribute alone.
"""
import os
import torch
from support.cli import Fail
from support.folders import find_images, load_image
from support.pictures import finite, grid, save_png, to_folder
from support.translate import as_tensor


def targets(ck, device):
    """Every domain as the model takes it, and its name: class ids 0..K-1, or, for attributes
    (multi-hot labels), each attribute alone as a one-hot (K, K)."""
    K = ck["config"]["num_classes"]
    names = ck.get("class_names") or [str(k) for k in range(K)]
    sets = ck["args"].get("labels") or ck["args"].get("data") == "scenes"
    c = torch.eye(K, device=device) if sets else torch.arange(K, device=device)
    return c, names


def inputs(paths):
    """--input files and folders -> the image files, and a name for each that is unique within
    its folder: class/0001.png -> class_0001 (Fashion-MNIST's test set repeats file names)."""
    files, stems = [], []
    for p in paths:
        found = find_images(p) if os.path.isdir(p) else [p]
        root = p if os.path.isdir(p) else os.path.dirname(p)
        files += found
        stems += [os.path.splitext(os.path.relpath(f, root))[0].replace(os.sep, "_")
                  for f in found]
    return files, stems


def domains(ck, model, args, knobs, device, autocast):
    """Each --input image x -> G(x, c) for every domain c: a grid, rows of input | each domain,
    or with --out DIR/ one PNG per translation in DIR/<domain>/."""
    if not args.input:
        raise Fail(f"a {ck['model']} translates images to each domain: give --input FILE or "
                   "--input FOLDER")
    files, stems = inputs(args.input)
    if not files:
        raise Fail(f"no images found in --input {' '.join(args.input)}")
    size = ck["config"]["image_size"]
    C = ck["config"]["channels"]
    try:
        x = torch.stack([as_tensor(load_image(f, size)[0], C, device) for f in files])
    except (OSError, ValueError) as e:
        raise Fail(f"cannot read image: {e}")
    c, names = targets(ck, device)
    K = len(c)
    out = []
    for xb in x.split(max(1, args.batch_size // K)):                # B inputs, B * K translations
        xs = xb.repeat_interleave(K, 0)                              # x_1 K times, x_2 K times ...
        cs = c.repeat(len(xb), *[1] * (c.dim() - 1))                 # c_1 .. c_K for each input
        with torch.no_grad(), autocast:
            out.append(model.G(xs, cs).float().view(len(xb), K, *x.shape[1:]))
    t = torch.cat(out)                                               # (n, K, C, S, S)
    finite(t, ck, knobs)
    if to_folder(args.out):
        for k, name in enumerate(names):
            os.makedirs(os.path.join(args.out, name), exist_ok=True)
            for stem, im in zip(stems, t[:, k]):
                save_png(im, os.path.join(args.out, name, stem + ".png"))
        print(f"wrote {len(files)} x {K} translations to {args.out}<domain>/")
        return
    grid(torch.cat([x[:, None], t], 1).flatten(0, 1), nrow=K + 1).save(args.out)
    print(f"wrote {args.out}: rows of input | {' | '.join(names)}")
