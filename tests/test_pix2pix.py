"""pix2pix.py: the reference parameter counts, the PatchGAN's receptive field measured by gradients,
the halved minimax value, dropout as G's noise, learning a paired task, the command line."""
import math
import numpy as np
import pytest
import torch
from PIL import Image
from data import shapes
from pix2pix import Pix2Pix, patchgan


def count(module):
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_match_the_reference():
    m = Pix2Pix(256, 3)
    assert count(m.G) == 54_413_955                                          # unet_256
    assert count(m.D) == 2_768_705 and m.D[0].in_channels == 6                # 70x70 PatchGAN on [A, B]
    a = torch.zeros(1, 3, 256, 256)
    assert m.critic(a, a).shape == (1, 1, 30, 30)


@pytest.mark.parametrize("n_layers, window", [(1, 16), (3, 70)])              # the paper's 16x16 and 70x70
def test_patchgan_output_sees_exactly_its_window(n_layers, window):
    D = patchgan(6, ndf=8, n_layers=n_layers).eval()     # eval: BatchNorm a fixed affine map, no mixing of pixels
    x = torch.randn(1, 6, 128, 128, requires_grad=True)
    out = D(x)
    i = out.shape[-1] // 2
    out[0, 0, i, i].backward()
    seen = x.grad.abs().sum((0, 1)) > 0                                       # (H, W): pixels this logit depends on
    rows, cols = seen.any(1).nonzero().flatten(), seen.any(0).nonzero().flatten()
    assert rows.max() - rows.min() + 1 == window and cols.max() - cols.min() + 1 == window
    assert seen.sum() == window * window                                      # the whole square, nothing else


def test_unet_depth_follows_the_image_size():
    for S in (16, 32, 64, 128):
        m = Pix2Pix(S, 3, ngf=4, ndf=4, n_layers=2)
        assert len(m.G.down) == int(math.log2(S))                            # down to a 1x1 bottleneck
        a = torch.randn(2, 3, S, S)
        h = a
        for block in m.G.down:
            h = block(h)
        assert h.shape[-2:] == (1, 1) and m.G(a).shape == a.shape
        assert m.G(a).abs().max() <= 1                                        # Tanh out
    with pytest.raises(ValueError, match="power of two"):
        Pix2Pix(48, 3)


def test_minimax_value_is_halved():
    m = Pix2Pix(32, 3, ngf=8, ndf=8)
    torch.nn.init.zeros_(m.D[-1].weight)
    torch.nn.init.zeros_(m.D[-1].bias)                                       # every logit 0: D = 1/2
    a, b = torch.rand(2, 4, 3, 32, 32) * 2 - 1
    terms = m.d_loss(b, a)
    assert (terms["real"] + terms["fake"]).item() == pytest.approx(math.log(2))   # 2 log 2, halved
    assert terms["D(A,B)"].item() == pytest.approx(0.5)


def test_dropout_is_the_noise_of_g():
    m = Pix2Pix(32, 3, ngf=8, ndf=8).eval()
    drops = [mod for mod in m.G.modules() if isinstance(mod, torch.nn.Dropout)]
    assert len(drops) == 3 and all(d.p == 0.5 for d in drops)
    a = torch.randn(2, 3, 32, 32)
    assert not torch.equal(m.sample(2, a), m.sample(2, a))                   # on at test time, as in the paper
    assert torch.equal(m.sample(2, a, dropout=False), m.sample(2, a, dropout=False))
    assert not any(d.training for d in drops)                                # the model's mode is left as it was


def test_learns_a_paired_task():
    """Colour inversion of the built-in shapes: a few hundred steps bring held-out L1 far below
    the identity mapping's."""
    torch.manual_seed(0)
    images, _, _ = shapes(n=600, size=16, seed=0)
    a = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    b = -a                                                                    # 255 - pixel, on [-1, 1]
    m = Pix2Pix(16, 3, ngf=16, ndf=16, n_layers=2)
    d_opt, g_opt = m.configure_optimizers()
    for step in range(300):
        i = torch.randint(0, 500, (16,))
        d_opt.zero_grad()
        sum(v for v in m.d_loss(b[i], a[i]).values() if v.requires_grad).backward()
        d_opt.step()
        g_opt.zero_grad()
        sum(m.g_loss(b[i], a[i]).values()).backward()
        g_opt.step()
    m.eval()
    identity = (a[500:] - b[500:]).abs().mean()
    l1 = (m.sample(100, a[500:], dropout=False) - b[500:]).abs().mean()
    assert l1 < 0.2 * identity, (l1, identity)


def write_pairs(folder, n, size=16):
    """Side-by-side A|B files: A a random pattern, B its inversion."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        a = rng.integers(0, 256, (size // 4, size // 4, 3), dtype=np.uint8).repeat(4, 0).repeat(4, 1)
        Image.fromarray(np.concatenate([a, 255 - a], 1)).save(folder / f"{i:02d}.png")


def test_command_line(cli, tmp_path):
    write_pairs(tmp_path / "pairs", 12)
    out = tmp_path / "run"
    args = ["--data", tmp_path / "pairs", "--image-size", 16, "--ngf", 8, "--ndf", 8, "--n-layers", 2,
            "--batch-size", 4, "--log-every", 2]
    r = cli("train.py", "pix2pix", "--steps", 4, "--out", out, *args)
    assert r.returncode == 0, r.out
    assert "12 pairs 16x16x3" in r.out and "G.l1" in r.out and "D.real" in r.out
    r = cli("train.py", "pix2pix", "--steps", 6, "--out", out, "--resume")
    assert r.returncode == 0 and "step       6/6" in r.out, r.out
    ckpt = out / "ckpt.pt"
    r = cli("sample.py", ckpt, "--input", tmp_path / "pairs" / "00.png", "--out", tmp_path / "one.png")
    assert r.returncode == 0 and "1 pairs: mean L1" in r.out and "PSNR" in r.out, r.out
    w, h = Image.open(tmp_path / "one.png").size
    assert w > 2.5 * h                                                       # one row: input | output | target
    r = cli("sample.py", ckpt, "--input", tmp_path / "pairs", "--out", str(tmp_path / "outs") + "/", "--no-dropout")
    assert r.returncode == 0 and "12 pairs: mean L1" in r.out, r.out
    assert len(list((tmp_path / "outs").glob("*.png"))) == 12
    r = cli("sample.py", ckpt, "--out", tmp_path / "none.png")
    assert r.returncode == 1 and "--input" in r.out
    r = cli("sample.py", ckpt, "--input", tmp_path / "pairs", "--gif")
    assert r.returncode == 1 and "has no animation" in r.out, r.out
