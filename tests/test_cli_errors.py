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
    """Exit status 1, the message on one line, no traceback. A range's message reads the same
    from argparse's type ('argument --k: must be ...') as from a check ('--k must be ...')."""
    def plain(text):
        return text.replace("argument ", "").replace(": must be", " must be")
    assert r.returncode == 1 and plain(message) in plain(r.out), r.out
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
    (["vae", "--image-size", 131_072], "choose a smaller --image-size"),       # was: 12 TiB asked
    (["vae", "--batch-size", 0], "--batch-size must be at least 1"),
    # was: a batch of 11,996, then NaN
    (["vae", "--batch-size", -4], "--batch-size must be at least 1"),
    (["vae", "--steps", -1], "--steps must be at least 0"),
    (["vae", "--log-every", 0], "--log-every must be at least 1"),
    (["vae", "--sample-every", 0], "--sample-every must be at least 1"),
    (["vae", "--ckpt-every", 0], "--ckpt-every must be at least 1"),
    (["vae", "--grid", -2], "--grid must be at least 1"),
    (["ddpm", "--preview-steps", 0], "--preview-steps must be at least 1"),
    # was: trained to the first epoch, then crashed without a checkpoint
    (["vae", "--seed", 2**63, "FRESH"], "--seed must be in [0, 9223372036854775808)"),
    (["vae", "--seed", -1], "--seed must be in [0,"),
    (["ddpm", "--preview-sampler", "euler"], "invalid choice: 'euler'"),
    # a model with no sampler to choose
    (["vae", "--preview-steps", 50], "unrecognized arguments: --preview-steps"),
    (["vae", "--eval-every", -1], "--eval-every must be at least 0"),
    (["vae", "--eval-n", 1], "--eval-n must be at least 2"),
    (["vae", "--eval-n", "nan"], "argument --eval-n: invalid int value: 'nan'"),
    (["vae", "--eval-every", 5], "no Inception weights at"),         # before any image is decoded
    (["vae", "--eval-every", 5, "--eval-features", "/no/clf.pt"], "no classifier at /no/clf.pt"),
    (["vae", "--ema", 1], "--ema must be in [0, 1) (got 1)"),
    (["vae", "--ema", "nan"], "--ema must be in [0, 1) (got nan)"),
    (["vae", "--ema", -0.1], "--ema must be in [0, 1) (got -0.1)"),
    (["vae", "--lr", "nan"], "argument --lr: must be above 0 (got nan)"),
    (["vae", "--lr", -1], "argument --lr: must be above 0 (got -1)"),
    # a model's keyword: its range
    (["vae", "--z-dim", 0], "argument --z-dim: must be at least 1 (got 0)"),
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
    # network shapes that cannot work: the reason, before any image is decoded
    (["ddpm", "--attn-res", 3, "FRESH"], "--attn-res 3 matches no level of the U-Net, whose "
     "resolutions are 32, 16, 8, 4"),
    (["ldm", "--attn-res", 16], "--attn-res 16 matches no level of the U-Net, whose resolutions "
     "are 8, 4, 2"),                                          # ldm: the latent's, 32 / f = 8
    (["ldm", "--captions", "--text-dim", 7],
     "--text-dim 7 is not a multiple of the text encoder's 4 attention"),
    (["ddpm", "--ch", 48], "--ch 48 is not a multiple of 32: GroupNorm"),
    (["ldm", "--ae-ch", 40], "--ae-ch 40 is not a multiple of 32: GroupNorm"),
    (["ddpm", "--image-size", 20], "--image-size 20 does not halve 3 times (--ch-mult 1,2,2,2)"),
    (["ldm", "--image-size", 24], "the latent's size 6 (--image-size 24 / --f 4) does not halve"),
    (["ddpm", "--ch-mult", ""], "--ch-mult '' gives the U-Net no level"),     # was: built
    (["stylegan", "--mbstd-group", 3], "--mbstd-group 3 does not divide the batch of 32"),
    (["stylegan", "--batch-size", 2], "--mbstd-group 4 does not divide the batch of 2"),
    (["dcgan-lab", "--acgan"], "an ACGAN needs class labels"),     # the model's own check, now
    (["ldm", "--ae", "/no/ae.pt"], "no checkpoint at --ae /no/ae.pt"),   # was: after decoding
    # sizes that cannot fit: the number, before the allocation
    (["vae", "--grid", 10_000_000_000, "FRESH"], "--grid 10000000000 needs"),
    (["cyclegan", "--history", 100_000_000], "--history 100000000 needs"),
    # flags that do not apply, by name
    (["pix2pix", "--classes", "FRESH"], "--classes does not apply to pix2pix"),
    (["cyclegan", "--classes"], "--classes does not apply to cyclegan"),
    (["pix2pix", "--labels", "train.json"], "--labels does not apply to pix2pix"),
    (["progan", "--classes"], "ProGAN is unconditional: num_classes must be 0"),
    (["vae", "--data", "shapes", "SHAPES_FOLDER"], "give --data ./shapes for the folder"),
    (["vae", "--data", "NO_OBJECTS", "--labels", "NO_OBJECTS_JSON"],
     "gives every image an empty list of objects"),           # was: an unconditioned model
    # torchrun: WORLD_SIZE processes share --batch-size (was: ZeroDivisionError)
    (["vae", "--batch-size", 1, "WORLD_2", "FRESH"], "--batch-size 1 is not a multiple of the 2"),
    (["vae", "--batch-size", 9, "WORLD_2"], "--batch-size 9 is not a multiple of the 2 processes"),
])
def test_train_bad_input_gets_one_line(cli, tmp_path, monkeypatch, args, message):
    out = tmp_path / "run"
    if "SHAPES_FOLDER" in args:                                  # ./shapes beside the built-in
        (tmp_path / "shapes").mkdir()
        monkeypatch.chdir(tmp_path)
    if "WORLD_2" in args:                                        # as torchrun sets it
        monkeypatch.setenv("WORLD_SIZE", "2")
        cli.env["WORLD_SIZE"] = "2"
    (tmp_path / "no_objects").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "no_objects" / "a.png")
    (tmp_path / "no_objects" / "train.json").write_text('{"a.png": []}')
    (tmp_path / "no_objects" / "objects.json").write_text('{"red cube": 0}')
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
              "EMPTY": tmp_path / "empty", "A_FILE": tmp_path / "captions" / "captions.txt",
              "NO_OBJECTS": tmp_path / "no_objects",
              "NO_OBJECTS_JSON": tmp_path / "no_objects" / "train.json"}
    fresh = args[0] == "wavenet" or "FRESH" in args            # a new interpreter: the terminal
    marks = ("OUT_IS_FILE", "LOCKED", "RESUMABLE", "FRESH", "SHAPES_FOLDER", "WORLD_2")
    args = [places.get(a, a) for a in args if a not in marks]
    small = SMALL if args[0] == "vae" else []          # the flags come first: the row's own win
    r = cli("train.py", args[0], *small, *args[1:], "--out", out, fresh=fresh)
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


@pytest.mark.parametrize("script, args, message", [
    # bench.py: train.py's ranges and network checks, before any model is timed
    ("measure/bench.py", ["--model", "ddpm", "--ch", 0], "--ch must be at least 1 (got 0)"),
    ("measure/bench.py", ["--model", "ddpm", "--T", 0], "--T must be in [1, 100000] (got 0)"),
    ("measure/bench.py", ["-n", 0], "-n must be at least 1 (got 0)"),
    ("measure/bench.py", ["--steps", "nan"], "argument --steps: invalid int value: 'nan'"),
    ("measure/bench.py", ["--quick", "--image-size", -8], "--image-size must be at least 1"),
    ("measure/bench.py", ["--model", "ldm", "--quick", "--text-dim", 7, "FRESH"],
     "--text-dim 7 is not a multiple of the text encoder's 4 attention heads"),
    ("measure/bench.py", ["--model", "ddpm", "--quick", "--attn-res", 3],
     "--attn-res 3 matches no level of the U-Net, whose resolutions are 8, 4"),
    ("measure/bench.py", ["--model", "stylegan", "--quick", "--batch-size", 3],
     "--mbstd-group 4 does not divide the batch of 3"),
    ("measure/bench.py", ["--quick", "--json", "A_FILE/rows.json"], "cannot write --json"),
    # scenes.py: no checks at all before
    ("support/scenes.py", ["--image-size", 0, "FRESH"], "--image-size must be at least 1 (got 0)"),
    ("support/scenes.py", ["-n", -3], "-n must be at least 1 (got -3)"),
    ("support/scenes.py", ["--seed", -1], "--seed must be in [0,"),
    ("support/scenes.py", ["-n", 10**12], "-n 1000000000000 needs"),
    ("support/scenes.py", ["--out", "A_FILE"], "is a file: name a folder"),
    ("support/scenes.py", ["--out", "A_FILE/scenes"], "cannot make the folder --out"),
])
def test_bench_and_scenes_bad_input_get_one_line(cli, tmp_path, script, args, message):
    (tmp_path / "a_file").write_text("a file, not a folder")
    places = {"A_FILE": tmp_path / "a_file", "A_FILE/rows.json": tmp_path / "a_file" / "rows.json",
              "A_FILE/scenes": tmp_path / "a_file" / "scenes"}
    out = ["--out", tmp_path / "scenes"] if script.endswith("scenes.py") else []
    fresh = "FRESH" in args
    args = [places.get(a, a) for a in args if a != "FRESH"]
    r = cli(script, *out, *args, fresh=fresh)                 # the row's --out comes last: wins
    one_line(r, message)
