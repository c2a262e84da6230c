"""The model a run trains: built from its config, with its optimizers and EMA copy, fresh or
resumed from the run's checkpoint (weights, EMA, optimizer moments, step, RNG states).
"""
import copy
import torch
from support.cli import Fail, build_model, load_checkpoint
from support.processes import own_noise


def model_and_resume(name, config, args, ck, proc):
    """The model, optimizers and EMA copy (one seed: the same weights in every process); with a
    checkpoint ck, resumed, each process's random number generators too. Returns model, opts (a
    list), ema or None, and the step."""
    torch.manual_seed(args["seed"])
    model = build_model(name, config).to(proc.device)
    if proc.cuda:
        model = model.to(memory_format=torch.channels_last)
    try:
        opts = model.configure_optimizers()
    except ValueError as e:                                     # torch's check: a negative lr, ...
        raise Fail(f"bad {name} configuration: {e}")
    opts = list(opts) if isinstance(opts, (tuple, list)) else [opts]
    if config.get("ae") and not ck:                             # ldm: another run's autoencoder
        try:
            model.load_autoencoder(load_checkpoint(config["ae"]))
        except (KeyError, RuntimeError):
            raise Fail(f"{config['ae']} holds no autoencoder of this shape "
                       "(same --f, --z-channels, --ae-ch)")
    ema = copy.deepcopy(model).eval().requires_grad_(False) if args["ema"] > 0 else None
    if not ck:
        own_noise(proc, args["seed"])                           # process k > 0: its own seed
        return model, opts, ema, 0
    try:
        model.load_state_dict(ck["weights"])
        if ema is not None:
            ema.load_state_dict(ck["ema"] or ck["weights"])
        for opt, state in zip(opts, ck["optimizers"], strict=True):
            now = [{k: v for k, v in g.items() if k != "params"}    # lr, betas, ... of this config
                   for g in opt.param_groups]
            opt.load_state_dict(state)                          # the resumed run's moments, counts
            for g, settings_now in zip(opt.param_groups, now):
                g.update(settings_now)                          # --resume --lr X trains with X
        own_noise(proc, args["seed"], ck["rng"], ck["step"])      # each process's own RNG states
    except (RuntimeError, ValueError, KeyError, TypeError):
        raise Fail(f"{args['out']}/ckpt.pt does not fit this {name} configuration: "
                   "resume without changing its shape flags")
    before = ck["config"]
    if changed := [f"{k} {before[k]} -> {v}" for k, v in config.items() if before.get(k, v) != v]:
        proc.log("changed on resume: " + ", ".join(changed))
    return model, opts, ema, ck["step"]
