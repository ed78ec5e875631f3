"""Optimizers, learning-rate schedules and gradient clipping.

An optimizer holds the list of (param, grad) pairs of a model, ``model.parameters()``, and
updates every param **in place** (``p -= ...``), so the arrays the model holds stay the ones
being trained. Gradients are left untouched by ``step()`` and cleared by ``zero_grad()``.

    opt = AdamW(model.parameters(), lr=3e-4)
    opt.zero_grad(); model.backward(dlogits); clip_grad_norm(model.parameters(), 1.0); opt.step()

Steps are counted from 1, for the optimizers' bias correction and for the schedules alike.
``opt.lr`` is a plain attribute: a schedule sets it before each step.
"""
import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Optimizer", "SGD", "Adam", "AdamW",
           "ConstantSchedule", "NoamSchedule", "CosineSchedule",
           "constant_schedule", "noam_schedule", "cosine_schedule",
           "global_grad_norm", "clip_grad_norm"]


def _as_pairs(params):
    """Check and return a list of (param, grad) float arrays; a Module is replaced by its parameters()."""
    if hasattr(params, "parameters") and callable(params.parameters):
        params = params.parameters()
    params = list(params)
    if not params:
        raise ValueError("got an empty parameter list; pass model.parameters() of a model with parameters")
    for i, pair in enumerate(params):
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise TypeError(f"parameter {i} is {type(pair).__name__}, expected a (param, grad) pair of "
                            f"arrays "
                            "as returned by model.parameters()")
        p, g = pair
        if not (isinstance(p, np.ndarray) and isinstance(g, np.ndarray)):
            raise TypeError(f"parameter {i}: param and grad must be numpy arrays, got "
                            f"{type(p).__name__} and {type(g).__name__}")
        if not np.issubdtype(p.dtype, np.floating):
            raise TypeError(f"parameter {i} has dtype {p.dtype}; only floating-point parameters can be "
                            f"trained")
        if p.shape != g.shape:
            raise ValueError(f"parameter {i} has shape {p.shape} but its gradient has shape {g.shape}")
    return params


def _check_positive_step(step):
    """Steps count from 1: return step as an int (or an int array), raising on 0, negatives and fractions."""
    s = np.asarray(step)
    whole = np.issubdtype(s.dtype, np.floating) and np.all(s == np.round(s))
    if not (np.issubdtype(s.dtype, np.integer) or whole):
        raise TypeError(f"a schedule takes whole step numbers, got {step!r}")
    if np.any(s < 1):
        raise ValueError(f"steps are counted from 1 (the first optimizer step is step 1), got {step!r}")
    return s.astype(np.float64)


class Optimizer:
    """Base class: the (param, grad) pairs, a step count, zero_grad() and state_dict()/load_state_dict()."""

    # Subclasses name their hyperparameters (saved with the state) and fill self.buffers,
    # {buffer name: one array per parameter}, with the running statistics they keep.
    hyperparameters = ("lr",)

    def __init__(self, params, lr):
        self.params = _as_pairs(params)
        self.lr = lr
        self.step_count = 0     # number of step() calls so far; the next step is step_count + 1
        self.buffers = {}

    @property
    def lr(self):
        return self._lr

    @lr.setter
    def lr(self, value):
        value = float(value)
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"the learning rate must be a finite number >= 0, got {value}")
        self._lr = value

    def zero_grad(self):
        """Set every gradient to zero (gradients accumulate with += in backward)."""
        for _, g in self.params:
            g.fill(0)

    def step(self):
        raise NotImplementedError

    def _zeros(self):
        return [np.zeros_like(p) for p, _ in self.params]

    def __repr__(self):
        hp = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.hyperparameters)
        return (f"{type(self).__name__}({hp}, {len(self.params)} parameter arrays, "
                f"step_count={self.step_count})")

    def state_dict(self):
        """A flat {name: array or number} dict, ready for np.savez: the optimizer type, step count,
        hyperparameters and one entry "<buffer>.<i>" per running-statistics array (i = parameter index)."""
        state = {"type": type(self).__name__, "step_count": self.step_count}
        for k in self.hyperparameters:
            state[k] = getattr(self, k)
        for name, arrays in self.buffers.items():
            for i, a in enumerate(arrays):
                state[f"{name}.{i}"] = a.copy()
        return state

    def load_state_dict(self, state):
        """Restore step count, hyperparameters and buffers (copied in place). Everything is checked
        before anything changes: a wrong optimizer type, parameter count or shape raises ValueError."""
        kind = str(np.asarray(state.get("type", "")))
        if kind != type(self).__name__:
            raise ValueError(f"this {type(self).__name__} cannot load a state saved by "
                             f"{kind or 'an unknown optimizer'}: load it into an optimizer of the type that "
                             f"saved it")
        expected = {f"{name}.{i}" for name, arrays in self.buffers.items() for i in range(len(arrays))}
        found = {k for k in state if "." in k}
        if expected != found:
            raise ValueError(
                f"the {kind} state holds buffers for {len(found)} arrays but this optimizer has "
                f"{len(expected)} ({len(self.params)} parameters): was it saved for another model? "
                f"missing {sorted(expected - found)[:4]}, unexpected {sorted(found - expected)[:4]}")
        for name, arrays in self.buffers.items():
            for i, a in enumerate(arrays):
                value = np.asarray(state[f"{name}.{i}"])
                if value.shape != a.shape:
                    raise ValueError(f"optimizer buffer '{name}.{i}' has shape {value.shape} in the state "
                                     f"but "
                                     f"parameter {i} has shape {a.shape}: was it saved for another model?")
        for name, arrays in self.buffers.items():
            for i, a in enumerate(arrays):
                a[...] = state[f"{name}.{i}"]
        for k in self.hyperparameters:
            value = np.asarray(state[k])
            setattr(self, k, tuple(value.tolist()) if value.ndim else value.item())
        self.step_count = int(np.asarray(state["step_count"]))


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum and L2 weight decay."""

    hyperparameters = ("lr", "momentum", "weight_decay")

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        """With g = grad + weight_decay * p, each step does

            v = momentum * v + g      (v starts at 0, so the first step uses v = g)
            p = p - lr * v

        the form PyTorch uses (the learning rate multiplies the velocity, not each gradient).
        """
        super().__init__(params, lr)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}; 0.9 is the usual value")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        self.momentum, self.weight_decay = float(momentum), float(weight_decay)
        self.buffers = {"velocity": self._zeros()}

    def step(self):
        self.step_count += 1
        for (p, g), v in zip(self.params, self.buffers["velocity"]):
            if self.weight_decay:
                g = g + p.dtype.type(self.weight_decay) * p  # a new array: grads stay as they were
            if self.momentum:
                v *= p.dtype.type(self.momentum)
                v += g
                g = v
            p -= p.dtype.type(self.lr) * g


class Adam(Optimizer):
    """Adam ("Adam: A Method for Stochastic Optimization", Kingma and Ba 2015), L2 decay added to the
    gradient."""

    hyperparameters = ("lr", "betas", "eps", "weight_decay")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        """At step t = 1, 2, ..., with g = grad + weight_decay * p (plain L2 regularization):

            m = beta1 m + (1 - beta1) g            running mean of the gradient
            v = beta2 v + (1 - beta2) g^2          running mean of its square
            m_hat = m / (1 - beta1^t)              bias correction: m and v start at 0
            v_hat = v / (1 - beta2^t)
            p = p - lr * m_hat / (sqrt(v_hat) + eps)

        Adam's decay acts through v_hat too, so weights with large gradients are barely
        regularized; AdamW decouples the two.
        """
        super().__init__(params, lr)
        b1, b2 = betas
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ValueError(f"betas must each lie in [0, 1), got {betas}; (0.9, 0.999) is the usual choice "
                             "and (0.9, 0.98) the one of 'Attention Is All You Need'")
        if eps <= 0:
            raise ValueError(f"eps must be > 0 (it keeps the update finite where v_hat = 0), got {eps}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        self.betas, self.eps, self.weight_decay = (float(b1), float(b2)), float(eps), float(weight_decay)
        self.buffers = {"m": self._zeros(), "v": self._zeros()}

    def _decay(self, p, g):
        """The gradient Adam's moments see: L2 decay adds weight_decay * p."""
        return g + p.dtype.type(self.weight_decay) * p if self.weight_decay else g

    def step(self):
        self.step_count += 1
        t = self.step_count
        b1, b2 = self.betas
        bc1, bc2 = 1.0 - b1 ** t, 1.0 - b2 ** t
        for (p, g), m, v in zip(self.params, self.buffers["m"], self.buffers["v"]):
            dt = p.dtype.type
            g = self._decay(p, g)
            m *= dt(b1)
            m += dt(1.0 - b1) * g
            v *= dt(b2)
            v += dt(1.0 - b2) * (g * g)
            # lr * m_hat / (sqrt(v_hat) + eps), with the bias corrections folded into scalars
            denom = np.sqrt(v)
            denom *= dt(1.0 / math.sqrt(bc2))
            denom += dt(self.eps)
            p -= dt(self.lr / bc1) * m / denom


class AdamW(Adam):
    """AdamW: Adam with decoupled weight decay ("Decoupled Weight Decay Regularization", Loshchilov and
    Hutter 2019)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        """Each step first shrinks the weights, then takes an Adam step on the raw gradient:

            p = p - lr * weight_decay * p
            p = p - lr * m_hat / (sqrt(v_hat) + eps)      (m, v from grad alone)

        The decay is multiplied by the current lr, as in PyTorch, so a schedule scales both.
        It applies to every parameter given (biases and LayerNorm gains included).
        """
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def _decay(self, p, g):
        if self.weight_decay:
            p *= p.dtype.type(1.0 - self.lr * self.weight_decay)
        return g

    # step() is Adam's: _decay shrinks p in place instead of changing g


# ----------------------------------------------------------------------------
# learning-rate schedules: callables step -> lr, steps counted from 1.
# They also accept an array of steps (for plotting) and return an array.

def _set(obj, name, value):
    object.__setattr__(obj, name, value)   # frozen dataclass: normalize a field in __post_init__


def _check_lr(value, name):
    value = float(value)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


@dataclass(frozen=True)
class ConstantSchedule:
    """The same learning rate at every step."""
    lr: float   # the learning rate

    def __post_init__(self):
        _set(self, "lr", _check_lr(self.lr, "lr"))

    def __call__(self, step):
        s = _check_positive_step(step)
        out = np.full(s.shape, float(self.lr))
        return float(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class NoamSchedule:
    """Linear warmup then decay as 1/sqrt(step), from "Attention Is All You Need" (Vaswani et al. 2017).

    lr = factor * d_model^-0.5 * min(step^-0.5, step * warmup^-1.5): it rises linearly for
    `warmup` steps, peaks at step == warmup, then decays as 1/sqrt(step). The paper used
    d_model = 512, warmup = 4000 (peak about 7e-4) with Adam(betas=(0.9, 0.98), eps=1e-9).
    """
    d_model: int      # model width; larger models get smaller steps
    warmup: int       # steps of linear increase; the peak is at step == warmup
    factor: float = 1.0   # overall multiplier

    def __post_init__(self):
        if self.d_model < 1 or self.warmup < 1:
            raise ValueError(f"noam_schedule needs d_model >= 1 and warmup >= 1, got d_model={self.d_model}, "
                             f"warmup={self.warmup}")
        if self.factor <= 0:
            raise ValueError(f"factor must be > 0, got {self.factor}")
        _set(self, "d_model", int(self.d_model))
        _set(self, "warmup", int(self.warmup))
        _set(self, "factor", float(self.factor))

    def __call__(self, step):
        """lr = factor * d_model^-0.5 * min(step^-0.5, step * warmup^-1.5)."""
        s = _check_positive_step(step)
        out = self.factor * self.d_model ** -0.5 * np.minimum(s ** -0.5, s * self.warmup ** -1.5)
        return float(out) if out.ndim == 0 else out

    @property
    def peak_lr(self):
        """The largest learning rate, reached at step == warmup: factor * (d_model * warmup)^-0.5."""
        return self.factor * (self.d_model * self.warmup) ** -0.5


@dataclass(frozen=True)
class CosineSchedule:
    """Linear warmup to peak_lr, then half a cosine down to min_lr at total_steps (and min_lr after).

    Warmup goes from peak_lr / warmup (step 1) to peak_lr (step == warmup)."""
    peak_lr: float      # learning rate at step == warmup
    warmup: int         # steps of linear warmup (0: start at the peak)
    total_steps: int    # the step at which min_lr is reached
    min_lr: float = 0.0   # floor at the end of the decay

    def __post_init__(self):
        if self.warmup < 0 or self.total_steps <= self.warmup:
            raise ValueError(f"cosine_schedule needs 0 <= warmup < total_steps, got warmup={self.warmup}, "
                             f"total_steps={self.total_steps}")
        if not 0.0 <= self.min_lr <= self.peak_lr:
            raise ValueError(f"cosine_schedule needs 0 <= min_lr <= peak_lr, got min_lr={self.min_lr}, "
                             f"peak_lr={self.peak_lr}")
        _set(self, "peak_lr", float(self.peak_lr))
        _set(self, "warmup", int(self.warmup))
        _set(self, "total_steps", int(self.total_steps))
        _set(self, "min_lr", float(self.min_lr))

    def __call__(self, step):
        """step <= warmup: peak_lr * step / warmup;
        after: min_lr + (peak_lr - min_lr) * (1 + cos(pi * progress)) / 2,
        progress = (step - warmup) / (total_steps - warmup), clipped to [0, 1]
        ("SGDR: Stochastic Gradient Descent with Warm Restarts", Loshchilov and Hutter 2017,
        without restarts)."""
        s = _check_positive_step(step)
        warm = self.peak_lr * s / max(self.warmup, 1)
        progress = np.clip((s - self.warmup) / (self.total_steps - self.warmup), 0.0, 1.0)
        decay = self.min_lr + 0.5 * (self.peak_lr - self.min_lr) * (1.0 + np.cos(np.pi * progress))
        out = np.where(s <= self.warmup, warm, decay)
        return float(out) if out.ndim == 0 else out


# the lower-case names the chapters use: the classes themselves (which check their arguments)
constant_schedule = ConstantSchedule
noam_schedule = NoamSchedule
cosine_schedule = CosineSchedule


# ----------------------------------------------------------------------------
# gradient clipping

def global_grad_norm(params):
    """sqrt(sum of every squared gradient entry) over all (param, grad) pairs, as a Python float."""
    params = _as_pairs(params)
    # one norm per array, combined in float64: a float32 sum of squares over millions of entries
    # would lose precision
    return math.sqrt(sum(float(np.linalg.norm(g.ravel())) ** 2 for _, g in params))


def clip_grad_norm(params, max_norm):
    """Scale all gradients in place so their global L2 norm is at most max_norm; return the norm before.

    total = sqrt(sum_i ||g_i||^2) over every gradient array; if total > max_norm, every g_i is
    multiplied by max_norm / total (the direction is kept, only the length shrinks), otherwise
    nothing changes ("On the difficulty of training recurrent neural networks", Pascanu et al. 2013).
    A non-finite total (inf or nan gradients) is returned without scaling anything, so the
    caller can see it; scaling by it would turn every gradient into nan.
    """
    if not max_norm > 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm}; to disable clipping, do not call "
                         f"clip_grad_norm")
    params = _as_pairs(params)
    total = global_grad_norm(params)
    if math.isfinite(total) and total > max_norm:
        scale = max_norm / total
        for _, g in params:
            g *= g.dtype.type(scale)
    return total
