"""ldm.py: the autoencoder's KL and VQ terms and learning, scale-by-std, cross-attention, the
tokenizer, the two stages, latent img2img and inpainting, the command line."""
import math
import numpy as np
import pytest
import torch
from PIL import Image
import ddpm
import ldm
from support.data import shapes
from ldm import LDM, PAD, UNK

CAPTIONS = ["red circle", "blue square", "green triangle", "yellow circle"]


def tiny(**kw):
    return LDM(16, 3, **{"ae_ch": 32, "ch": 32, "ch_mult": (1, 2), "attn_res": (4,),
                         "num_res_blocks": 1, "text_dim": 32, **kw})


def shape_batch(n, size=16):
    images, labels, names = shapes(n=n, size=size, seed=0)
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1, labels, names


def test_the_diffusion_is_ddpm_py_not_a_copy():
    m = tiny(vocab=LDM.vocabulary(CAPTIONS))
    assert ldm.DDPM is ddpm.DDPM and isinstance(m.diffusion, ddpm.DDPM)
    # f = 4: 16 -> 4
    assert isinstance(m.diffusion.net.unet, ddpm.UNet) and m.diffusion.shape == (4, 4, 4)
    assert tiny(min_snr_gamma=5.0).diffusion.min_snr_gamma == 5.0          # ddpm.py's option


def test_kl_term_matches_a_monte_carlo_estimate():
    torch.manual_seed(0)
    m = tiny(kl_weight=1.0)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        for p in m.autoencoder.encoder[-1].parameters():
            p.normal_(0, 0.3)                                       # mu and log sigma^2 away from 0
        mu, logvar = m.autoencoder.encode(x)
        q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
        z = q.sample((4000,))                                                  # z ~ q(z | x)
        p = torch.distributions.Normal(0.0, 1.0)
        # E_q[log q - log p], per image
        mc = (q.log_prob(z) - p.log_prob(z)).flatten(2).sum(2).mean()
        torch.manual_seed(1)
        kl = m.ae_loss(x)["kl"]
        m.kl_weight = 1e-3
        weighted = m.ae_loss(x)["kl"]                                            # w_KL KL
    assert kl.item() == pytest.approx(mc.item(), rel=0.03)
    assert weighted.item() == pytest.approx(1e-3 * kl.item(), rel=1e-5)


def test_stage_two_freezes_the_autoencoder_and_the_counter_is_saved():
    m = tiny(ae_steps=2, vocab=LDM.vocabulary(CAPTIONS))
    x, y = torch.rand(4, 3, 16, 16) * 2 - 1, m.tokenize(CAPTIONS)
    for _ in range(3):
        m.zero_grad()
        terms = m.loss(x, y)
        sum(terms.values()).backward()
    assert set(terms) == {"mse"}
    assert all(p.grad is None for p in m.autoencoder.parameters())
    # the text encoder learns with the U-Net
    assert all(p.grad is not None for p in m.diffusion.net.tau.parameters())
    copy = tiny(ae_steps=2, vocab=LDM.vocabulary(CAPTIONS))
    copy.load_state_dict(m.state_dict())
    assert copy.ae_steps_done == 2


def test_tokenizer_round_trips_and_handles_unknown_words():
    m = tiny(vocab=LDM.vocabulary(CAPTIONS + ["A red, red square!"]), max_len=4)
    assert m.vocab[0] == "red"                                                 # most frequent first
    tokens = m.tokenize(CAPTIONS)
    assert tokens.shape == (4, 4) and m.detokenize(tokens) == CAPTIONS
    # lower case, punctuation dropped
    assert m.detokenize(m.tokenize(["Red  CIRCLE."])) == ["red circle"]
    unknown = m.tokenize(["purple circle"])[0]
    assert unknown[0] == UNK and unknown[2:].eq(PAD).all()
    with pytest.raises(ValueError, match="vocabulary: red"):
        m.sample(1, prompt="purple blob", steps=2)


def test_cross_attention_reads_the_caption_and_nothing_else_in_the_batch():
    torch.manual_seed(0)
    m = tiny(vocab=LDM.vocabulary(CAPTIONS)).eval()
    with torch.no_grad():
        for p in m.diffusion.net.parameters():                        # away from the zero-ish start
            p.add_(torch.randn_like(p) * 0.05)
        z, t = torch.randn(4, 4, 4, 4), torch.tensor([10, 200, 500, 900])
        y = m.tokenize(CAPTIONS)
        eps = m.diffusion.eps_theta(z, t, y)
        other = m.diffusion.eps_theta(z, t, y.roll(1, 0))              # each image, another caption
        perm = torch.tensor([2, 0, 3, 1])
        permuted = m.diffusion.eps_theta(z[perm], t[perm], y[perm])
    assert (eps - other).abs().flatten(1).mean(1).min() > 1e-3
    assert torch.allclose(permuted, eps[perm], atol=1e-5)


def test_guidance_uses_the_empty_caption():
    torch.manual_seed(0)
    m = tiny(vocab=LDM.vocabulary(CAPTIONS)).eval()
    z, t, y = torch.randn(2, 4, 4, 4), torch.tensor([5, 50]), m.tokenize(CAPTIONS[:2])
    with torch.no_grad():
        for p in m.diffusion.net.parameters():          # the zero-initialised cross-attention on
            p.add_(torch.randn_like(p) * 0.05)
        uncond = m.diffusion.eps_theta(z, t, torch.full_like(y, PAD))
        assert (m.diffusion.eps_theta(z, t, y) - uncond).abs().max() > 1e-3   # the caption counts
        assert torch.allclose(m.diffusion.guided_eps(z, t, y, 0.0), uncond, atol=1e-5)
        assert torch.allclose(m.diffusion.eps_theta(z, t, None), uncond, atol=1e-5)


# -------------------------------------------------------------- z ~ q(z|x), the scale, tau(y)

class Gaussian(torch.nn.Module):
    """An encoder whose q(z|x) is N(0.5, 2^2) at every latent position, whatever the image."""
    def forward(self, x):
        stats = torch.tensor([0.5] * 3 + [math.log(4.0)] * 3)                # mu, log sigma^2
        return stats.view(1, 6, 1, 1).expand(len(x), 6, 4, 4)


def test_the_decoder_and_the_diffusion_see_z_drawn_from_q_z_given_x():
    """1. z = mu + sigma eps, sigma = exp(logvar / 2): what the decoder reads in the autoencoder's
    loss, and latent(x), have mean mu = 0.5 and std sigma = 2; latent(x, sample=False) is mu."""
    torch.manual_seed(0)
    m = tiny(z_channels=3)
    m.autoencoder.encoder = Gaussian()
    decoded = []
    m.autoencoder.decode = lambda z: decoded.append(z) or z                       # x_hat = z
    x = torch.zeros(2000, 3, 4, 4)
    m.ae_loss(x)
    for z in (decoded[0], m.latent(x)):                                        # 96,000 draws each
        assert z.mean().item() == pytest.approx(0.5, abs=0.03)
        assert z.std().item() == pytest.approx(2.0, rel=0.02)
    assert torch.equal(m.latent(x[:2], sample=False), torch.full((2, 3, 4, 4), 0.5))


class Affine(torch.nn.Module):
    """A deterministic encoder: mu = 2 + 3 avg_pool(x), log sigma^2 = -30 (sigma = 3e-7)."""
    def forward(self, x):
        mu = 2 + 3 * torch.nn.functional.avg_pool2d(x, 4)
        return torch.cat([mu, torch.full_like(mu, -30.0)], 1)


def test_the_diffusion_sees_latents_of_unit_std_measured_once():
    """2. scale = 1 / std(z), the std of all latents of the first batch (about their mean, 2 here),
    then fixed: the diffusion's loss is given z * scale, of std 1 on that batch. A model loaded
    from a checkpoint keeps the scale it holds."""
    torch.manual_seed(0)
    m = tiny(z_channels=3, ae_steps=0)
    m.autoencoder.encoder = Affine()
    seen = []
    m.diffusion.loss = lambda z, y=None: seen.append(z) or {"mse": z.sum()}
    x = torch.rand(64, 3, 16, 16) * 2 - 1
    m.loss(x)
    z = 2 + 3 * torch.nn.functional.avg_pool2d(x, 4)
    assert m.scale.item() == pytest.approx(1 / z.std(unbiased=False).item(), rel=1e-3)
    assert seen[0].std(unbiased=False).item() == pytest.approx(1.0, rel=1e-3)
    first = m.scale.item()
    m.loss(x / 2)                                                    # another batch: the same scale
    assert m.scale.item() == first
    assert torch.allclose(seen[1], (2 + 1.5 * torch.nn.functional.avg_pool2d(x, 4)) * m.scale,
                          atol=1e-5)
    resumed = tiny(z_channels=3, ae_steps=0)                  # a checkpoint's: measured, kept
    resumed.autoencoder.encoder = Affine()
    resumed.diffusion.loss = m.diffusion.loss
    resumed.load_state_dict(m.state_dict())
    resumed.loss(x / 2)
    assert resumed.scale.item() == first


def test_latents_are_the_image_size_over_f():
    """1. log2(f) stride-2 levels: latents (z_channels, S/f, S/f), decoded back to (C, S, S)."""
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    for f in (1, 2, 8):
        m = LDM(16, 3, f=f, ae_ch=32, ch=32, ch_mult=(1,), attn_res=(), num_res_blocks=1)
        mu, logvar = m.autoencoder.encode(x)
        assert mu.shape == logvar.shape == (2, 4, 16 // f, 16 // f), f
        assert m.diffusion.shape == (4, 16 // f, 16 // f), f
        assert m.autoencoder.decode(mu).shape == x.shape, f


def test_every_word_of_the_caption_reads_every_other():
    """tau(y) is a bidirectional Transformer: changing the last word changes the first word's
    encoding (a causal mask would hide it), and each caption's encoding is its own."""
    torch.manual_seed(0)
    m = tiny(vocab=LDM.vocabulary(CAPTIONS)).eval()
    tau = m.diffusion.net.tau
    y = m.tokenize(["red circle", "red square"])
    with torch.no_grad():
        h = tau(y)
        alone = tau(y[:1])
    assert (h[0, 0] - h[1, 0]).abs().max() > 1e-3                  # "red" reads "circle"/"square"
    assert torch.allclose(h[:1], alone, atol=1e-5)


def test_each_stage_trains_at_its_own_learning_rate():
    m = tiny(ae_lr=1e-4, lr=3e-4, vocab=LDM.vocabulary(CAPTIONS))
    lr = {id(p): g["lr"] for g in m.configure_optimizers().param_groups for p in g["params"]}
    assert len(lr) == len(list(m.parameters()))                               # every parameter
    assert all(lr[id(p)] == 1e-4 for p in m.autoencoder.parameters())          # stage 1: ae_lr
    assert all(lr[id(p)] == 3e-4 for p in m.diffusion.parameters())  # stage 2, tau(y) too: lr


# -------------------------------------------------------------- VQ (--reg vq)

class Fixed(torch.nn.Module):
    """An encoder whose output is the parameter z_e, whatever the image."""
    def __init__(self, z_e):
        super().__init__()
        self.z_e = torch.nn.Parameter(z_e)

    def forward(self, x):
        return self.z_e


class Tap(torch.nn.Module):
    """Passes its input through and keeps it, with its gradient, for the test to read."""
    def forward(self, z):
        self.z = z
        z.retain_grad()
        return z


def test_quantize_returns_the_nearest_codebook_entries():
    torch.manual_seed(0)
    m = tiny(reg="vq", codebook_size=8)
    z_e = torch.randn(3, 4, 4, 4)
    z_q, k = m.autoencoder.quantize(z_e)
    e = m.autoencoder.codebook.detach()
    rows = z_q.permute(0, 2, 3, 1).reshape(-1, 4)                          # one latent vector a row
    assert torch.equal(rows, e[k.flatten()])                             # codebook entries, exactly
    # (48, K): every distance, by hand
    dist = ((z_e.permute(0, 2, 3, 1).reshape(-1, 1, 4) - e) ** 2).sum(-1)
    assert torch.equal(k.flatten(), dist.argmin(1)) and k.unique().numel() > 1


def test_straight_through_gradient_is_the_identity_on_z_e():
    torch.manual_seed(0)
    m = tiny(reg="vq", codebook_size=8)
    enc, dec = Tap(), Tap()
    m.autoencoder.encoder = torch.nn.Sequential(m.autoencoder.encoder, enc)
    m.autoencoder.decoder = torch.nn.Sequential(dec, m.autoencoder.decoder)
    m.ae_loss(torch.rand(2, 3, 16, 16) * 2 - 1)["recon"].backward()
    z_q, _ = m.autoencoder.quantize(enc.z.detach())
    assert torch.allclose(dec.z.detach(), z_q, atol=1e-6)                      # forward: D sees z_q
    # backward: dL/dz_e = dL/dz_q
    assert enc.z.grad.abs().sum() > 0 and torch.allclose(enc.z.grad, dec.z.grad)
    assert m.autoencoder.codebook.grad is None                       # recon does not move the codes


def test_codebook_and_commitment_terms_match_their_formulas():
    m = tiny(reg="vq", codebook_size=3, z_channels=2)
    # (1, 2, 1, 2): two positions
    m.autoencoder.encoder = Fixed(torch.tensor([[[[0.2, -1.0]], [[0.9, 0.1]]]]))
    z_e = m.autoencoder.encoder.z_e
    with torch.no_grad():
        # nearest: e_0, e_1
        m.autoencoder.codebook.copy_(torch.tensor([[0.0, 1.0], [-1.0, 0.0], [3.0, 3.0]]))
    e, x = m.autoencoder.codebook, torch.zeros(1, 3, 4, 8)
    near = e.detach()[[0, 1]].T[None, :, None]                  # (1, 2, 1, 2): e_k of each position
    sq = ((z_e.detach() - near) ** 2).sum()                          # 0.04 + 0.01 + 0 + 0.01 = 0.06
    terms = m.ae_loss(x)
    assert terms["codebook"].item() == pytest.approx(sq.item())                # ||sg(z_e) - e||^2
    assert terms["commit"].item() == pytest.approx(0.25 * sq.item())        # beta ||z_e - sg(e)||^2
    terms["codebook"].backward(retain_graph=True)                # moves the codes only, towards z_e
    assert z_e.grad is None or z_e.grad.abs().sum() == 0
    assert torch.allclose(e.grad[[0, 1]], 2 * (near - z_e.detach())[0, :, 0].T)
    assert e.grad[2].abs().sum() == 0
    e.grad = None
    terms["commit"].backward(retain_graph=True)                  # moves the encoder only, towards e
    assert e.grad is None or e.grad.abs().sum() == 0
    assert torch.allclose(z_e.grad, 2 * 0.25 * (z_e.detach() - near))


def test_perplexity_counts_the_codes_in_use():
    K = 8
    assert LDM.perplexity(torch.arange(K).repeat(5), K).item() == pytest.approx(K)      # uniform: K
    assert LDM.perplexity(torch.full((4, 3, 3), 5), K).item() == pytest.approx(1.0)    # one code: 1
    # p = 1/2, 1/4, 1/4
    assert LDM.perplexity(torch.tensor([0, 0, 1, 2]), K).item() == pytest.approx(2 ** 1.5)


# -------------------------------------------------------------- latent img2img and inpainting

def editable(**kw):
    """A tiny untrained LDM with its latent scale set, and a shapes image to edit."""
    torch.manual_seed(0)
    m = tiny(T=50, **kw).eval()
    m.scale.fill_(0.5)
    m.scale_measured = True
    return m, shape_batch(2)[0]


def test_latent_img2img_strength_0_returns_the_decoded_input_and_1_ignores_it():
    m, x = editable()
    with torch.no_grad():
        decoded = m.autoencoder.decode(m.autoencoder.encode(x[:1])[0]).clamp(-1, 1)   # D(mu(x))
    out = m.sample(2, init=x[:1], strength=0.0, steps=10)
    assert torch.allclose(out, decoded.expand(2, -1, -1, -1), atol=1e-5)
    torch.manual_seed(1)
    a = m.sample(1, init=x[:1], strength=1.0, steps=5)
    torch.manual_seed(1)
    b = m.sample(1, init=x[1:], strength=1.0, steps=5)
    torch.manual_seed(1)
    half = m.sample(1, init=x[:1], strength=0.5, steps=5)
    assert torch.equal(a, b) and (a - half).abs().mean() > 1e-3


class Pool(torch.nn.Module):
    """A local encoder: mu = the 2x2 average of the image, log sigma^2 = 0."""
    def forward(self, x):
        mu = torch.nn.functional.avg_pool2d(x, 2)
        return torch.cat([mu, torch.zeros_like(mu)], 1)


def test_latent_inpainting_keeps_the_known_region():
    m, x = editable(f=2, z_channels=3)                                # latents 8x8: the mask halved
    # local: D(E(x)) near x
    m.autoencoder.encoder, m.autoencoder.decoder = Pool(), torch.nn.Upsample(scale_factor=2.0)
    mask = torch.full((1, 3, 16, 16), -1.0)
    mask[..., :7] = 1.0                                        # white = keep: the left 7 columns
    mask[:, 0, :, 5:] = -1.0                         # but pixels 5, 6 black in one channel: 5 known
    ref = m.autoencoder.decode(m.autoencoder.encode(x[:1])[0]).clamp(-1, 1)   # D(E(x))
    out = m.sample(2, init=x[:1], mask=mask, steps=10)
    # latent cells 0, 1: known
    assert torch.allclose(out[..., :4], ref[..., :4].expand(2, -1, -1, -1), atol=1e-5)
    # cell 2 half known: not
    assert (out - ref)[..., 4:6].abs().mean() > 0.1 and (out - ref)[..., 6:].abs().mean() > 0.1


# -------------------------------------------------------------- learning, the command line

def test_autoencoder_learns_and_latents_are_scaled_to_unit_std():
    torch.manual_seed(0)
    x, _, _ = shape_batch(600)
    m = tiny(ae_steps=150, ae_lr=1e-3)
    opt = m.configure_optimizers()
    before = m.ae_loss(x[500:])["recon"].item()
    for step in range(150):
        terms = m.loss(x[torch.randint(0, 500, (8,))])
        assert set(terms) == {"recon", "kl"}
        opt.zero_grad()
        sum(terms.values()).backward()
        opt.step()
    after = m.ae_loss(x[500:])["recon"].item()
    assert after < 0.35 * before, (before, after)                             # seeds 0-2: 0.24-0.28
    assert m.scale == 0 and set(m.loss(x[:64])) == {"mse"}      # stage 2 begins, measures the scale
    mu, logvar = m.autoencoder.encode(x[64:256])
    z = (mu + (0.5 * logvar).exp() * torch.randn_like(mu)) * m.scale  # other images: std close to 1
    assert 0.8 < z.std().item() < 1.25 and m.scale != 1.0


def test_command_line(cli, tmp_path):
    out = tmp_path / "run"
    small = ["--image-size", 16, "--T", 20, "--ae-ch", 32, "--ch", 32, "--ch-mult", "1,2",
             "--attn-res", 4, "--num-res-blocks", 1, "--batch-size", 8, "--grid", 4]
    r = cli("train.py", "ldm", "--captions", "--steps", 4, "--ae-steps", 2, "--log-every", 1,
            "--text-dim", 32, "--out", out, *small)
    assert r.returncode == 0, r.out
    assert "12 captions" in r.out and "recon" in r.out and "mse" in r.out
    r = cli("train.py", "ldm", "--steps", 5, "--out", out, "--resume")
    assert r.returncode == 0 and "step       5/5" in r.out and "recon" not in r.out, r.out
    r = cli("sample.py", out / "ckpt.pt", "-n", 2, "--prompt", "blue square", "--steps", 5,
            "--guidance", 3, "--sampler", "ddim", "--out", tmp_path / "s.png")
    assert r.returncode == 0 and (tmp_path / "s.png").exists(), r.out
    r = cli("sample.py", out / "ckpt.pt", "-n", 2, "--prompt", "purple blob", "--steps", 5)
    assert r.returncode == 1 and "vocabulary" in r.out
    # a new, class-conditional diffusion run on the first run's autoencoder: no stage 1
    r = cli("train.py", "ldm", "--classes", "--ae", out / "ckpt.pt", "--steps", 2, "--log-every", 1,
            "--out", tmp_path / "run2", *small)
    assert r.returncode == 0 and "recon" not in r.out and "12 classes" in r.out, r.out
    r = cli("sample.py", tmp_path / "run2" / "ckpt.pt", "-n", 2, "--label", "red circle",
            "--steps", 5, "--out", tmp_path / "c.png")
    assert r.returncode == 0 and (tmp_path / "c.png").exists(), r.out
    r = cli("train.py", "ldm", "--ae", out / "ckpt.pt", *small, "--ae-ch", 64, "--steps", 2,
            "--out", tmp_path / "run3")                          # the last --ae-ch counts: 64
    assert r.returncode == 1 and "no autoencoder of this shape" in r.out, r.out


def test_vq_autoencoder_learns_with_more_than_one_code():
    torch.manual_seed(0)
    x, _, _ = shape_batch(300, size=8)
    m = LDM(8, 3, reg="vq", codebook_size=16, f=2, ae_ch=32, ae_steps=150, ae_lr=2e-3, ch=32,
            ch_mult=(1,), attn_res=())
    opt = m.configure_optimizers()
    before = m.ae_loss(x[256:])["recon"].item()
    for step in range(150):
        terms = m.loss(x[torch.randint(0, 256, (8,))])
        assert not terms["perplexity"].requires_grad
        opt.zero_grad()
        # as train.py: perplexity is logged only
        sum(v for v in terms.values() if v.requires_grad).backward()
        opt.step()
    terms = m.ae_loss(x[256:])
    assert terms["recon"].item() < 0.5 * before, (before, terms["recon"].item())
    assert terms["perplexity"].item() > 2, terms["perplexity"].item()


def test_command_line_vq_and_latent_editing(cli, tmp_path):
    out = tmp_path / "run"
    small = ["--image-size", 16, "--T", 20, "--ae-ch", 32, "--ch", 32, "--ch-mult", "1,2",
             "--attn-res", 4, "--num-res-blocks", 1, "--batch-size", 8, "--grid", 4]
    r = cli("train.py", "ldm", "--reg", "vq", "--codebook-size", 8, "--steps", 3, "--ae-steps", 2,
            "--log-every", 1, "--out", out, *small)
    assert r.returncode == 0, r.out
    assert "perplexity" in r.out and "commit" in r.out and "mse" in r.out, r.out
    image, mask = tmp_path / "x.png", tmp_path / "m.png"
    Image.new("RGB", (16, 16), (200, 30, 30)).save(image)
    # keep the left half
    Image.fromarray(np.kron([[255, 0]], np.ones((16, 8))).astype(np.uint8)).save(mask)
    for knobs in (["--init", image, "--strength", 0.5], ["--init", image, "--mask", mask]):
        r = cli("sample.py", out / "ckpt.pt", "-n", 2, "--steps", 5, *knobs,
                "--out", tmp_path / "e.png")
        assert r.returncode == 0 and (tmp_path / "e.png").exists(), r.out
        (tmp_path / "e.png").unlink()
    r = cli("sample.py", out / "ckpt.pt", "-n", 2, "--steps", 5, "--mask", mask)
    assert r.returncode == 1 and "needs the known image as init" in r.out, r.out
    assert "Traceback" not in r.out, r.out
    r = cli("train.py", "ldm", "--reg", "vae", "--steps", 1, "--out", tmp_path / "bad", *small)
    assert r.returncode == 1 and "reg is kl or vq" in r.out, r.out
