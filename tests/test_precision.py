"""The CUDA path's dtypes and layouts, on the CPU: one training step and a short sampling of every
model under bf16 autocast with the weights in channels_last, as train.py runs them on a GPU. A
float64 buffer meeting a bf16 activation, a .view() on a channels_last tensor or a loss left in
bf16 shows here, not in the first user's GPU run."""
import pytest
import torch
from cyclegan import CycleGAN
from dcgan import DCGAN, DCGANLab
from ddpm import DDPM
from gan import GAN
from ldm import LDM
from pix2pix import Pix2Pix
from stargan import StarGAN
from srgan import SRGAN
from stylegan import StyleGAN
from progan import ProGAN
from vae import VAE

DIFFUSION = dict(T=10, ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_res=(4,), dropout=0.0)
MODELS = {                    # (model, its condition y for a batch of 4: None, labels or images)
    "vae": (lambda: VAE(16, 3, 2, ch=8, z_dim=4), "labels"),
    "gan": (lambda: GAN(8, 3, 2, hidden=16, z_dim=8), "labels"),
    "dcgan": (lambda: DCGAN(16, 3, 2, z_dim=8, ngf=8, ndf=8), "labels"),
    "dcgan-lab": (lambda: DCGANLab(16, 3, 2, z_dim=8, ngf=8, ndf=8, acgan=True), "labels"),
    "dcgan-lab wgan-gp": (lambda: DCGANLab(16, 3, 2, z_dim=8, ngf=8, ndf=8, loss="wgan-gp"),
                          "labels"),
    "pix2pix": (lambda: Pix2Pix(16, 3, ngf=8, ndf=8, n_layers=1), "images"),
    "cyclegan": (lambda: CycleGAN(16, 3, ngf=8, ndf=8, n_blocks=1, n_layers=1), "images"),
    "stylegan": (lambda: StyleGAN(8, 3, z_dim=8, w_dim=8, n_mlp=2, ch=8, max_ch=8), None),
    "stylegan demod conditional": (lambda: StyleGAN(8, 3, 2, z_dim=8, w_dim=8, n_mlp=2, ch=8,
                                                    max_ch=8, demod=True), "labels"),
    "stylegan progressive": (lambda: StyleGAN(8, 3, z_dim=8, w_dim=8, n_mlp=2, ch=8, max_ch=8,
                                              progressive=True, stable_images=2), None),
    "progan": (lambda: ProGAN(16, 3, z_dim=8, ch=8, max_ch=8, stable_images=2), None),
    "ddpm": (lambda: DDPM(8, 3, 2, **DIFFUSION), "labels"),
    "ldm": (lambda: LDM(16, 3, 2, f=2, ae_ch=32, ae_steps=1, **DIFFUSION), "labels"),
    "stargan": (lambda: StarGAN(16, 3, 2, ngf=8, ndf=8, n_blocks=1), "labels"),
    "srgan": (lambda: SRGAN(16, 3, content="mse", B=1, ngf=8), None),   # SRResNet
}


@pytest.mark.parametrize("name", MODELS)
def test_a_step_and_a_sample_under_bf16_autocast_and_channels_last(name):
    torch.manual_seed(0)
    make, condition = MODELS[name]
    model = make().to(memory_format=torch.channels_last)
    opts = model.configure_optimizers()
    opts = list(opts) if isinstance(opts, (tuple, list)) else [opts]
    S = model_size(model)
    x = (torch.rand(4, 3, S, S) * 2 - 1).contiguous(memory_format=torch.channels_last)
    given = {None: None, "labels": torch.tensor([0, 1, 0, 1]), "images": torch.rand_like(x) * 2 - 1}
    y = given[condition]
    objectives = [model.loss] if len(opts) == 1 else [model.d_loss, model.g_loss]
    for _ in range(2):                              # ldm: the autoencoder's step, then diffusion's
        for opt, objective in zip(opts, objectives):
            with torch.autocast("cpu", torch.bfloat16):
                terms = objective(x, y)
            total = sum(v for v in terms.values() if v.requires_grad)
            assert total.dtype == torch.float32, f"{name}: a loss left in {total.dtype}"
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            finite = all(torch.isfinite(p).all() for p in model.parameters())
            assert torch.isfinite(total) and finite
    model.eval()
    knobs = dict(steps=3, sampler="ddim") if isinstance(model, (DDPM, LDM)) else {}
    with torch.autocast("cpu", torch.bfloat16):
        s = model.sample(4, y, **knobs)
    assert s.shape == x.shape and torch.isfinite(s).all() and s.abs().max() <= 1 + 1e-3


def model_size(model):
    small = isinstance(model, (GAN, StyleGAN, DDPM)) and not isinstance(model, DCGAN)
    return 8 if small else 16
