"""stylegan.py: AdaIN, a style layer's start and its noise, the mapping network, equalised lr and
its step sizes, minibatch std, truncation, style mixing, R1, which steps reach G, the paper's
parameter counts, learning on tiny data, the command line."""
import math
import pytest
import torch
from stylegan import Equalized, StyleGAN, StyleLayer, adain, minibatch_std, pixel_norm


def tiny(size=8, **kw):
    return StyleGAN(size, 3, **{**dict(z_dim=16, w_dim=16, n_mlp=2, ch=8, max_ch=16), **kw})


def test_parameter_counts_match_the_papers(monkeypatch):
    """At 1024x1024 with the paper's widths (512 down to 16, z and w of 512): G has 26.2M
    parameters (StyleGAN, Sec. 2) and D 23.1M (ProGAN, Table 2)."""
    empty = lambda *a, **k: torch.empty(*a, **k)
    monkeypatch.setattr(torch, "randn", empty)           # counting only: skip drawing 49M numbers
    m = StyleGAN(1024, 3, z_dim=512, w_dim=512, ch=16, max_ch=512)
    g = sum(p.numel() for n, p in m.named_parameters() if not n.startswith("D"))
    d = sum(p.numel() for n, p in m.named_parameters() if n.startswith("D"))
    assert round(g / 1e6, 1) == 26.2 and round(d / 1e6, 1) == 23.1, (g, d)
    assert sum(p.numel() for p in m.f.parameters()) == 8 * (512 * 512 + 512)   # the 8 FC of f
    assert m.num_layers == 18                            # 18 styles, 4x4 to 1024x1024


def test_adain_gives_each_channel_the_styles_mean_and_std():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8) * 5 + 3
    y_s, y_b = torch.rand(2, 3) + 0.5, torch.randn(2, 3)
    out = adain(x, y_s, y_b)
    assert torch.allclose(out.mean((2, 3)), y_b, atol=1e-5)
    assert torch.allclose(out.std((2, 3), unbiased=False), y_s, rtol=1e-4)


def test_a_style_layer_starts_as_plain_normalisation_with_noise_per_pixel():
    """A(0) is A's bias: y_s = 1, y_b = 0, so at w = 0 the layer's output has mean 0 and std 1 in
    each channel. The noise is one image per sample, scaled per channel by B: on h = 0 with B > 0,
    LeakyReLU(B_c n) = B_c LeakyReLU(n) and AdaIN divides B_c out, so every channel is the same
    image, and the two samples' differ."""
    torch.manual_seed(0)
    layer = StyleLayer(4, 4, w_dim=8, conv=False)
    w = torch.zeros(2, 8)
    y_s, y_b = layer.A(w).chunk(2, 1)
    assert torch.equal(y_s, torch.ones(2, 4)) and torch.equal(y_b, torch.zeros(2, 4))
    out = layer(torch.randn(2, 4, 8, 8) * 3 + 1, w)
    assert torch.allclose(out.mean((2, 3)), torch.zeros(2, 4), atol=1e-5)
    assert torch.allclose(out.std((2, 3), unbiased=False), torch.ones(2, 4), atol=1e-4)
    with torch.no_grad():
        layer.B.copy_(torch.tensor([0.5, 1.0, 2.0, 4.0]))
    out = layer(torch.zeros(2, 4, 8, 8), w)
    assert torch.allclose(out, out[:, :1].expand_as(out), atol=1e-4)    # one noise image, all C
    assert (out[0] - out[1]).abs().max() > 0.1                          # a fresh one per sample


def test_mapping_ignores_the_scale_of_z():
    torch.manual_seed(0)
    m = tiny()
    z = torch.randn(4, 16)
    c = torch.tensor([[0.1], [1.0], [7.0], [300.0]])     # a different scale per sample
    assert torch.allclose(pixel_norm(c * z).pow(2).mean(1), torch.ones(4), atol=1e-5)
    assert torch.allclose(m.mapping(c * z), m.mapping(z), atol=1e-5)
    assert not torch.allclose(m.mapping(z), m.mapping(torch.randn(4, 16)))


def test_equalised_lr_weights_have_he_std():
    """Stored weights ~ N(0, 1) (N(0, 1/0.01^2) in f); the weights used are w * c with std He's
    sqrt(2 / fan_in), or 1 / sqrt(fan_in) for the layers of gain 1 (A, to RGB, D's logit)."""
    torch.manual_seed(0)
    m = StyleGAN(16, 64, z_dim=128, w_dim=128, ch=64, max_ch=256)   # 64 "colours": to RGB 64x64
    seen = set()
    for name, layer in m.named_modules():
        if isinstance(layer, Equalized):
            fan_in, n = layer.weight[0].numel(), layer.weight.numel()
            gain = 1.0 if name.endswith(("A", "to_rgb", "D_out.5")) else 2**0.5
            lr_mul = 0.01 if name.startswith("f.") else 1.0
            tol = 3 / math.sqrt(2 * n) + 0.01            # 3 standard errors of a std
            assert n >= 256, name
            assert layer.weight.std().item() == pytest.approx(1 / lr_mul, rel=tol), name
            used = (layer.weight * layer.scale).std().item()
            assert used == pytest.approx(gain / math.sqrt(fan_in), rel=tol), name
            seen.add(name.split(".")[0])
    assert seen == {"f", "g", "to_rgb", "D", "D_out"}
    conv = Equalized(64, 32, 3)                          # fan_in = 64 * 3 * 3
    assert (conv.weight * conv.scale).std().item() == pytest.approx(math.sqrt(2 / 576), rel=0.02)


def test_equalised_lr_steps_move_used_weights_by_c_and_biases_by_lr_mul():
    """Adam's first step moves every stored parameter by lr (its size, whatever the gradient's):
    the used weights w * c then move by lr * c, and the used biases b * lr_mul by lr * lr_mul,
    which makes f's learning rate 0.01 times G's."""
    torch.manual_seed(0)
    layer = Equalized(8, 4, lr_mul=0.01).double()       # float64: steps 1e-5 of weights ~100
    used_w = lambda: layer.weight.detach() * layer.scale
    used_b = lambda: layer.bias.detach() * layer.lr_mul
    w0, b0 = used_w(), used_b()
    opt = torch.optim.Adam(layer.parameters(), lr=1e-3)
    (layer(torch.randn(16, 8).double()) * torch.randn(16, 4).double()).sum().backward()
    opt.step()
    c = 2**0.5 * 0.01 / math.sqrt(8)
    assert torch.allclose((used_w() - w0).abs(), torch.full((4, 8), 1e-3 * c).double())
    assert torch.allclose((used_b() - b0).abs(), torch.full((4,), 1e-3 * 0.01).double())
    x = torch.randn(3, 8).double()
    want = x @ (layer.weight * c).T + 0.01 * layer.bias                 # what the layer computes
    assert torch.allclose(layer(x), want, atol=1e-6)


def test_minibatch_std_on_a_hand_made_batch():
    """Channel 0 is [0, 0, 2, 2] over the batch at every position (std 1); channel 1 is constant
    except at one position, [0, 4, 0, 4] (std 2). Mean over 2 channels x 4 positions:
    (4 * 1 + 2) / 8 = 0.75."""
    h = torch.zeros(4, 2, 2, 2)
    h[2:, 0] = 2.0
    h[:, 1] = 1.0
    h[:, 1, 0, 0] = torch.tensor([0.0, 4.0, 0.0, 4.0])
    out = minibatch_std(h, group=4)
    assert out.shape == (4, 3, 2, 2) and torch.equal(out[:, :2], h)
    assert torch.allclose(out[:, 2], torch.full((4, 2, 2), 0.75), atol=1e-4)
    two = minibatch_std(torch.cat([h, 3 * h]), group=4)  # two groups of 4: 0.75 and 2.25
    assert torch.allclose(two[:, 2, 0, 0], torch.tensor([0.75] * 4 + [2.25] * 4), atol=1e-4)
    torch.manual_seed(0)
    m, x = tiny(), torch.randn(8, 3, 8, 8)
    d = lambda x: m.critic(x).detach()
    x2 = x.clone()
    x2[1] += 1.0                                         # another sample of the first group
    assert (d(x2)[0] - d(x)[0]).abs() > 1e-4             # D sees its group...
    assert torch.equal(d(x2)[4:], d(x)[4:])              # ... and only its group


def test_truncation_psi_0_is_the_average_w_and_psi_1_the_plain_sample():
    torch.manual_seed(0)
    m = tiny().eval()
    for layer in m.g:
        layer.B.data.normal_()                           # noise that shows in the image
    m.w_avg.normal_()
    z = torch.randn(4, 16)
    w = m.mapping(z)
    noise = [n.expand(4, -1, -1, -1) for n in m.noises(1)]   # the same noise for every z
    g = lambda w: m.synthesis(w[:, None].expand(-1, m.num_layers, -1), noise)
    with torch.no_grad():
        x0, x1 = g(m.truncate(w, 0.0)), g(m.truncate(w, 1.0))
        assert torch.allclose(x0, x0[:1].expand_as(x0), atol=1e-5)   # psi = 0: one image for any z
        assert torch.allclose(x0[0], g(m.w_avg[None])[0], atol=1e-5)   # ... the image of w_avg
        assert torch.allclose(x1, g(w), atol=1e-5) and (x1 - x1[:1]).abs().max() > 1e-2
    assert torch.allclose(m.truncate(w, 0.5) - m.w_avg, 0.5 * (w - m.w_avg), atol=1e-6)
    for layer in m.g:
        layer.B.data.zero_()                             # no noise: sample() shows psi too
    one = m.sample(1, psi=0.0).expand(4, -1, -1, -1)
    assert torch.allclose(m.sample(4, psi=0.0), one, atol=1e-5)


def test_style_mixing_crossover():
    torch.manual_seed(0)
    m = tiny().eval()
    w1, w2 = m.mapping(torch.randn(2, 3, 16))
    noise = m.noises(3)
    L = m.num_layers
    image = lambda c: m.synthesis(m.styles(w1, w2, torch.full((3,), c)), noise)
    plain = lambda w: m.synthesis(w[:, None].expand(-1, L, -1), noise)
    with torch.no_grad():
        assert torch.allclose(image(0), plain(w2), atol=1e-5)   # crossover at the first layer: w2's
        assert torch.allclose(image(L), plain(w1), atol=1e-5)   # after the last: w1's
        assert (image(2) - plain(w1)).abs().max() > 1e-3
        assert (image(2) - plain(w2)).abs().max() > 1e-3
    ws = m.styles(w1, w2, torch.tensor([1, 3, L]))
    assert torch.equal(ws[1, :3], w1[1].expand(3, -1))
    assert torch.equal(ws[1, 3:], w2[1].expand(L - 3, -1))
    # training mixes a fraction `mixing` of the fakes, each at a crossover in 1..L-1
    seen = []
    m.styles = lambda a, b, c: seen.append(c) or StyleGAN.styles(m, a, b, c)
    for p in (0.0, 0.5, 1.0):
        m.mixing = p
        m.d_loss(torch.zeros(400, 3, 8, 8))
        mixed = seen[-1] < L
        assert abs(mixed.float().mean().item() - p) < 0.1 and (seen[-1][mixed] >= 1).all()


def test_sampling_mix_makes_the_papers_table():
    """--mix K on a 3x3 grid: each row shares the styles before K, each column those from K on."""
    m = tiny()
    seen = []
    m.synthesis = lambda ws, noise=None: seen.append(ws) or torch.zeros(len(ws), 3, 8, 8)
    m.sample(9, mix=2)
    ws = seen[0].view(3, 3, m.num_layers, -1)            # (row, column, layer, w_dim)
    assert torch.equal(ws[:, :, :2], ws[:, :1, :2].expand(-1, 3, -1, -1))   # coarse: a w per row
    assert torch.equal(ws[:, :, 2:], ws[:1, :, 2:].expand(3, -1, -1, -1))   # fine: a w per column
    assert not torch.equal(ws[0, 0, 0], ws[1, 0, 0]) and not torch.equal(ws[0, 0, 2], ws[0, 1, 2])
    with pytest.raises(ValueError, match="--mix"):
        m.sample(4, mix=m.num_layers)


def test_losses_and_r1_on_a_linear_d():
    """With D(x) = <v, x>: grad_x D = v, so R1 = gamma/2 ||v||^2 for every sample, and its gradient
    for v is gamma v. D's and G's losses are -log sigmoid of the logits they want high."""
    torch.manual_seed(0)
    m = tiny(gamma=3.0)
    v = (0.05 * torch.randn(3 * 8 * 8)).requires_grad_(True)
    m.critic = lambda x, y=None: x.flatten(1) @ v
    x = torch.rand(5, 3, 8, 8) * 2 - 1
    terms = m.d_loss(x)
    assert terms["r1"].item() == pytest.approx(1.5 * v.pow(2).sum().item(), rel=1e-5)
    grad, = torch.autograd.grad(terms["r1"], v, retain_graph=True)   # D trains on the penalty
    assert torch.allclose(grad, 3.0 * v, rtol=1e-5)
    real, fake = (x.flatten(1) @ v).detach(), (m.fake.flatten(1) @ v).detach()
    want_real = -torch.log(torch.sigmoid(real)).mean().item()
    want_fake = -torch.log(1 - torch.sigmoid(fake)).mean().item()
    want_gan = -torch.log(torch.sigmoid(fake)).mean().item()
    assert terms["real"].item() == pytest.approx(want_real, rel=1e-5)
    assert terms["fake"].item() == pytest.approx(want_fake, rel=1e-5)
    assert m.g_loss(x)["gan"].item() == pytest.approx(want_gan, rel=1e-5)
    assert "r1" not in tiny(gamma=0.0).d_loss(x)


def test_d_step_stops_at_g_and_g_step_reaches_it():
    """D's terms (R1 included) give G's parameters no gradient: the fakes are detached; G's term
    reaches f, the constant, every style layer and to RGB."""
    torch.manual_seed(0)
    m = tiny(gamma=1.0)
    sum(m.d_loss(torch.randn(4, 3, 8, 8)).values()).backward()
    g_params = [p for name, p in m.named_parameters() if not name.startswith("D")]
    assert all(p.grad is None for p in g_params)
    assert all(p.grad is not None for name, p in m.named_parameters() if name.startswith("D"))
    m.g_loss(None)["gan"].backward()
    assert all(p.grad is not None for p in g_params)


def test_w_avg_follows_the_mapped_w():
    torch.manual_seed(0)
    m = tiny(w_avg_beta=0.75)
    m.w_avg.fill_(1.0)
    torch.manual_seed(1)
    w1 = m.mapping(torch.randn(2 * 6, 16))[:6].detach()  # the w's d_loss draws first
    torch.manual_seed(1)
    m.d_loss(torch.zeros(6, 3, 8, 8))
    # w_avg <- beta w_avg + (1 - beta) mean w
    assert torch.allclose(m.w_avg, 0.75 * 1.0 + 0.25 * w1.mean(0), atol=1e-6)
    assert "w_avg" in m.state_dict()


def test_learns_the_colour_of_the_data():
    """50 steps on red squares at 8x8, at lr 1e-2 (the paper's 1e-3 moves each weight at most 1e-3
    a step: too slow for a test): the samples' per-channel means move most of the way to the
    data's."""
    torch.manual_seed(0)
    data = -torch.ones(256, 3, 8, 8)
    for i, (r, c) in enumerate(torch.randint(0, 4, (256, 2)).tolist()):
        data[i, 0, r:r + 4, c:c + 4] = 0.8               # a red square on black
    target = data.mean((0, 2, 3))
    m = tiny(gamma=1.0, lr=1e-2)
    d_opt, g_opt = m.configure_optimizers()
    dist = lambda: (m.sample(256).mean((0, 2, 3)) - target).abs().sum()
    before = dist()
    for step in range(50):
        x = data[torch.randint(0, 256, (16,))]
        for opt, objective in ((d_opt, m.d_loss), (g_opt, m.g_loss)):
            opt.zero_grad()
            sum(v for v in objective(x).values() if v.requires_grad).backward()
            opt.step()
    after = dist()
    assert after < 0.3 * before, (before, after)


def test_command_line(cli, tmp_path):
    out = tmp_path / "run"
    args = ["--image-size", 8, "--ch", 8, "--max-ch", 16, "--z-dim", 16, "--w-dim", 16,
            "--batch-size", 8, "--grid", 4, "--log-every", 2]
    r = cli("train.py", "stylegan", "--steps", 3, "--out", out, *args)
    assert r.returncode == 0 and "D.r1" in r.out and "G.gan" in r.out, r.out
    r = cli("train.py", "stylegan", "--steps", 5, "--out", out, "--resume")
    assert r.returncode == 0 and "step       5/5" in r.out, r.out
    r = cli("sample.py", out / "ckpt.pt", "-n", 9, "--psi", 0.7, "--mix", 2,
            "--out", tmp_path / "mix.png")
    assert r.returncode == 0 and (tmp_path / "mix.png").exists(), r.out
    r = cli("sample.py", out / "ckpt.pt", "-n", 4, "--gif", "--frames", 3, "--psi", 0.5,
            "--out", tmp_path / "s.png")
    assert r.returncode == 0 and (tmp_path / "s.gif").exists(), r.out
    r = cli("sample.py", out / "ckpt.pt", "--mix", 99)
    assert r.returncode == 1 and r.stderr.startswith("error: --mix"), r.out
    r = cli("train.py", "stylegan", "--classes", "--steps", 1, "--out", tmp_path / "c", *args)
    assert r.returncode == 1 and "num_classes" in r.stderr, r.out
    assert len(r.stderr.strip().splitlines()) == 1, r.out
