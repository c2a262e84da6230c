"""bench.py --peer: ddpm.py's U-Net against the same network in the diffusers library's
UNet2DModel, on the CPU.

    python -m measure.bench --peer            # the DDPM paper's CIFAR-10 U-Net, 35.7M
    python -m measure.bench --peer --model ddpm --ch 64 --steps 3   # --steps: repeats

diffusers is no dependency of this project: install it in a scratch environment to run
this file. The peer network is put in place of ddpm.py's U-Net inside a second DDPM, so
both run the very same DDPM.loss (t, eps, q_sample, the MSE) with AdamW, and the very same
DDIM sampler: only the network calls differ. The two run in one process, with the same
threads, interleaved (the order swapped each repeat); medians of the repeats.
"""
import statistics
import sys
import time
import torch
from ddpm import DDPM

# the DDPM paper's CIFAR-10 U-Net, as ../shared/bench/peer_unet.py
CIFAR10 = dict(ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_res=(16,),
               dropout=0.1)


class Peer(torch.nn.Module):
    """diffusers' UNet2DModel with ddpm.py's U-Net signature, net(x_t, t, y) -> eps."""

    def __init__(self, image_size, channels, ch, ch_mult, num_res_blocks, attn_res, dropout):
        super().__init__()
        from diffusers import UNet2DModel
        # each level's size, with attention or not
        attn = [image_size >> i in attn_res for i in range(len(ch_mult))]
        down = ["AttnDownBlock2D" if a else "DownBlock2D" for a in attn]
        up = ["AttnUpBlock2D" if a else "UpBlock2D" for a in attn[::-1]]
        # heads of 8 channels: its default
        self.unet = UNet2DModel(
            sample_size=image_size, in_channels=channels, out_channels=channels,
            layers_per_block=num_res_blocks,
            block_out_channels=tuple(ch * m for m in ch_mult),
            down_block_types=tuple(down), up_block_types=tuple(up), dropout=dropout)

    def forward(self, x, t, y=None):
        return self.unet(x, t).sample


def main(s):
    try:
        import diffusers
    except ImportError:
        print("error: --peer needs diffusers, in a scratch venv (docs/speed.md)",
              file=sys.stderr)
        return 1
    size = s["image_size"] or 32
    config = {**CIFAR10, **{k: v for k, v in s["config"].items() if k in CIFAR10}}
    B = s["batch_size"] or 16
    n = s["n"]
    S = s["ddim_steps"]
    repeats = max(s["steps"], 1)
    torch.manual_seed(0)
    ours = DDPM(size, 3, **config)
    peer = DDPM(size, 3, **config)
    peer.net = Peer(size, 3, **config)

    def count(m):
        return sum(p.numel() for p in m.net.parameters())
    print(f"parameters: ours {count(ours):,}, "
          f"diffusers {diffusers.__version__} UNet2DModel {count(peer):,}")
    x0 = torch.rand(B, 3, size, size) * 2 - 1
    opts = {m: m.configure_optimizers() for m in (ours, peer)}

    def train_step(m):
        loss = m.loss(x0)["mse"]
        opts[m].zero_grad(set_to_none=True)
        loss.backward()
        opts[m].step()

    def sample(m):
        torch.manual_seed(1)
        m.eval()
        m.sample(n, sampler="ddim", steps=S)
        m.train()

    times = {(m, what): [] for m in ("ours", "peer") for what in ("train", "sample")}
    # warm-up: allocations, Adam's state
    for m in (ours, peer):
        train_step(m)
    for r in range(repeats):
        for what, fn in (("train", train_step), ("sample", sample)):
            # the order swapped each repeat
            for name, m in (("ours", ours), ("peer", peer))[::-1 if r % 2 else 1]:
                t = time.perf_counter()
                fn(m)
                times[name, what].append(time.perf_counter() - t)
                took = times[name, what][-1]
                print(f"repeat {r + 1}/{repeats}: {name} {what} {took:.2f} s",
                      file=sys.stderr, flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = {}
    for w in ("train", "sample"):
        ratio[w] = statistics.median(a / b for a, b in zip(times["ours", w], times["peer", w]))
    print(f"{size}x{size}, {config}, {torch.get_num_threads()} threads, torch "
          f"{torch.__version__}, {repeats} repeats (medians; the ratio: the median of the "
          "repeats' ratios):")
    for w, what in (("train", f"training step, batch {B} (forward, backward, AdamW)"),
                    ("sample", f"DDIM {S} steps, {n} images")):
        print(f"{what}: ours {med['ours', w]:.2f} s, diffusers {med['peer', w]:.2f} s, "
              f"ours / diffusers {ratio[w]:.2f}")
    return 0
