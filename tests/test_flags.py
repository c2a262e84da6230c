"""No flag silently ignored (issue 42): a flag given where it has no effect is refused in one
line before any work, through each model's `needs` and settings.py's NEEDS; and a walker
checks that those tables are complete: every keyword of every model, in every context of
the other boolean and choice keywords (one at a time) and of the condition, changes the
built model or its first training steps, unless the tables declare it off there."""
from contextlib import nullcontext
from types import SimpleNamespace
import pytest
import torch
from support.cli import MODELS, flag, hyperparameters, model_class
from support.settings import NEEDS, needs
from train import train_step

# the choice keywords (plain strings in __init__, checked there)
CHOICES = {"loss": ("bce", "wgan", "wgan-gp"), "g_loss": ("non-saturating", "saturating"),
           "reg": ("kl", "vq"), "content": ("perceptual", "mse"), "cond": ("add", "multiply"),
           "norm": ("batch", "instance"), "data": ("shapes", "scenes")}
# tiny networks: image size, the keywords the walk starts from
TINY = {
    "vae": (8, dict(ch=4, z_dim=4)),
    "gan": (8, dict(hidden=8, z_dim=4)),
    "dcgan": (8, dict(ngf=4, ndf=4, z_dim=4)),
    "dcgan-lab": (8, dict(ngf=4, ndf=4, z_dim=4)),
    "pix2pix": (16, dict(ngf=4, ndf=4, n_layers=1)),
    "cyclegan": (8, dict(ngf=4, ndf=4, n_blocks=1, n_layers=1, history=3)),
    "stylegan": (8, dict(ch=4, max_ch=6, z_dim=4, w_dim=4, n_mlp=1, mbstd_group=2,
                         fade_images=4, stable_images=4)),
    "progan": (8, dict(ch=4, max_ch=6, z_dim=4, mbstd_group=2, fade_images=4,
                       stable_images=4)),
    "ddpm": (8, dict(T=20, ch=32, ch_mult=(1,), num_res_blocks=1, attn_res=(8,))),
    "ldm": (8, dict(f=2, z_channels=2, ae_ch=32, ae_steps=1, T=20, ch=32, ch_mult=(1,),
                    num_res_blocks=1, attn_res=(4,), max_len=4, text_dim=8, text_layers=1,
                    codebook_size=4)),
    "stargan": (8, dict(ngf=4, ndf=4, n_blocks=1, n_critic=1)),
    "srgan": (8, dict(content="mse", B=1, ngf=4, ndf=4)),
}
# another value where doubling (halving a fraction) would not change anything, and for the
# keywords whose None is the paper's value
ALT = {"ch_mult": (1, 1), "attn_res": (), "p_uncond": 1.0, "betas": (0.0, 0.9)}
PAPERS = {"min_snr_gamma": 5.0, "lr": 1e-3, "n_critic": 2, "n_layers": 1}
# file keywords (a checkpoint to read), and what train.py fills in
FILES = ("ae", "vgg_weights", "features", "vocab")
# the condition's contexts: a model whose data are never labelled has none
UNCONDITIONAL = ("pix2pix", "cyclegan", "progan", "srgan")


def alt(key, v):
    """Another value of a keyword."""
    if v is None:
        return PAPERS[key]
    if key in ALT:
        return ALT[key]
    if key in CHOICES:
        return next(c for c in CHOICES[key] if c != v)
    if isinstance(v, bool):
        return not v
    if isinstance(v, int):
        return 2 * v or 1
    return v / 2 if v else 0.5


def unmet(name, other, test):
    """Flags that leave a need unmet: the other setting at a value that fails the test."""
    if other in ("conditional", "folder"):
        return []
    cls = model_class(name)
    hp = hyperparameters(cls.__init__)
    if test is None:
        return [flag(other), "x.pt"]
    if test is False:
        return [flag(other), *(["--classes"] if other == "acgan" else [])]
    if test is True or test is bool:
        default = hp[other].default if other in hp else None
        return [flag(other), "0"] if default else []
    choices = test if type(test) is tuple else (test,)
    fails = (lambda c: not test(c)) if callable(test) else (lambda c: c not in choices)
    return [flag(other), next(c for c in CHOICES[other] if fails(c))]


def met(other, test):
    """Flags that meet a need."""
    if other == "conditional":
        return ["--classes"]
    if other == "folder":
        return ["--data", "photos"]
    if test is None or test is False:
        return []
    if test is True or test is bool:
        return [flag(other)]
    return [flag(other), test[0] if type(test) is tuple else test]


def given(name, key):
    """A flag and a value for it."""
    hp = hyperparameters(model_class(name).__init__)
    if key in ("classes", "captions"):
        return [flag(key)]
    if key not in hp:
        return [flag(key), {"eval_n": "4", "resize": "squash"}.get(key, "x.json")]
    v = hp[key].default
    if isinstance(v, bool):
        return [flag(key)]
    if v is None:
        return [flag(key), "x.pt" if key in FILES else "2"]
    v = alt(key, v)
    return [flag(key), ",".join(map(str, v)) if isinstance(v, tuple) else str(v)]


CASES = [(name, key, other, test)
         for name in MODELS
         for key, need in (NEEDS | getattr(model_class(name), "needs", {})).items()
         for other, test in need.items()
         if key not in NEEDS or name == "ldm"]


@pytest.mark.parametrize("name, key, other, test", CASES)
def test_a_flag_without_its_need_is_refused(cli, tmp_path, name, key, other, test):
    """Each entry of each table: the flag given, its need unmet -> one line naming it, before
    any work (no --out made)."""
    need = (NEEDS | getattr(model_class(name), "needs", {}))[key]
    others = [a for o, t in need.items() if o != other for a in met(o, t)]
    argv = [name, *given(name, key), *others, *unmet(name, other, test)]
    # --steps 0 --grid 1: where the check is missing, the run ends at once
    r = cli("train.py", *argv, "--steps", 0, "--grid", 1, "--out", tmp_path / "run")
    assert r.returncode == 1 and r.stderr.startswith("error: "), (argv, r.out)
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert f"{flag(key)} has no effect" in r.stderr, (argv, r.stderr)
    assert other in ("conditional", "folder") or flag(other) in r.stderr, r.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv", [
    ["ddpm", "--cond", "multiply", "--classes"],
    ["stylegan", "--progressive", "--fade-images", "8"],
    ["gan", "--loss", "wgan-gp", "--gp-lambda", "5"],
    ["gan", "--beta1", "0.3"],
    ["ldm", "--captions", "--max-len", "4"],
    ["srgan", "--content", "mse", "--B", "1"],
    ["ldm", "--captions", "--p-uncond", "0.2"],
    ["vae", "--data", "photos", "--resize", "squash", "--eval-every", "5", "--eval-n", "8"],
])
def test_a_flag_with_its_need_passes_the_check(tmp_path, argv):
    """The check refuses only what has no effect: the same flags with their need met."""
    from support.settings import parse, settings
    name, cls, flags = parse(argv, "")
    settings(name, cls, {**flags, "out": str(tmp_path / "run")})


@pytest.mark.parametrize("argv, message", [
    (["ddpm", "--cond", "multiply"], "--cond has no effect"),
    (["dcgan-lab", "--d-repeats", "1000000000"], "--d-repeats must be in [1, 100]"),
    (["dcgan-lab", "--g-steps", "101"], "--g-steps must be in [1, 100]"),
    (["gan", "--n-critic", "1000"], "--n-critic must be in [1, 100]"),
    (["stargan", "--n-critic", "0"], "--n-critic must be in [1, 100]"),
    (["ldm", "--ae-steps", "0"], "--ae-steps must be at least 1"),
    (["ldm", "--ae-steps", "10", "--ae", "x.pt"], "--ae-steps has no effect"),
    (["srgan", "--classes"], "--classes does not apply to srgan"),
    (["ddpm", "--T", "20", "--preview-steps", "50"], "--preview-steps is more than the model's"),
])
def test_issue_42_item_7(cli, tmp_path, argv, message):
    """An unconditional --cond; a repeat count that would hold Ctrl-C for ever; stage 1 of
    no steps, its diffusion on an untrained autoencoder; srgan's labels, never read; more
    preview steps than the chain has."""
    r = cli("train.py", *argv, "--steps", 0, "--grid", 1, "--out", tmp_path / "run")
    assert r.returncode == 1 and message in r.stderr.replace("argument ", "").replace(
        ": must", " must"), r.out
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.parametrize("name, config, argv, message", [
    ("ddpm", {}, ["--steps", "11"], "--steps 11 is more than this ddpm's T = 10"),
    ("pix2pix", {"norm": "instance"}, ["--no-batch-stats", "--input", "IN"],
     "--no-batch-stats applies to"),
    ("pix2pix", {"dropout": 0.0}, ["--no-dropout", "--input", "IN"],
     "--no-dropout applies to a G with"),
])
def test_a_sample_knob_without_effect_is_refused(cli, tmp_path, name, config, argv, message):
    """sample.py: more steps than the chain has; a test-time mode of a layer G lacks."""
    from tests.test_sample import write_checkpoint
    ckpt = write_checkpoint(tmp_path / "ckpt.pt", name, **config)
    (tmp_path / "in").mkdir()
    argv = [tmp_path / "in" if a == "IN" else a for a in argv]
    r = cli("sample.py", ckpt, *argv, "--out", tmp_path / "out")
    assert r.returncode == 1 and message in r.stderr, r.out
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def contexts(name):
    """The walk's contexts: the start, each other bool or choice keyword at each value, and
    the condition (class labels; an ldm's captions)."""
    size, base = TINY[name]
    cls = model_class(name)
    start = {k: p.default for k, p in hyperparameters(cls.__init__).items()} | base
    classes = 2 if name == "stargan" else 0
    out = [(start, classes)]
    for k, v in start.items():
        values = CHOICES.get(k, (True, False) if isinstance(v, bool) else ())
        # srgan's perceptual loss needs a feature network's file
        values = [c for c in values if c != v and (name, c) != ("srgan", "perceptual")]
        out += [(start | {k: c}, classes) for c in values]
    if name not in UNCONDITIONAL and not classes:
        out.append((start, 2))
    if name == "ldm":
        out.append((start | {"vocab": "red blue green"}, 0))
    return out


def run(name, config, classes):
    """What a keyword can change: the built model's tensors (its buffers too), and three
    training steps of train.py at a fixed seed (their terms, the weights after them); None
    when the model refuses the combination."""
    cls = model_class(name)
    size = TINY[name][0]
    torch.manual_seed(0)
    try:
        m = cls(size, 3, classes, **config)
        opts = m.configure_optimizers()
    except ValueError:
        return None
    opts = list(opts) if isinstance(opts, (tuple, list)) else [opts]
    before = [t.detach().clone() for t in [*m.parameters(), *m.buffers()]]
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 3, size, size, generator=g) * 2 - 1
    y = torch.arange(4) % classes if classes else None
    if getattr(cls, "paired", False) or getattr(cls, "unpaired", False):
        y = torch.rand(4, 3, size, size, generator=g) * 2 - 1
    if config.get("vocab"):
        y = m.tokenize(["red", "blue green", "green red", ""])
    proc = SimpleNamespace(world=1, autocast=nullcontext())
    terms = []
    # two steps of each optimizer (Adam's first step does not read its betas), the third a
    # G step of each game
    for step in (0, 1, 2 * getattr(m, "n_critic", 1) - 1):
        nonfinite = torch.zeros((), dtype=torch.bool)
        terms += list(train_step(m, opts, None, x, y, step, 0.0, nonfinite, proc).values())
    after = [t.detach() for t in [*m.parameters(), *m.buffers()]]
    return before + after + terms


def same(a, b):
    return len(a) == len(b) and all(s.shape == t.shape and torch.equal(s, t)
                                    for s, t in zip(a, b))


def declared_off(cls, key, config, classes):
    """The tables say key has no effect in this context."""
    setting = {**config, "conditional": bool(classes or config.get("vocab")),
               "captions": bool(config.get("vocab"))}
    try:
        needs(cls, {key: None}, setting)
    except Exception:
        return True
    return False


@pytest.mark.parametrize("name", MODELS)
def test_every_keyword_acts_unless_its_needs_say_not(name):
    """The walk: a keyword whose change changes nothing in a context is declared off there."""
    cls = model_class(name)
    silent = []
    for config, classes in contexts(name):
        base = run(name, config, classes)
        if base is None:
            continue
        for key, v in config.items():
            if key in FILES:
                continue
            changed = run(name, config | {key: alt(key, v)}, classes)
            if changed is None or not same(base, changed):
                continue
            if not declared_off(cls, key, config, classes):
                silent.append((key, {k: w for k, w in config.items()
                                     if w != TINY[name][1].get(k, w)}, classes))
    assert not silent, f"{name}: keywords without effect, not in needs: {silent}"


def test_resize_is_refused_on_the_built_in_data(cli, tmp_path):
    """The shapes and scenes are drawn square: --resize would be ignored there."""
    for data in ("shapes", "scenes"):
        r = cli("train.py", "vae", "--data", data, "--resize", "squash", "--steps", 0,
                "--out", tmp_path / data)
        assert r.returncode == 1 and "--resize has no effect unless --data is a folder" in r.stderr


@pytest.mark.parametrize("argv, message", [
    # just past each bound, on small widths: without the bound the run is cheap, and ends
    (["ddpm", "--T", "100001", "--ch", "32", "--ch-mult", "1"],
     "argument --T: must be in [1, 100000]"),
    (["ddpm", "--num-res-blocks", "101", "--ch", "32", "--ch-mult", "1"],
     "argument --num-res-blocks: must be in [1, 100]"),
    (["stylegan", "--n-mlp", "101"], "argument --n-mlp: must be in [1, 100]"),
    (["vae", "--z-dim", "1000000000"], "parameters needs"),
    (["ddpm", "--ch", "3200000"], "choose smaller widths"),
])
def test_a_model_no_run_can_build_is_one_line_before_the_data(cli, tmp_path, argv, message):
    """Sizes a run cannot build (killed for memory, or minutes building modules before the
    first step) are refused by their range, or by the model's memory, before any image."""
    r = cli("train.py", *argv, "--steps", 0, "--out", tmp_path / "run")
    assert r.returncode == 1 and message in r.stderr and "images" not in r.stdout, r.out
    assert len(r.stderr.strip().splitlines()) == 1
