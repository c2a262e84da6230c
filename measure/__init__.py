"""Commands that measure the project rather than teach it: python -m measure.NAME.

bench.py     training and sampling speed on the device present (bench_peer.py: against
             diffusers' U-Net, in a scratch venv)
compare.py   our DDPM against denoising-diffusion-pytorch at equal CPU time
             (compare_peer.py: the peer's side, run by the peer's Python)
curves.py    one or several runs' log.jsonl drawn: losses, KID, FD, the lab's accuracy
gan_gradient.py  why WGAN: a saturated D's gradient on 1-D Gaussians beside a critic's
"""
