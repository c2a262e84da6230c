"""Every sample.py mode against every model of support/cli.py's MODELS (issue 42): each on a tiny
checkpoint that train.py wrote in one step, unconditional and, where the model takes classes,
class-conditional. A mode either works (exit 0, its output written) or is refused in one line
(exit 1, `error: ...` on stderr, nothing written), never a traceback. --compile runs with
torch.compile replaced by the function itself: on a CPU inductor takes 5 to 30 s a model, so this
checks the path to it (each model's sampling_networks), not inductor."""
import json
import os
import shutil
import subprocess
from contextlib import contextmanager
import pytest
import torch
from PIL import Image
from conftest import ROOT
from support.cli import model_class
from support.translate import kind

TINY = {
    "vae": ["--image-size", 8, "--ch", 8, "--z-dim", 4],
    "gan": ["--image-size", 8, "--hidden", 16, "--z-dim", 4],
    "dcgan": ["--image-size", 8, "--ngf", 4, "--ndf", 4, "--z-dim", 4],
    "dcgan-lab": ["--image-size", 8, "--ngf", 4, "--ndf", 4, "--z-dim", 4],
    "pix2pix": ["--image-size", 16, "--ngf", 4, "--ndf", 4, "--n-layers", 1],
    "cyclegan": ["--image-size", 8, "--ngf", 4, "--ndf", 4, "--n-blocks", 1, "--n-layers", 1,
                 "--history", 2],
    "stylegan": ["--image-size", 8, "--ch", 8, "--max-ch", 8, "--z-dim", 8, "--w-dim", 8,
                 "--n-mlp", 2, "--mbstd-group", 2],
    "progan": ["--image-size", 8, "--ch", 8, "--max-ch", 8, "--z-dim", 8, "--mbstd-group", 2],
    "ddpm": ["--image-size", 8, "--T", 10, "--ch", 32, "--ch-mult", 1, "--num-res-blocks", 1,
             "--attn-res", ""],
    "ldm": ["--image-size", 8, "--f", 2, "--z-channels", 2, "--ae-ch", 32, "--T", 10, "--ch", 32,
            "--ch-mult", 1, "--num-res-blocks", 1, "--attn-res", "", "--ae-steps", 1],
    "stargan": ["--image-size", 8, "--ngf", 4, "--ndf", 4, "--n-blocks", 1],
    "srgan": ["--image-size", 8, "--B", 1, "--ngf", 4, "--content", "mse"],
}
# the models that train on the shapes' classes too (stargan always does)
CLASSES = ["vae", "gan", "dcgan", "dcgan-lab", "stylegan", "ddpm", "ldm"]
RUNS = list(TINY) + [f"{name} --classes" for name in CLASSES]
# each model's own sampling knobs at other values than their defaults
KNOBS = {
    "vae": [["--temperature", 0.5], ["--gif", "--frames", 3, "--temperature", 2]],
    "gan": [["--gif", "--frames", 3]],
    "dcgan": [["--gif", "--frames", 3]],
    "dcgan-lab": [["--gif", "--frames", 3]],
    "pix2pix": [["--no-dropout", "--no-batch-stats"]],
    "cyclegan": [["--direction", "BtoA"]],
    "stylegan": [["--psi", 0.7, "--mix", 2], ["--gif", "--frames", 3, "--psi", 0.5],
                 ["--invert", "IMAGE", "--invert-steps", 2, "--space", "w"]],
    "ddpm": [["--sampler", "ddim", "--eta", 0.5], ["--variance", "beta", "--no-clip"],
             ["--guidance", 2], ["--init", "IMAGE", "--strength", 0.5],
             ["--init", "IMAGE", "--mask", "IMAGE"], ["--gif", "--frames", 2]],
    "ldm": [["--sampler", "ddim", "--eta", 0.5], ["--guidance", 2],
            ["--init", "IMAGE", "--strength", 0.5], ["--gif", "--frames", 2]],
}
MODES = {
    "grid": [],
    "one PNG each": ["--out", "DIR/"],
    "gif": ["--gif", "-n", 4],
    "label": ["--label", 0],
    "conditions": ["--conditions", "CONDITIONS"],
    "invert": ["--invert", "IMAGE", "--invert-steps", 2],
    "invert a class": ["--invert", "IMAGE", "--invert-steps", 2, "--label", 0],
    "invert into a folder": ["--invert", "IMAGE", "--invert-steps", 2, "--out", "DIR/"],
    "input": ["--input", "IMAGE"],
    "input into a folder": ["--input", "IMAGE", "--out", "DIR/"],
    "compile": ["--compile"],
}
# the GANs with a latent to invert
GANS = ("gan", "dcgan", "dcgan-lab", "progan", "stylegan")


def works(run, mode):
    """What a model is for, which must work rather than be refused: its grid and folder, a
    translation of its --input, a class, the inversion of a GAN with a latent (with the images'
    class for a conditional G(z)), its knobs (guidance: with classes)."""
    name, classes = run.split()[0], "--classes" in run
    if mode.startswith("knobs"):
        return classes or "--guidance" not in mode
    if kind(model_class(name)):
        return mode in ("grid", "one PNG each", "input", "input into a folder")
    inverts = ["invert a class"] if classes and name != "stylegan" else ["invert",
                                                                         "invert into a folder"]
    return (mode in ("grid", "one PNG each") or classes and mode == "label"
            or name in GANS and mode in inverts)


CASES = [(run, mode, args) for run in RUNS for mode, args in MODES.items()]
CASES += [(run, f"knobs {' '.join(map(str, k))}", k) for run in RUNS
          for k in KNOBS.get(run.split()[0], [])]


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    """Each run's checkpoint (train.py, one step on the built-in shapes, in this process), an
    image and a lab conditions file of the shapes' names."""
    import train
    tmp = tmp_path_factory.mktemp("modes")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp / "cache"))
        mp.chdir(ROOT)
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        for run in RUNS:
            name, *classes = run.split()
            argv = [name, *TINY[name], *classes, "--steps", 1, "--batch-size", 2, "--grid", 2,
                    "--quiet", "--out", tmp / run.replace(" ", "")]
            assert train.cli([str(a) for a in argv]) == 0, run
        torch.set_num_threads(before)
    Image.new("RGB", (16, 16), (200, 30, 30)).save(tmp / "a.png")
    (tmp / "conditions.json").write_text(json.dumps([["red circle"],
                                                     ["green circle", "blue square"]]))
    return {"IMAGE": tmp / "a.png", "CONDITIONS": tmp / "conditions.json",
            **{run: tmp / run.replace(" ", "") / "ckpt.pt" for run in RUNS}}


@pytest.mark.parametrize("run, mode, args", CASES, ids=[f"{r}: {m}" for r, m, _ in CASES])
def test_a_result_or_one_line(cli, places, tmp_path, monkeypatch, run, mode, args):
    name = run.split()[0]
    monkeypatch.setattr(torch, "compile", lambda f, **kw: f)
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kw: None)
    out = tmp_path / "out"
    args = [f"{out}/" if a == "DIR/" else places.get(a, a) for a in args]
    args += [] if "--out" in args else ["--out", out / "x.png"]
    # a translation's every mode on an image, the diffusion's chain in 2 steps
    if kind(model_class(name)) and "--input" not in args:
        args += ["--input", places["IMAGE"]]
    if name in ("ddpm", "ldm"):
        args += ["--steps", 2]
    r = cli("sample.py", places[run], *args, "--quiet")
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    if r.returncode == 0:
        assert written, r.out
    else:
        assert not works(run, mode), r.out
        one_line(r)
        assert not written, written


def one_line(r):
    """A refusal: exit 1, one line on stderr, `error: ...`; that line."""
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), r.out
    return lines[0]


@contextmanager
def read_only(folder):
    """chattr +i: a folder no file can be added to, root's processes included (where this
    machine lets root set it); its files can still be written, as a run's .lock."""
    if os.geteuid() != 0 or not shutil.which("chattr"):
        pytest.skip("chattr +i needs root")
    if subprocess.run(["chattr", "+i", folder], capture_output=True).returncode:
        pytest.skip(f"this file system has no chattr +i for {folder}")
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", folder], check=True)


def test_a_read_only_folder_is_one_line_before_any_work(cli, places, tmp_path):
    """sample.py's grid, folder and animation into a read-only folder, and train.py --resume of
    a run whose folder became read-only (its .lock still writable): one line each, before any
    sample is drawn or step taken (train.py trained a step, then failed at its grid)."""
    run = tmp_path / "run"
    r = cli("train.py", "vae", *TINY["vae"], "--steps", 1, "--batch-size", 2, "--grid", 2,
            "--out", run)
    assert r.returncode == 0, r.out
    log = (run / "log.jsonl").read_text()
    with read_only(run):
        for out in ([run / "x.png"], [f"{run}/each/"], [run / "walk.png", "--gif"]):
            r = cli("sample.py", places["vae"], "-n", 2, "--out", *out)
            assert "cannot write --out" in one_line(r)
        r = cli("train.py", "vae", "--resume", "--steps", 3, "--out", run)
        assert "cannot write --out" in one_line(r) and "images" not in r.out, r.out
        assert (run / "log.jsonl").read_text() == log
