"""stylegan.py: AdaIN, a style layer's start and its noise, the mapping network, equalised lr in
each network, StyleGAN2's demodulation, the conditional model (mapping and projection D), growing,
truncation, style mixing, R1, which steps reach G, the paper's parameter counts, learning on tiny
data, the command line. ProGAN's pieces (equalised lr's steps, minibatch std, the fade-in, resume
mid-phase) are tested in tests/test_progan.py."""
import math
import pytest
import torch
import torch.nn.functional as F
import support.settings
from progan import Equalized, pixel_norm
from stylegan import StyleGAN, StyleLayer, adain, modulated_conv


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
            gain = 1.0 if name.endswith(("A", "to_rgb.0", "D_out.5")) else 2**0.5
            lr_mul = 0.01 if name.startswith("f.") else 1.0
            tol = 3 / math.sqrt(2 * n) + 0.01            # 3 standard errors of a std
            assert n >= 256, name
            assert layer.weight.std().item() == pytest.approx(1 / lr_mul, rel=tol), name
            used = (layer.weight * layer.scale).std().item()
            assert used == pytest.approx(gain / math.sqrt(fan_in), rel=tol), name
            seen.add(name.split(".")[0])
    assert seen == {"f", "g", "to_rgb", "D_rgb", "D", "D_out"}
    conv = Equalized(64, 32, 3)                          # fan_in = 64 * 3 * 3
    assert (conv.weight * conv.scale).std().item() == pytest.approx(math.sqrt(2 / 576), rel=0.02)


def test_demodulation_gives_unit_variance_outputs_whatever_the_styles_scale():
    """Eq. 3's point: for inputs of unit variance and i.i.d. weights, each output channel has
    variance sum_i,k w''_ijk^2 = 1, whatever the styles' scale (0.01 to 100 here)."""
    torch.manual_seed(0)
    conv = Equalized(64, 8, 3)
    x = torch.randn(4, 64, 24, 24)
    for scale in (0.01, 1.0, 100.0):
        s = scale * (torch.rand(4, 64) + 0.5)            # a style per sample and input channel
        out = modulated_conv(x, conv, s)[:, :, 1:-1, 1:-1]   # away from the zero padding
        assert torch.allclose(out.std((2, 3)), torch.ones(4, 8), atol=0.1), scale


def test_modulation_scales_the_input_channels_of_each_sample():
    """w'_ijk = s_i w_ijk: with s_i = 0 for every input channel but one, only that channel reaches
    the output; and each sample is convolved with its own weights, no other sample's."""
    torch.manual_seed(0)
    conv = Equalized(6, 4, 3)
    x = torch.randn(2, 6, 8, 8)
    s = torch.zeros(2, 6)
    s[:, 3] = torch.tensor([0.5, 7.0])
    out = modulated_conv(x, conv, s)
    x2 = x.clone()
    x2[:, [0, 1, 2, 4, 5]] = torch.randn(2, 5, 8, 8)     # every channel but 3 changed
    assert torch.allclose(modulated_conv(x2, conv, s), out, atol=1e-5)
    x3 = x.clone()
    x3[1] = torch.randn(6, 8, 8)                         # sample 1 changed
    assert torch.equal(modulated_conv(x3, conv, s)[0], out[0])
    assert (modulated_conv(x3, conv, s)[1] - out[1]).abs().max() > 0.1
    one = F.conv2d(x[:, 3:4], conv.weight[:, 3:4], padding=1)    # channel 3 alone, demodulated:
    w = conv.weight[:, 3:4]
    assert torch.allclose(out, one / w.pow(2).sum((1, 2, 3)).sqrt().view(1, 4, 1, 1), atol=1e-4)


def test_a_demodulated_style_layer_has_no_instance_norm():
    """With demod, the layer's output keeps the conv's statistics: no AdaIN sets each channel to
    the style's mean and std (StyleGAN2 removed it)."""
    torch.manual_seed(0)
    layer = StyleLayer(8, 8, w_dim=4, demod=True)
    out = layer(torch.randn(2, 8, 8, 8) + 5.0, torch.randn(2, 4))
    assert out.mean((2, 3)).abs().max() > 0.5           # AdaIN would make it y_b = 0 at start
    assert layer.A.weight.shape == (8, 4)                # s: one scale per input channel


def test_the_conditional_mapping_takes_y_as_ids_or_multi_hot_rows():
    torch.manual_seed(0)
    m = tiny(num_classes=3)
    z = torch.randn(6, 16)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    w = m.mapping(z, y)
    assert torch.allclose(m.mapping(z, F.one_hot(y, 3).float()), w, atol=1e-6)   # a set of one
    assert torch.allclose(m.mapping(z), w, atol=1e-6)    # no y: every class in turn
    assert (m.mapping(z, torch.zeros(6, dtype=torch.long)) - w)[1:3].abs().min() > 0   # y shows
    both = m.mapping(z, torch.tensor([[1.0, 1.0, 0.0]]).expand(6, -1))   # a multi-hot set
    assert both.shape == (6, 16) and not torch.allclose(both, w)
    torch.manual_seed(1)
    a = m.sample(4, torch.zeros(4, dtype=torch.long))
    torch.manual_seed(1)
    b = m.sample(4, torch.ones(4, dtype=torch.long))
    assert (a - b).abs().max() > 1e-4                    # the same z, another class


def test_the_projection_discriminator_reads_the_classs_feature():
    """11. logit = <phi(x), e_y> / sqrt(c4), e_y = pixel norm(embed_D(y)). With embed_D(k) a
    multiple of the k-th unit vector, e_k = sqrt(c4) u_k, so the logit of class k is phi(x)_k."""
    from progan import features, minibatch_std
    torch.manual_seed(0)
    m = tiny(num_classes=3)
    with torch.no_grad():
        m.D_embed.weight.zero_()
        for k, scale in enumerate((0.3, 2.0, 9.0)):
            m.D_embed.weight[k, k] = scale
        x = torch.randn(4, 3, 8, 8)
        phi = m.D_out(minibatch_std(features(m.D_rgb, m.D, x, *m.phase()), m.group))   # (4, 16)
        for k in range(3):
            logit = m.logits(x, torch.full((4,), k))
            assert torch.allclose(logit, phi[:, k], atol=1e-5), k
    assert phi.shape == (4, 16)


def test_growing_synthesis_draws_at_the_phases_resolution():
    """--progressive at 8x8: 4x4 (two layers, toRGB_4, upsampled) before growing, the same image
    when 8x8 starts fading in (alpha = 0), toRGB_8 after all four layers once grown; each batch of
    G's step is counted."""
    torch.manual_seed(0)
    m = tiny(progressive=True, fade_images=8, stable_images=4).eval()
    for layer in m.g:
        layer.B.data.normal_()                           # noise that shows in the image
    ws = m.mapping(torch.randn(2, 16))[:, None].expand(-1, m.num_layers, -1).detach()
    noise = m.noises(2)
    with torch.no_grad():
        h = m.const.expand(2, -1, -1, -1)
        for i in range(4):
            h = m.g[i](h, ws[:, i], noise[i])
            if i == 1:
                small = m.to_rgb[0](h).repeat_interleave(2, 2).repeat_interleave(2, 3)
        assert torch.equal(m.synthesis(ws, noise), small)                  # seen 0: 4x4
        m.seen.fill_(4)
        assert torch.equal(m.synthesis(ws, noise), small)                  # alpha = 0
        m.seen.fill_(12)
        assert torch.allclose(m.synthesis(ws, noise), m.to_rgb[1](h), atol=1e-6)   # grown
    m.seen.zero_()
    m.d_loss(torch.randn(4, 3, 8, 8))
    m.g_loss(None)
    assert int(m.seen) == 4 and "seen" not in tiny().state_dict()


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
    m.logits = lambda x, y=None: x.flatten(1) @ v
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
    r = cli("train.py", "stylegan", "--steps", 2, "--out", tmp_path / "d", "--demod", *args)
    assert r.returncode == 0 and "G.gan" in r.out, r.out


def test_command_line_conditional(cli, tmp_path, monkeypatch):
    """--classes trains the conditional model (the shapes' classes), sample.py draws a class."""
    monkeypatch.delitem(support.settings.UNLABELLED, "stylegan", raising=False)
    out = tmp_path / "c"
    r = cli("train.py", "stylegan", "--classes", "--steps", 2, "--out", out, "--image-size", 8,
            "--ch", 8, "--max-ch", 16, "--z-dim", 16, "--w-dim", 16, "--n-mlp", 2,
            "--batch-size", 8, "--grid", 4)
    assert r.returncode == 0 and "G.gan" in r.out, r.out
    ck = torch.load(out / "ckpt.pt", weights_only=True)
    assert ck["config"]["num_classes"] > 1 and "D_embed.weight" in ck["weights"]
    r = cli("sample.py", out / "ckpt.pt", "-n", 4, "--label", 1, "--out", tmp_path / "s.png")
    assert r.returncode == 0 and (tmp_path / "s.png").exists(), r.out
