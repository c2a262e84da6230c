"""What train.py trains on: the images of --data (decoded once, cached: support/data.py), and the
batches drawn from them on the device, with their conditions (class ids, sets, captions' tokens).
"""
import torch
from support.cli import Fail, claim
from support.data import Batches, UnpairedBatches, dataset, unpaired_dataset


def data(name, cls, args, config, ck, proc):
    """The images (N, S, S, C) uint8, their labels (class ids, caption ids, or (N, K) multi-hot
    sets) and the class, caption or object names; the data's size, channels and classes (K) go
    into the model's config."""
    if proc.rank == 0:
        proc.lock = claim(args["out"])                          # one run at a time in --out
    paired = getattr(cls, "paired", False)                      # pix2pix: (B, A) pairs, not (x, y)
    unpaired = getattr(cls, "unpaired", False)                  # cyclegan: domains A and B
    text = args.get("captions", False)                          # ldm: captions, as token ids
    if unpaired:                                                # labels: the domain ids
        images, labels, names, size = unpaired_dataset(args["data"], args["image_size"])
    else:
        images, labels, names, size = dataset(args["data"], args["image_size"], args["classes"],
                                              paired, args["direction"], text, args["labels"],
                                              args["objects"], args["resize"])
    args["image_size"] = size
    channels = images.shape[-1] // (2 if paired else 1)
    num_classes = len(names) if names and not text else 0
    config.update(image_size=size, channels=channels, num_classes=num_classes)
    if text:
        config["vocab"] = config["vocab"] or cls.vocabulary(names)
    if ck and (ck["config"]["image_size"], ck["config"]["channels"]) != (size, channels):
        raise Fail(f"{args['out']}/ckpt.pt was trained on {ck['config']['image_size']}px images "
                   f"with {ck['config']['channels']} channel(s); this data gives {size}px "
                   f"with {channels}")
    what = ""
    if unpaired:
        what = (f": {int((labels == 0).sum())} images in A, {int((labels == 1).sum())} in B, "
                "drawn independently")
    elif names:
        kind = "captions" if text else "objects" if labels.ndim == 2 else "classes"
        what = f", {len(names)} {kind}"
    items = "pairs" if paired else "images"
    where = f"on {proc.device}" + (f" x {proc.world} processes" if proc.world > 1 else "")
    proc.log(f"{name}: {len(images)} {items} {size}x{size}x{channels}{what} from {args['data']}, "
             + where)
    return images, labels, names


def make_batches(images, labels, names, model, args, proc):
    """The batches of this process: (x, y) for step i is batches(i). Captions become the model's
    token ids (with a warning for those it cuts short); the whole data sits on the GPU when it
    fits in a quarter of the free memory."""
    captions = args.get("captions")
    if labels is not None:                                      # captions: token ids
        labels = model.tokenize(names)[labels] if captions else torch.from_numpy(labels)
    read = model.detokenize(model.tokenize(names)) if captions else []   # the words it reads
    max_len = getattr(model, "max_len", None)
    if cut := [c for c, r in zip(names or [], read) if len(r.split()) == max_len]:
        proc.log(f"warning: {len(cut)} caption(s) reach --max-len {max_len} words; "
                 f"later words are dropped: '{cut[0]}'")
    free = torch.cuda.mem_get_info(proc.device)[0] if proc.cuda else 0
    fits = proc.cuda and images.nbytes < 0.25 * free            # the whole data on the GPU
    unpaired = getattr(model, "unpaired", False)
    return (UnpairedBatches if unpaired else Batches)(
        torch.from_numpy(images), labels, args["batch_size"] // proc.world, proc.device,
        args["seed"], proc.rank, proc.world, args["flip"],
        store=proc.device if fits or not proc.cuda else "cpu", size=args["image_size"],
        paired=getattr(model, "paired", False))
