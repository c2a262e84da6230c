"""StyleGAN2's perceptual path length (evaluate.py --ppl) against its formula on a
hand-built generator: linear mapping and synthesis, identity features, where the distance
of a pair is known in closed form."""
import json
import numpy as np
import pytest
import torch
import evaluate as E
from support.classifier import Classifier


class Linear:
    """A generator a reader can solve by hand: w = z M, x = (sum of the layers' w) A plus
    the layer noise, an image (B, 1, 2, 2)."""
    num_layers = 3
    z_dim = 4

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.M = torch.randn(4, 5, generator=g, dtype=torch.float64)
        self.A = torch.randn(5, 4, generator=g, dtype=torch.float64)

    def mapping(self, z, y=None):
        return z @ self.M

    def noises(self, n):
        return [torch.randn(n, 1, 2, 2, dtype=torch.float64)]

    def synthesis(self, ws, noise):
        return (ws.sum(1) @ self.A).view(-1, 1, 2, 2) + noise[0]


def test_each_pair_is_the_squared_distance_of_a_step_of_epsilon_over_epsilon_squared():
    """x is linear in w, so d(g(w_1), g(w_1 + eps (w_2 - w_1))) / eps^2 is
    ||L (w_2 - w_1) A||^2 for L layers sharing one w, whatever eps; the noise, shared by the
    pair, cancels."""
    G = Linear()
    z = torch.randn(2 * 50, 4, dtype=torch.float64)
    d = E.path_distances(G, lambda x: x.flatten(1), z)
    w1, w2 = (z @ G.M).chunk(2)
    want = ((G.num_layers * (w2 - w1) @ G.A) ** 2).sum(1)
    assert d.shape == (50,) and torch.allclose(d, want, rtol=1e-6)


def test_the_mean_leaves_out_the_lowest_and_highest_percent():
    d = np.concatenate([np.arange(1.0, 101.0), [1e9]])
    assert E.trimmed_mean(d) == pytest.approx(np.arange(2.0, 101.0).mean())


def test_the_command_measures_a_stylegan_and_refuses_another_model(cli, tmp_path):
    sg = tmp_path / "sg"
    args = ["--image-size", 8, "--ch", 8, "--max-ch", 16, "--z-dim", 16, "--w-dim", 16,
            "--batch-size", 8, "--grid", 4]
    assert cli("train.py", "stylegan", "--steps", 2, "--out", sg, *args).returncode == 0
    config = dict(channels=3, num_classes=2, width=4)
    clf = tmp_path / "clf.pt"
    torch.save(dict(model="classifier", config=config, class_names=["a", "b"], image_size=8,
                    weights=Classifier(**config).state_dict()), clf)
    p = cli("evaluate.py", "--ppl", sg / "ckpt.pt", "--classifier", clf, "--ppl-n", 30,
            "--json", tmp_path / "r.json")
    r = json.load(open(tmp_path / "r.json"))
    assert p.returncode == 0 and r["pairs"] == 30 and 0 < r["PPL"] < 1e6, p.out
    assert "PPL (W, at the path's start; 30 pairs" in p.stdout
    vae = tmp_path / "v"
    r = cli("train.py", "vae", "--steps", 1, "--image-size", 8, "--out", vae)
    assert r.returncode == 0, r.out
    p = cli("evaluate.py", "--ppl", vae / "ckpt.pt", "--classifier", clf)
    assert p.returncode == 1 and "a vae has none" in p.stderr, p.out
