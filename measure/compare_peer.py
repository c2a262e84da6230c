"""The peer's side of measure/compare.py: lucidrains' denoising-diffusion-pytorch,
trained and sampled in the peer's own Python (a scratch venv, docs/compare.md).

    PEER_PYTHON -I measure/compare_peer.py train OUT/peer/job.json
    PEER_PYTHON -I measure/compare_peer.py sample OUT/peer/job.json

This file is never imported by the project, and it imports nothing of the project: it runs
under --peer-python, reads the job that compare.py wrote (every number already checked
there) and the images compare.py saved (OUT/data.pt: the very array train.py trains on),
and leaves its results as files. The library is loaded by name (importlib), so it is no
import of the project's.

The peer as the issue measured it: classifier_free_guidance's Unet (dim 32, dim_mults
(1, 2, 2): 1,648,993 parameters for 1-channel images and 10 classes) inside its
GaussianDiffusion (its cosine schedule, T = 1000, epsilon-prediction), sampled by its DDIM
on `steps` steps with its own guidance defaults. The loop is the library's Trainer written
out: Adam with betas (0.9, 0.99), gradients clipped to norm 1, an EMA of decay 0.995
updated every 10 steps, samples from the EMA; with compare.py's batch size, learning rate
and condition-drop probability, and train.py's data order (epoch e shuffled by the
permutation seeded seed + e, the last partial batch dropped) and random horizontal flips.
"""
import importlib
import importlib.metadata
import json
import os
import signal
import sys
import time
import torch
from PIL import Image

LIBRARY = "denoising_diffusion_pytorch.classifier_free_guidance"
# issue 32's count for dim 32, mults (1, 2, 2), 1 channel, 10 classes
ISSUE_PARAMETERS = 1_648_993


def build(job, K, C, S):
    """The peer's Unet in its GaussianDiffusion, and its EMA -> (diffusion, ema, size)."""
    peer = importlib.import_module(LIBRARY)
    EMA = importlib.import_module("ema_pytorch").EMA
    unet = peer.Unet(dim=job["dim"], dim_mults=tuple(job["dim_mults"]), num_classes=K,
                     cond_drop_prob=job["p_uncond"], channels=C)
    # sampling_timesteps < T: its DDIM
    diffusion = peer.GaussianDiffusion(unet, image_size=S, timesteps=1000,
                                       sampling_timesteps=job["steps"])
    # the library Trainer's defaults
    ema = EMA(diffusion, beta=0.995, update_every=10)
    return diffusion, ema, sum(p.numel() for p in unet.parameters())


def train(job):
    """Steps until SIGTERM (compare.py sends it at the deadline); then the weights and a
    summary (steps, parameters, seconds) in job["out"]."""
    data = torch.load(job["data"], weights_only=True)
    images = data["images"]                                 # (N, S, S, C) uint8
    labels = data["labels"]
    N, S, _, C = images.shape
    K = len(data["names"])
    torch.manual_seed(job["seed"])
    diffusion, ema, count = build(job, K, C, S)
    print(f"peer: {count:,} parameters", flush=True)
    issue_32 = (job["dim"], tuple(job["dim_mults"]), C, K) == (32, (1, 2, 2), 1, 10)
    if issue_32 and count != ISSUE_PARAMETERS:
        print(f"warning: issue 32's peer had {ISSUE_PARAMETERS:,} parameters", flush=True)
    opt = torch.optim.Adam(diffusion.parameters(), lr=job["lr"], betas=(0.9, 0.99))
    B = job["batch_size"]
    per_epoch = N // B
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    t0 = time.perf_counter()
    step = 0
    while not stop:
        epoch, i = divmod(step, per_epoch)
        if i == 0:
            perm = torch.randperm(
                N, generator=torch.Generator().manual_seed(job["seed"] + epoch))
        idx = perm[i * B:(i + 1) * B]
        # the library's [0, 1] input, randomly flipped left to right
        x = images[idx].permute(0, 3, 1, 2).float() / 255
        x = torch.where(torch.rand(B, 1, 1, 1) < 0.5, x.flip(3), x)
        loss = diffusion(x, classes=labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(diffusion.parameters(), 1.0)
        opt.step()
        ema.update()
        step += 1
        if step % 100 == 0:
            print(f"peer step {step} | loss {loss.item():.4g}", flush=True)
    seconds = time.perf_counter() - t0
    torch.save({"ema": ema.state_dict(), "names": data["names"], "C": C, "S": S},
               os.path.join(job["out"], "ckpt.pt"))
    summary = {"steps": step, "parameters": count, "seconds": seconds,
               "torch": torch.__version__,
               "library": importlib.metadata.version("denoising-diffusion-pytorch")}
    with open(os.path.join(job["out"], "train.json"), "w") as f:
        json.dump(summary, f)
    print(f"peer: stopped at step {step} after {seconds:.0f} s", flush=True)


def sample(job):
    """n samples from the EMA, class i % K for sample i, as sample.py draws them, each a
    PNG in its class's subfolder of job["samples"]."""
    ck = torch.load(os.path.join(job["out"], "ckpt.pt"), weights_only=True)
    names = ck["names"]
    K = len(names)
    diffusion, ema, _ = build(job, K, ck["C"], ck["S"])
    ema.load_state_dict(ck["ema"])
    model = ema.ema_model.eval()
    torch.manual_seed(job["seed"])
    y = torch.arange(job["n"]) % K
    for lo in range(0, job["n"], 100):
        # in [0, 1]
        x = model.sample(classes=y[lo:lo + 100], cond_scale=job["guidance"])
        x = x.clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1)
        for i, im in enumerate(x.numpy(), lo):
            folder = os.path.join(job["samples"], names[y[i]])
            os.makedirs(folder, exist_ok=True)
            im = im[..., 0] if im.shape[2] == 1 else im
            Image.fromarray(im).save(f"{folder}/{i:05d}.png")
        print(f"peer: {min(lo + 100, job['n'])}/{job['n']} samples", flush=True)


if __name__ == "__main__":
    with open(sys.argv[2]) as f:
        task = json.load(f)
    {"train": train, "sample": sample}[sys.argv[1]](task)
