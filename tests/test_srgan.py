"""srgan.py: the periodic shuffle's index rule, 4x output, parameter counts against the paper's
configuration (G by hand, layer by layer) and torchvision's VGG19, D's layout, the bicubic input,
the perceptual loss (zero for the same image; noise farther than a one-pixel move of a texture
as far in pixels), the weight 10^-3 of l_Gen, D's targets and which steps reach G,
SRResNet's pixel MSE and single optimizer, the feature files, the command line."""
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from srgan import SRGAN, SRResNet, VGGFeatures, discriminator, shuffle, vgg19
from support.classifier import Classifier


def count(module):
    return sum(p.numel() for p in module.parameters())


def classifier_file(path, channels=3, width=8):
    """A classifier of evaluate.py's format (random weights, seeded), as --features reads it."""
    torch.manual_seed(0)
    config = dict(channels=channels, num_classes=10, width=width)
    net = Classifier(**config)
    torch.save(dict(model="classifier", config=config, class_names=list("abcdefghij"),
                    image_size=16, weights=net.state_dict()), path)
    return net.eval()


def small(tmp_path, **kw):
    """A tiny SRGAN on 16x16 images with a classifier's features."""
    torch.manual_seed(0)
    clf = tmp_path / "clf.pt"
    if not clf.exists():
        classifier_file(clf)
    return SRGAN(16, 3, **{"features": str(clf), "B": 1, "ngf": 8, "ndf": 8, **kw})


def test_the_shuffle_puts_channel_r2c_plus_ri_plus_j_at_pixel_rh_plus_i_rw_plus_j():
    r = 2
    T = torch.randn(2, 3 * r * r, 4, 5)
    P = shuffle(T, r)
    assert P.shape == (2, 3, 8, 10)
    for c in range(3):
        for i in range(r):
            for j in range(r):
                assert torch.equal(P[:, c, i::r, j::r], T[:, r * r * c + r * i + j])
    assert torch.equal(P, torch.nn.PixelShuffle(r)(T))


def test_g_upsamples_4x_and_sample_compares_with_a_full_size_input(tmp_path):
    G = SRResNet(3, 8, 1)
    assert G(torch.zeros(2, 3, 5, 7)).shape == (2, 3, 20, 28)
    m = small(tmp_path).eval()
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    assert m.sample(3, x).shape == x.shape                       # downsampled first, then G
    assert m.sample(2, x[:, :, :6, :6]).shape == (2, 3, 24, 24)  # a small y: upsampled as it is
    assert m.sample(3, x).abs().max() <= 1


def test_g_has_the_papers_parameter_count():
    """SRResNet at B = 16, 64 channels, RGB, 4x, layer by layer; about 1.55M, as quoted."""
    conv = lambda c_in, c_out, k: c_in * c_out * k * k + c_out          # weights and biases
    head = conv(3, 64, 9) + 64                                          # + PReLU, per channel
    block = 2 * conv(64, 64, 3) + 2 * 2 * 64 + 64                       # 2 convs, 2 BNs, PReLU
    post = conv(64, 64, 3) + 2 * 64
    up = conv(64, 256, 3) + 64                                          # to 4C, then PReLU
    tail = conv(64, 3, 9)
    expected = head + 16 * block + post + 2 * up + tail
    assert count(SRResNet(3, 64, 16)) == expected == 1_550_659
    assert round(expected / 1e6, 2) == 1.55


def test_vgg19_features_have_torchvisions_names_and_count():
    net = VGGFeatures()
    convs = [k for k in net.state_dict() if k.endswith(".weight")]
    assert convs[0] == "features.0.weight" and convs[-1] == "features.34.weight"
    assert len(convs) == 16 and count(net) == 20_024_384               # torchvision's features
    assert isinstance(net.features[35], torch.nn.ReLU) and len(net.features) == 36  # phi_5,4


def test_vgg_phi_normalises_for_imagenet_and_rescales_by_12_75(tmp_path):
    torch.manual_seed(0)
    net = VGGFeatures()
    for conv in net.features:                       # He's init: features of order 1 at conv 5_4
        if isinstance(conv, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
    path = tmp_path / "vgg19.pth"
    torch.save({**net.state_dict(), "classifier.0.weight": torch.zeros(2, 2)}, path)
    phi = vgg19(str(path))
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    expected = net.features(((x.repeat(1, 3, 1, 1) + 1) / 2 - mean) / std) / 12.75
    assert expected.abs().mean() > 0.01
    assert torch.allclose(phi(x), expected, atol=1e-5)


def test_d_is_the_papers_vgg_style_network():
    D = discriminator(3, 96)
    convs = [m for m in D if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert [c.stride[0] for c in convs] == [1, 2, 1, 2, 1, 2, 1, 2]
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in D) == 7     # none after the first
    dense = [m for m in D if isinstance(m, torch.nn.Linear)]
    assert [(d.in_features, d.out_features) for d in dense] == [(512 * 6 * 6, 1024), (1024, 1)]
    slopes = {m.negative_slope for m in D if isinstance(m, torch.nn.LeakyReLU)}
    assert slopes == {0.2}
    assert D(torch.zeros(2, 3, 96, 96)).shape == (2, 1)


def test_g_is_fed_the_bicubic_4x_downsampling_of_the_batch(tmp_path):
    m = small(tmp_path)
    seen = []
    G = m.G.forward
    m.G.forward = lambda x_lr: seen.append(x_lr) or G(x_lr)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    expected = F.interpolate(x, size=(4, 4), mode="bicubic", antialias=True).clamp(-1, 1)
    for run in (m.d_loss, m.loss):
        run(x)
        assert seen[-1].shape == (2, 3, 4, 4)
        assert torch.allclose(seen[-1], expected, atol=1e-6)


def test_the_global_skip_carries_the_first_features_past_the_blocks():
    """With post's BatchNorm scaled to 0, G is head -> upsampling -> tail: the skip alone."""
    torch.manual_seed(0)
    G = SRResNet(3, 8, 2).eval()
    torch.nn.init.zeros_(G.post[1].weight)
    x = torch.randn(1, 3, 5, 5)
    assert torch.allclose(G(x), G.tail(G.up(G.head(x))), atol=1e-6)


def texture_and_its_changes():
    """A random texture, the same moved by one pixel, and with noise as large (in pixel MSE) as
    the move."""
    g = torch.Generator().manual_seed(0)
    x = F.avg_pool2d(F.pad(torch.rand(4, 3, 32, 32, generator=g) * 2 - 1, (1,) * 4,
                           mode="circular"), 3, 1)
    x = x / x.abs().max()
    shifted = x.roll(1, 3)
    e = torch.randn(x.shape, generator=g)
    noisy = x + e * (F.mse_loss(shifted, x) / e.pow(2).mean()).sqrt()
    return x, shifted, noisy


def test_the_content_loss_sees_features_not_pixels(tmp_path):
    """Zero for the same image. A texture moved by a pixel and the same texture with noise are
    equally far in pixel MSE; in features the noise is much farther (it changes what each conv
    filter responds to, the move only where), so a texture G puts a pixel off costs it less
    than noise would: the point of a perceptual loss. A pixel MSE fails here (ratio 1)."""
    x, shifted, noisy = texture_and_its_changes()
    assert F.mse_loss(noisy, x).item() == pytest.approx(F.mse_loss(shifted, x).item(), rel=1e-5)
    classifier_file(tmp_path / "clf.pt")
    m = SRGAN(32, 3, features=str(tmp_path / "clf.pt"))
    assert m.content_loss(x, x) == 0
    assert m.content_loss(noisy, x) > 1.5 * m.content_loss(shifted, x) > 0


def test_the_classifiers_phi_is_its_third_conv_block_and_stays_frozen(tmp_path):
    clf = classifier_file(tmp_path / "clf.pt")
    m = SRGAN(16, 3, features=str(tmp_path / "clf.pt"), B=1, ngf=8, ndf=8)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    expected = clf.net[:5](x)                   # (4 width, S/4, S/4), after the third ReLU
    assert expected.shape == (2, 32, 4, 4)
    assert not m.phi.training                       # frozen from the start: train.py never
    assert torch.allclose(m.phi(x), expected, atol=1e-6)      # calls train() before step 1
    m.train()
    assert not m.phi.training and m.G.training
    assert not any(p.requires_grad for p in m.phi.parameters())
    grey = SRGAN(16, 1, features=str(tmp_path / "clf.pt"), B=1, ngf=8, ndf=8)
    assert torch.allclose(grey.phi(x[:, :1]), clf.net[:5](x[:, :1].expand(-1, 3, -1, -1)))


@pytest.mark.parametrize("weight", [1e-3, 0.25])
def test_the_adversarial_term_is_weighted_10_to_the_minus_3(tmp_path, weight):
    kw = {} if weight == 1e-3 else {"adv_weight": weight}
    m = small(tmp_path, **kw)
    assert m.adv_weight == weight                                   # the paper's default: 1e-3
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    m.d_loss(x)
    logit = m.D(m.fake).detach()
    gen = torch.log1p(torch.exp(-logit)).mean()                     # -log sigmoid(D(G(I^LR)))
    g = m.g_loss(x)
    assert g["adversarial"].item() == pytest.approx(weight * gen.item(), rel=1e-5)
    assert g["content"].item() == pytest.approx(m.content_loss(m.fake, x).item(), rel=1e-6)


def test_d_targets_real_1_fake_0_and_which_steps_reach_g(tmp_path):
    m = small(tmp_path)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    d = m.d_loss(x)
    real = m.D(x).detach()
    fake = m.D(m.fake.detach()).detach()
    assert d["real"].item() == pytest.approx(F.softplus(-real).mean().item(), rel=1e-5)
    assert d["fake"].item() == pytest.approx(F.softplus(fake).mean().item(), rel=1e-5)
    (d["real"] + d["fake"]).backward()
    assert all(p.grad is None for p in m.G.parameters())
    g = m.g_loss(x)
    for term in ("content", "adversarial"):
        grads = torch.autograd.grad(g[term], list(m.G.parameters()), retain_graph=True)
        assert any(grad.abs().sum() > 0 for grad in grads), term


def test_srresnet_trains_g_alone_on_pixel_mse():
    torch.manual_seed(0)
    m = SRGAN(16, 3, content="mse", B=1, ngf=8)
    opt = m.configure_optimizers()
    assert isinstance(opt, torch.optim.Adam) and m.D is None and m.phi is None
    assert {id(p) for g in opt.param_groups for p in g["params"]} == {id(p) for p in
                                                                      m.G.parameters()}
    assert opt.defaults["lr"] == 1e-4 and opt.defaults["betas"] == (0.9, 0.999)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    mse = m.loss(x)["mse"]
    out = m.G(m.downsample(x))
    assert mse.item() == pytest.approx(((out - x) ** 2).mean().item(), rel=1e-5)   # Eq. 4


def test_bad_configurations_are_one_line(tmp_path):
    bad = tmp_path / "bad.pt"
    torch.save({"something": torch.zeros(1)}, bad)
    for kw, says in [(dict(), "--vgg-weights PATH"),
                     (dict(vgg_weights=str(bad)), "not torchvision's vgg19"),
                     (dict(features=str(bad)), "not a classifier of evaluate.py"),
                     (dict(content="gan"), "perceptual or mse"),
                     (dict(content="mse", features=str(bad)), None)]:
        if says is None:
            SRGAN(16, 3, **kw)                                       # SRResNet reads no file
            continue
        with pytest.raises(ValueError, match=says):
            SRGAN(16, 3, **kw)
    with pytest.raises(ValueError, match="multiple of 4"):
        SRGAN(18, 3, content="mse")


def test_learns_to_upsample_better_than_bicubic():
    """200 SRResNet steps on smooth blobs: G's MSE falls below bicubic's."""
    torch.manual_seed(0)
    m = SRGAN(16, 1, content="mse", B=1, ngf=8, lr=3e-3)
    opt = m.configure_optimizers()
    g = torch.Generator().manual_seed(1)

    def batch():
        z = torch.rand(8, 1, 4, 4, generator=g) * 2 - 1
        return F.interpolate(z, size=16, mode="bilinear", align_corners=False)

    for _ in range(200):
        loss = m.loss(batch())["mse"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    x = batch()
    m.eval()
    bicubic = F.interpolate(m.downsample(x), scale_factor=4, mode="bicubic").clamp(-1, 1)
    assert F.mse_loss(m.sample(8, x), x) < 0.7 * F.mse_loss(bicubic, x)


def test_command_line(cli, tmp_path):
    clf = tmp_path / "clf.pt"
    classifier_file(clf)
    out = tmp_path / "run"
    args = ["--image-size", 16, "--B", 1, "--ngf", 8, "--ndf", 8, "--batch-size", 4,
            "--log-every", 1, "--features", clf]
    r = cli("train.py", "srgan", "--steps", 2, "--out", out, *args)
    assert r.returncode == 0, r.out
    assert "G.content" in r.out and "G.adversarial" in r.out and "D.real" in r.out
    r = cli("train.py", "srgan", "--steps", 3, "--out", out, "--resume")
    assert r.returncode == 0 and "step       3/3" in r.out, r.out
    # SRResNet: no D, so no --ndf, and no feature network
    r = cli("train.py", "srgan", "--steps", 1, "--content", "mse", "--out", tmp_path / "mse",
            *args[:6], *args[8:-2])
    assert r.returncode == 0 and "mse" in r.out and "D.real" not in r.out, r.out
    folder = tmp_path / "images"
    folder.mkdir()
    for i, side in enumerate((16, 24, 30)):
        Image.new("RGB", (side, side), (40 * i, 100, 200)).save(folder / f"{i}.png")
    ckpt = out / "ckpt.pt"
    r = cli("sample.py", ckpt, "--input", folder, "--out", tmp_path / "sr.png")
    assert r.returncode == 0 and "3 images at 16px from 4px" in r.out, r.out
    assert "bicubic PSNR" in r.out and "SRGAN PSNR" in r.out and "SSIM" in r.out
    assert Image.open(tmp_path / "sr.png").size == (3 * 18 + 2, 3 * 18 + 2)   # 3 strips of 3
    small = tmp_path / "small.png"
    Image.new("RGB", (6, 6)).save(small)
    Image.new("RGB", (9, 5)).save(tmp_path / "wide.png")       # its centre square: 5 x 5
    r = cli("sample.py", ckpt, "--input", small, "--input", tmp_path / "wide.png", "--input",
            folder, "--out", f"{tmp_path}/o/")
    assert r.returncode == 0 and len(list((tmp_path / "o").glob("*.png"))) == 5, r.out
    assert Image.open(tmp_path / "o" / "small.png").size == (24, 24)
    assert Image.open(tmp_path / "o" / "wide.png").size == (20, 20)
    r = cli("sample.py", ckpt, "--input", small, "--input", folder, "--out", tmp_path / "g.png")
    assert r.returncode == 1 and "--out DIR/" in r.out
    r = cli("sample.py", ckpt, "--out", tmp_path / "none.png")
    assert r.returncode == 1 and "--input" in r.out
    r = cli("train.py", "srgan", "--steps", 1, "--out", tmp_path / "bad", "--vgg-weights", clf,
            "--image-size", 16)
    assert r.returncode == 1 and "not torchvision's vgg19" in r.out
    assert len(r.stderr.strip().splitlines()) == 1
    r = cli("train.py", "srgan", "--steps", 1, "--out", tmp_path / "none")
    assert r.returncode == 1 and "--content mse" in r.out
