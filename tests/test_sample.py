"""sample.py refuses before any work, in one line and exit status 1: numbers out of their range,
sizes that cannot fit, flags that do not apply to this model or together, an ldm still in its
first stage, an --out that cannot be written or that is a checkpoint. And it never writes a NaN
image, and its style-mixing table is the same table whatever --batch-size (issue 30)."""
import json
import os
import numpy as np
import pytest
import torch
from PIL import Image
from support.cli import build_model, save_checkpoint

TINY = {
    "vae": dict(image_size=8, channels=3, z_dim=4, ch=4),
    "ddpm": dict(image_size=8, channels=3, T=10, ch=32, ch_mult=(1,), num_res_blocks=1,
                 attn_res=()),
    "ldm": dict(image_size=8, channels=3, f=2, z_channels=4, ae_ch=32, T=10, ch=32,
                ch_mult=(1,), num_res_blocks=1, attn_res=(), ae_steps=5),
    "pix2pix": dict(image_size=16, channels=3, ngf=4, ndf=4, n_layers=1),
    "stylegan": dict(image_size=8, channels=3, ch=8, max_ch=16, z_dim=16, w_dim=16, n_mlp=2),
}


def one_line(r, message):
    assert r.returncode == 1 and message in r.out, r.out
    assert "Traceback" not in r.out and len(r.stderr.strip().splitlines()) == 1, r.stderr


def write_checkpoint(path, name, step=0, nan=False, **config):
    """A checkpoint of an untrained model as train.py writes it; nan=True: the last bias of its
    generator (not of a discriminator D) holds a NaN, as a run that diverged would leave it."""
    config = TINY[name] | config
    torch.manual_seed(0)
    weights = build_model(name, config).state_dict()
    if nan:
        biases = [k for k in weights if k.endswith("bias") and not k.startswith("D")]
        weights[biases[-1]][0] = float("nan")
    save_checkpoint(str(path), dict(model=name, config=config, step=step, args={},
                                    class_names=None, weights=weights, ema=None, optimizers=[],
                                    rng={}))
    return path


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    """The checkpoints and files a row of the table names in capitals (built once: no row of the
    table writes a file)."""
    tmp_path = tmp_path_factory.mktemp("places")
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (tmp_path / "a_file").write_text("a file, not a folder")
    (tmp_path / "conditions.json").write_text(json.dumps([["0"], ["1", "2"]]))
    Image.new("RGB", (16, 16), (200, 30, 30)).save(tmp_path / "in.png")
    vae = write_checkpoint(ckpt / "vae.pt", "vae")
    (tmp_path / "renamed.png").write_bytes(vae.read_bytes())            # a checkpoint, named .png
    (tmp_path / "walk.gif").write_bytes(vae.read_bytes())
    return {
        "VAE": vae,
        "DDPM": write_checkpoint(ckpt / "ddpm.pt", "ddpm"),
        "DDPM_CLASSES": write_checkpoint(ckpt / "ddpm_c.pt", "ddpm", num_classes=3),
        "DDPM_NO_UNCOND": write_checkpoint(ckpt / "ddpm_0.pt", "ddpm", num_classes=3,
                                           p_uncond=0.0),
        "LDM_STAGE_1": write_checkpoint(ckpt / "ldm.pt", "ldm"),
        "LDM_CAPTIONS": write_checkpoint(ckpt / "ldm_t.pt", "ldm", ae_steps=0, vocab="red blue",
                                         text_dim=8, text_layers=1),
        "PIX2PIX": write_checkpoint(ckpt / "pix2pix.pt", "pix2pix"),
        "STYLEGAN": write_checkpoint(ckpt / "stylegan.pt", "stylegan"),
        "CONDITIONS": tmp_path / "conditions.json",
        "IN": tmp_path / "in.png",
        "DIR/": f"{tmp_path / 'dir'}/",
        "GRID": tmp_path / "grid.png",
        "RENAMED": tmp_path / "renamed.png",
        "WALK": tmp_path / "walk.png",                  # --gif writes walk.gif: a checkpoint
        "UNDER_A_FILE": tmp_path / "a_file" / "sub" / "grid.png",
    }


@pytest.mark.parametrize("args, message", [
    # every number in its declared range (support/cli.py), by argparse, before the model runs
    (["VAE", "-n", 0], "argument -n: must be at least 1 (got 0)"),
    (["VAE", "-n", "1e3"], "argument -n: invalid int value: '1e3'"),
    (["VAE", "--seed", -1], "argument --seed: must be in [0, 9223372036854775808) (got -1)"),
    (["VAE", "--seed", 2**63], "argument --seed: must be in [0, 9223372036854775808)"),
    (["VAE", "--nrow", 0], "argument --nrow: must be at least 1 (got 0)"),
    (["VAE", "--batch-size", -2], "argument --batch-size: must be at least 1 (got -2)"),
    (["VAE", "--temperature", 0], "argument --temperature: must be above 0 (got 0)"),
    (["DDPM", "--sampler", "ddim", "--eta", 1.5], "argument --eta: must be in [0, 1] (got 1.5)"),
    (["DDPM", "--steps", 0], "argument --steps: must be at least 1 (got 0)"),
    (["STYLEGAN", "--psi", "inf"], "argument --psi: must be a finite number (got inf)"),
    (["STYLEGAN", "--mix", -1], "argument --mix: must be at least 0 (got -1)"),
    # sizes that cannot fit, refused with the number before they are allocated
    (["VAE", "-n", 10**12], "choose a smaller -n"),
    (["VAE", "--gif", "-n", 1000, "--frames", 10**9], "choose a smaller --frames"),
    (["VAE", "--nrow", 65], "--nrow 65 is more than the 64 samples"),
    # flags that do not apply to this model, this checkpoint or the other flags
    (["DDPM", "--guidance", 3], "--guidance applies to a model trained with classes or captions"),
    (["DDPM_NO_UNCOND", "--guidance", 3], "trained with --p-uncond above 0 (this one: 0)"),
    (["LDM_CAPTIONS", "--guidance", 3], "--guidance steers towards a --prompt: give one"),
    (["DDPM_CLASSES", "--label", 1, "--conditions", "CONDITIONS"],
     "--label and --conditions both say what to draw"),
    (["DDPM_CLASSES", "--conditions", "CONDITIONS", "-n", 4],
     "-n does not apply with --conditions"),
    (["PIX2PIX", "--input", "IN", "--label", 1], "--label does not apply to a pix2pix"),
    (["PIX2PIX", "--input", "IN", "--conditions", "CONDITIONS"],
     "--conditions does not apply to a pix2pix"),
    (["PIX2PIX", "--input", "IN", "-n", 4], "-n does not apply to a pix2pix"),
    (["PIX2PIX", "--input", "IN", "--nrow", 2], "--nrow does not apply to a pix2pix"),
    (["DDPM", "--eta", 0.5], "--eta is DDIM's noise: it applies with --sampler ddim"),
    (["DDPM", "--sampler", "ddim", "--variance", "posterior"], "--variance is the DDPM step's"),
    (["DDPM", "--strength", 0.5], "--strength applies to img2img"),
    (["DDPM", "--init", "IN", "--mask", "IN", "--strength", 0.5], "--strength applies to img2img"),
    (["STYLEGAN", "--gif", "--mix", 1], "--mix does not apply with --gif for a stylegan"),
    (["VAE", "--frames", 4], "--frames does not apply without --gif for a vae"),
    (["VAE", "--gif", "--out", "DIR/"], "--gif writes OUT.gif and OUT_strip.png: name a file"),
    (["VAE", "--nrow", 2, "--out", "DIR/"], "--nrow applies to a grid, not to --out"),
    (["VAE", "--no-ema"], "has no moving average, only its raw weights"),
    # a checkpoint with nothing to sample yet
    (["LDM_STAGE_1"], "is an ldm still in its first stage: 0 of 5 autoencoder steps done"),
    # --out: never over a checkpoint, and writable
    (["VAE", "--out", "VAE"], "vae.pt, a checkpoint: choose another --out"),
    (["VAE", "--out", "RENAMED"], "renamed.png, a checkpoint: choose another --out"),
    (["VAE", "--gif", "--out", "WALK"], "walk.gif, a checkpoint: choose another --out"),
    (["VAE", "--out", "UNDER_A_FILE"], "cannot write --out"),
])
def test_refused_in_one_line(cli, places, args, message):
    r = cli("sample.py", *[places.get(a, a) for a in args])
    one_line(r, message)


def test_out_is_checked_by_writing_before_any_sampling(cli, tmp_path, monkeypatch):
    """A folder that cannot be written (read-only; as root, /sys) is found before the model runs."""
    import vae
    vae_pt = write_checkpoint(tmp_path / "vae.pt", "vae")
    drawn = []
    monkeypatch.setattr(vae.VAE, "sample", lambda self, n, y=None, **k: drawn.append(n))
    if os.geteuid() == 0:
        if not os.path.isdir("/sys"):
            pytest.skip("root writes anywhere, and there is no /sys to fail on")
        folder = "/sys"
    else:
        folder = tmp_path / "read_only"
        folder.mkdir()
        folder.chmod(0o555)
    for out in (f"{folder}/grid.png", f"{folder}/each/", f"{folder}/none/grid.png"):
        one_line(cli("sample.py", vae_pt, "--out", out), "cannot write --out")
    assert drawn == []


@pytest.mark.parametrize("name, args, says", [
    ("vae", [], "--temperature 1.0"),
    ("vae", ["-n", 3, "--out", "DIR/"], "--temperature 1.0"),
    ("vae", ["--gif", "--frames", 3], "--frames 3"),
    ("ddpm", ["--sampler", "ddim", "--steps", 2, "--quiet"],
     "--sampler ddim --steps 2 --eta 0.0 --guidance 1.0"),
    ("pix2pix", ["--input", "IN", "--no-dropout"], "--no-dropout"),
])
def test_never_a_nan_image(cli, tmp_path, name, args, says):
    """A checkpoint whose weights hold a NaN draws NaN samples: one line naming the knobs and the
    checkpoint's step, and not one file written (a NaN pixel would be written black)."""
    ckpt = write_checkpoint(tmp_path / "nan.pt", name, step=1234, nan=True)
    Image.new("RGB", (16, 16), (200, 30, 30)).save(tmp_path / "in.png")
    places = {"IN": tmp_path / "in.png", "DIR/": f"{tmp_path / 'dir'}/"}
    out = [] if "--out" in args else ["--out", tmp_path / "s.png"]
    r = cli("sample.py", ckpt, *[places.get(a, a) for a in args], *out)
    one_line(r, "the samples hold NaN or inf")
    assert says in r.out and "from the checkpoint at step 1234" in r.out, r.out
    written = sorted(f for _, _, files in os.walk(tmp_path) for f in files)
    assert written == ["in.png", "nan.pt"], written


def test_the_same_samples_are_finite_without_the_nan(cli, tmp_path):
    """The control: the same checkpoint without its NaN samples and writes."""
    ckpt = write_checkpoint(tmp_path / "ok.pt", "vae", step=1234)
    r = cli("sample.py", ckpt, "-n", 4, "--out", tmp_path / "s.png")
    assert r.returncode == 0 and (tmp_path / "s.png").exists(), r.out


def test_mixing_table_is_the_same_whatever_batch_size(cli, tmp_path):
    """--mix K: the sample in row r and column c takes row r's coarse styles and column c's fine
    ones, for the whole grid; drawn in batches of 4 or 2 it is the table drawn at once."""
    ckpt = write_checkpoint(tmp_path / "stylegan.pt", "stylegan")
    grids = []
    for batch in (256, 4, 2):
        out = tmp_path / f"mix{batch}.png"
        r = cli("sample.py", ckpt, "-n", 9, "--mix", 1, "--batch-size", batch, "--out", out)
        assert r.returncode == 0, r.out
        grids.append(np.asarray(Image.open(out), dtype=int))
    assert np.array_equal(grids[0], grids[1]) and np.array_equal(grids[0], grids[2])
    tiles = [grids[0][2 + r * 10:10 + r * 10, 2 + c * 10:10 + c * 10]
             for r in range(3) for c in range(3)]
    assert len({t.tobytes() for t in tiles}) == 9                # nine different samples


def test_guidance_where_it_applies(cli, places, tmp_path):
    """The flags refused above are accepted where they apply."""
    r = cli("sample.py", places["DDPM_CLASSES"], "-n", 3, "--guidance", 3, "--sampler", "ddim",
            "--eta", 0.5, "--steps", 2, "--out", tmp_path / "g.png")
    assert r.returncode == 0 and (tmp_path / "g.png").exists(), r.out
    r = cli("sample.py", places["DDPM_CLASSES"], "--conditions", places["CONDITIONS"],
            "--steps", 2, "--out", tmp_path / "c.png")
    assert r.returncode == 0 and (tmp_path / "c.png").exists(), r.out


def test_nrow_lays_out_the_animation_too(cli, places, tmp_path):
    """--gif --nrow 4: each frame of the animation is a grid of 4 samples a row (it was ignored)."""
    r = cli("sample.py", places["VAE"], "-n", 4, "--gif", "--frames", 2, "--nrow", 4,
            "--out", tmp_path / "walk.png")
    assert r.returncode == 0, r.out
    assert Image.open(tmp_path / "walk.gif").size == (4 * 10 + 2, 10 + 2)   # 4 tiles of 8 + 2
