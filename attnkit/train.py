"""The training loop, evaluation and checkpoints.

One training step, the order every chapter uses:

    logits = model.forward(*inputs)              # forward pass, caches kept for backward
    loss = loss_fn.forward(logits, targets)      # a float
    model.zero_grad()                            # gradients accumulate, so clear them first
    model.backward(loss_fn.backward())           # fills every grad
    clip_grad_norm(params, clip_norm)            # optional: bound the update's size
    optimizer.lr = schedule(step)                # optional: warmup and decay
    optimizer.step()                             # params updated in place

``train`` runs that loop over a stream of batches and returns a ``History``. It draws no random
numbers itself: a run is reproducible when the model's initialization, its dropout generators and
the batch stream are seeded (two runs with the same seeds give identical histories).
"""
import dataclasses
import json
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from . import __version__
from .optim import clip_grad_norm, global_grad_norm

__all__ = ["History", "train", "evaluate", "save_checkpoint", "load_checkpoint"]


@dataclass
class History:
    """What happened during training: one entry per step, plus the evaluation records."""
    step: list = field(default_factory=list)        # step numbers (from 1)
    loss: list = field(default_factory=list)        # training loss of each step's batch
    lr: list = field(default_factory=list)          # learning rate used at each step
    grad_norm: list = field(default_factory=list)   # global gradient norm before clipping
    evals: list = field(default_factory=list)       # {"step": s, **metrics} after each evaluation
    seconds: float = field(default=0.0, compare=False)   # wall-clock time (not part of equality)

    def __len__(self):
        return len(self.step)

    def mean_loss(self, last=None):
        """Mean training loss over the last `last` steps (all steps when None)."""
        if not self.loss:
            raise ValueError("the history is empty: no step has been recorded")
        values = self.loss if last is None else self.loss[-int(last):]
        return float(np.mean(values))

    def eval_series(self, name):
        """(steps, values) of one evaluation metric, as two lists, for plotting or checks."""
        records = [r for r in self.evals if name in r]
        if not records and self.evals:
            raise KeyError(f"no evaluation recorded a metric named {name!r}; "
                           f"recorded names: {sorted({k for r in self.evals for k in r} - {'step'})}")
        return [r["step"] for r in records], [r[name] for r in records]

    def plot(self, smooth=None):
        """A matplotlib figure with the loss (left; evaluation losses as dots) and the learning rate (right).

        smooth: width of a moving average drawn over the raw training loss (default: about
        len / 20, at least 1). Returns the figure; end the notebook cell with plt.show().
        """
        import matplotlib.pyplot as plt

        if not self.step:
            raise ValueError("nothing to plot: the history is empty")
        steps, loss = np.asarray(self.step), np.asarray(self.loss, dtype=np.float64)
        if smooth is None:
            smooth = max(1, len(loss) // 20)
        fig, (ax_loss, ax_lr) = plt.subplots(1, 2, figsize=(10, 3.5))
        if smooth > 1 and len(loss) >= smooth:
            ax_loss.plot(steps, loss, color="C0", alpha=0.3, lw=1, label="train (per step)")
            avg = np.convolve(loss, np.ones(smooth) / smooth, mode="valid")
            ax_loss.plot(steps[smooth - 1:], avg, color="C0", lw=2, label=f"train (mean of {smooth})")
        else:
            ax_loss.plot(steps, loss, color="C0", lw=1.5, label="train")
        if any("loss" in r for r in self.evals):
            es, ev = self.eval_series("loss")
            ax_loss.plot(es, ev, "o-", color="C1", label="evaluation")
        ax_loss.set_xlabel("step")
        ax_loss.set_ylabel("loss")
        ax_loss.set_title("loss")
        ax_loss.legend()
        ax_lr.plot(steps, self.lr, color="C2")
        ax_lr.set_xlabel("step")
        ax_lr.set_ylabel("learning rate")
        ax_lr.set_title("learning rate")
        ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        fig.tight_layout()
        return fig


def _split_batch(batch, step):
    """A batch is (inputs, targets); inputs is a tuple of forward() arguments or a single array."""
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
        raise TypeError(f"batch {step} is a {type(batch).__name__}; batches must be (inputs, targets) pairs, "
                        "with inputs a tuple of model.forward arguments (or a single array)")
    inputs, targets = batch
    return (inputs if isinstance(inputs, tuple) else (inputs,)), targets


def train(model, loss_fn, optimizer, batches, num_steps=None, schedule=None, clip_norm=None,
          eval_every=None, eval_fn=None, progress=True, start_step=1, history=None):
    """Train `model` in place and return a History.

    model: a Module with forward(*inputs) -> logits and backward(dlogits).
    loss_fn: forward(logits, targets) -> float and backward() -> dlogits (e.g. CrossEntropyLoss).
    optimizer: built on model.parameters() (SGD, Adam, AdamW).
    batches: an iterable of (inputs, targets), inputs being a tuple of forward() arguments or
        one array. A generator that never ends is fine when num_steps is given.
    num_steps: how many steps to run; None runs until `batches` is exhausted. If the batches
        run out first, training stops there with a warning.
    schedule: callable step -> lr (see attnkit.optim); None keeps optimizer.lr.
    clip_norm: clip the global gradient norm to this value before each step (None: no clipping).
    eval_every, eval_fn: every `eval_every` steps and after the last one, call eval_fn(model),
        which returns a dict of metrics (or one float, recorded as "loss"); evaluate() below
        makes one. The model is put back in training mode afterwards.
    progress: show a tqdm progress bar on stderr with the loss and lr (updated at most once a
        second, so notebook output stays short).
    start_step, history: to resume, pass the step after the last one done (checkpoint metadata
        "step" + 1) and the History to append to.

    A nan or infinite loss or gradient norm stops training with FloatingPointError, naming the step.
    """
    from tqdm import tqdm   # tqdm.auto would need ipywidgets in notebooks

    _check_train_args(num_steps, clip_norm, eval_every, eval_fn, start_step)
    params = model.parameters()
    history = History() if history is None else history
    if num_steps is None and hasattr(batches, "__len__"):
        total = len(batches)
    else:
        total = num_steps
    was_training = model.training
    model.train()
    it = iter(batches)
    t0 = time.perf_counter()
    bar = tqdm(total=total, file=sys.stderr, disable=not progress, mininterval=1.0,
               dynamic_ncols=True, desc="training")
    step = int(start_step) - 1
    done = 0
    try:
        while num_steps is None or done < num_steps:
            try:
                batch = next(it)
            except StopIteration:
                if num_steps is not None:
                    warnings.warn(f"batches ran out after {done} of num_steps={num_steps} steps; "
                                  "training stopped there", stacklevel=2)
                break
            step += 1
            if schedule is not None:
                optimizer.lr = schedule(step)
            loss, norm = _step(model, loss_fn, optimizer, params, batch, step, clip_norm)
            done += 1
            history.step.append(step)
            history.loss.append(loss)
            history.lr.append(optimizer.lr)
            history.grad_norm.append(norm)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{optimizer.lr:.2e}", refresh=False)
            bar.update(1)
            if eval_every is not None and done % eval_every == 0:
                history.evals.append(_run_eval(eval_fn, model, step))
                model.train()
        if eval_every is not None and done and done % eval_every:
            history.evals.append(_run_eval(eval_fn, model, step))   # the final model is always evaluated
    finally:
        bar.close()
        model.train(was_training)
        history.seconds += time.perf_counter() - t0
    return history


def _check_train_args(num_steps, clip_norm, eval_every, eval_fn, start_step):
    if num_steps is not None and (int(num_steps) != num_steps or num_steps < 1):
        raise ValueError(f"num_steps must be a positive integer (or None for one pass over batches), "
                         f"got {num_steps!r}")
    if clip_norm is not None and not clip_norm > 0:
        raise ValueError(f"clip_norm must be > 0 or None, got {clip_norm}")
    if (eval_every is None) != (eval_fn is None):
        raise ValueError("pass eval_every and eval_fn together (or neither)")
    if eval_every is not None and (int(eval_every) != eval_every or eval_every < 1):
        raise ValueError(f"eval_every must be a positive integer, got {eval_every!r}")
    if int(start_step) != start_step or start_step < 1:
        raise ValueError(f"start_step counts from 1, got {start_step!r}")


def _step(model, loss_fn, optimizer, params, batch, step, clip_norm):
    """One training step (the order in the module docstring); returns (loss, gradient norm before
    clipping)."""
    inputs, targets = _split_batch(batch, step)
    loss = loss_fn.forward(model.forward(*inputs), targets)
    if not math.isfinite(loss):
        raise FloatingPointError(f"the loss is {loss} at step {step} (lr={optimizer.lr:.3g}): training "
                                 "diverged. Lower the learning rate, add warmup or clip gradients.")
    model.zero_grad()   # every gradient, also of parameters the optimizer does not update
    model.backward(loss_fn.backward())
    norm = clip_grad_norm(params, clip_norm) if clip_norm is not None else global_grad_norm(params)
    if not math.isfinite(norm):
        raise FloatingPointError(f"the gradient norm is {norm} at step {step} (loss {loss:.4g}): "
                                 "a backward pass overflowed. Lower the learning rate or clip gradients.")
    optimizer.step()
    return loss, norm


def _run_eval(eval_fn, model, step):
    metrics = eval_fn(model)
    if isinstance(metrics, dict):
        return {"step": step, **{k: float(v) for k, v in metrics.items()}}
    if isinstance(metrics, (int, float, np.floating, np.integer)):
        return {"step": step, "loss": float(metrics)}
    raise TypeError(f"eval_fn must return a dict of metrics or a float, got {type(metrics).__name__}")


def evaluate(model, loss_fn, batches):
    """Mean loss of `model` over `batches` of (inputs, targets), in evaluation mode (no dropout).

    Batches are weighted by how many items each loss averaged (loss_fn.num_items: positions that
    are not ignored), so the result is the mean over every counted token, whatever the padding.
    The model's previous train/eval mode is restored.
    """
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for i, batch in enumerate(batches):
            inputs, targets = _split_batch(batch, i)
            loss = loss_fn.forward(model.forward(*inputs), targets)
            n = getattr(loss_fn, "num_items", 1)
            total += loss * n
            count += n
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("evaluate got no batches (or every target was ignored): there is no mean loss")
    return total / count


# ----------------------------------------------------------------------------
# checkpoints: one .npz file, model parameters by dotted name, optimizer state, JSON metadata

def _json_default(obj):
    """Make configs JSON-friendly: dataclasses, numpy scalars, dtypes and dtype classes such as np.float32."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.dtype):
        return str(obj)
    if isinstance(obj, type) and issubclass(obj, np.generic):
        return np.dtype(obj).name
    raise TypeError(f"config value {obj!r} of type {type(obj).__name__} cannot be stored as JSON; "
                    "use numbers, strings, lists, dicts or dataclasses of them")


def save_checkpoint(path, model, optimizer=None, step=None, config=None):
    """Write model parameters, optimizer state and metadata to one .npz file; returns the path.

    Keys: "model/<dotted name>" for each parameter, "optimizer/<name>" for each entry of
    optimizer.state_dict(), and "metadata", a JSON string with step, config (a dict or a
    dataclass), the attnkit version and the optimizer type. The file is written under a
    temporary name and then renamed, so a crash never leaves half a checkpoint.
    """
    path = os.fspath(path)
    meta = {"step": step, "config": config, "attnkit_version": __version__,
            "optimizer": None if optimizer is None else type(optimizer).__name__}
    arrays = {"metadata": np.array(json.dumps(meta, default=_json_default))}
    for name, p, _ in model.named_parameters():
        arrays[f"model/{name}"] = p
    if optimizer is not None:
        for name, value in optimizer.state_dict().items():
            arrays[f"optimizer/{name}"] = np.asarray(value)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:   # a file object: np.savez would append ".npz" to a bare name
        np.savez(f, **arrays)
    os.replace(tmp, path)
    return path


def load_checkpoint(path, model, optimizer=None):
    """Load a save_checkpoint file into `model` (and `optimizer`) in place; returns the metadata dict.

    A parameter missing, unexpected or of another shape raises ValueError naming it and both
    shapes (Module.load_state_dict), as does optimizer state saved for another model or
    optimizer type; after such an error model and optimizer are unchanged. Nothing is unpickled
    (allow_pickle=False).
    """
    with np.load(os.fspath(path), allow_pickle=False) as data:
        if "metadata" not in data.files:
            raise ValueError(f"{path} is not an attnkit checkpoint (no 'metadata' entry); "
                             "write checkpoints with save_checkpoint")
        meta = json.loads(str(data["metadata"]))
        model_state = {k[len("model/"):]: data[k] for k in data.files if k.startswith("model/")}
        optim_state = {k[len("optimizer/"):]: data[k] for k in data.files if k.startswith("optimizer/")}
    if optimizer is not None and not optim_state:
        raise ValueError(f"{path} holds no optimizer state (saved with optimizer=None); "
                         "load it without an optimizer and start a fresh one")
    backup = model.state_dict()
    try:
        model.load_state_dict(model_state)
        if optimizer is not None:
            optimizer.load_state_dict(optim_state)   # checks everything before changing anything
    except Exception:
        model.load_state_dict(backup)                # a failed load leaves the model as it was
        raise
    return meta
