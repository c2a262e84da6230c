"""Every bad command line a hostile but realistic user types gets one line on stderr, exit status 1
and no traceback: bad numbers, bad files and folders, damaged checkpoints, a run already in the
folder. One table for train.py, one for sample.py, run in this process (the `cli` fixture) but for
one case in a fresh interpreter, where only a real process shows what reaches the terminal
(test_train.py's test_wrong_checkpoints runs sample.py so)."""
import numpy as np
import pytest
import torch
from PIL import Image
from support.cli import build_model, save_checkpoint

fcntl = pytest.importorskip("fcntl")
SMALL = ["--image-size", 8, "--ch", 8, "--z-dim", 8, "--batch-size", 8, "--steps", 3]


def one_line(r, message):
    assert r.returncode == 1 and message in r.out, r.out
    assert "Traceback" not in r.out and len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.parametrize("args, message", [
    (["vae", "--data", "/no/such/folder"], "no such folder: /no/such/folder"),
    (["vae", "--data", "EMPTY"], "no images found in"),
    (["vae", "--data", "EMPTY", "--classes"], "needs one subfolder per class"),
    (["wavenet"], "unknown model 'wavenet'"),
    (["vae", "--image-size", 20], "power of two"),
    (["vae", "--resume"], "no checkpoint at"),
    (["vae", "--image-size", 0], "--image-size must be at least 1 (got 0)"),   # was: the default
    (["vae", "--image-size", -5], "--image-size must be at least 1"),
    (["vae", "--image-size", 100_000], "choose a smaller --image-size"),       # was: 302 GiB asked
    (["vae", "--batch-size", 0], "--batch-size must be at least 1"),
    # was: a batch of 11,996, then NaN
    (["vae", "--batch-size", -4], "--batch-size must be at least 1"),
    (["vae", "--steps", -1], "--steps must be at least 0"),
    (["vae", "--log-every", 0], "--log-every must be at least 1"),
    (["vae", "--sample-every", 0], "--sample-every must be at least 1"),
    (["vae", "--ckpt-every", 0], "--ckpt-every must be at least 1"),
    (["vae", "--grid", -2], "--grid must be at least 1"),
    (["ddpm", "--preview-steps", 0], "--preview-steps must be at least 1"),
    (["ddpm", "--preview-sampler", "euler"], "invalid choice: 'euler'"),
    # a model with no sampler to choose
    (["vae", "--preview-steps", 50], "unrecognized arguments: --preview-steps"),
    (["vae", "--eval-every", -1], "--eval-every must be at least 0"),
    (["vae", "--eval-n", 1], "--eval-n must be at least 2"),
    (["vae", "--eval-every", 5], "no Inception weights at"),         # before any image is decoded
    (["vae", "--eval-every", 5, "--eval-features", "/no/clf.pt"], "no classifier at /no/clf.pt"),
    (["vae", "--ema", 1], "--ema is a decay in [0, 1)"),
    (["vae", "--ema", "nan"], "--ema is a decay in [0, 1)"),
    (["vae", "--ema", -0.1], "--ema is a decay in [0, 1)"),
    (["vae", "--lr", "nan"], "argument --lr: must be above 0 (got nan)"),
    (["vae", "--lr", -1], "argument --lr: must be above 0 (got -1)"),
    (["vae", "--z-dim", 0], "argument --z-dim: must be at least 1 (got 0)"),   # a keyword: its range
    (["vae", "--data", "A_FILE"], "is a file: give the folder"),
    # argparse's mistakes too: one line
    (["vae", "--steps", "many"], "argument --steps: invalid int value: 'many'"),
    (["vae", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    # NaN before any save: says so
    (["vae", "--beta", "nan"], "argument --beta: must be at least 0 (got nan)"),
    (["vae", "--lr", 1e30, "--log-every", 1], "no checkpoint was written"),
    (["vae", "OUT_IS_FILE"], "cannot make the folder --out"),
    (["vae", "LOCKED"], "another run is training into"),
    (["ldm", "--data", "BAD_CAPTIONS", "--captions"], "captions.txt is not UTF-8"),
    (["vae", "--data", "UNREADABLE_CLASS", "--classes"], "no image of the class cats"),
    (["vae", "--resume", "--steps", 2, "RESUMABLE"], "has done 3 steps already"),
])
def test_train_bad_input_gets_one_line(cli, tmp_path, args, message):
    out = tmp_path / "run"
    if "OUT_IS_FILE" in args:
        out.write_text("not a folder")
    if "LOCKED" in args:                                          # another run holds the folder
        out.mkdir()
        held = open(out / ".lock", "w")
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    if "RESUMABLE" in args:
        assert cli("train.py", "vae", "--out", out, *SMALL).returncode == 0
    (tmp_path / "captions").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "captions" / "a.png")
    (tmp_path / "captions" / "captions.txt").write_bytes("a.png\tun caf\xe9".encode("latin-1"))
    for d in ("cats", "dogs"):
        (tmp_path / "classes" / d).mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "classes" / "dogs" / "a.png")
    (tmp_path / "classes" / "cats" / "broken.png").write_bytes(b"not a png")
    (tmp_path / "empty").mkdir()
    places = {"BAD_CAPTIONS": tmp_path / "captions", "UNREADABLE_CLASS": tmp_path / "classes",
              "EMPTY": tmp_path / "empty", "A_FILE": tmp_path / "captions" / "captions.txt"}
    args = [places.get(a, a) for a in args if a not in ("OUT_IS_FILE", "LOCKED", "RESUMABLE")]
    small = SMALL if args[0] == "vae" else []          # the flags come first: the row's own win
    r = cli("train.py", args[0], *small, *args[1:], "--out", out, fresh=args[0] == "wavenet")
    one_line(r, message)


def write_checkpoint(path, name, **config):
    """A checkpoint of an untrained model, as train.py writes it (no training needed to test
    sample.py)."""
    model = build_model(name, config)
    save_checkpoint(str(path), dict(model=name, config=config, step=0, args={}, class_names=None,
                                    weights=model.state_dict(), ema=None, optimizers=[], rng={}))
    return model


@pytest.mark.parametrize("args, message", [
    (["VAE", "-n", 0], "-n must be at least 1 (got 0)"),
    (["VAE", "--batch-size", 0], "--batch-size must be at least 1"),
    (["VAE", "--frames", -1, "--gif"], "argument --frames: must be at least 1 (got -1)"),
    (["DDPM", "--steps", 0], "argument --steps: must be at least 1 (got 0)"),
    (["DDPM", "--strength", 1.5], "argument --strength: must be in [0, 1] (got 1.5)"),
    (["DDPM", "--guidance", "nan"], "argument --guidance: must be a finite number (got nan)"),
    (["VAE", "--out", "A_FILE/grid.png"], "cannot write --out"),    # was: after all the sampling
    (["VAE", "--out", "grid"], "name a picture (.png) or a folder"),
    (["VAE", "--temperature", "hot"], "invalid float value: 'hot'"),
    (["MISFIT"], "its weights do not fit its own configuration"),
    (["MISSING_KEY"], "its weights do not fit its own configuration"),
    (["PIX2PIX", "--input", "EMPTY"], "no images found in --input"),
])
def test_sample_bad_input_gets_one_line(cli, tmp_path, args, message):
    vae = write_checkpoint(tmp_path / "vae.pt", "vae", image_size=8, channels=3, z_dim=4, ch=4)
    write_checkpoint(tmp_path / "ddpm.pt", "ddpm", image_size=8, channels=3, T=10, ch=32,
                     ch_mult=(1, 2), num_res_blocks=1, attn_res=())
    write_checkpoint(tmp_path / "pix2pix.pt", "pix2pix", image_size=16, channels=3, ngf=4, ndf=4,
                     n_layers=1)
    ck = torch.load(tmp_path / "vae.pt", weights_only=True)
    misfit = {**ck, "config": {**ck["config"], "z_dim": 6}}          # config != weights
    torch.save(misfit, tmp_path / "misfit.pt")
    ck["weights"].pop(next(iter(vae.state_dict())))
    torch.save(ck, tmp_path / "missing.pt")
    (tmp_path / "a_file").write_text("a file, not a folder")
    (tmp_path / "empty").mkdir()
    places = {"VAE": tmp_path / "vae.pt", "DDPM": tmp_path / "ddpm.pt",
              "PIX2PIX": tmp_path / "pix2pix.pt", "MISFIT": tmp_path / "misfit.pt",
              "MISSING_KEY": tmp_path / "missing.pt", "EMPTY": tmp_path / "empty",
              "A_FILE/grid.png": tmp_path / "a_file" / "grid.png", "grid": tmp_path / "grid"}
    r = cli("sample.py", *[places.get(a, a) for a in args])
    one_line(r, message)
