"""The training loop's arithmetic, measured: the gradient each optimiser steps with, the EMA, and
the processes of a torchrun run. Two processes on the CPU (gloo), each on half of a batch, must step
with the very gradient one process computes on the whole batch (to float32 rounding), for one
loss and for a GAN's two optimisers (D, then G on the same batch); the EMA follows
p_ema <- decay p_ema + (1 - decay) p after the step; each process draws its own random numbers,
and gets them back on --resume."""
import copy
import multiprocessing
import os
import socket
import traceback
from contextlib import nullcontext
from types import SimpleNamespace
import pytest
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
import train
from support.cli import Fail
from support.processes import agree, end, in_first, own_noise, rng_states, share_scale
from train import processes

ALONE = SimpleNamespace(rank=0, world=1, cuda=False, device=torch.device("cpu"),
                        autocast=nullcontext(), log=lambda *a: None)
SEED = 7
gloo = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()
                               and "fork" in multiprocessing.get_all_start_methods()),
                          reason="needs torch.distributed with gloo, and fork")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child(rank, port, folder, fn, args):
    """Process `rank` of 2, as torchrun starts it: its variables in the environment."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)                                    # 2 processes on a 2-core CPU
    try:
        result = fn(*args)
    except BaseException:
        result = Fail(traceback.format_exc())
    torch.save(result, os.path.join(folder, f"{rank}.pt"))


def in_two_processes(folder, fn, *args, timeout=240):
    """fn(*args) in 2 processes forked from this one (no second import of torch) -> [its result in
    process 0, in process 1]. fn calls processes() (or train.cli) to join the group."""
    os.makedirs(folder, exist_ok=True)
    fork = multiprocessing.get_context("fork")
    port = free_port()
    ps = [fork.Process(target=child, args=(rank, port, folder, fn, args)) for rank in (0, 1)]
    for p in ps:
        p.start()
    for p in ps:
        p.join(timeout)
    for p in ps:
        if p.is_alive():
            p.kill()
    assert all(p.exitcode == 0 for p in ps), [p.exitcode for p in ps]
    results = [torch.load(os.path.join(folder, f"{r}.pt"), weights_only=False) for r in (0, 1)]
    for r in results:
        assert not isinstance(r, Fail), str(r)
    return results


class Line(nn.Module):
    """One loss, as vae and ddpm have: a linear fit's squared error, a mean over the batch."""
    condition = ()                                              # y: one target per image

    def __init__(self):
        super().__init__()
        self.net = nn.Linear(3, 1)
        self.register_buffer("seen", torch.zeros(()))          # a statistic, as BatchNorm keeps

    def loss(self, x, y):
        self.seen += x.mean()
        return {"mse": ((self.net(x).squeeze(1) - y) ** 2).mean()}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class Pair(nn.Module):
    """A GAN in miniature: G and D linear, non-saturating losses; the noise z is handed in as the
    condition y, so that one process on the whole batch sees the z of both halves."""
    condition = (2,)                                            # y: z ~ N(0, I), 2 numbers
    n_critic = 1

    def __init__(self):
        super().__init__()
        self.G = nn.Linear(2, 3)
        self.D = nn.Linear(3, 1)

    def d_loss(self, x, z):
        self.fake = self.G(z)
        return {"real": F.softplus(-self.D(x)).mean(),                      # -log D(x)
                "fake": F.softplus(self.D(self.fake.detach())).mean()}      # -log(1 - D(G(z)))

    def g_loss(self, x, z):
        return {"gan": F.softplus(-self.D(self.fake)).mean()}              # -log D(G(z))

    def configure_optimizers(self):
        return (torch.optim.Adam(self.D.parameters(), lr=0.01),
                torch.optim.Adam(self.G.parameters(), lr=0.01))


def steps(proc, make, n=3, ema_decay=0.9):
    """n steps of train.train_step, each on this process's share of a batch of 8 -> the gradients
    each optimiser stepped with (in order), the weights and the EMA after."""
    torch.manual_seed(0)
    model = make()
    opts = model.configure_optimizers()
    opts = list(opts) if isinstance(opts, tuple) else [opts]
    ema = copy.deepcopy(model).requires_grad_(False)
    seen = []

    def note(opt, args, kwargs):
        seen.append([p.grad.clone() for g in opt.param_groups for p in g["params"]])
    for opt in opts:
        opt.register_step_pre_hook(note)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 8, 3, generator=g)
    y = torch.randn(n, 8, *make.condition, generator=g)
    share = 8 // proc.world
    mine = slice(proc.rank * share, (proc.rank + 1) * share)
    nonfinite = torch.zeros((), dtype=torch.bool)
    for i in range(n):
        train.train_step(model, opts, ema, x[i, mine], y[i, mine], i, ema_decay, nonfinite, proc)
    return dict(grads=seen, weights=[p.detach() for p in model.parameters()],
                ema=[p.detach() for p in ema.parameters()])


def full_disk():
    raise Fail("disk full")


def noise_and_agreement():
    """In each process: the processes' own random numbers (fresh, then restored as --resume does),
    agree() and in_first() across them, and the two models' steps on halves of the batch."""
    proc = processes()
    torch.manual_seed(SEED)
    torch.randn(5)                                              # the model's weights, alike in all
    own_noise(proc, SEED)
    fresh = torch.rand(16)
    states = rng_states(proc)                                   # in process 0, as save() gets it
    box = [states]
    dist.broadcast_object_list(box, src=0, group=proc.host)     # the checkpoint, read by all
    then = torch.rand(16)
    torch.manual_seed(12345)                                    # a new process: anything
    own_noise(proc, SEED, box[0], 3)
    again = torch.rand(16)
    votes = [agree(proc.rank == 1, proc), agree(0, proc)]
    try:
        in_first(proc, full_disk)
        stopped = None
    except Fail as e:
        stopped = str(e)
    result = dict(fresh=fresh, then=then, again=again, votes=votes, stopped=stopped,
                  states=states, line=steps(proc, Line), pair=steps(proc, Pair),
                  moments=shared_moments(proc))
    end(proc)
    return result


class Latents:
    """What ldm.py gives the run: the moments E[z], E[z^2] of one process's latents."""

    def measure_scale(self, z):
        return torch.stack([z.mean(), (z**2).mean()])


# Two processes' latents: the halves of one batch, of different means and spreads.
HALVES = [torch.linspace(-1, 3, 12), torch.linspace(2, 9, 12)]


def shared_moments(proc):
    model = Latents()
    share_scale(model, proc)
    return model.measure_scale(HALVES[proc.rank])


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    if not (dist.is_available() and dist.is_gloo_available()):
        pytest.skip("needs torch.distributed with gloo")
    steps(ALONE, Pair)                                          # the imports of a first step, once
    return in_two_processes(str(tmp_path_factory.mktemp("two")), noise_and_agreement)


def close(a, b):
    """Equal to float32 rounding: the two sums differ only in their order."""
    return len(a) == len(b) and all(torch.allclose(u, v, rtol=1e-5, atol=1e-7)
                                    for u, v in zip(a, b))


@gloo
@pytest.mark.parametrize("model", [Line, Pair])
def test_two_processes_step_with_the_gradient_of_the_whole_batch(two, model):
    """Each optimiser's step (D's, then G's for the GAN) in each process uses the mean gradient of
    the whole batch of 8, as one process computes it; the weights and the EMA stay alike."""
    key = "line" if model is Line else "pair"
    alone = steps(ALONE, model)
    assert len(alone["grads"]) == (3 if model is Line else 6)   # one step, or D then G, each time
    for r in two:
        assert all(close(a, b) for a, b in zip(r[key]["grads"], alone["grads"], strict=True))
        assert close(r[key]["weights"], alone["weights"])
        assert close(r[key]["ema"], alone["ema"])


@gloo
def test_processes_draw_their_own_noise_and_get_it_back_on_resume(two):
    """Process 1's random numbers differ from process 0's and from those the weights were drawn
    with (the seed's first); restored from the gathered states, each process draws again what it
    drew after the save, its own and not process 0's."""
    weights_numbers = torch.rand(16, generator=torch.Generator().manual_seed(SEED))
    assert not torch.equal(two[0]["fresh"], two[1]["fresh"])
    assert all(not torch.equal(r["fresh"], weights_numbers) for r in two)
    assert all(torch.equal(r["then"], r["again"]) for r in two)
    assert not torch.equal(two[0]["then"], two[1]["then"])
    assert len(two[0]["states"]) == 2 and two[1]["states"] is None


@gloo
def test_every_process_takes_the_branch_one_of_them_asks_for(two):
    """A Ctrl-C or NaN seen by one process (agree: the largest value) stops them all; a Fail in
    process 0 (a full disk) stops the others with the same line."""
    assert all(r["votes"] == [1.0, 0.0] for r in two)
    assert all(r["stopped"] == "disk full" for r in two)


@gloo
def test_every_process_measures_ldm_scale_on_the_whole_batch(two):
    """ldm.py's scale 1 / std(z) is measured on the first batch: under torchrun on all the
    processes' latents, so both processes get the moments of the whole batch, not their own."""
    whole = torch.cat(HALVES)
    assert all(close(r["moments"], [whole.mean(), (whole**2).mean()]) for r in two)
    alone = Latents()
    share_scale(alone, ALONE)                                   # one process: its own, untouched
    assert torch.equal(alone.measure_scale(HALVES[0]), Latents().measure_scale(HALVES[0]))


def one_step(model, step=0, ema_decay=0.9):
    """train_step once, alone -> the weights before, the gradient, the weights and EMA after."""
    torch.manual_seed(0)
    opts = model.configure_optimizers()
    opts = list(opts) if isinstance(opts, tuple) else [opts]
    ema = copy.deepcopy(model).requires_grad_(False)
    before = [p.detach().clone() for p in model.parameters()]
    x = torch.randn(8, 3)
    y = torch.randn(8, *model.condition)
    train.train_step(model, opts, ema, x, y, step, ema_decay,
                     torch.zeros((), dtype=torch.bool), ALONE)
    grads = [p.grad for p in model.parameters()]
    return before, grads, list(model.parameters()), list(ema.parameters()), ema


@pytest.mark.parametrize("step, ema_decay, decay", [(0, 0.9, 2 / 11), (10**6, 0.9, 0.9),
                                                    (1, 0.1, 0.1)])
def test_ema_after_the_step(step, ema_decay, decay):
    """SGD's step w1 = w0 - lr g, then the EMA (a copy of w0) moves to decay w0 + (1 - decay) w1,
    where decay = min(ema_decay, (1 + n) / (10 + n)) after step number n = step + 1: 2/11 after
    the first (the warm-up), ema_decay once the warm-up passes it."""
    before, grads, after, ema, _ = one_step(Line(), step, ema_decay)
    for w0, g, w1, e in zip(before, grads, after, ema, strict=True):
        assert torch.allclose(w1, w0 - 0.1 * g, atol=1e-7)          # the model: SGD's step alone
        assert torch.allclose(e, decay * w0 + (1 - decay) * w1, atol=1e-7)
    assert not torch.equal(before[0], after[0])


def test_ema_copies_the_statistics_the_step_updated():
    """Buffers (BatchNorm's running statistics) are not averaged: the EMA takes the model's, which
    the step has just updated, and the model keeps them."""
    model = Line()
    *_, ema = one_step(model)
    assert model.seen.item() != 0 and torch.equal(ema.seen, model.seen)


def test_gan_steps_d_then_g_every_n_critic_steps():
    """D's optimiser steps at every step, G's at every n_critic-th (steps 2 and 4 of 4 for
    n_critic = 2), D's on the gradient of d_loss alone."""
    model = Pair()
    model.n_critic = 2
    opts = model.configure_optimizers()
    calls = []
    for k, opt in enumerate(opts):
        opt.register_step_pre_hook(lambda o, a, kw, k=k: calls.append(k))
    x = torch.randn(8, 3)
    z = torch.randn(8, 2)
    terms = model.d_loss(x, z)
    sum(terms.values()).backward()
    d_grad = [p.grad.clone() for p in model.D.parameters()]
    model.zero_grad()
    for step in range(4):
        before = [p.detach().clone() for p in model.D.parameters()]
        train.train_step(model, opts, None, x, z, step, 0.0,
                         torch.zeros((), dtype=torch.bool), ALONE)
        if step == 0:                                           # Adam's first step: -lr sign(g)
            moved = [b - p.detach() for b, p in zip(before, model.D.parameters())]
            assert all(torch.allclose(m, 0.01 * g.sign(), atol=1e-6)
                       for m, g in zip(moved, d_grad))
    assert calls == [0, 0, 1, 0, 0, 1]
