"""cyclegan.py: the reference parameter counts, G keeping the size, the residual blocks, D's 70x70
window, the cycle, identity and least-squares terms against their closed forms, each D on its own
domain, which steps reach which networks, the history buffer, the sampling directions, learning an
unpaired toy task, the unpaired data and the command line."""
import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image
from cyclegan import CycleGAN, History, ResidualBlock
from support.data import UnpairedBatches, shapes, unpaired_dataset


def count(module):
    return sum(p.numel() for p in module.parameters())


class Map(nn.Module):
    """A fixed function standing in for G or F."""

    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, x):
        return self.f(x)


def test_parameter_counts_match_the_reference():
    m = CycleGAN(256, 3)
    assert count(m.G) == count(m.F) == 11_378_179                            # resnet_9blocks
    assert count(m.D_A) == count(m.D_B) == 2_764_737          # 3-layer PatchGAN, InstanceNorm
    assert sum(isinstance(b, ResidualBlock) for b in m.G) == 9
    assert m.D_A[0].in_channels == 3                          # one image, no [A, B] pair
    assert m.D_B(torch.zeros(1, 3, 256, 256)).shape == (1, 1, 30, 30)
    small = CycleGAN(128, 3, ngf=4, ndf=4)
    assert sum(isinstance(b, ResidualBlock) for b in small.G) == 6           # 6 at 128 and below


def test_generators_keep_the_image_size():
    for S in (8, 12, 16, 32):
        m = CycleGAN(S, 3, ngf=4, ndf=4, n_blocks=1, n_layers=1)
        a = torch.randn(2, 3, S, S)
        for net in (m.G, m.F):
            out = net(a)
            assert out.shape == a.shape and out.abs().max() <= 1             # Tanh out
    with pytest.raises(ValueError, match="multiple of 4"):
        CycleGAN(30, 3)


def test_a_residual_block_learns_a_change_to_x():
    """R256 is x + f(x): with f's last conv zeroed, f(x) = IN(0) = 0 and the block is the
    identity."""
    torch.manual_seed(0)
    block = ResidualBlock(4)
    nn.init.zeros_(block.f[-2].weight)
    nn.init.zeros_(block.f[-2].bias)
    x = torch.randn(2, 4, 8, 8)
    assert torch.allclose(block(x), x, atol=1e-6)


def test_patchgan_output_sees_a_70x70_window():
    """InstanceNorm's mean and variance are taken over the whole image, so through them every
    score depends on every pixel; the window is the convolutions' own, measured with the norms
    taken out."""
    D = CycleGAN(128, 3, ngf=4, ndf=8).D_A
    norms = [m for m in D if isinstance(m, nn.InstanceNorm2d)]
    assert len(norms) == 3 and not any(n.affine for n in norms)
    convs = nn.Sequential(*[nn.Identity() if isinstance(m, nn.InstanceNorm2d) else m for m in D])
    x = torch.randn(1, 3, 128, 128, requires_grad=True)
    out = convs(x)
    i = out.shape[-1] // 2
    out[0, 0, i, i].backward()
    seen = x.grad.abs().sum((0, 1)) > 0                 # (H, W): the pixels this score depends on
    rows, cols = seen.any(1).nonzero().flatten(), seen.any(0).nonzero().flatten()
    assert rows.max() - rows.min() + 1 == 70 and cols.max() - cols.min() + 1 == 70
    assert seen.sum() == 70 * 70


def tiny(**kw):
    return CycleGAN(8, 3, ngf=4, ndf=4, n_blocks=1, n_layers=1, **kw)


def test_cycle_loss_of_inverse_maps_is_zero():
    torch.manual_seed(0)
    a, b = torch.rand(2, 4, 3, 8, 8) * 2 - 1
    m = tiny()
    m.G, m.F = Map(lambda x: 2 * x + 0.5), Map(lambda y: (y - 0.5) / 2)     # F = G^-1
    m.d_loss(b, a)
    terms = m.g_loss(b, a)
    assert terms["cyc_A"].item() == pytest.approx(0, abs=1e-6)
    assert terms["cyc_B"].item() == pytest.approx(0, abs=1e-6)
    m.G, m.F = Map(lambda x: 2 * x), Map(lambda y: y + 0.25)                 # not inverses
    m.d_loss(b, a)
    terms = m.g_loss(b, a)
    # Eq. 2, lambda = 10, means over pixels: F(G(a)) - a = a + 0.25 and G(F(b)) - b = b + 0.5
    assert terms["cyc_A"].item() == pytest.approx(10 * (a + 0.25).abs().mean().item(), rel=1e-5)
    assert terms["cyc_B"].item() == pytest.approx(10 * (b + 0.5).abs().mean().item(), rel=1e-5)


def test_identity_loss():
    torch.manual_seed(0)
    a, b = torch.rand(2, 4, 3, 8, 8) * 2 - 1
    m = tiny()
    m.G, m.F = Map(lambda x: x), Map(lambda x: x)
    m.d_loss(b, a)
    terms = m.g_loss(b, a)
    assert terms["idt_G"].item() == 0 and terms["idt_F"].item() == 0    # identities: nothing to pay
    m.G, m.F = Map(lambda x: 2 * x), Map(lambda y: y + 0.25)
    m.d_loss(b, a)
    terms = m.g_loss(b, a)
    # 0.5 lambda ||G(b) - b||_1 = 5 |b|, 0.5 lambda ||F(a) - a||_1 = 5 * 0.25
    assert terms["idt_G"].item() == pytest.approx(5 * b.abs().mean().item(), rel=1e-5)
    assert terms["idt_F"].item() == pytest.approx(5 * 0.25, rel=1e-5)
    m.G, m.F = Map(lambda x: x / 2), Map(lambda y: -y)
    m.d_loss(b, a)
    terms = m.g_loss(b, a)
    # each generator on its own output domain: 5 |b / 2 - b| and 5 |-a - a|
    assert terms["idt_G"].item() == pytest.approx(2.5 * b.abs().mean().item(), rel=1e-5)
    assert terms["idt_F"].item() == pytest.approx(10 * a.abs().mean().item(), rel=1e-5)
    m = tiny(lambda_identity=0)
    m.d_loss(b, a)
    assert "idt_G" not in m.g_loss(b, a)                                      # 0 turns it off


def test_least_squares_terms_at_chosen_outputs():
    """Every score of D_A set to 0.3 and of D_B to -0.2 (last conv zero, bias c): the terms are
    D: 1/2 (c - 1)^2 for real and 1/2 c^2 for fake; G: (c - 1)^2."""
    torch.manual_seed(0)
    a, b = torch.rand(2, 4, 3, 8, 8) * 2 - 1
    m = tiny()
    for D, c in ((m.D_A, 0.3), (m.D_B, -0.2)):
        nn.init.zeros_(D[-1].weight)
        nn.init.constant_(D[-1].bias, c)
    d, g = m.d_loss(b, a), m.g_loss(b, a)
    assert d["real_A"].item() == pytest.approx(0.5 * 0.7 ** 2)
    assert d["fake_A"].item() == pytest.approx(0.5 * 0.3 ** 2)
    assert d["real_B"].item() == pytest.approx(0.5 * 1.2 ** 2)
    assert d["fake_B"].item() == pytest.approx(0.5 * 0.2 ** 2)
    assert g["gan_F"].item() == pytest.approx(0.7 ** 2)
    assert g["gan_G"].item() == pytest.approx(1.2 ** 2)
    assert m.history_a.n == m.history_b.n == 4       # D was shown the fakes through the buffer


def test_each_d_judges_its_own_domain():
    """Known maps G(a) = 2a, F(b) = b + 1/4 and score maps D_A(x) = mean over channels of x,
    D_B(x) = that of x / 2 + 1/10: D_A scores a against F(b), D_B scores b against G(a)
    (through the filling history, which shows them as they are), each term as in Eq. 1 with
    least squares."""
    torch.manual_seed(0)
    a, b = torch.rand(2, 4, 3, 8, 8) * 2 - 1
    m = tiny()
    m.G, m.F = Map(lambda x: 2 * x), Map(lambda y: y + 0.25)
    m.D_A = Map(lambda x: x.mean(1, keepdim=True))
    m.D_B = Map(lambda x: x.mean(1, keepdim=True) / 2 + 0.1)
    d, g = m.d_loss(b, a), m.g_loss(b, a)
    ls = lambda s, t: ((s - t) ** 2).mean().item()
    want = {"real_A": 0.5 * ls(m.D_A(a), 1), "fake_A": 0.5 * ls(m.D_A(b + 0.25), 0),
            "real_B": 0.5 * ls(m.D_B(b), 1), "fake_B": 0.5 * ls(m.D_B(2 * a), 0)}
    for k, v in want.items():
        assert d[k].item() == pytest.approx(v, rel=1e-5), k
    assert g["gan_G"].item() == pytest.approx(ls(m.D_B(2 * a), 1), rel=1e-5)
    assert g["gan_F"].item() == pytest.approx(ls(m.D_A(b + 0.25), 1), rel=1e-5)


def test_d_step_stops_at_the_generators_and_g_terms_reach_them():
    """The Ds' terms give G and F no gradient (the history detaches the fakes); each of the
    generators' terms reaches the networks it is about: gan_G and idt_G G, gan_F and idt_F F,
    and each cycle term both."""
    torch.manual_seed(0)
    a, b = torch.rand(2, 2, 3, 8, 8) * 2 - 1
    m = tiny()
    sum(m.d_loss(b, a).values()).backward()
    nets = {"G": list(m.G.parameters()), "F": list(m.F.parameters())}
    assert all(p.grad is None for p in nets["G"] + nets["F"])
    assert all(p.grad is not None for p in [*m.D_A.parameters(), *m.D_B.parameters()])
    g = m.g_loss(b, a)
    reaches = {"gan_G": "G", "idt_G": "G", "gan_F": "F", "idt_F": "F",
               "cyc_A": "GF", "cyc_B": "GF"}
    for term, names in reaches.items():
        for name in names:
            grads = torch.autograd.grad(g[term], nets[name], retain_graph=True, allow_unused=True)
            assert any(x is not None and x.abs().sum() > 0 for x in grads), (term, name)


def test_history_buffer():
    """Fakes numbered 0, 1, 2, ...: the first 50 pass as they are; after that about half of those
    shown are past ones, each then replaced by the new one, so no past fake is shown twice."""
    torch.manual_seed(0)
    h = History(50)
    shown = []
    for step in range(400):
        fake = torch.arange(4 * step, 4 * step + 4).float().view(4, 1, 1, 1).expand(4, 1, 2, 2)
        out = h(fake)[:, 0, 0, 0].long()
        assert len(h.images) == 50
        shown.append(out)
    shown = torch.cat(shown)
    new = torch.arange(len(shown))
    assert torch.equal(shown[:52], new[:52])                  # filling: shown as they come
    past = shown[52:] != new[52:]
    assert (shown[52:][past] < new[52:][past]).all()          # from the past, never the future
    assert 0.45 < past.float().mean() < 0.55                  # with probability 1/2
    assert len(shown[52:][past].unique()) == past.sum()       # each past fake shown once
    assert len(h.images[:, 0, 0, 0].unique()) == 50           # 50 distinct fakes held


def test_sample_translates_with_g_and_back_with_f():
    torch.manual_seed(0)
    m = tiny()
    a = torch.randn(3, 3, 8, 8)
    assert torch.equal(m.sample(2, a), m.G(a[:2]).detach())              # AtoB: G(a)
    assert torch.equal(m.sample(2, a, direction="BtoA"), m.F(a[:2]).detach())   # BtoA: F(b)
    with pytest.raises(ValueError, match="AtoB or BtoA"):
        m.sample(2, a, direction="up")


def test_unpaired_data():
    images, domain, names, size = unpaired_dataset("shapes", 8)
    assert names is None and size == 8 and images.shape[1:] == (8, 8, 3)
    a, b = images[domain == 0], images[domain == 1]
    assert 0.3 < len(a) / len(images) < 0.7                 # circles and squares, a third each
    colour = lambda x: x.reshape(len(x), -1, 3).max(1).mean(0)  # the mean of each one's brightest
    assert np.abs(colour(a) - colour(b)).max() < 10         # the same colours in both domains
    # image i of A holds i, of B 10 + i
    A = torch.arange(5).view(5, 1, 1, 1).expand(5, 2, 2, 1).to(torch.uint8)
    B = (10 + torch.arange(7)).view(7, 1, 1, 1).expand(7, 2, 2, 1).to(torch.uint8)
    domain = torch.tensor([0] * 5 + [1] * 7)
    batches = UnpairedBatches(torch.cat([A, B]), domain, 2, "cpu", 0, flip=False)
    pairs = set()
    for step in range(60):
        x, y = batches(step)
        b_ids, a_ids = (((t[:, 0, 0, 0] + 1) * 127.5).round().long().tolist() for t in (x, y))
        assert all(10 <= i < 17 for i in b_ids)                         # x from B
        assert all(0 <= i < 5 for i in a_ids)                           # y from A
        pairs |= set(zip(a_ids, b_ids))
    assert len(pairs) > 25                          # drawn independently: most of the 35 pairs


def test_learns_an_unpaired_toy_task():
    """Red shapes (A) <-> blue shapes (B), unpaired: a hundred steps lower the cycle loss well below
    its start and turn G(a) blue, measured by blue minus red over each held-out shape's pixels."""
    torch.manual_seed(0)
    images, labels, _ = shapes(n=1200, size=8, seed=0)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    A = x[labels % 4 == 0]                                  # red (label = kind * 4 + colour)
    B = x[labels % 4 == 2]                                  # blue
    a_val, a_train, b_train = A[-50:], A[:-50], B

    def blueness(a, out):
        shape = (a - a[:, :, :1, :1]).abs().sum(1) > 0.5        # (n, S, S): the shape's pixels
        return ((out[:, 2] - out[:, 0]) * shape).sum() / shape.sum()

    m = tiny(lambda_identity=0, lr=3e-3)
    m.eval()
    blue0, cyc0 = blueness(a_val, m.sample(50, a_val)), (m.F(m.G(a_val)) - a_val).abs().mean()
    m.train()
    d_opt, g_opt = m.configure_optimizers()
    for step in range(100):
        a = a_train[torch.randint(0, len(a_train), (16,))]
        b = b_train[torch.randint(0, len(b_train), (16,))]
        d_opt.zero_grad()
        sum(m.d_loss(b, a).values()).backward()
        d_opt.step()
        g_opt.zero_grad()
        sum(m.g_loss(b, a).values()).backward()
        g_opt.step()
    m.eval()
    with torch.no_grad():
        blue, cyc = blueness(a_val, m.sample(50, a_val)), (m.F(m.G(a_val)) - a_val).abs().mean()
    assert blueness(a_val, a_val) < -1 and blueness(B, B) > 1   # it tells the domains apart
    assert blue > 0.35 and blue > blue0 + 0.3, (blue0, blue)
    assert cyc < 0.4 * cyc0, (cyc0, cyc)


def write_domains(root, n_a, n_b, size=8):
    """A/ and B/ of different counts and unrelated names: random blocks in A, their negatives in
    B."""
    rng = np.random.default_rng(0)
    for d, n in (("A", n_a), ("B", n_b)):
        (root / d).mkdir(parents=True)
        for i in range(n):
            im = rng.integers(0, 256, (size // 2, size // 2, 3), dtype=np.uint8)
            im = im.repeat(2, 0).repeat(2, 1)
            Image.fromarray(im if d == "A" else 255 - im).save(root / d / f"{d.lower()}{i * 7}.png")


def test_command_line(cli, tmp_path):
    write_domains(tmp_path / "data", 6, 9)
    out = tmp_path / "run"
    args = ["--data", tmp_path / "data", "--image-size", 8, "--ngf", 4, "--ndf", 4,
            "--n-blocks", 1, "--n-layers", 1, "--batch-size", 2, "--log-every", 2, "--grid", 12]
    r = cli("train.py", "cyclegan", "--steps", 4, "--out", out, *args)
    assert r.returncode == 0, r.out
    assert "6 images in A, 9 in B" in r.out and "G.cyc_A" in r.out and "D.fake_B" in r.out
    w, h = Image.open(out / "samples_000004.png").size
    assert w == 6 * 10 + 2 and h == 2 * 10 + 2       # rows a | G(a) | F(G(a)) | b | F(b) | G(F(b))
    r = cli("train.py", "cyclegan", "--steps", 6, "--out", out, "--resume")
    assert r.returncode == 0 and "step       6/6" in r.out, r.out
    ckpt = out / "ckpt.pt"
    one = tmp_path / "data" / "A" / "a7.png"
    r = cli("sample.py", ckpt, "--input", one, "--out", tmp_path / "one.png")
    assert r.returncode == 0 and "1 images: mean cycle L1" in r.out, r.out
    size = Image.open(tmp_path / "one.png").size
    assert size == (3 * 10 + 2, 10 + 2)                 # input | translation | reconstruction
    outs = str(tmp_path / "outs") + "/"
    r = cli("sample.py", ckpt, "--input", tmp_path / "data" / "B", "--direction", "BtoA",
            "--out", outs)
    assert r.returncode == 0 and "9 images" in r.out, r.out
    written = sorted(p.name for p in (tmp_path / "outs").glob("*.png"))
    assert written == sorted(p.name for p in (tmp_path / "data" / "B").glob("*.png"))
    r = cli("sample.py", ckpt, "--out", tmp_path / "none.png")
    assert r.returncode == 1 and "--input" in r.out


@pytest.mark.parametrize("layout, message", [
    ({"A": 3}, "needs two folders of images in"),               # no B/
    ({"A": 3, "B": 0}, "no images found in"),                   # an empty domain
    ({"trainA": 3, "trainB": 2}, None),                         # the public datasets' names
])
def test_folder_layouts(cli, tmp_path, layout, message):
    rng = np.random.default_rng(0)
    for d, n in layout.items():
        (tmp_path / "data" / d).mkdir(parents=True)
        for i in range(n):
            im = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(im).save(tmp_path / "data" / d / f"{i}.png")
    r = cli("train.py", "cyclegan", "--data", tmp_path / "data", "--image-size", 8,
            "--ngf", 4, "--ndf", 4, "--n-blocks", 1, "--n-layers", 1, "--batch-size", 2,
            "--steps", 1, "--out", tmp_path / "run")
    if message is None:
        assert r.returncode == 0 and "3 images in A, 2 in B" in r.out, r.out
    else:
        one_line = len(r.stderr.strip().splitlines()) == 1
        assert r.returncode == 1 and message in r.out and one_line, r.out
