"""pix2pix.py: the reference parameter counts, DCGAN's initialisation, the PatchGAN's receptive
field measured by gradients, the skip connections, the halved minimax value, confident and wrong
discriminators, D's targets, the weighted L1 term, which steps reach G, dropout as G's noise, G at
test time as in training, learning a paired task, the command line."""
import math
import numpy as np
import pytest
import torch
from PIL import Image
from conftest import adversarial_steps
from support.data import shapes
from pix2pix import Pix2Pix, d_targets, patchgan


def bce(logit, target):
    """BCE of one logit against a target, in closed form: softplus(logit) - target * logit."""
    return math.log1p(math.exp(logit)) - target * logit


def count(module):
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_match_the_reference():
    m = Pix2Pix(256, 3)
    assert count(m.G) == 54_413_955                                          # unet_256
    assert count(m.D) == 2_768_705 and m.D[0].in_channels == 6       # 70x70 PatchGAN on [y, x]
    a = torch.zeros(1, 3, 256, 256)
    assert m.logits(a, a).shape == (1, 1, 30, 30)


def test_weights_start_as_dcgans():
    """Every conv's weights ~ N(0, 0.02) and biases 0; BatchNorm's scales ~ N(1, 0.02), shifts 0."""
    torch.manual_seed(0)
    m = Pix2Pix(32, 3, ngf=8, ndf=8)
    convs = [c for c in m.modules() if isinstance(c, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    norms = [b for b in m.modules() if isinstance(b, torch.nn.BatchNorm2d)]
    w = torch.cat([c.weight.flatten() for c in convs])
    gamma = torch.cat([b.weight for b in norms])
    assert abs(w.mean().item()) < 1e-3 and w.std().item() == pytest.approx(0.02, rel=0.02)
    assert gamma.mean().item() == pytest.approx(1.0, abs=0.01) and gamma.std().item() < 0.03
    assert all(not c.bias.any() for c in convs if c.bias is not None)
    assert all(not b.bias.any() for b in norms)


@pytest.mark.parametrize("n_layers, window", [(1, 16), (3, 70)])   # the paper's 16x16 and 70x70
def test_patchgan_output_sees_exactly_its_window(n_layers, window):
    D = patchgan(6, ndf=8, n_layers=n_layers).eval()     # eval: BatchNorm a fixed map, no mixing
    x = torch.randn(1, 6, 128, 128, requires_grad=True)
    out = D(x)
    i = out.shape[-1] // 2
    out[0, 0, i, i].backward()
    seen = x.grad.abs().sum((0, 1)) > 0                 # (H, W): the pixels this logit depends on
    rows, cols = seen.any(1).nonzero().flatten(), seen.any(0).nonzero().flatten()
    assert rows.max() - rows.min() + 1 == window and cols.max() - cols.min() + 1 == window
    assert seen.sum() == window * window                # the whole square, nothing else


def test_unet_depth_follows_the_image_size():
    for S in (16, 32, 64, 128):
        m = Pix2Pix(S, 3, ngf=4, ndf=4, n_layers=2)
        assert len(m.G.down) == int(math.log2(S))                       # down to a 1x1 bottleneck
        a = torch.randn(2, 3, S, S)
        h = a
        for block in m.G.down:
            h = block(h)
        assert h.shape[-2:] == (1, 1) and m.G(a).shape == a.shape
        assert m.G(a).abs().max() <= 1                                        # Tanh out
    with pytest.raises(ValueError, match="power of two"):
        Pix2Pix(48, 3)


def test_skip_connections_carry_y_past_the_bottleneck():
    """With the innermost conv zeroed, the 1x1 bottleneck is 0 whatever y is: a plain
    encoder-decoder would then give one output for every input; the U-Net's skips still carry
    each level's e_i across to its mirror."""
    torch.manual_seed(0)
    m = Pix2Pix(16, 3, ngf=4, ndf=4, n_layers=1).eval()  # eval: BatchNorm a fixed map, no dropout
    torch.nn.init.zeros_(m.G.down[-1][0].weight)
    a = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        out = m.G(a)
    assert (out[0] - out[1]).abs().mean() > 1e-3


def test_minimax_value_is_halved():
    m = Pix2Pix(32, 3, ngf=8, ndf=8)
    torch.nn.init.zeros_(m.D[-1].weight)
    torch.nn.init.zeros_(m.D[-1].bias)                                  # every logit 0: D = 1/2
    a, b = torch.rand(2, 4, 3, 32, 32) * 2 - 1
    terms = m.d_loss(b, a)
    assert (terms["real"] + terms["fake"]).item() == pytest.approx(math.log(2))   # 2 log 2, halved
    assert terms["D(A,B)"].item() == pytest.approx(0.5)


@pytest.mark.parametrize("logit_of_real", [5.0, -5.0])             # D confidently right, then wrong
def test_confident_discriminator_and_the_halved_d(logit_of_real):
    """B = +1, G(A) = -1, every patch's logit logit_of_real * B: when D is confidently right its
    (halved) loss is near 0 and G's large (5.007 = -log sigmoid(-5)); the reverse when it is
    confidently wrong."""
    m = Pix2Pix(16, 1, ngf=4, ndf=4, n_layers=1)
    m.G.forward = lambda a: -torch.ones_like(a)
    m.logits = lambda a, b: logit_of_real * b                      # (B, 1, S, S): a logit per patch
    a, b = torch.randn(4, 1, 16, 16), torch.ones(4, 1, 16, 16)
    d, g = m.d_loss(b, a), m.g_loss(b, a)
    assert d["real"].item() == pytest.approx(0.5 * bce(logit_of_real, 1.0), rel=1e-4)
    assert d["fake"].item() == pytest.approx(0.5 * bce(-logit_of_real, 0.0), rel=1e-4)
    assert g["gan"].item() == pytest.approx(bce(-logit_of_real, 1.0), rel=1e-4)   # G's: not halved
    assert (d["real"] + d["fake"] < 0.01) == (logit_of_real > 0) == (g["gan"] > 5)


@pytest.mark.parametrize("lambda_l1", [100.0, 7.0])
def test_l1_term_is_lambda_times_the_mean_error(lambda_l1):
    """Eq. 3 and 4 for a known G(A) = A / 2: l1 = lambda * mean |B - G(A)|."""
    torch.manual_seed(0)
    m = Pix2Pix(16, 3, ngf=4, ndf=4, n_layers=1, lambda_l1=lambda_l1)
    m.G.forward = lambda a: a / 2
    a, b = torch.rand(2, 4, 3, 16, 16) * 2 - 1
    m.d_loss(b, a)
    expected = lambda_l1 * (b - a / 2).abs().mean().item()
    assert m.g_loss(b, a)["l1"].item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(RuntimeError, match="call d_loss first"):
        Pix2Pix(16, 3, ngf=4, ndf=4, n_layers=1).g_loss(b, a)


def test_d_targets_hard_soft_and_flipped():
    """1 for real pairs and 0 for fakes (Eq. 1); soft labels U(0.7, 1) and U(0, 0.3), means 0.85
    and 0.15; flipped labels trade a fraction flip of each side's targets for the other's."""
    torch.manual_seed(0)
    real, fake = d_targets(3, "cpu")                              # gan.py's, one per pair
    assert real.shape == fake.shape == (3,)
    assert torch.equal(real, torch.ones(3)) and torch.equal(fake, torch.zeros(3))
    real, fake = d_targets(20_000, "cpu", soft=True)
    assert 0.7 <= real.min() and real.max() <= 1 and 0 <= fake.min() and fake.max() <= 0.3
    assert real.mean().item() == pytest.approx(0.85, abs=0.01)
    assert fake.mean().item() == pytest.approx(0.15, abs=0.01)
    real, fake = d_targets(20_000, "cpu", flip=0.1)
    assert (real == 0).float().mean().item() == pytest.approx(0.1, abs=0.01)
    assert (fake == 1).float().mean().item() == pytest.approx(0.1, abs=0.01)


def test_d_step_stops_at_g_and_both_g_terms_reach_g():
    """D's terms give G no gradient (G(y) detached); G's adversarial and L1 terms each do. For
    G(y) = s y at s = 1/2: d(lambda L1)/ds = lambda mean(sign(s y - x) y), Eq. 3 by hand."""
    torch.manual_seed(0)
    m = Pix2Pix(16, 3, ngf=4, ndf=4, n_layers=1, lambda_l1=7.0)
    a, b = torch.rand(2, 4, 3, 16, 16) * 2 - 1
    d = m.d_loss(b, a)
    (d["real"] + d["fake"]).backward()
    assert all(p.grad is None for p in m.G.parameters())
    assert any(p.grad.abs().sum() > 0 for p in m.D.parameters())
    g = m.g_loss(b, a)
    for term in ("gan", "l1"):
        grads = torch.autograd.grad(g[term], list(m.G.parameters()), retain_graph=True)
        assert any(grad.abs().sum() > 0 for grad in grads), term
    s = torch.tensor(0.5, requires_grad=True)
    m.G.forward = lambda y: s * y
    m.d_loss(b, a)
    grad, = torch.autograd.grad(m.g_loss(b, a)["l1"], s)
    assert grad.item() == pytest.approx(7.0 * ((0.5 * a - b).sign() * a).mean().item(), rel=1e-4)


def test_g_at_test_time_runs_as_in_training():
    """Isola et al., Sec. 3.3: at test time G runs exactly as in training, dropout on and BatchNorm
    with the test batch's statistics; that is the default. batch_stats=False uses the running
    averages instead, so each output depends on its own input alone. Sampling moves no running
    average."""
    m = Pix2Pix(16, 3, ngf=8, ndf=8, n_layers=2).eval()
    a = torch.randn(4, 3, 16, 16)
    running = [b.clone() for b in m.G.buffers()]
    torch.manual_seed(1)
    out = m.sample(4, a)
    assert all(torch.equal(b, r) for b, r in zip(m.G.buffers(), running)) and not m.G.training
    alone = m.sample(1, a[:1], dropout=False, batch_stats=False)
    assert torch.allclose(m.sample(4, a, dropout=False, batch_stats=False)[:1], alone, atol=1e-6)
    in_batch = m.sample(4, a, dropout=False)[:1]
    assert not torch.allclose(in_batch, m.sample(1, a[:1], dropout=False), atol=1e-3)
    m.G.train()
    torch.manual_seed(1)
    with torch.no_grad():
        assert torch.equal(m.G(a), out)                         # the very function G was trained as


def test_dropout_is_the_noise_of_g():
    m = Pix2Pix(32, 3, ngf=8, ndf=8).eval()
    drops = [mod for mod in m.G.modules() if isinstance(mod, torch.nn.Dropout)]
    assert len(drops) == 3 and all(d.p == 0.5 for d in drops)
    with_dropout = [k for k, block in enumerate(m.G.up) if any(d in drops for d in block)]
    assert with_dropout == [0, 1, 2]                             # the three innermost blocks
    a = torch.randn(2, 3, 32, 32)
    assert not torch.equal(m.sample(2, a), m.sample(2, a))        # on at test time, as in the paper
    assert torch.equal(m.sample(2, a, dropout=False), m.sample(2, a, dropout=False))
    assert not any(d.training for d in drops)                    # the model's mode is left as found


def test_learns_a_paired_task():
    """Colour inversion of the built-in shapes: 150 steps bring held-out L1 far below
    the identity mapping's."""
    torch.manual_seed(0)
    images, _, _ = shapes(n=600, size=16, seed=0)
    a = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    b = -a                                                              # 255 - pixel, on [-1, 1]
    m = Pix2Pix(16, 3, ngf=16, ndf=16, n_layers=2)
    batch = lambda step: (lambda i: (b[i], a[i]))(torch.randint(0, 500, (16,)))
    adversarial_steps(m, batch, steps=150)
    m.eval()
    identity = (a[500:] - b[500:]).abs().mean()
    l1 = (m.sample(100, a[500:], dropout=False, batch_stats=False) - b[500:]).abs().mean()
    assert l1 < 0.2 * identity, (l1, identity)                             # seeds 0-2: 0.10-0.11


def write_pairs(folder, n, size=16):
    """Side-by-side A|B files: A a random pattern, B its inversion."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        a = rng.integers(0, 256, (size // 4, size // 4, 3), dtype=np.uint8)
        a = a.repeat(4, 0).repeat(4, 1)
        Image.fromarray(np.concatenate([a, 255 - a], 1)).save(folder / f"{i:02d}.png")


def test_command_line(cli, tmp_path):
    write_pairs(tmp_path / "pairs", 12)
    out = tmp_path / "run"
    args = ["--data", tmp_path / "pairs", "--image-size", 16, "--ngf", 8, "--ndf", 8,
            "--n-layers", 2, "--batch-size", 4, "--log-every", 2,
            "--n-critic", 2, "--soft-labels", "--flip-labels", 0.1, "--d-dropout", 0.2]
    r = cli("train.py", "pix2pix", "--steps", 4, "--out", out, *args)
    assert r.returncode == 0, r.out
    assert "12 pairs 16x16x3" in r.out and "G.l1" in r.out and "D.real" in r.out
    r = cli("train.py", "pix2pix", "--steps", 6, "--out", out, "--resume")
    assert r.returncode == 0 and "step       6/6" in r.out, r.out
    ckpt = out / "ckpt.pt"
    one = tmp_path / "pairs" / "00.png"
    r = cli("sample.py", ckpt, "--input", one, "--out", tmp_path / "one.png")
    assert r.returncode == 0 and "1 pairs: mean L1" in r.out and "PSNR" in r.out, r.out
    w, h = Image.open(tmp_path / "one.png").size
    assert w > 2.5 * h                                       # one row: input | output | target
    outs = str(tmp_path / "outs") + "/"
    r = cli("sample.py", ckpt, "--input", tmp_path / "pairs", "--out", outs, "--no-dropout",
            "--no-batch-stats")
    assert r.returncode == 0 and "12 pairs: mean L1" in r.out, r.out
    assert len(list((tmp_path / "outs").glob("*.png"))) == 12
    r = cli("sample.py", ckpt, "--out", tmp_path / "none.png")
    assert r.returncode == 1 and "--input" in r.out
    r = cli("sample.py", ckpt, "--input", tmp_path / "pairs", "--gif")
    assert r.returncode == 1 and "has no animation" in r.out, r.out
