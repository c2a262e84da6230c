"""The command line end to end: train.py and sample.py on the built-in data and on image folders,
resume, sampling, every bad input, Ctrl-C, and a 2-process torchrun run on the CPU."""
import json, os, signal, subprocess, sys
import numpy as np
import pytest
import torch
from PIL import Image
from conftest import ROOT

TINY = ["--image-size", 16, "--ch", 8, "--latent-dim", 8, "--batch-size", 16, "--grid", 4, "--log-every", 5]


def ckpt(out):
    return torch.load(os.path.join(out, "ckpt.pt"), weights_only=True)


def test_train_resume_sample(cli, tmp_path):
    out = tmp_path / "run"
    r = cli("train.py", "vae", "--steps", 20, "--out", out, *TINY)
    assert r.returncode == 0, r.out
    assert "img/s" in r.out and "recon" in r.out and "kl" in r.out         # the progress line
    assert ckpt(out)["step"] == 20 and os.path.exists(out / "samples_000020.png")
    assert [json.loads(l)["step"] for l in open(out / "log.jsonl")] == [1, 5, 10, 15, 20]

    r = cli("train.py", "vae", "--resume", "--steps", 30, "--out", out)   # the rest comes from the checkpoint
    assert r.returncode == 0, r.out
    assert ckpt(out)["step"] == 30 and ckpt(out)["config"]["latent_dim"] == 8

    r = cli("sample.py", out / "ckpt.pt", "-n", 6, "--out", tmp_path / "grid.png", "--temperature", 0.5)
    assert r.returncode == 0, r.out
    assert Image.open(tmp_path / "grid.png").size == (3 * 18 + 2, 2 * 18 + 2)  # 3 x 2 grid of 16px, 2px gaps
    r = cli("sample.py", out / "ckpt.pt", "-n", 5, "--batch-size", 2, "--out", str(tmp_path / "each") + "/")
    assert r.returncode == 0, r.out
    assert sorted(os.listdir(tmp_path / "each")) == [f"{i:05d}.png" for i in range(5)]
    r = cli("sample.py", out / "ckpt.pt", "-n", 3, "--gif", "--frames", 6, "--out", tmp_path / "walk.png")
    assert r.returncode == 0, r.out
    assert Image.open(tmp_path / "walk.gif").n_frames > 1 and os.path.exists(tmp_path / "walk_strip.png")


def test_resume_continues_exactly(cli, tmp_path):
    """20 steps + 20 resumed steps give the very weights of 40 steps in one go: the same
    batches, optimizer state and random numbers."""
    a, b = tmp_path / "a", tmp_path / "b"
    assert cli("train.py", "vae", "--steps", 20, "--out", a, *TINY).returncode == 0
    assert cli("train.py", "vae", "--steps", 40, "--out", a, "--resume").returncode == 0
    assert cli("train.py", "vae", "--steps", 40, "--out", b, *TINY).returncode == 0
    wa, wb = ckpt(a)["weights"], ckpt(b)["weights"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def write_images(folder):
    """Mixed sizes and formats, one grayscale, one RGBA and one corrupt file, in two class folders."""
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate([(40, 30), (64, 64), (178, 218), (30, 50), (90, 60), (33, 33)]):
        d = folder / ("cats" if i % 2 else "dogs")
        d.mkdir(parents=True, exist_ok=True)
        arr = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        Image.fromarray(arr).save(d / f"{i}.{'jpg' if i % 3 else 'png'}")
    Image.fromarray(rng.integers(0, 255, (20, 20), dtype=np.uint8), "L").save(folder / "dogs" / "gray.png")
    Image.fromarray(rng.integers(0, 255, (20, 24, 4), dtype=np.uint8), "RGBA").save(folder / "cats" / "rgba.png")
    (folder / "cats" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "cats" / "notes.txt").write_text("not an image")


def test_folder_of_images_with_classes(cli, tmp_path):
    write_images(tmp_path / "imgs")
    out = tmp_path / "run"
    args = ["--data", tmp_path / "imgs", "--classes", "--steps", 4, "--out", out, *TINY[:-4], "--batch-size", 4, "--grid", 4]
    r = cli("train.py", "vae", *args)
    assert r.returncode == 0, r.out
    assert "skipped 1 unreadable image" in r.out and "broken.jpg" in r.out
    assert "8 images 16x16x3, 2 classes" in r.out
    assert ckpt(out)["class_names"] == ["cats", "dogs"] and ckpt(out)["config"]["num_classes"] == 2
    r = cli("train.py", "vae", *args[:-8], "--out", tmp_path / "again", "--batch-size", 4, "--grid", 4)
    assert r.returncode == 0 and "decoding" not in r.out, r.out                 # the cache was reused
    r = cli("sample.py", out / "ckpt.pt", "-n", 4, "--label", "dogs", "--out", str(tmp_path / "dogs") + "/")
    assert r.returncode == 0, r.out
    assert len(os.listdir(tmp_path / "dogs" / "dogs")) == 4                     # class subfolders
    r = cli("sample.py", out / "ckpt.pt", "--label", "horses")
    assert r.returncode == 1 and "unknown label 'horses'" in r.out and "cats, dogs" in r.out


@pytest.mark.parametrize("args, message", [
    (["vae", "--data", "/no/such/folder"], "no such folder: /no/such/folder"),
    (["vae", "--data", "EMPTY"], "no images found in"),
    (["vae", "--data", "EMPTY", "--classes"], "needs one subfolder per class"),
    (["wavenet"], "unknown model 'wavenet'"),
    (["vae", "--image-size", 20], "power of two"),
    (["vae", "--resume"], "no checkpoint at"),
])
def test_bad_input_gets_one_clear_line(cli, tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    args = [str(tmp_path / "empty") if a == "EMPTY" else a for a in args]
    fresh = message.startswith("unknown model")                # one case through a real interpreter, exit status and all
    r = cli("train.py", *args, "--out", tmp_path / "run", fresh=fresh)
    assert r.returncode == 1 and message in r.out, r.out
    assert "Traceback" not in r.out and len(r.stderr.strip().splitlines()) == 1


def test_wrong_checkpoints(cli, tmp_path):
    out = tmp_path / "run"
    assert cli("train.py", "vae", "--steps", 2, "--out", out, *TINY).returncode == 0
    r = cli("train.py", "vae", "--steps", 2, "--out", out, *TINY)
    assert r.returncode == 1 and "exists: add --resume" in r.out                 # never overwritten silently
    other = ckpt(out)
    other["model"] = "ddpm"
    torch.save(other, tmp_path / "other.pt")
    os.replace(tmp_path / "other.pt", out / "ckpt.pt")
    r = cli("train.py", "vae", "--resume", "--out", out)
    assert r.returncode == 1 and "holds a 'ddpm' model, not 'vae'" in r.out
    (tmp_path / "junk.pt").write_bytes(b"junk")
    r = cli("sample.py", tmp_path / "junk.pt", fresh=True)
    assert r.returncode == 1 and "not a readable checkpoint" in r.out and "Traceback" not in r.out


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(cli, tmp_path):
    out = tmp_path / "run"
    assert cli("train.py", "vae", "--steps", 10, "--out", out, *TINY).returncode == 0
    good = ckpt(out)
    r = cli("train.py", "vae", "--resume", "--steps", 30, "--ckpt-every", 5, "--beta", "nan", "--out", out, fresh=True)
    assert r.returncode == 1 and "NaN" in r.out and "Traceback" not in r.out, r.out
    kept = ckpt(out)
    assert kept["step"] == 10 and all(torch.equal(kept["weights"][k], v) for k, v in good["weights"].items())


def test_ctrl_c_saves(cli, tmp_path):
    out = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "train.py", "vae", "--steps", "100000", "--out", str(out),
                          *map(str, TINY[:-2]), "--log-every", "1"], cwd=ROOT, env=cli.env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in p.stdout:
        if line.startswith("step") and "/100000" in line and int(line.split()[1].split("/")[0]) >= 3:
            break
    p.send_signal(signal.SIGINT)
    rest = p.communicate(timeout=120)[0]
    assert p.returncode == 130 and "interrupted at step" in rest, rest
    assert 3 <= ckpt(out)["step"] < 100_000


def test_torchrun_two_processes_on_cpu(tmp_path, cli):
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
                        "train.py", "vae", "--steps", "6", "--out", str(out), *map(str, TINY)],
                       cwd=ROOT, env=cli.env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "x 2 processes" in r.stdout and r.stdout.count("done:") == 1
    assert os.listdir(out).count("ckpt.pt") == 1 and ckpt(out)["step"] == 6
