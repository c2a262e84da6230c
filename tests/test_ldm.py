"""ldm.py: the autoencoder's KL and learning, scale-by-std, cross-attention, the tokenizer, the two
stages, the command line."""
import pytest
import torch
import ddpm
import ldm
from data import shapes
from ldm import LDM, PAD, UNK

CAPTIONS = ["red circle", "blue square", "green triangle", "yellow circle"]


def tiny(**kw):
    return LDM(16, 3, **{"ae_ch": 32, "ch": 32, "ch_mult": (1, 2), "attn_res": (4,), "num_res_blocks": 1,
                         "text_dim": 32, **kw})


def shape_batch(n, size=16):
    images, labels, names = shapes(n=n, size=size, seed=0)
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1, labels, names


def test_the_diffusion_is_ddpm_py_not_a_copy():
    m = tiny(vocab=LDM.vocabulary(CAPTIONS))
    assert ldm.DDPM is ddpm.DDPM and isinstance(m.diffusion, ddpm.DDPM)
    assert isinstance(m.diffusion.net.unet, ddpm.UNet) and m.diffusion.shape == (4, 4, 4)   # f = 4: 16 -> 4


def test_kl_term_matches_a_monte_carlo_estimate():
    torch.manual_seed(0)
    m = tiny(kl_weight=1.0)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        for p in m.autoencoder.encoder[-1].parameters():
            p.normal_(0, 0.3)                                                  # mu and log sigma^2 away from 0
        mu, logvar = m.autoencoder.encode(x)
        q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
        z = q.sample((4000,))                                                  # z ~ q(z | x)
        p = torch.distributions.Normal(0.0, 1.0)
        mc = (q.log_prob(z) - p.log_prob(z)).flatten(2).sum(2).mean()          # E_q[log q - log p], per image
        torch.manual_seed(1)
        kl = m.ae_loss(x)["kl"]
    assert kl.item() == pytest.approx(mc.item(), rel=0.03)


def test_autoencoder_learns_and_latents_are_scaled_to_unit_std():
    torch.manual_seed(0)
    x, _, _ = shape_batch(600)
    m = tiny(ae_steps=300, ae_lr=1e-3)
    opt = m.configure_optimizers()
    before = m.ae_loss(x[500:])["recon"].item()
    for step in range(300):
        terms = m.loss(x[torch.randint(0, 500, (16,))])
        assert set(terms) == {"recon", "kl"}
        opt.zero_grad()
        sum(terms.values()).backward()
        opt.step()
    after = m.ae_loss(x[500:])["recon"].item()
    assert after < 0.3 * before, (before, after)
    assert m.scale == 0 and set(m.loss(x[:64])) == {"mse"}                     # stage 2 begins, measures the scale
    mu, logvar = m.autoencoder.encode(x[64:256])
    z = (mu + (0.5 * logvar).exp() * torch.randn_like(mu)) * m.scale          # other images: std close to 1
    assert 0.8 < z.std().item() < 1.25 and m.scale != 1.0


def test_stage_two_freezes_the_autoencoder_and_the_counter_is_saved():
    m = tiny(ae_steps=2, vocab=LDM.vocabulary(CAPTIONS))
    x, y = torch.rand(4, 3, 16, 16) * 2 - 1, m.tokenize(CAPTIONS)
    for _ in range(3):
        m.zero_grad()
        terms = m.loss(x, y)
        sum(terms.values()).backward()
    assert set(terms) == {"mse"}
    assert all(p.grad is None for p in m.autoencoder.parameters())
    assert all(p.grad is not None for p in m.diffusion.net.tau.parameters())   # the text encoder learns with the U-Net
    copy = tiny(ae_steps=2, vocab=LDM.vocabulary(CAPTIONS))
    copy.load_state_dict(m.state_dict())
    assert copy.ae_steps_done == 2


def test_tokenizer_round_trips_and_handles_unknown_words():
    m = tiny(vocab=LDM.vocabulary(CAPTIONS + ["A red, red square!"]), max_len=4)
    assert m.vocab[0] == "red"                                                 # most frequent first
    tokens = m.tokenize(CAPTIONS)
    assert tokens.shape == (4, 4) and m.detokenize(tokens) == CAPTIONS
    assert m.detokenize(m.tokenize(["Red  CIRCLE."])) == ["red circle"]       # lower case, punctuation dropped
    unknown = m.tokenize(["purple circle"])[0]
    assert unknown[0] == UNK and unknown[2:].eq(PAD).all()
    with pytest.raises(ValueError, match="vocabulary: red"):
        m.sample(1, prompt="purple blob", steps=2)


def test_cross_attention_reads_the_caption_and_nothing_else_in_the_batch():
    torch.manual_seed(0)
    m = tiny(vocab=LDM.vocabulary(CAPTIONS)).eval()
    with torch.no_grad():
        for p in m.diffusion.net.parameters():                                 # away from the zero-ish start
            p.add_(torch.randn_like(p) * 0.05)
        z, t = torch.randn(4, 4, 4, 4), torch.tensor([10, 200, 500, 900])
        y = m.tokenize(CAPTIONS)
        eps = m.diffusion.eps_theta(z, t, y)
        other = m.diffusion.eps_theta(z, t, y.roll(1, 0))                       # each image, another caption
        perm = torch.tensor([2, 0, 3, 1])
        permuted = m.diffusion.eps_theta(z[perm], t[perm], y[perm])
    assert (eps - other).abs().flatten(1).mean(1).min() > 1e-3
    assert torch.allclose(permuted, eps[perm], atol=1e-5)


def test_guidance_uses_the_empty_caption():
    m = tiny(vocab=LDM.vocabulary(CAPTIONS)).eval()
    z, t, y = torch.randn(2, 4, 4, 4), torch.tensor([5, 50]), m.tokenize(CAPTIONS[:2])
    with torch.no_grad():
        uncond = m.diffusion.eps_theta(z, t, torch.full_like(y, PAD))
        assert torch.allclose(m.diffusion.guided_eps(z, t, y, 0.0), uncond, atol=1e-5)
        assert torch.allclose(m.diffusion.eps_theta(z, t, None), uncond, atol=1e-5)


def test_command_line(cli, tmp_path):
    out, small = tmp_path / "run", ["--image-size", 16, "--T", 20, "--ae-ch", 32, "--ch", 32, "--ch-mult", "1,2", "--attn-res", 4,
                                    "--num-res-blocks", 1, "--text-dim", 32, "--batch-size", 8, "--grid", 4]
    r = cli("train.py", "ldm", "--captions", "--steps", 4, "--ae-steps", 2, "--log-every", 1, "--out", out, *small)
    assert r.returncode == 0, r.out
    assert "12 captions" in r.out and "recon" in r.out and "mse" in r.out
    r = cli("train.py", "ldm", "--steps", 5, "--out", out, "--resume")
    assert r.returncode == 0 and "step       5/5" in r.out and "recon" not in r.out, r.out
    r = cli("sample.py", out / "ckpt.pt", "-n", 2, "--prompt", "blue square", "--steps", 5, "--guidance", 3,
            "--sampler", "ddim", "--out", tmp_path / "s.png")
    assert r.returncode == 0 and (tmp_path / "s.png").exists(), r.out
    r = cli("sample.py", out / "ckpt.pt", "-n", 2, "--prompt", "purple blob", "--steps", 5)
    assert r.returncode == 1 and "vocabulary" in r.out
    # a new, class-conditional diffusion run on the first run's autoencoder: no stage 1
    r = cli("train.py", "ldm", "--classes", "--ae", out / "ckpt.pt", "--steps", 2, "--log-every", 1,
            "--out", tmp_path / "run2", *small)
    assert r.returncode == 0 and "recon" not in r.out and "12 classes" in r.out, r.out
    r = cli("sample.py", tmp_path / "run2" / "ckpt.pt", "-n", 2, "--label", "red circle", "--steps", 5,
            "--out", tmp_path / "c.png")
    assert r.returncode == 0 and (tmp_path / "c.png").exists(), r.out
    r = cli("train.py", "ldm", "--ae", out / "ckpt.pt", "--ae-ch", 64, "--steps", 2, "--out", tmp_path / "run3",
            *small[:2])
    assert r.returncode == 1 and "no autoencoder of this shape" in r.out, r.out
