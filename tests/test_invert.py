"""support/invert.py (sample.py --invert): the optimiser recovers an image made from a known latent
(z for gan.py's G, w+ for StyleGAN's), the gradient reaches the latent, images in a batch keep
their own latents and noise, the edits in closed form, PSNR, and the command line."""
import io
import re
from contextlib import redirect_stderr, redirect_stdout
import pytest
import torch
from PIL import Image
import train
from conftest import ROOT
from gan import GAN
from progan import ProGAN
from stylegan import StyleGAN
import support.invert
from support.cli import build_model, load_checkpoint, save_checkpoint
from support.invert import Latents, invert, psnr
from support.pictures import save_png


def tiny_stylegan():
    """A StyleGAN of 8x8 whose w_avg is the mean of its f(z), and whose noise inputs count (their
    scales B, 0 at first, set to 0.5), as training leaves them."""
    torch.manual_seed(0)
    m = StyleGAN(8, 1, z_dim=8, w_dim=8, ch=4, max_ch=8, n_mlp=2).eval().requires_grad_(False)
    with torch.no_grad():
        m.w_avg.copy_(m.mapping(torch.randn(1000, 8)).mean(0))
        for name, p in m.named_parameters():
            if name.endswith(".B"):                                  # 4. the noise scales B_i
                p.fill_(0.5)
    return m


def test_inversion_recovers_an_image_of_known_z():
    """x = G(z_true) for 4 z's: Adam from z = 0 finds a z whose G(z) is within a small L2 of x
    (PSNR above 40 dB), the loss falls by orders of magnitude, and every image is reached."""
    torch.manual_seed(0)
    m = GAN(4, 1, z_dim=3, hidden=16).eval().requires_grad_(False)
    x = m.generate(torch.randn(4, 3))
    G = Latents(m, "z", 4, None)
    assert G.start(4).eq(0).all()                                    # the prior's mean
    z, curve = invert(G, x, G.start(4), 300)
    assert ((G(z) - x) ** 2).flatten(1).mean(1).max() < 1e-4
    assert psnr(G(z), x).min() > 40
    assert curve[-1] < curve[0] / 100 and len(curve) == 300


def test_inversion_recovers_an_image_of_known_w_in_w_plus():
    """StyleGAN: x = g(w_true) (the same w at every layer, fixed noise); the w+ search, from
    w_avg at every layer (Image2StyleGAN's start), brings the squared error to x below 1/15 of
    the start's for each image in 300 steps (1/20 to 1/100 here)."""
    m = tiny_stylegan()
    torch.manual_seed(1)
    G = Latents(m, "w+", 3, None)
    start = G.start(3)
    assert start.shape == (3, m.num_layers, 8) and torch.equal(start[1, 2], m.w_avg)
    w = m.mapping(torch.randn(3, 8))
    x = m.synthesis(w[:, None].expand(-1, m.num_layers, -1), G.noise)
    far = ((G(start) - x) ** 2).flatten(1).mean(1)
    ws, curve = invert(G, x, start, 300)
    near = ((G(ws) - x) ** 2).flatten(1).mean(1)
    assert (near < far / 15).all(), (far, near)
    assert curve[-1] == pytest.approx(near.mean().item(), rel=0.2)


def test_a_growing_progan_is_inverted_at_its_phase_resolution():
    """ProGAN's G(z) (no y) at its first phase is a 4x4 image: the inversion's G(z) is it
    upsampled to the full 8x8, as its samples are (issue 42: --invert raised a TypeError). Its G
    normalises z, so the search starts at a random z, not at z = 0, where the gradient of the
    pixel norm (1 / sqrt(eps)) would fill Adam's second moment and stall every later step: the
    loss to an image of known z still falls after the first 10 steps."""
    torch.manual_seed(0)
    m = ProGAN(8, 1, z_dim=32, ch=4, max_ch=4).eval().requires_grad_(False)
    G = Latents(m, "z", 2, None)
    x = G(torch.randn(2, 32))
    start = G(G.start(2))
    blocks = start[..., ::2, ::2].repeat_interleave(2, -1).repeat_interleave(2, -2)
    assert start.shape == x.shape and torch.equal(start, blocks)
    assert G.start(2).norm(dim=1).min() > 3                          # |z| near sqrt(32)
    z, curve = invert(G, x, G.start(2), 50)
    assert curve[-1] < curve[10] * 0.8 and curve[-1] < curve[0] / 2, curve[::10]


def test_the_first_step_moves_every_coordinate_of_the_latent():
    """The gradient reaches the latent: Adam's first step moves each coordinate by lr = 0.01 (its
    update is lr m / sqrt(v) = lr sign(g)), against the sign of the loss's gradient there."""
    torch.manual_seed(0)
    m = GAN(4, 1, z_dim=6, hidden=16).eval().requires_grad_(False)
    x = m.generate(torch.randn(2, 6))
    z0 = torch.randn(2, 6)
    z1, _ = invert(lambda v: m.generate(v), x, z0, 1)
    v = z0.clone().requires_grad_(True)
    g, = torch.autograd.grad(((m.generate(v) - x) ** 2).sum(), v)
    assert torch.allclose(z1 - z0, -0.01 * g.sign(), atol=2e-4)           # eps: 1e-8 / |g|


def test_each_image_keeps_its_own_latent_and_noise():
    """Inverting 3 images in one batch, or in batches of 2 and 1 (sample.py's --batch-size, each
    batch with its images' own noise), finds the same w's: no image's loss reaches another's."""
    m = tiny_stylegan()
    torch.manual_seed(2)
    G = Latents(m, "w", 3, None)
    x = G(m.mapping(torch.randn(3, 8)))
    assert not torch.allclose(G(G.start(3))[2:], G(G.start(1), 0))     # each image its own noise
    together, _ = invert(G, x, G.start(3), 20)
    first, _ = invert(lambda v: G(v, 0), x[:2], G.start(2), 20)
    last, _ = invert(lambda v: G(v, 2), x[2:], G.start(1), 20)
    assert torch.allclose(together, torch.cat([first, last]), atol=1e-5)


def test_the_edits():
    """A synthesis that returns its w's shows each edit: style mixing takes the found w's before
    the middle layer and the other's after; truncation w_avg + 0.5 (w - w_avg); interpolation
    (1 - t) found + t other at t = 1/4, 1/2, 3/4. For G(z), the interpolations alone."""
    m = tiny_stylegan()
    m.synthesis = lambda ws, noise=None: ws
    G = Latents(m, "w+", 2, None)
    found, other = torch.randn(2, 2, m.num_layers, 8)
    mixed, truncated, *lerps = G.edits(found, other)
    k = m.num_layers // 2
    assert torch.equal(mixed[:, :k], found[:, :k]) and torch.equal(mixed[:, k:], other[:, k:])
    assert torch.allclose(truncated, m.w_avg + 0.5 * (found - m.w_avg))
    for t, image in zip([0.25, 0.5, 0.75], lerps):
        assert torch.allclose(image, (1 - t) * found + t * other)
    g = GAN(4, 1, z_dim=3, hidden=8)
    g.generate = lambda z, y=None: z
    found, other = torch.randn(2, 5, 3)
    lerps = Latents(g, "z", 5, None).edits(found, other)
    assert len(lerps) == 3 and torch.allclose(lerps[0], 0.75 * found + 0.25 * other)


def test_psnr():
    """10 log10(1 / MSE) on [0, 1]: images 0.2 apart in [-1, 1] are 0.1 apart there, 20 dB."""
    a = torch.zeros(2, 1, 4, 4)
    b = a + torch.tensor([0.2, 0.02]).view(2, 1, 1, 1)
    assert psnr(a, b).tolist() == pytest.approx([20.0, 40.0], rel=1e-5)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Tiny dcgan and stylegan checkpoints (train.py, 2 steps on the built-in shapes), an
    untrained gan's and ddpm's, and 3 images."""
    tmp = tmp_path_factory.mktemp("invert")
    runs = {"dcgan": ["--ngf", 4, "--ndf", 4, "--z-dim", 4],
            "stylegan": ["--ch", 4, "--max-ch", 8, "--z-dim", 8, "--w-dim", 8, "--n-mlp", 2]}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp / "cache"))
        mp.chdir(ROOT)
        for name, flags in runs.items():
            argv = [name, "--image-size", 8, "--steps", 2, "--batch-size", 8, "--grid", 4,
                    "--out", tmp / name, *flags]
            with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
                assert train.cli([str(a) for a in argv]) == 0
    config = dict(image_size=8, channels=3, T=10, ch=32, ch_mult=(1,), num_res_blocks=1,
                  attn_res=())
    save_checkpoint(str(tmp / "ddpm.pt"), dict(
        model="ddpm", config=config, step=0, args={}, class_names=None, optimizers=[], rng={},
        weights=build_model("ddpm", config).state_dict(), ema=None))
    torch.manual_seed(0)
    gan = build_model("gan", dict(image_size=8, channels=3, z_dim=4, hidden=16))
    with torch.no_grad():
        gan.G[0].weight.mul_(8)                                      # G(z) changes with z
    save_checkpoint(str(tmp / "gan.pt"), dict(
        model="gan", config=dict(image_size=8, channels=3, z_dim=4, hidden=16), step=0, args={},
        class_names=None, optimizers=[], rng={}, weights=gan.state_dict(), ema=None))
    (tmp / "images").mkdir()
    for i in range(3):
        Image.new("RGB", (12, 12), (40 * i, 200, 90)).save(tmp / "images" / f"im{i}.png")
    return tmp


@pytest.mark.parametrize("name, extra", [("dcgan", []), ("stylegan", ["--space", "w"]),
                                         ("stylegan", ["--batch-size", 2])])
def test_command_line(cli, checkpoints, tmp_path, name, extra):
    ck = checkpoints / name / "ckpt.pt"
    out = tmp_path / "inv.png"
    r = cli("sample.py", ck, "--invert", checkpoints / "images" / "im1.png", "--invert-steps", 5,
            "--out", out, *extra)
    assert r.returncode == 0, r.out
    assert "1 image(s)" in r.out and " dB" in r.out
    assert out.exists() and (tmp_path / "inv_loss.png").exists()
    folder = tmp_path / "inverted"
    r = cli("sample.py", ck, "--invert", checkpoints / "images", "--invert-steps", 5,
            "--out", f"{folder}/", *extra)
    assert r.returncode == 0, r.out
    assert "3 image(s)" in r.out and "mean" in r.out
    assert {p.name for p in folder.iterdir()} == {"im0.png", "im1.png", "im2.png", "edits.png",
                                                  "loss.png"}


def test_without_space_a_stylegan_is_inverted_in_the_papers_space(cli, checkpoints, tmp_path):
    """--space left out: a StyleGAN is searched in the space the module's help names as the
    paper's (Image2StyleGAN's extended w+), a dcgan in z, its only latent."""
    papers = re.search(r"(\S+): [^:]*the paper's extended space", support.invert.__doc__)
    for name, space in (("stylegan", papers.group(1)), ("dcgan", "z")):
        r = cli("sample.py", checkpoints / name / "ckpt.pt", "--invert",
                checkpoints / "images" / "im1.png", "--invert-steps", 1, "--out",
                tmp_path / "inv.png")
        assert r.returncode == 0 and f" {space} space," in r.out, r.out


def test_command_line_recovers_an_image_of_its_generator(cli, checkpoints, tmp_path):
    """An image that gan.py's G made from a known z, saved as a PNG: sample.py --invert brings
    it from a PSNR below 20 dB at the first step to above 30 dB in 300 steps (the PNG's rounding
    allows about 50). Its G's first layer is scaled up, so that G(z) changes with z."""
    ck = load_checkpoint(str(checkpoints / "gan.pt"))
    m = build_model("gan", ck["config"])
    m.load_state_dict(ck["weights"])
    torch.manual_seed(6)
    with torch.no_grad():
        save_png(m.eval().generate(torch.randn(1, 4))[0], tmp_path / "made.png")
    found = []
    for steps in (1, 300):
        r = cli("sample.py", checkpoints / "gan.pt", "--invert", tmp_path / "made.png",
                "--invert-steps", steps, "--out", tmp_path / "inv.png")
        assert r.returncode == 0, r.out
        found.append(float(re.search(r"PSNR (\S+) dB", r.out).group(1)))
    assert found[0] < 20 and found[1] > 30, found                # seed 6: 16.5 dB, then 39


def test_bad_input_is_one_line(cli, checkpoints, tmp_path):
    """A model with no generator latent, a missing image, a space the model has not, a flag
    that does not apply: one line each, exit 1, before any work."""
    dc = checkpoints / "dcgan" / "ckpt.pt"
    sg = checkpoints / "stylegan" / "ckpt.pt"
    image = checkpoints / "images" / "im0.png"
    cases = [((checkpoints / "ddpm.pt", "--invert", image), "a ddpm has none"),
             ((dc, "--invert", tmp_path / "missing.png"), "no such file"),
             ((dc, "--invert", image, "--space", "w+"), "use --space z"),
             ((sg, "--invert", image, "--space", "z"), "use --space w or w+"),
             ((sg, "--invert", image, "--psi", 0.5), "--psi does not apply"),
             ((dc, "--invert", image, "-n", 4), "-n does not apply"),
             ((dc, "--invert", image, "--invert-steps", 0), "at least 1")]
    for args, says in cases:
        r = cli("sample.py", *args, "--out", tmp_path / "x.png")
        assert r.returncode == 1 and says in r.stderr, (args, r.out)
        assert len(r.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "x.png").exists()
