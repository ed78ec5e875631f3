"""Finite-difference gradient checks, used by the tests and live in the backpropagation chapter."""
import numpy as np

from .seeding import make_rng

__all__ = ["numerical_gradient", "rel_error", "perturb", "assert_gradient_close", "module_gradient_errors",
           "assert_model_gradients", "assert_parameter_gradient"]


def numerical_gradient(f, x, eps=1e-6):
    """Central differences of a scalar function f() with respect to the array x (changed in place
    and restored).

    Returns an array of x's shape: (f(x + eps e_i) - f(x - eps e_i)) / (2 eps) for every entry i.
    Use float64: in float32 the rounding error of f swamps the difference.
    """
    if x.dtype != np.float64:
        raise TypeError(f"gradient checks need float64 arrays, got {x.dtype}")
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + eps
        fp = f()
        x[i] = old - eps
        fm = f()
        x[i] = old
        grad[i] = (fp - fm) / (2 * eps)
    return grad


def rel_error(a, b):
    """||a - b|| / (||a|| + ||b||), with a floor of 1e-12 below: about 1e-7 or less means two
    float64 gradients agree. (A gradient that is exactly zero in theory, such as that of the
    key bias in attention, is best checked with an absolute tolerance instead.)"""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-12))


# ----------------------------------------------------------------------------
# whole modules: the helpers the tests share

def perturb(module, seed=1, scale=0.1):
    """Move every parameter of module off its initial value (LayerNorm's gamma = 1, biases = 0),
    so that a backward which forgets a term cannot pass a gradient check by accident."""
    rng = make_rng(seed)
    for _, p, _ in module.named_parameters():
        p += scale * rng.standard_normal(p.shape)


def assert_gradient_close(numeric, analytic, name, rtol=1e-6, atol=1e-8):
    """A relative error below rtol, or (for gradients that are zero in theory, such as attention's
    key bias, where the relative error is noise) an absolute one below atol."""
    err = rel_error(numeric, analytic)
    abs_err = float(np.abs(np.asarray(numeric) - np.asarray(analytic)).max())
    assert err < rtol or abs_err < atol, f"{name}: rel error {err:.2e}, max abs error {abs_err:.2e}"


def module_gradient_errors(module, inputs, forward=None, reset=None, seed=123):
    """Relative errors {name: err} of every input and parameter gradient of module against central
    differences of L = sum(forward(*inputs) * dout), dout drawn from make_rng(seed); reset() runs
    before every forward (module.seed_dropout(...) replays dropout masks). Returns the errors
    and the analytic parameter gradients {name: array}. Inputs are float64 arrays, changed in
    place and restored."""
    forward = forward or module.forward
    reset = reset or (lambda: None)

    def run():
        reset()
        return forward(*inputs)

    out = run()
    dout = make_rng(seed).standard_normal(out.shape)
    module.zero_grad()
    dx = module.backward(dout)
    dxs = dx if isinstance(dx, tuple) else (dx,)

    def loss():
        return np.sum(run() * dout)

    errors = {f"input{i}": rel_error(g, numerical_gradient(loss, x))
              for i, (x, g) in enumerate(zip(inputs, dxs))}
    grads = {name: g.copy() for name, _, g in module.named_parameters()}
    for name, p, _ in module.named_parameters():
        errors[name] = rel_error(grads[name], numerical_gradient(loss, p))
    return errors, grads


def assert_model_gradients(model, inputs, targets, loss_fn, label="", rtol=1e-6, atol=1e-9):
    """Every parameter gradient of loss_fn(model.forward(inputs), targets), from model.backward,
    against central differences: a relative error below rtol, or an absolute one below atol (for
    gradients that are zero in theory). A float64 model; label goes into the failure message."""
    def loss():
        return loss_fn.forward(model.forward(inputs), targets)

    loss()
    model.zero_grad()
    model.backward(loss_fn.backward())
    for name, p, g in model.named_parameters():
        num = numerical_gradient(loss, p)
        assert rel_error(g, num) < rtol or np.abs(g - num).max() < atol, (label, name)


def assert_parameter_gradient(model, inputs, suffix, seed=0, rtol=1e-6):
    """The gradient of L = sum(model.forward(inputs) * dout) (dout drawn from make_rng(seed)) for
    the first parameter whose name ends with suffix, against central differences (float64)."""
    out = model.forward(inputs)
    dout = make_rng(seed).standard_normal(out.shape)
    model.zero_grad()
    model.forward(inputs)
    model.backward(dout)
    name, p, g = next(t for t in model.named_parameters() if t[0].endswith(suffix))
    err = rel_error(g, numerical_gradient(lambda: np.sum(model.forward(inputs) * dout), p))
    assert err < rtol, f"{name}: rel error {err:.2e}"
