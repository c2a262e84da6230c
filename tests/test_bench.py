"""bench.py --quick, the suite's smoke test of the benchmark: the rows it promises, each with positive finite
figures (no timing thresholds: this CPU is shared). And sample.py --compile: the compiled network samples
what the eager one does."""
import json, math
import numpy as np
import torch
from PIL import Image
from cli import save_checkpoint
from ddpm import DDPM


def test_bench_quick_gives_a_row_per_model_and_setting(cli, tmp_path):
    out = tmp_path / "bench.json"
    r = cli("bench.py", "--quick", "--model", "ddpm", "--bf16", "both", "--json", out)
    assert r.returncode == 0, r.out
    rows = json.loads(out.read_text())["rows"]
    assert [(row["model"], row["bf16"], row["compile"]) for row in rows] == [("ddpm", False, False), ("ddpm", True, False)]
    for row in rows:
        figures = [row[k] for k in ("train_img_s", "train_img_s_folder", "sample_s", "ddim_s", "peak_mib")]
        assert all(math.isfinite(v) and v > 0 for v in figures), row
        assert row["finite"] and row["ddpm_steps"] == 10 and row["ddim_steps"] == 5
    lines = [l for l in r.stdout.splitlines() if l.startswith("| ddpm |")]
    assert len(lines) == 2 and "DDPM 10 steps" in r.stdout and "DDIM 5" in r.stdout
    r = cli("bench.py", "--quick", "--model", "vae", "--latent-dim", 3, "--json", out)   # a model's own flag
    rows = json.loads(out.read_text())["rows"]
    assert r.returncode == 0 and len(rows) == 1 and rows[0]["ddim_s"] is None and rows[0]["sample_s"] > 0, r.out
    assert "| vae |" in r.stdout
    assert cli("bench.py", "--model", "vae", "--ch-mult", "1,2").returncode == 1      # ddpm's flag, not vae's


def test_compiled_sampling_equals_eager(cli, tmp_path):
    """A tiny DDPM with random weights (the zero-initialised output layers would make eps_theta = 0 and
    any two samplers agree); 3 DDIM steps, deterministic, eager and compiled from the same checkpoint."""
    torch.manual_seed(0)
    config = dict(image_size=8, channels=3, num_classes=0, T=10, ch=32, ch_mult=(1,), num_res_blocks=1, attn_res=(),
                  dropout=0.0)
    m = DDPM(**config)
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.1)
    save_checkpoint(str(tmp_path / "ckpt.pt"), dict(model="ddpm", config=config, weights=m.state_dict(), ema=None,
                                                  args={}, class_names=None))
    knobs = ["-n", 4, "--sampler", "ddim", "--steps", 3]
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    r = cli("sample.py", tmp_path / "ckpt.pt", *knobs, "--out", tmp_path / "eager.png")
    assert r.returncode == 0, r.out
    r = cli("sample.py", tmp_path / "ckpt.pt", *knobs, "--compile", "--out", tmp_path / "compiled.png")
    assert r.returncode == 0, r.out
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > graphs       # something was compiled
    eager, compiled = (np.asarray(Image.open(tmp_path / f), dtype=int) for f in ("eager.png", "compiled.png"))
    assert eager.std() > 10                                                    # samples, not a flat grey
    assert np.abs(eager - compiled).max() <= 1                                 # 8-bit rounding of float differences
