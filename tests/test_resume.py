"""Resume is exact, for every model of support.cli.MODELS and under torchrun: a run stopped by
Ctrl-C and continued with --resume ends with the very checkpoint of a run never stopped, every
tensor of it bit for bit (weights and buffers, cyclegan's history, the EMA, the optimizers'
moments, each process's random number generators)."""
import os
import signal
import pytest
import torch
import train
from support.cli import MODELS
from test_distributed import gloo, in_two_processes

TINY = {
    "vae": ["--image-size", 8, "--ch", 8, "--z-dim", 4, "--ema", 0.5],
    "gan": ["--image-size", 8, "--hidden", 16, "--z-dim", 4, "--loss", "wgan-gp",
            "--n-critic", 2],
    "dcgan": ["--image-size", 8, "--ngf", 4, "--ndf", 4, "--z-dim", 4],
    "dcgan-lab": ["--image-size", 8, "--ngf", 4, "--ndf", 4, "--z-dim", 4, "--classes", "--acgan",
                  "--d-dropout", 0.3, "--g-steps", 2],
    "pix2pix": ["--image-size", 16, "--ngf", 4, "--ndf", 4, "--n-layers", 1],
    "cyclegan": ["--image-size", 8, "--ngf", 4, "--ndf", 4, "--n-blocks", 1, "--n-layers", 1,
                 "--history", 3],
    "stylegan": ["--image-size", 8, "--ch", 8, "--max-ch", 8, "--z-dim", 8, "--w-dim", 8,
                 "--n-mlp", 2, "--mbstd-group", 2],
    "ddpm": ["--image-size", 8, "--T", 20, "--ch", 32, "--ch-mult", 1, "--num-res-blocks", 1,
             "--attn-res", 8, "--classes"],
    "ldm": ["--image-size", 8, "--f", 2, "--z-channels", 2, "--ae-ch", 32, "--T", 20, "--ch", 32,
            "--ch-mult", 1, "--num-res-blocks", 1, "--attn-res", 4, "--ae-steps", 2],
    "stargan": ["--image-size", 8, "--ngf", 4, "--ndf", 4, "--n-blocks", 1, "--classes",
                "--n-critic", 2],
    "progan": ["--image-size", 8, "--ch", 8, "--max-ch", 8, "--z-dim", 8, "--mbstd-group", 2,
               "--fade-images", 4, "--stable-images", 4],
    "srgan": ["--image-size", 8, "--B", 1, "--ngf", 4, "--content", "mse"],
}
RUN = ["--batch-size", 2, "--grid", 2, "--steps", 4, "--log-every", 1, "--quiet"]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks: one thread is faster, and on a busy CPU far faster, than several."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def differences(a, b, where="ckpt"):
    """Every place where two checkpoints differ: tensors bit for bit, anything else by ==."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{where}: keys {sorted(map(str, a.keys() ^ b.keys()))}"]
        return [d for k in a for d in differences(a[k], b[k], f"{where}.{k}")]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f"{where}: {len(a)} vs {len(b)} items"]
        return [d for i, (u, v) in enumerate(zip(a, b)) for d in differences(u, v, f"{where}[{i}]")]
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        same = a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
        return [] if same else [where]
    return [] if type(a) is type(b) and a == b else [where]


def tensors(ck):
    """How many tensors a checkpoint holds, in any nesting."""
    if isinstance(ck, dict):
        return sum(map(tensors, ck.values()))
    if isinstance(ck, (list, tuple)):
        return sum(map(tensors, ck))
    return isinstance(ck, torch.Tensor)


def read(out):
    ck = torch.load(os.path.join(out, "ckpt.pt"), weights_only=True)
    ck["args"].pop("out")                                       # the one difference: the folder
    return ck


def ctrl_c_after(k, step=train.train_step):
    """train.train_step, with Ctrl-C arriving during its k-th call: the run stops after that
    step."""
    calls = [0]

    def then_ctrl_c(*args, **kwargs):
        calls[0] += 1
        if calls[0] == k:
            os.kill(os.getpid(), signal.SIGINT)
        return step(*args, **kwargs)
    return then_ctrl_c


@pytest.mark.parametrize("name", list(MODELS))
def test_ctrl_c_and_resume_give_the_uninterrupted_run(cli, tmp_path, monkeypatch, name):
    a, b = tmp_path / "a", tmp_path / "b"
    flags = [*TINY[name], *RUN]
    monkeypatch.setattr(train, "train_step", ctrl_c_after(2))
    r = cli("train.py", name, "--out", a, *flags)
    monkeypatch.undo()
    assert r.returncode == 130 and "interrupted (SIGINT) at step 2" in r.out, r.out
    r = cli("train.py", name, "--resume", "--out", a)
    assert r.returncode == 0, r.out
    r = cli("train.py", name, "--out", b, *flags)
    assert r.returncode == 0, r.out
    resumed, straight = read(a), read(b)
    assert resumed["step"] == 4 and tensors(straight) > 10
    assert differences(resumed, straight) == []
    if name == "cyclegan":                                      # D has seen past fakes: its buffer
        assert straight["weights"]["history_a._extra_state"]["n"] == 3


def torchrun(commands):
    """In each of 2 processes, train.py run with each argv in turn, Ctrl-C reaching process 1 alone
    during step k where k is given -> their exit statuses."""
    codes = []
    for argv, k in commands:
        os.environ["MASTER_PORT"] = str(int(os.environ["MASTER_PORT"]) + 1)   # a fresh group
        train.train_step = ctrl_c_after(k) if k and os.environ["RANK"] == "1" else STEP
        try:
            codes.append(train.cli([str(a) for a in argv]))
        except SystemExit as e:                                 # Ctrl-C's exit status
            codes.append(e.code)
    return codes


STEP = train.train_step


@gloo
@pytest.mark.parametrize("name", ["ddpm", "vae"])
def test_two_processes_resume_each_its_own_random_numbers(tmp_path, name, monkeypatch):
    """torchrun --nproc_per_node 2: stopped by Ctrl-C (in process 1 alone: both stop) and resumed,
    both processes draw the noise and flips they would have drawn, so the run ends where an
    uninterrupted one ends; the checkpoint holds the RNG states of both."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    a, b = tmp_path / "a", tmp_path / "b"
    flags = [*TINY[name], *RUN, "--batch-size", 4]
    commands = [([name, "--out", a, *flags], 2),
                ([name, "--resume", "--out", a], None),
                ([name, "--out", b, *flags], None)]
    codes = in_two_processes(str(tmp_path / "results"), torchrun, commands)
    assert codes == [[130, 0, 0], [130, 0, 0]]
    resumed, straight = read(a), read(b)
    assert len(straight["rng"]) == 2
    assert not torch.equal(straight["rng"][0]["cpu"], straight["rng"][1]["cpu"])
    assert differences(resumed, straight) == []
