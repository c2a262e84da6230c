"""The command line end to end: train.py and sample.py on the built-in data and on image folders,
resume, sampling, every bad input, Ctrl-C, and a 2-process torchrun run on the CPU."""
import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
import numpy as np
import pytest
import torch
from PIL import Image
from conftest import ROOT

TINY = ["--image-size", 16, "--ch", 8, "--z-dim", 8, "--batch-size", 16, "--grid", 4,
        "--log-every", 5]


def ckpt(out):
    return torch.load(os.path.join(out, "ckpt.pt"), weights_only=True)


def test_train_resume_sample(cli, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "ckpt.pt.tmp").write_bytes(b"half a checkpoint, left by a killed run")
    r = cli("train.py", "vae", "--steps", 20, "--out", out, *TINY)
    assert r.returncode == 0, r.out
    assert "removed" in r.out and not os.path.exists(out / "ckpt.pt.tmp")
    assert "img/s" in r.out and "recon" in r.out and "kl" in r.out         # the progress line
    assert ckpt(out)["step"] == 20 and os.path.exists(out / "samples_000020.png")
    assert [json.loads(l)["step"] for l in open(out / "log.jsonl")] == [1, 5, 10, 15, 20]

    r = cli("train.py", "vae", "--resume", "--steps", 30, "--out", out)   # the rest: its checkpoint
    assert r.returncode == 0, r.out
    assert ckpt(out)["step"] == 30 and ckpt(out)["config"]["z_dim"] == 8

    r = cli("sample.py", out / "ckpt.pt", "-n", 6, "--out", tmp_path / "grid.png",
            "--temperature", 0.5)
    assert r.returncode == 0, r.out
    grid = Image.open(tmp_path / "grid.png")
    assert grid.size == (3 * 18 + 2, 2 * 18 + 2)               # 3 x 2 grid of 16px, 2px gaps
    r = cli("sample.py", out / "ckpt.pt", "-n", 5, "--batch-size", 2,
            "--out", str(tmp_path / "each") + "/")
    assert r.returncode == 0, r.out
    assert sorted(os.listdir(tmp_path / "each")) == [f"{i:05d}.png" for i in range(5)]
    r = cli("sample.py", out / "ckpt.pt", "-n", 3, "--gif", "--frames", 6,
            "--out", tmp_path / "walk.png")
    assert r.returncode == 0, r.out
    assert Image.open(tmp_path / "walk.gif").n_frames > 1
    assert os.path.exists(tmp_path / "walk_strip.png")


def test_resume_applies_the_settings_it_prints(cli, tmp_path):
    """--resume --lr 1e-30: the printed lr is the one used (the optimizer's state once restored the
    old one), so the weights stay where the checkpoint left them (Adam's steps of about lr vanish
    in float32 rounding); the BatchNorm statistics still move."""
    out = tmp_path / "run"
    assert cli("train.py", "vae", "--steps", 10, "--out", out, *TINY).returncode == 0
    before = ckpt(out)
    r = cli("train.py", "vae", "--resume", "--steps", 14, "--lr", 1e-30, "--out", out)
    assert r.returncode == 0 and "changed on resume: lr 0.001 -> 1e-30" in r.out, r.out
    after = ckpt(out)
    learned = [k for k, v in before["weights"].items()
               if v.is_floating_point() and "running" not in k]
    assert len(learned) > 10
    assert all(torch.equal(before["weights"][k], after["weights"][k]) for k in learned)
    stats = [k for k in before["weights"] if "running_mean" in k]
    assert stats and not all(torch.equal(before["weights"][k], after["weights"][k]) for k in stats)


def test_resume_continues_exactly(cli, tmp_path):
    """20 steps + 20 resumed steps give the very weights of 40 steps in one go: the same
    batches, optimizer state and random numbers."""
    a, b = tmp_path / "a", tmp_path / "b"
    assert cli("train.py", "vae", "--steps", 20, "--out", a, *TINY).returncode == 0
    assert cli("train.py", "vae", "--steps", 40, "--out", a, "--resume").returncode == 0
    assert cli("train.py", "vae", "--steps", 40, "--out", b, *TINY).returncode == 0
    wa, wb = ckpt(a)["weights"], ckpt(b)["weights"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_the_grids_draw_one_fixed_noise_and_take_none_of_trainings(cli, tmp_path):
    """Each progress grid samples on its own seed: with the weights held still (--lr 1e-30, a
    GAN without BatchNorm), every grid is the same picture; and drawing a grid at every step
    leaves training's random numbers alone: the same weights as a run with no grid between."""
    gan = ["gan", "--image-size", 8, "--hidden", 16, "--batch-size", 16, "--grid", 4,
           "--steps", 2]
    still, every, last = tmp_path / "still", tmp_path / "every", tmp_path / "last"
    assert cli("train.py", *gan, "--lr", 1e-30, "--sample-every", 1, "--out", still).returncode == 0
    grids = [np.asarray(Image.open(still / f"samples_{s:06d}.png")) for s in (1, 2)]
    assert all(np.array_equal(grids[0], g) for g in grids[1:])
    assert cli("train.py", *gan, "--sample-every", 1, "--out", every).returncode == 0
    assert cli("train.py", *gan, "--out", last).returncode == 0
    wa, wb = ckpt(every)["weights"], ckpt(last)["weights"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def write_images(folder):
    """Mixed sizes and formats, one grayscale, one RGBA and one corrupt file, in two class
    folders."""
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate([(40, 30), (64, 64), (178, 218), (30, 50), (90, 60), (33, 33)]):
        d = folder / ("cats" if i % 2 else "dogs")
        d.mkdir(parents=True, exist_ok=True)
        arr = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        Image.fromarray(arr).save(d / f"{i}.{'jpg' if i % 3 else 'png'}")
    gray = rng.integers(0, 255, (20, 20), dtype=np.uint8)
    Image.fromarray(gray, "L").save(folder / "dogs" / "gray.png")
    rgba = rng.integers(0, 255, (20, 24, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(folder / "cats" / "rgba.png")
    (folder / "cats" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "cats" / "notes.txt").write_text("not an image")


def test_folder_of_images_with_classes(cli, tmp_path):
    write_images(tmp_path / "imgs")
    out = tmp_path / "run"
    args = ["--data", tmp_path / "imgs", "--classes", "--steps", 4, "--out", out, *TINY[:-4],
            "--batch-size", 4, "--grid", 4]
    r = cli("train.py", "vae", *args)
    assert r.returncode == 0, r.out
    assert "skipped 1 unreadable image" in r.out and "broken.jpg" in r.out
    assert "8 images 16x16x3, 2 classes" in r.out
    assert ckpt(out)["class_names"] == ["cats", "dogs"] and ckpt(out)["config"]["num_classes"] == 2
    r = cli("train.py", "vae", *args[:-8], "--out", tmp_path / "again", "--batch-size", 4,
            "--grid", 4)
    assert r.returncode == 0 and "decoding" not in r.out, r.out        # the cache was reused
    r = cli("sample.py", out / "ckpt.pt", "-n", 4, "--label", "dogs",
            "--out", str(tmp_path / "dogs") + "/")
    assert r.returncode == 0, r.out
    assert len(os.listdir(tmp_path / "dogs" / "dogs")) == 4                     # class subfolders
    r = cli("sample.py", out / "ckpt.pt", "--label", "horses")
    assert r.returncode == 1 and "unknown label 'horses'" in r.out and "cats, dogs" in r.out


def test_class_folders_hold_the_class_each_sample_was_drawn_with(cli, tmp_path, monkeypatch):
    """sample.py -n 7 --batch-size 3: the labels the model is given, batch after batch, are the
    folders the samples land in (every class in turn over all 7, not restarting with each batch)."""
    import vae
    write_images(tmp_path / "imgs")
    out = tmp_path / "run"
    r = cli("train.py", "vae", "--data", tmp_path / "imgs", "--classes", "--steps", 1,
            "--out", out, *TINY[:-4], "--batch-size", 4, "--grid", 4)
    assert r.returncode == 0
    given = []
    draw = vae.VAE.sample

    def noted(self, n, y=None, **k):
        given.append(self.labels_for(n, y).cpu())
        return draw(self, n, y, **k)
    monkeypatch.setattr(vae.VAE, "sample", noted)
    r = cli("sample.py", out / "ckpt.pt", "-n", 7, "--batch-size", 3,
            "--out", str(tmp_path / "s") + "/")
    assert r.returncode == 0
    drawn_with = torch.cat(given).tolist()
    folders = {f: c for c in ("cats", "dogs") for f in os.listdir(tmp_path / "s" / c)}
    assert [("cats", "dogs")[drawn_with[i]] for i in range(7)] == \
        [folders[f"{i:05d}.png"] for i in range(7)]


def test_wrong_checkpoints(cli, tmp_path):
    out = tmp_path / "run"
    assert cli("train.py", "vae", "--steps", 2, "--out", out, *TINY).returncode == 0
    r = cli("train.py", "vae", "--steps", 2, "--out", out, *TINY)
    assert r.returncode == 1 and "exists: add --resume" in r.out     # never overwritten silently
    other = ckpt(out)
    other["model"] = "ddpm"
    torch.save(other, tmp_path / "other.pt")
    os.replace(tmp_path / "other.pt", out / "ckpt.pt")
    r = cli("train.py", "vae", "--resume", "--out", out)
    assert r.returncode == 1 and "holds a 'ddpm' model, not 'vae'" in r.out
    (tmp_path / "junk.pt").write_bytes(b"junk")
    r = cli("sample.py", tmp_path / "junk.pt", fresh=True)
    assert r.returncode == 1 and "not a readable checkpoint" in r.out and "Traceback" not in r.out


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(cli, tmp_path, monkeypatch):
    """A run that diverges (here its KL made NaN on resume: --beta nan is refused by its range)."""
    import vae
    out = tmp_path / "run"
    assert cli("train.py", "vae", "--steps", 10, "--out", out, *TINY).returncode == 0
    good = ckpt(out)
    loss = vae.VAE.loss

    def diverged(self, x, y=None):
        terms = loss(self, x, y)
        return {**terms, "kl": terms["kl"] * float("nan")}
    monkeypatch.setattr(vae.VAE, "loss", diverged)
    r = cli("train.py", "vae", "--resume", "--steps", 30, "--ckpt-every", 5, "--out", out)
    assert r.returncode == 1 and "NaN" in r.out and "Traceback" not in r.out, r.out
    assert "(step 10) is the last good checkpoint" in r.out
    kept = ckpt(out)
    assert kept["step"] == 10
    assert all(torch.equal(kept["weights"][k], v) for k, v in good["weights"].items())


@pytest.fixture
def one_thread():
    """Tiny networks: one thread is faster, and on a busy CPU far faster, than several."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def one_line(r, *says):
    """A mistake of the run told in one line on stderr, exit status 1, no traceback."""
    assert r.returncode == 1 and "Traceback" not in r.out, r.out
    assert len(r.stderr.strip().splitlines()) == 1 and all(s in r.stderr for s in says), r.out


def full_disk_from(monkeypatch, k, error):
    """train.py's checkpoints failing as on a full disk from the k-th on: half of ckpt.pt.tmp
    written, then torch.save's own error (a RuntimeError) or an OSError(ENOSPC)."""
    import train
    save = train.save_checkpoint
    calls = [0]

    def full(path, state):
        calls[0] += 1
        if calls[0] < k:
            return save(path, state)
        with open(path + ".tmp", "wb") as f:
            f.write(b"half a checkpoint")
        raise error
    monkeypatch.setattr(train, "save_checkpoint", full)


ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("error", [ENOSPC, RuntimeError("[enforce fail at inline_container.cc:672]"
                                                        " . unexpected pos 704 vs 598")])
@pytest.mark.usefixtures("one_thread")
def test_a_full_disk_at_a_checkpoint_keeps_the_last_good_one(cli, tmp_path, monkeypatch, error):
    out = tmp_path / "run"
    full_disk_from(monkeypatch, 2, error)                       # step 5 saved, step 10 not
    r = cli("train.py", "vae", *TINY, "--steps", 10, "--ckpt-every", 5, "--out", out)
    one_line(r, f"cannot write {out}/ckpt.pt (", "(step 5) is the last good checkpoint")
    assert ckpt(out)["step"] == 5 and not os.path.exists(out / "ckpt.pt.tmp")


@pytest.mark.usefixtures("one_thread")
def test_a_full_disk_at_the_ctrl_c_save_keeps_the_last_good_one(cli, tmp_path, monkeypatch):
    from test_resume import ctrl_c_after
    import train
    out = tmp_path / "run"
    full_disk_from(monkeypatch, 2, ENOSPC)                      # step 2 saved; Ctrl-C's, at 3, not
    monkeypatch.setattr(train, "train_step", ctrl_c_after(3))
    r = cli("train.py", "vae", *TINY, "--steps", 10, "--ckpt-every", 2, "--out", out)
    one_line(r, "No space left on device", "(step 2) is the last good checkpoint")
    assert ckpt(out)["step"] == 2 and not os.path.exists(out / "ckpt.pt.tmp")


@pytest.mark.usefixtures("one_thread")
def test_a_full_disk_at_the_final_grid(cli, tmp_path, monkeypatch):
    out = tmp_path / "run"

    def full(self, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
    monkeypatch.setattr(Image.Image, "save", full)
    r = cli("train.py", "vae", *TINY, "--steps", 4, "--out", out)
    one_line(r, f"cannot write {out}/samples_000004.png (No space left on device)",
             "(step 4) is the last good checkpoint")
    assert ckpt(out)["step"] == 4


@pytest.mark.parametrize("name, flags, sampler", [
    ("vae", TINY, ""),
    ("ddpm", ["--image-size", 8, "--T", 20, "--ch", 32, "--ch-mult", 1, "--num-res-blocks", 1,
              "--attn-res", 8, "--batch-size", 4, "--grid", 2], " (--preview-sampler ")])
@pytest.mark.usefixtures("one_thread")
def test_samples_that_are_not_finite_stop_the_run_unwritten(cli, tmp_path, monkeypatch, name,
                                                            flags, sampler):
    """A grid with a NaN is never written (a black PNG would look like a result): it stops the
    run as a NaN loss does, saying which step and, for diffusion, which preview sampler."""
    from support.cli import model_class
    out = tmp_path / "run"
    size = flags[1]

    def nan(self, n, *args, **kwargs):
        x = torch.zeros(n, 3, size, size)
        x[-1, 0, 0, 0] = float("nan")
        return x
    monkeypatch.setattr(model_class(name), "sample", nan)
    r = cli("train.py", name, *flags, "--steps", 4, "--ckpt-every", 2, "--sample-every", 2,
            "--out", out)
    one_line(r, f"the samples of step 2{sampler}", "hold NaN/inf", "not written",
             "(step 2) is the last good checkpoint")
    assert not [f for f in os.listdir(out) if f.startswith("samples_")]
    assert ckpt(out)["step"] == 2


def same_run(a, b):
    """Two checkpoints of one step, bit for bit: weights (G, D, BatchNorm statistics) and Adam's
    moments."""
    def moments(ck):
        return torch.cat([s["state"][i]["exp_avg"].flatten()
                          for s in ck["optimizers"] for i in s["state"]])
    same_weights = all(torch.equal(a["weights"][k], b["weights"][k]) for k in b["weights"])
    return a["step"] == b["step"] and same_weights and torch.equal(moments(a), moments(b))


def test_ctrl_c_inside_a_step_saves_whole_steps(cli, tmp_path, monkeypatch):
    """Ctrl-C lands just after D's update of a random step, before G's: the checkpoint still holds
    whole steps, so the interrupted run, resumed, ends bit for bit where an uninterrupted run
    ends."""
    a, b = tmp_path / "a", tmp_path / "b"
    flags = ["--image-size", 16, "--ngf", 8, "--ndf", 8, "--batch-size", 8, "--grid", 4,
             "--log-every", 1]
    calls = [0]
    when = 2 * random.randint(2, 6) + 1                         # an odd call: a D update
    step = torch.optim.Adam.step

    def step_then_ctrl_c(self, *args, **kwargs):
        result = step(self, *args, **kwargs)
        calls[0] += 1
        if calls[0] == when:
            os.kill(os.getpid(), signal.SIGINT)
        return result
    monkeypatch.setattr(torch.optim.Adam, "step", step_then_ctrl_c)
    r = cli("train.py", "dcgan", "--steps", 100, "--out", a, *flags)
    monkeypatch.undo()
    assert r.returncode == 130 and "interrupted (SIGINT)" in r.out, r.out
    assert ckpt(a)["step"] == when // 2 + 1
    assert cli("train.py", "dcgan", "--resume", "--steps", 10, "--out", a).returncode == 0
    assert cli("train.py", "dcgan", "--steps", 10, "--out", b, *flags).returncode == 0
    assert same_run(ckpt(a), ckpt(b))


def test_sigterm_saves_and_resume_is_exact(cli, tmp_path):
    """SIGTERM, which clusters send before they kill a job, at a random moment of a real process:
    it saves whole steps, exits with 128 + 15, and the resumed run matches an uninterrupted one."""
    a, b = tmp_path / "a", tmp_path / "b"
    command = [sys.executable, "train.py", "vae", "--steps", "100000", "--out", str(a),
               *map(str, TINY[:-2]), "--log-every", "1"]
    p = subprocess.Popen(command, cwd=ROOT, env=cli.env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    for line in p.stdout:
        if line.startswith("step") and int(line.split()[1].split("/")[0]) >= 3:
            break
    time.sleep(random.uniform(0, 0.05))                        # somewhere inside a later step
    p.send_signal(signal.SIGTERM)
    rest = p.communicate(timeout=120)[0]
    assert p.returncode == 128 + signal.SIGTERM and "interrupted (SIGTERM)" in rest, rest
    k = ckpt(a)["step"]
    assert cli("train.py", "vae", "--resume", "--steps", k + 3, "--out", a).returncode == 0
    assert cli("train.py", "vae", "--steps", k + 3, "--out", b, *TINY).returncode == 0
    assert same_run(ckpt(a), ckpt(b))


def test_torchrun_two_processes_on_cpu(tmp_path, cli):
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                        "--master_port=29533", "train.py", "vae", "--steps", "6",
                        "--out", str(out), *map(str, TINY)],
                       cwd=ROOT, env=cli.env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "x 2 processes" in r.stdout and r.stdout.count("done:") == 1
    assert os.listdir(out).count("ckpt.pt") == 1 and ckpt(out)["step"] == 6


def reverse_processes(monkeypatch):
    """The reverse processes DDPM runs from now on, as (step rule, number of steps)."""
    import ddpm
    seen = []
    reverse = ddpm.DDPM.reverse

    def noted(self, n, y, ts, sampler="ddpm", *a, **k):
        seen.append((sampler, len(ts)))
        return reverse(self, n, y, ts, sampler, *a, **k)
    monkeypatch.setattr(ddpm.DDPM, "reverse", noted)
    return seen


def test_diffusion_previews_use_the_fast_sampler(cli, tmp_path, monkeypatch):
    """The grids during training and the last one are drawn by the model's preview sampler (few
    steps), not the full chain; --preview-sampler and --preview-steps choose another. Seen in the
    reverse process each grid runs: which step rule, over how many steps. Class columns first, then
    an unconditional grid."""
    import ddpm
    seen = reverse_processes(monkeypatch)
    tiny = ["--image-size", 8, "--ch", 32, "--ch-mult", "1,2", "--num-res-blocks", 1,
            "--attn-res", 4, "--T", 100, "--batch-size", 4, "--grid", 2, "--steps", 4,
            "--sample-every", 2, "--log-every", 2]
    assert cli("train.py", "ddpm", "--classes", "--out", tmp_path / "fast", *tiny).returncode == 0
    fast = (ddpm.DDPM.preview["sampler"], ddpm.DDPM.preview["steps"])
    assert fast[1] < 100 and seen == [fast, fast]               # step 2 and the final grid
    assert os.path.exists(tmp_path / "fast" / "samples_000002.png")
    assert os.path.exists(tmp_path / "fast" / "samples_000004.png")
    seen.clear()
    r = cli("train.py", "ddpm", "--out", tmp_path / "full", *tiny, "--steps", 1,
            "--preview-sampler", "ddim", "--preview-steps", 100)
    assert r.returncode == 0 and seen == [("ddim", 100)], r.out   # the final grid: the whole chain


def random_classifier(path, channels=1, size=16):
    """A classifier file as evaluate.py --train-classifier writes it, with random weights: features
    enough to tell images apart, and FD 0 for identical sets whatever the weights."""
    from support.classifier import Classifier
    torch.manual_seed(0)
    config = dict(channels=channels, num_classes=3, width=8)
    net = Classifier(**config)
    torch.save(dict(model="classifier", config=config, class_names=list("abc"), image_size=size,
                    weights=net.state_dict()), path)
    return str(path)


def test_eval_every_logs_kid_and_fd_beside_the_loss(cli, tmp_path, monkeypatch):
    """--eval-every N: a quality record (KID with its std, FD, the sample count) in log.jsonl at
    every Nth step, and a line on stdout; none without the flag. A diffusion model samples them with
    its fast preview sampler."""
    clf = random_classifier(tmp_path / "clf.pt", channels=3)
    r = cli("train.py", "vae", *TINY, "--steps", 10, "--eval-every", 5, "--eval-n", 24,
            "--eval-features", clf, "--out", tmp_path / "a")
    assert r.returncode == 0 and r.out.count("quality at step") == 2, r.out
    checks = [l for l in map(json.loads, open(tmp_path / "a" / "log.jsonl")) if "KID" in l]
    assert [c["step"] for c in checks] == [5, 10] and all(c["eval_n"] == 24 for c in checks)
    assert all(np.isfinite([c["KID"], c["KID_std"], c["FD"]]).all() for c in checks)
    assert all(c["KID_std"] > 0 and c["FD"] > 0 for c in checks)
    assert cli("train.py", "vae", *TINY, "--steps", 5, "--out", tmp_path / "b").returncode == 0
    assert not any("KID" in l for l in open(tmp_path / "b" / "log.jsonl"))
    import ddpm
    seen = reverse_processes(monkeypatch)
    r = cli("train.py", "ddpm", "--classes", "--image-size", 8, "--ch", 32, "--ch-mult", "1",
            "--num-res-blocks", 1, "--attn-res", "", "--T", 100, "--batch-size", 4, "--grid", 2,
            "--steps", 1, "--eval-every", 1, "--eval-n", 6, "--eval-features", clf,
            "--out", tmp_path / "d")
    fast = (ddpm.DDPM.preview["sampler"], ddpm.DDPM.preview["steps"])
    # two batches (4 + 2) of samples, then the grid
    assert r.returncode == 0 and seen == [fast, fast, fast], r.out


def test_quality_compares_the_emas_samples_with_the_images_they_were_drawn_for(tmp_path):
    """quality on stand-ins: pairs whose target b is the input a negated, and a G that negates (a
    perfect pix2pix), give FD 0; a G that returns its input, or noise, does not. The EMA samples
    (not the trained model), in eval mode, on a forked RNG (training's noise untouched); for labels,
    G gets the labels of the very images it is compared with. The record goes to log.jsonl."""
    from contextlib import nullcontext
    from types import SimpleNamespace
    import evaluate
    from support.data import Batches
    from support.quality import quality

    class G(torch.nn.Module):
        def __init__(self, draw):
            super().__init__()
            self.draw = draw
            self.modes = []

        def sample(self, n, y):
            self.modes.append(self.training)
            return self.draw(n, y)

    proc = SimpleNamespace(device=torch.device("cpu"), cuda=False, autocast=nullcontext(),
                           log=lambda *a: None)
    args = dict(batch_size=16, seed=0, eval_n=40, quiet=True, out=str(tmp_path),
                eval_features="clf")
    features = evaluate.features_of(random_classifier(tmp_path / "clf.pt"), proc.device)
    dark = np.random.default_rng(0).integers(0, 100, (64, 8, 8, 1), dtype=np.uint8)
    a = torch.from_numpy(dark)                                  # dark inputs
    pairs = Batches(torch.cat([a, 255 - a], 3), None, 16, "cpu", 0, paired=True)   # b = -a

    def fd(model, ema=None, batches=pairs):
        model.train()
        before = torch.get_rng_state()
        quality(model, ema, batches, features, args, 7, proc)
        assert torch.equal(torch.get_rng_state(), before) and model.training
        return [json.loads(l) for l in open(tmp_path / "log.jsonl")][-1]["FD"]

    perfect = G(lambda n, a: -a)
    assert abs(fd(perfect)) < 1e-6 and perfect.modes == [False] * 3   # 40 samples, batches of 16
    assert fd(G(lambda n, a: a)) > 1e-3                                # G(a) = a: not b
    noise = G(lambda n, a: torch.rand_like(a) * 2 - 1)
    assert fd(noise) > 1e-3 and noise.modes == [False] * 3
    assert abs(fd(noise, ema=G(lambda n, a: -a))) < 1e-6          # the EMA drew them,
    assert len(noise.modes) == 3                                  # not the model
    y = torch.arange(64) % 4                                      # labels: class c, one grey level

    def level(y):                                               # (B, 1, 8, 8)
        return (y.float()[:, None, None, None] * 80 - 120).expand(-1, 1, 8, 8).round()
    images = (level(y) + 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)
    labelled = Batches(images, y, 16, "cpu", 0)
    assert abs(fd(G(lambda n, y: level(y) / 127.5), batches=labelled)) < 1e-6
    record = [json.loads(l) for l in open(tmp_path / "log.jsonl")][-1]
    assert record["step"] == 7 and record["eval_n"] == 40 and np.isfinite(record["KID"])


def test_curves_draw_the_log_and_refuse_a_missing_or_empty_one(cli, tmp_path):
    """python -m measure.curves LOG --out PNG: one panel per kind (loss terms, KID, FD, the lab's
    accuracy) stacked, each quantity a coloured line; a missing, empty or foreign file is one
    line."""
    from measure import curves
    log = tmp_path / "log.jsonl"
    lines = [{"step": s, "D.real": 1 / s, "G.gan": 0.5 + s / 100, "img_per_s": 10.0}
             for s in range(1, 101, 10)]
    lines += [{"step": s, "KID": 0.1, "KID_std": 0.01, "FD": 50.0 - s / 10, "eval_n": 8,
               "lab_acc_test": s / 200, "lab_acc_new_test": 0.1} for s in (50, 100)]
    log.write_text("\n".join(json.dumps(l) for l in lines) + "\n")
    r = cli("measure/curves.py", log, "--out", tmp_path / "c.png", "--height", 200)
    assert r.returncode == 0 and "loss terms, KID, FD, lab accuracy" in r.out, r.out
    im = np.asarray(Image.open(tmp_path / "c.png").convert("RGB")).astype(int)
    assert im.shape == (4 * 200, 720, 3)
    for i, colour in enumerate(curves.COLOURS[:2]):              # each panel's lines, in colour
        for p in range(4 if i == 0 else 1):
            part = im[200 * p:200 * (p + 1)]
            assert (np.abs(part - colour).sum(2) == 0).sum() > 20, (p, colour)
    panels = curves.series([json.loads(l) for l in log.read_text().splitlines()])
    assert {k: list(v) for k, v in panels.items()} == {
        "loss terms": ["D.real", "G.gan"], "KID": ["KID"], "FD": ["FD"],
        "lab accuracy": ["lab_acc_test", "lab_acc_new_test"]}
    assert panels["FD"]["FD"] == [(50, 45.0), (100, 40.0)]
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "other.jsonl").write_text('{"loss": 1}\n')
    for bad, says in ((tmp_path / "missing.jsonl", "cannot read"),
                      (tmp_path / "empty.jsonl", "holds no records"),
                      (tmp_path / "other.jsonl", "line 1, has no step"), (tmp_path, "a folder")):
        r = cli("measure/curves.py", bad, "--out", tmp_path / "d.png", fresh=bad == tmp_path)
        assert r.returncode == 1 and says in r.stderr, r.out
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.out, r.stderr
    assert not (tmp_path / "d.png").exists()


def test_curves_of_several_runs_share_a_panel_per_quantity(cli, tmp_path):
    """Several logs: one panel per quantity all of them hold (or --keys), one line per run,
    named by the run's folder; a --keys that a log lacks is one line. Catches a quantity kept
    when only one run holds it (mse, D.real), and --keys ignored."""
    from measure import curves
    for run, slope in (("ddpm", 1), ("dcgan", 2)):
        (tmp_path / run).mkdir()
        lines = [{"step": s, "loss": 1 / s, "lab_acc_test": slope * s / 1000} for s in (10, 20)]
        lines += [{"step": 30, "D.real": 0.5} if run == "dcgan" else {"step": 30, "mse": 0.2}]
        (tmp_path / run / "log.jsonl").write_text("\n".join(json.dumps(l) for l in lines))
    logs = [tmp_path / "ddpm" / "log.jsonl", tmp_path / "dcgan" / "log.jsonl"]
    runs = {p.parent.name: curves.read_log(p) for p in logs}
    assert curves.across(runs) == {"loss": {"ddpm": [(10, 0.1), (20, 0.05)],
                                            "dcgan": [(10, 0.1), (20, 0.05)]},
                                   "lab_acc_test": {"ddpm": [(10, 0.01), (20, 0.02)],
                                                    "dcgan": [(10, 0.02), (20, 0.04)]}}
    r = cli("measure/curves.py", *logs, "--keys", "lab_acc_test", "--out", tmp_path / "c.png")
    assert r.returncode == 0 and "lab_acc_test from 6 records" in r.out, r.out
    im = np.asarray(Image.open(tmp_path / "c.png").convert("RGB")).astype(int)
    assert im.shape == (260, 720, 3)
    for colour in curves.COLOURS[:2]:                                    # one line a run
        assert (np.abs(im - colour).sum(2) == 0).sum() > 20, colour
    r = cli("measure/curves.py", *logs, "--keys", "D.real", "--out", tmp_path / "d.png")
    assert r.returncode == 1 and "ddpm holds no D.real" in r.stderr, r.out
    assert not (tmp_path / "d.png").exists()


def test_curves_ticks_are_round_and_cover_the_range():
    """ticks: 1, 2 or 5 times a power of ten apart, from at or below the least value to at or
    above the greatest; a flat series still gets an axis."""
    from measure.curves import ticks
    t = ticks(0.13, 0.87)
    assert t[0] <= 0.13 and t[-1] >= 0.87 and len(t) <= 7
    gaps = np.diff(t)
    assert np.allclose(gaps, gaps[0])
    assert any(np.isclose(gaps[0] / 10.0 ** k, m) for k in range(-3, 3) for m in (1, 2, 5))
    assert ticks(1, 4, least=1) == [1, 2, 3, 4]
    flat = ticks(0.5, 0.5)
    assert flat[0] < 0.5 < flat[-1]


def test_stargan_on_the_built_in_shapes_takes_their_classes_as_domains(cli, tmp_path):
    """`train.py stargan` with no --data: the shapes' 12 classes are its domains."""
    r = cli("train.py", "stargan", "--image-size", 8, "--ngf", 4, "--ndf", 4, "--n-blocks", 1,
            "--batch-size", 4, "--grid", 4, "--steps", 2, "--out", tmp_path / "run")
    assert r.returncode == 0 and "12 classes from shapes" in r.out, r.out
    assert ckpt(tmp_path / "run")["config"]["num_classes"] == 12
