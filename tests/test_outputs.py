"""support/outputs.py (issue 42, items 0 and 1): no command writes over a file the user
would lose (an input of the command, a checkpoint, a run's log: `spares`), refused in one
line before any work, the file unchanged; and no output of sample.py --input or --invert
writes over another, whatever names the inputs share (support/translate.py's `names`)."""
import json
import os
import pytest
import torch
from PIL import Image
from support.cli import Fail, build_model, save_checkpoint
from support.scenes import NAMES
from support.translate import names

TINY = {
    "srgan": dict(image_size=8, channels=3, content="mse", B=1, ngf=4, ndf=4),
    "cyclegan": dict(image_size=8, channels=3, ngf=4, ndf=4, n_blocks=1, n_layers=1),
    "pix2pix": dict(image_size=16, channels=3, ngf=4, ndf=4, n_layers=1),
    "stargan": dict(image_size=8, channels=3, num_classes=2, ngf=4, ndf=4, n_blocks=1),
    "gan": dict(image_size=8, channels=3, z_dim=4, hidden=16),
    "vae": dict(image_size=8, channels=3, z_dim=4, ch=4),
    "ddpm": dict(image_size=8, channels=3, T=10, ch=32, ch_mult=(1,), num_res_blocks=1,
                 attn_res=()),
}
TRANSLATE = ["srgan", "cyclegan", "pix2pix", "stargan"]


def picture(path, colour, size=8):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", (size, size), colour).save(path)
    return path


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    """An untrained checkpoint of each model above, a run's log, images whose names clash
    (x/a.png, x/a.bmp, y/a.png) and a test folder of class subfolders 0/ and 1/, 4 images
    each (stargan's domains, a classifier's classes)."""
    tmp = tmp_path_factory.mktemp("outputs")
    found = {}
    for name, config in TINY.items():
        torch.manual_seed(0)
        weights = build_model(name, config).state_dict()
        found[name] = tmp / "runs" / name / "ckpt.pt"
        found[name].parent.mkdir(parents=True)
        ck = dict(model=name, config=config, step=0, args={}, class_names=None,
                  weights=weights, ema=None, optimizers=[], rng={})
        save_checkpoint(str(found[name]), ck)
    found["log"] = tmp / "runs" / "vae" / "log.jsonl"
    found["log"].write_text("".join(json.dumps({"step": s, "loss": 1 / s}) + "\n"
                                    for s in (1, 2, 3)))
    found["x"] = tmp / "clash" / "x"
    found["y"] = tmp / "clash" / "y"
    for i, f in enumerate(["x/a.png", "x/a.bmp", "y/a.png"]):
        picture(tmp / "clash" / f, (60 * i, 120, 200), 16)
    found["test"] = tmp / "test"
    for c in range(2):
        for i in range(4):
            picture(found["test"] / str(c) / f"{'ab'[c]}{i}.png", (200 * c, 60 * i, 90))
    return found


def refuses(cli, message, kept, script, *args):
    """`script args` is refused: one line naming message, exit status 1, and each file of
    kept as it was before."""
    before = [open(p, "rb").read() for p in kept]
    r = cli(script, *args)
    assert r.returncode == 1 and message in r.stderr, r.out
    assert r.stderr.startswith("error: "), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    for path, old in zip(kept, before):
        assert open(path, "rb").read() == old, f"{path} was written over"
    return r


# ------------------------------------------ item 0: never over the user's files

@pytest.mark.parametrize("name", TRANSLATE)
def test_sample_input_folder_into_itself_is_refused(cli, tmp_path, places, name):
    """--input DIR --out DIR/ would write each output over the input of its name (stargan:
    DIR/<domain>/<name>.png, over the inputs where DIR has a folder per domain)."""
    folder = places["test"] if name == "stargan" else tmp_path / "photos"
    a = folder / "0" / "a0.png" if name == "stargan" else picture(folder / "a.png", (9, 9, 9))
    refuses(cli, f"--out would replace {a}, an input of this command", [a],
            "sample.py", places[name], "--input", folder, "--out", f"{folder}/")


def test_sample_grid_over_its_input_is_refused(cli, tmp_path, places):
    """The same file, however it is spelled or linked."""
    a = picture(tmp_path / "a.png", (10, 200, 30), 16)
    (tmp_path / "link.png").symlink_to(a)
    for out in (a, tmp_path / "link.png"):
        refuses(cli, "an input of this command", [a],
                "sample.py", places["pix2pix"], "--input", a, "--out", out)


def test_sample_over_a_picture_of_an_input_folder_is_refused(cli, tmp_path, places):
    """A grid named as an image of the --input folder would replace it too."""
    a = picture(tmp_path / "in" / "a.png", (10, 200, 30), 16)
    refuses(cli, "an input of this command", [a],
            "sample.py", places["cyclegan"], "--input", a.parent, "--out", a)


def test_sample_folder_over_an_input_is_refused(cli, tmp_path, places):
    """--out DIR/'s files (00000.png, ...) are named before any sampling: one of them is the
    image --init reads."""
    init = picture(tmp_path / "out" / "00001.png", (10, 200, 30))
    refuses(cli, f"--out would replace {init}, an input of this command", [init],
            "sample.py", places["ddpm"], "--init", init, "-n", 2, "--steps", 2,
            "--out", f"{tmp_path / 'out'}/")


def test_invert_folder_into_itself_is_refused(cli, places, tmp_path):
    """--invert DIR --out DIR/; and a grid whose _loss.png is an image of DIR."""
    folder = tmp_path / "faces"
    a = picture(folder / "a.png", (10, 200, 30))
    invert = ["sample.py", places["gan"], "--invert", folder, "--invert-steps", 1]
    refuses(cli, f"{a}, an input of this command", [a], *invert, "--out", f"{folder}/")
    loss = picture(folder / "b_loss.png", (0, 0, 0))
    refuses(cli, f"{loss}, an input of this command", [a, loss],
            *invert, "--out", folder / "b.png")


@pytest.mark.parametrize("target", ["ckpt", "log", "sample"])
def test_evaluate_json_is_refused_over_a_checkpoint_a_log_or_an_input(cli, places, target):
    path = {"ckpt": places["vae"], "log": places["log"], "sample": places["x"] / "a.png"}
    refuses(cli, f"--json would replace {path[target]}", [path[target]],
            "evaluate.py", places["x"], "--pairs", places["y"], "--json", path[target])


def test_evaluate_retrains_a_classifier_in_its_own_file(cli, tmp_path, places):
    """--train-classifier --out: a classifier of its kind may be replaced, nothing else."""
    argv = ["--train-classifier", places["test"], "--epochs", 1, "--image-size", 8,
            "--width", 2]
    clf = tmp_path / "clf.pt"
    for _ in range(2):
        r = cli("evaluate.py", *argv, "--out", clf)
        assert r.returncode == 0 and clf.exists(), r.out
    refuses(cli, "exists and is not a classifier", [places["vae"]],
            "evaluate.py", *argv, "--out", places["vae"])


@pytest.mark.parametrize("target", ["ckpt", "log", "data"])
def test_bench_json_is_refused_before_any_model_runs(cli, places, target):
    path = {"ckpt": places["vae"], "log": places["log"], "data": places["x"] / "a.png"}[target]
    r = refuses(cli, f"--json would replace {path}", [path], "measure/bench.py", "--quick",
                "--model", "vae", "--data", places["x"], "--json", path)
    assert "bench: vae" not in r.out


def test_curves_never_draw_over_their_own_log(cli, tmp_path, places):
    """Over the log it reads (log.jsonl, or a copy under another name), or a checkpoint."""
    copy = tmp_path / "old.jsonl"
    copy.write_bytes(places["log"].read_bytes())
    for log in (places["log"], copy):
        refuses(cli, f"--out would replace {log}", [log],
                "measure/curves.py", log, "--out", log)
    refuses(cli, "a checkpoint", [places["vae"]],
            "measure/curves.py", places["log"], "--out", places["vae"])
    r = cli("measure/curves.py", places["log"], "--out", tmp_path / "c.png")
    assert r.returncode == 0 and (tmp_path / "c.png").exists(), r.out


def test_guidance_classifier_never_over_a_run(cli, places):
    """python -m support.guidance --out: never the DDPM it guides, nor a log."""
    for path in (places["ddpm"], places["log"]):
        refuses(cli, str(path), [path], "support/guidance.py", "--data", places["test"],
                "--classes", "--ddpm", places["ddpm"], "--steps", 1, "--out", path)


def test_scenes_never_over_their_conditions(cli, tmp_path):
    """--conditions DIR/0.png (a conditions file, oddly named) with --out DIR: scene 0 would
    replace it."""
    sets = tmp_path / "lab" / "0.png"
    sets.parent.mkdir()
    sets.write_text(json.dumps([["red square"], ["blue circle"]]))
    assert {"red square", "blue circle"} <= set(NAMES)
    refuses(cli, f"--out would replace {sets}, an input of this command", [sets],
            "support/scenes.py", "--out", sets.parent, "--conditions", sets,
            "--image-size", 8)


# ------------------------------------------ item 1: no output over another

def test_names_never_clash():
    """A file's name; where names clash, the folder, then the extension; taken names avoided;
    the same file twice refused."""
    assert names(["p/cat.jpg", "p/dog.png"]) == ["cat", "dog"]
    assert names(["p/x/a.png", "p/y/a.png", "p/b.png"]) == ["x_a", "y_a", "b"]
    assert names(["p/x/a.png", "p/x/a.bmp", "p/y/a.png"]) == ["x_a_png", "x_a_bmp", "y_a"]
    assert names(["p/loss.png", "p/a.png"], taken=("loss",)) == ["loss_png", "a"]
    pairs = [("p/A/a.png", "p/B/a.png"), ("q/A/a.png", "q/B/a.png")]
    assert names(pairs) == ["p_A_a", "q_A_a"]
    with pytest.raises(Fail, match="would each be written as a.png"):
        names(["p/a.png", "p/./a.png"])


@pytest.mark.parametrize("name", TRANSLATE)
def test_sample_input_folders_sharing_names_keep_every_output(cli, tmp_path, places, name):
    """x/a.png, x/a.bmp and y/a.png: three outputs (in each domain's folder for stargan)."""
    out = tmp_path / "out"
    r = cli("sample.py", places[name], "--input", places["x"], "--input", places["y"],
            "--out", f"{out}/")
    assert r.returncode == 0, r.out
    folders = ["0", "1"] if name == "stargan" else [""]
    for folder in folders:
        written = sorted(os.listdir(out / folder))
        assert written == ["x_a_bmp.png", "x_a_png.png", "y_a.png"], written


def test_invert_keeps_every_output(cli, tmp_path, places):
    """a.png and a.bmp, and an image named loss.png beside them: each reconstruction its own
    file, and edits.png and loss.png the command's own."""
    folder = tmp_path / "faces"
    for i, f in enumerate(["a.png", "a.bmp", "loss.png"]):
        picture(folder / f, (60 * i, 120, 200))
    out = tmp_path / "out"
    r = cli("sample.py", places["gan"], "--invert", folder, "--invert-steps", 1,
            "--out", f"{out}/")
    assert r.returncode == 0, r.out
    assert sorted(os.listdir(out)) == ["a_bmp.png", "a_png.png", "edits.png", "loss.png",
                                       "loss_png.png"]
