"""bench.py --quick, the suite's smoke test of the benchmark: the rows it promises, each with
positive finite figures (no timing thresholds: this CPU is shared). And sample.py --compile: the
compiled network samples what the eager one does."""
import json
import math
import numpy as np
import pytest
import torch
from PIL import Image
from measure.bench import QUICK
from support.cli import MODELS, save_checkpoint
from ddpm import DDPM
from vae import VAE


def test_bench_quick_gives_a_row_per_model_and_setting(cli, tmp_path):
    """--quick runs every model (stargan on two domain folders), one row each."""
    out = tmp_path / "bench.json"
    r = cli("measure/bench.py", "--quick", "--json", out)
    assert r.returncode == 0, r.out
    rows = json.loads(out.read_text())["rows"]
    assert [row["model"] for row in rows] == list(MODELS)
    assert all(row["finite"] and row["train_img_s"] > 0 for row in rows), rows
    (row,) = [row for row in rows if row["model"] == "ddpm"]
    setting = (row["model"], row["bf16"], row["compile"], row["ddpm_steps"], row["ddim_steps"])
    assert setting == ("ddpm", False, False, 10, 5)
    figures = [row[k] for k in ("train_img_s", "train_img_s_folder", "sample_s", "ddim_s",
                                "peak_mib")]
    assert row["finite"] and all(math.isfinite(v) and v > 0 for v in figures), row
    assert sum(l.startswith("| ddpm |") for l in r.stdout.splitlines()) == 1
    assert "DDPM 10 steps" in r.stdout
    r = cli("measure/bench.py", "--quick", "--model", "vae", "--z-dim", 3, "--bf16", "both",
            "--json", out)                                      # a model's flag
    assert r.returncode == 0, r.out
    rows = json.loads(out.read_text())["rows"]
    assert [(row["model"], row["bf16"]) for row in rows] == [("vae", False), ("vae", True)]
    vae = VAE(16, 3, **{**QUICK["vae"][1], "z_dim": 3})         # the flag reached the model
    assert rows[0]["params"] == sum(p.numel() for p in vae.parameters())
    assert all(row["ddim_s"] is None and row["sample_s"] > 0 and row["train_img_s"] > 0
               for row in rows)
    vae_rows = [l for l in r.stdout.splitlines() if l.startswith("| vae |")]
    assert [l.split("|")[5].strip() for l in vae_rows] == ["off", "on"]
    r = cli("measure/bench.py", "--model", "vae", "--ch-mult", "1,2")   # ddpm's flag, not vae's
    assert r.returncode == 1


@pytest.mark.compile
def test_compiled_sampling_equals_eager(cli, tmp_path):
    """A tiny DDPM with random weights (the zero-initialised output layers would make eps_theta = 0
    and any two samplers agree); 3 DDIM steps, deterministic, eager and compiled from the same
    checkpoint."""
    torch.manual_seed(0)
    config = dict(image_size=8, channels=3, num_classes=0, T=10, ch=32, ch_mult=(1,),
                  num_res_blocks=1, attn_res=(), dropout=0.0)
    m = DDPM(**config)
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.1)
    save_checkpoint(str(tmp_path / "ckpt.pt"), dict(model="ddpm", config=config,
                                                  weights=m.state_dict(), ema=None, args={},
                                                  class_names=None))
    knobs = ["-n", 4, "--sampler", "ddim", "--steps", 3]
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    r = cli("sample.py", tmp_path / "ckpt.pt", *knobs, "--out", tmp_path / "eager.png")
    assert r.returncode == 0, r.out
    r = cli("sample.py", tmp_path / "ckpt.pt", *knobs, "--compile", "--out",
            tmp_path / "compiled.png")
    assert r.returncode == 0, r.out
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > graphs   # something compiled
    eager = np.asarray(Image.open(tmp_path / "eager.png"), dtype=int)
    compiled = np.asarray(Image.open(tmp_path / "compiled.png"), dtype=int)
    assert eager.std() > 10                                     # samples, not a flat grey
    assert np.abs(eager - compiled).max() <= 1                  # 8-bit rounding of float noise
