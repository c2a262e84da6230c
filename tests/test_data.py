"""support/data.py and folders.py: the built-in shapes, folders of images, batches."""
import os
import numpy as np
import torch
from PIL import Image
import pytest
from support.cli import Fail
from support.data import Batches, dataset, shapes
from support.folders import load_folder, load_image


def test_folder_loading_crops_the_centre_and_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    wide = np.zeros((40, 80, 3), np.uint8)
    wide[:, :20] = wide[:, 60:] = (0, 0, 255)                  # blue bars left and right
    wide[:, 20:60] = (255, 0, 0)                               # a red 40x40 centre
    (tmp_path / "d" / "sub").mkdir(parents=True)
    Image.fromarray(wide).save(tmp_path / "d" / "sub" / "wide.png")          # found recursively
    Image.fromarray(np.full((10, 10), 128, np.uint8)).save(tmp_path / "d" / "gray.png")
    images, labels, names = load_folder(str(tmp_path / "d"), 8, classes=False)
    assert images.shape == (2, 8, 8, 3) and images.dtype == np.uint8 and labels is None
    assert (images[1] == (255, 0, 0)).all()                  # only the red centre survives the crop
    assert len(os.listdir(tmp_path / "cache" / "genmodels")) == 1
    os.remove(tmp_path / "d" / "sub" / "wide.png")             # the folder changed: decoded again
    images, _, _ = load_folder(str(tmp_path / "d"), 8, classes=False)
    assert images.shape == (1, 8, 8, 1)                         # all grayscale now: one channel


def test_shapes_dataset_is_labelled_and_varied():
    images, labels, names = shapes(n=600, size=16, seed=0)
    assert images.shape == (600, 16, 16, 3) and len(names) == 12 and "red circle" in names
    assert set(labels) == set(range(12))
    red = images[labels == names.index("red circle")].reshape(-1, 3).astype(float)
    bright = red[red.max(1) > 120]
    # red
    assert ((bright[:, 0] > bright[:, 1] + 80) & (bright[:, 0] > bright[:, 2] + 80)).mean() > 0.95
    assert images.reshape(600, -1).std(0).mean() > 20          # positions and sizes vary


def test_batches_cover_an_epoch_and_depend_on_the_step_alone():
    # image i is all i
    images = torch.arange(40, dtype=torch.uint8).view(40, 1, 1, 1).expand(40, 2, 2, 3).contiguous()
    labels = torch.arange(40)
    b = Batches(images, labels, 8, "cpu", seed=0, flip=False)
    seen = [b(step) for step in range(5)]                               # one epoch: 5 batches of 8
    ids = torch.cat([y for _, y in seen])
    assert sorted(ids.tolist()) == list(range(40))                           # each image once
    for x, y in seen:                                            # scaled to [-1, 1], labels aligned
        assert x.shape == (8, 3, 2, 2) and torch.allclose(x[:, 0, 0, 0], y.float() / 127.5 - 1)
    assert not torch.equal(b(5)[1], seen[0][1])                       # the next epoch is reshuffled
    again = Batches(images, labels, 8, "cpu", seed=0, flip=False)
    assert torch.equal(again(3)[1], seen[3][1])            # a fresh instance (a resumed run) agrees
    ranks = [Batches(images, labels, 4, "cpu", seed=0, rank=r, world=2, flip=False)(1)[1]
             for r in range(2)]
    assert torch.equal(torch.cat(ranks), seen[1][1])          # two processes split the global batch


def test_flips_are_horizontal_and_random():
    img = torch.zeros(1, 4, 4, 3, dtype=torch.uint8)
    img[0, :, 0] = 255                                                       # a white left column
    b = Batches(img.expand(64, 4, 4, 3).contiguous(), None, 64, "cpu", seed=0)
    x, _ = b(0)
    left = (x[:, 0, :, 0] == 1).all(1)
    right = (x[:, 0, :, 3] == 1).all(1)
    assert (left ^ right).all() and 10 < right.sum() < 54    # each image flipped or not, about half


def test_built_in_pairs_are_edges_and_shapes_cropped_together():
    images, labels, names, size = dataset("shapes", 16, paired=True)
    # loaded at 286/256 for jitter
    assert size == 16 and images.shape[1:] == (18, 18, 6) and labels is None
    a = images[..., :3].astype(int)
    b = images[..., 3:].astype(int)
    background = b[:, :1, :1]                                     # the corner pixel of each image
    outline = (a != background).any(-1)
    assert 0.02 < outline.mean() < 0.4                            # A: B's edges, in B's colours,
    assert ((a == b) | (a == background)).all()                   # on B's background
    batches = Batches(torch.from_numpy(images[:32]), None, 8, "cpu", seed=0, size=16, paired=True)
    x, y = batches(0)
    assert x.shape == y.shape == (8, 3, 16, 16)
    for xi, yi in zip(x, y):                                      # after the joint crop, A differs
        differ = (xi != yi).any(0)                                # from B only where A shows its
        assert differ.any() and yi[:, differ].std(1).max() == 0   # one background colour


def write_pair(path, a, b):
    Image.fromarray(np.concatenate([a, b], 1)).save(path)


def test_paired_folders_side_by_side_and_a_b(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    red, blue = np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8)
    red[..., 0], blue[..., 2] = 255, 255
    (tmp_path / "sbs").mkdir()
    for i in range(3):
        write_pair(tmp_path / "sbs" / f"{i}.png", red, blue)
    images, _, _, size = dataset(str(tmp_path / "sbs"), 8, paired=True)
    assert images.shape == (3, 9, 9, 6) and (images[:, 4, 4] == (255, 0, 0, 0, 0, 255)).all()
    flipped, _, _, _ = dataset(str(tmp_path / "sbs"), 8, paired=True, direction="BtoA")
    assert (flipped[:, 4, 4] == (0, 0, 255, 255, 0, 0)).all()
    for d, im in [("A", red), ("B", blue)]:
        (tmp_path / "ab" / d).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(im).save(tmp_path / "ab" / d / f"{i}.png")
    images, _, _, _ = dataset(str(tmp_path / "ab"), 8, paired=True)
    assert images.shape == (2, 9, 9, 6) and (images[:, 4, 4] == (255, 0, 0, 0, 0, 255)).all()


@pytest.mark.parametrize("case, message", [
    ("odd", "13 pixels wide"), ("lonely", "1.png has no partner"), ("sizes", "but its partner"),
])
def test_malformed_pairs_name_the_file(tmp_path, monkeypatch, case, message):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = tmp_path / case
    if case == "odd":
        root.mkdir()
        Image.fromarray(np.zeros((6, 13, 3), np.uint8)).save(root / "odd.png")
    else:
        (root / "A").mkdir(parents=True)
        (root / "B").mkdir()
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "A" / "0.png")
        width = 10 if case == "sizes" else 8
        Image.fromarray(np.zeros((8, width, 3), np.uint8)).save(root / "B" / "0.png")
        if case == "lonely":
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "A" / "1.png")
    with pytest.raises(Fail, match=message):
        dataset(str(root), 8, paired=True)


def test_16_bit_float_and_rotated_images_come_out_as_seen(tmp_path):
    """A 16-bit PNG keeps its grays (convert("RGB") clipped it to nearly white), a float image in
    [0, 1] is scaled by 255, and a photo's EXIF orientation is applied."""
    ramp = np.linspace(0, 65535, 64).round().astype(np.uint16).reshape(8, 8)
    Image.fromarray(ramp).save(tmp_path / "deep.png")                              # mode I;16
    im, gray = load_image(tmp_path / "deep.png", 8)
    assert gray and np.abs(im[..., 0].astype(float) - ramp / 257).max() <= 1  # 65535 -> 255
    # mode F, in [0, 0.5]
    Image.fromarray((ramp / 65535 / 2).astype(np.float32)).save(tmp_path / "float.tif")
    im, _ = load_image(tmp_path / "float.tif", 8)
    # a darker gray, not stretched
    assert np.abs(im[..., 0].astype(float) - ramp / 257 / 2).max() <= 1
    left = np.zeros((8, 8, 3), np.uint8)
    left[:, 0] = 255                                                   # a white left column, stored
    exif = Image.Exif()
    exif[0x0112] = 6                                           # "turn 90 degrees clockwise to view"
    Image.fromarray(left).save(tmp_path / "turned.png", exif=exif.tobytes())
    im, _ = load_image(tmp_path / "turned.png", 8)
    assert (im[0] == 255).all() and (im[1:] == 0).all()                 # seen: a white top row


def test_folder_oddities_and_cache_faults(tmp_path, monkeypatch, capsys):
    """Hidden and empty folders are not classes, a dangling link is skipped and counted, the count
    of skipped files is said again on a cached run, a file replaced by one of the same size and time
    is decoded again, and a corrupt cache file is rebuilt."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = tmp_path / "d"
    for d in ("cats", "dogs", "empty", ".ipynb_checkpoints"):
        (root / d).mkdir(parents=True)
    for d in ("cats", "dogs", ".ipynb_checkpoints"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / d / "a.bmp")
    (root / "dogs" / ".hidden").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "dogs" / ".hidden" / "b.png")
    os.symlink(tmp_path / "nowhere.png", root / "cats" / "gone.png")
    images, labels, names = load_folder(str(root), 8, classes=True)
    said = capsys.readouterr().out
    assert names == ["cats", "dogs"] and len(images) == 2 and sorted(labels) == [0, 1]
    assert "not classes: empty" in said and "skipped 1 unreadable" in said and "gone.png" in said
    load_folder(str(root), 8, classes=True)
    said = capsys.readouterr().out
    # from the cache, and said again
    assert "decoding" not in said and "skipped 1 unreadable" in said
    st = os.stat(root / "dogs" / "a.bmp")
    # same size, same mtime
    Image.fromarray(np.full((8, 8, 3), 255, np.uint8)).save(root / "dogs" / "a.bmp")
    os.utime(root / "dogs" / "a.bmp", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(root / "dogs" / "a.bmp").st_size == st.st_size
    images, labels, _ = load_folder(str(root), 8, classes=True)
    assert (images[labels == 1] == 255).all()                   # decoded again, not the stale entry
    for f in (tmp_path / "cache" / "genmodels").iterdir():
        f.write_bytes(b"cut short")
    images, _, _ = load_folder(str(root), 8, classes=True)
    assert "unreadable" in capsys.readouterr().out and len(images) == 2       # rebuilt


def test_captions_with_a_byte_order_mark(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    # Windows Notepad's UTF-8
    (tmp_path / "captions.txt").write_text("a.png\ta red circle\n", encoding="utf-8-sig")
    _, labels, names, _ = dataset(str(tmp_path), 8, captions=True)
    assert names == ["a red circle"] and list(labels) == [0]


def test_squash_keeps_the_edges_of_pairs_and_of_cyclegans_domains(tmp_path):
    """--resize squash reaches every loader: a pair A|B and CycleGAN's A/ and B/ folders keep
    their white left edge squashed, and lose it to the centre crop."""
    from support.data import load_domains
    from support.folders import load_pair
    side = np.zeros((4, 8, 3), np.uint8)
    side[:, :2] = 255                                             # a white left edge
    Image.fromarray(np.concatenate([side, side], 1)).save(tmp_path / "pair.png")
    for d in ("A", "B"):
        os.makedirs(tmp_path / "domains" / d)
        Image.fromarray(side).save(tmp_path / "domains" / d / "x.png")
    squashed = load_pair(str(tmp_path / "pair.png"), 4, "squash")
    cropped = load_pair(str(tmp_path / "pair.png"), 4)
    assert squashed[:, 0].min() > 200 and squashed[:, 0, 3:].min() > 200
    assert cropped[:, 0].max() == 0
    a, b = load_domains(str(tmp_path / "domains"), 4, "squash")
    assert a[0, :, 0].min() > 200 and b[0, :, 0].min() > 200
    a, _ = load_domains(str(tmp_path / "domains"), 4)
    assert a[0, :, 0].max() == 0
