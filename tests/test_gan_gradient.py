"""Why WGAN (measure/gan_gradient.py): on two far-apart 1-D Gaussians, a D trained with the BCE
saturates, so the minimax G loss log(1 - D(x)) gives G's samples no gradient, while the
WGAN-GP critic gives them a push of about 1 towards the data, everywhere between."""
import pytest
import torch
from measure import gan_gradient as W


@pytest.fixture(scope="module")
def measured():
    D = W.train(W.d_step, 300)
    f = W.train(W.critic_step, 300)
    xs = torch.tensor([W.FAKE - 1, W.FAKE, 0.0, W.REAL])
    return W.pushes(D, f, xs)


def test_the_saturated_d_gives_g_no_gradient_where_its_samples_are(measured):
    d, _, push_d, _ = measured
    # D is sure of p_g, and its push there vanishes
    assert d[:2].max() < 1e-3 and push_d[:2].abs().max() < 1e-3
    # near the boundary it pushes hard, towards p_data: the vanishing is D's saturation
    assert push_d[2] > 1 and d[3] > 0.999


def test_the_critic_pushes_g_towards_the_data_everywhere(measured):
    _, fx, _, push_f = measured
    # ||grad f|| near 1 (the penalty), pointing at p_data, on p_g and between
    assert (push_f[:3] > 0.5).all() and (push_f[:3] < 2).all()
    # E f(x) above E f(G(z)): the critic scores the data higher
    assert fx[3] > fx[1]


def test_the_figure_is_written_and_a_bad_out_is_one_line(tmp_path, capsys):
    out = tmp_path / "g.png"
    assert W.command(W.main, ["--out", str(out), "--steps", "5"]) == 0 and out.stat().st_size
    assert W.command(W.main, ["--out", str(tmp_path), "--steps", "5"]) == 1
    assert capsys.readouterr().err.startswith("error: --out")
