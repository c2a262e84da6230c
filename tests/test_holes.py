"""Holes that cross the model files: every default that its help line names as the paper's
value is that value, so a changed default (lambda_l1 = 10) cannot pass unnoticed."""
import re
import pytest
from support.cli import MODELS, flag_help, hyperparameters, model_class

# The help gives the paper's value, the default is smaller on purpose: networks and
# latents scaled down to a laptop, ProGAN's schedule shortened to the built-in data.
SCALED_DOWN = {"dcgan.z_dim", "dcgan.ngf", "dcgan-lab.z_dim", "dcgan-lab.ngf",
               "stylegan.z_dim", "stylegan.w_dim", "stylegan.ch", "stylegan.max_ch",
               "stylegan.fade_images", "stylegan.stable_images", "progan.z_dim",
               "progan.ch", "progan.max_ch", "progan.fade_images", "progan.stable_images",
               "ddpm.ch"}


def papers_value(help):
    """The value X of `(paper: X)` or `(the paper's X)` in a help line, its qualifier
    (`, for 1024x1024`, ` on CIFAR-10`) left out: 10^-3 -> 0.001, 800,000 and 800k ->
    800000, off -> False. None where the help names no paper's value, or X is a
    description ("learned")."""
    found = re.search(r"\((?:paper: |the paper's )([^)]*)\)", help)
    if not found:
        return None
    text = re.split(r",? (?:for|on|in) |, ", found.group(1))[0]
    text = text.replace("10^", "1e").replace(",", "").replace("k", "e3")
    if text in ("off", "on"):
        return text == "on"
    try:
        return float(text)
    except ValueError:
        return None


def papers_defaults():
    """(model.keyword, default, the paper's value) for every keyword of every model's
    __init__, sample and animate whose help names the paper's value and whose default is
    not None (None: the paper's value chosen at run time, or off)."""
    rows = []
    for name in MODELS:
        cls = model_class(name)
        for fn in [cls.__init__, cls.sample, getattr(cls, "animate", cls.sample)]:
            helps = flag_help(fn)
            for k, p in hyperparameters(fn).items():
                value = papers_value(helps.get(k, ""))
                if value is not None and p.default is not None:
                    rows.append((f"{name}.{k}", p.default, value))
    return sorted(set(rows))


def test_papers_value_reads_the_help_line():
    assert papers_value("the weight lambda of the L1 term (the paper's 100)") == 100
    assert papers_value("the weight of R1 (paper: 10, for 1024x1024)") == 10
    assert papers_value("the weight of l_Gen (the paper's 10^-3)") == pytest.approx(1e-3)
    assert papers_value("images seen (paper: 800,000)") == papers_value("(paper: 800k)")
    assert papers_value("dropout (paper: 0.1 on CIFAR-10)") == pytest.approx(0.1)
    assert papers_value("soft labels (paper: off)") is False
    assert papers_value("the decoder's std (paper: learned)") is None
    assert papers_value("the latent's length (paper: 2 to 200)") is None
    assert papers_value("the weight lambda of the cycle loss") is None


def test_the_walk_reads_the_loss_weights_of_the_papers():
    """The walk below sees each paper's loss weight and schedule: none of them is
    skipped because its help stopped naming the paper."""
    seen = {key for key, _, _ in papers_defaults()}
    weights = {"pix2pix.lambda_l1", "cyclegan.lambda_cyc", "cyclegan.lambda_identity",
               "gan.gp_lambda", "stargan.lambda_cls", "stargan.lambda_rec",
               "stargan.gp_lambda", "srgan.adv_weight", "ddpm.T", "ddpm.beta_1",
               "ddpm.beta_T", "stylegan.w_avg_beta", "stylegan.mixing", "stylegan.gamma",
               "progan.gp_lambda"}
    assert weights <= seen, sorted(weights - seen)


@pytest.mark.parametrize("key, default, value", papers_defaults(), ids=lambda v: str(v))
def test_a_default_the_help_names_as_the_papers_is_the_papers(key, default, value):
    said = f"{key}: default {default}, the paper's {value}"
    if key in SCALED_DOWN:
        assert default != value, f"{key}: the paper's value now; drop it from SCALED_DOWN"
    elif isinstance(value, bool):
        assert default is value, said
    elif isinstance(default, tuple):
        assert default == (value,), said
    else:
        assert default == pytest.approx(value), said
