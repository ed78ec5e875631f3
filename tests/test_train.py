"""Tests for attnkit.train: the loop learns, is deterministic, evaluates, and checkpoints round-trip."""
import math
from dataclasses import dataclass

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from attnkit.losses import CrossEntropyLoss, MSELoss  # noqa: E402
from attnkit.nn import Dropout, Linear, Module  # noqa: E402
from attnkit.optim import SGD, AdamW, cosine_schedule, noam_schedule  # noqa: E402
from attnkit.train import History, evaluate, load_checkpoint, save_checkpoint, train  # noqa: E402


class TinyMLP(Module):
    """Linear -> ReLU -> Dropout -> Linear, for 2-D points and 3 classes."""

    def __init__(self, d_hidden=16, dropout=0.0, seed=0, dtype=np.float32):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.fc1 = Linear(2, d_hidden, rng=rng, dtype=dtype)
        self.drop = Dropout(dropout, rng=rng)
        self.fc2 = Linear(d_hidden, 3, rng=rng, dtype=dtype)

    def forward(self, x):
        a = self.fc1.forward(x)                          # (B, d_hidden)
        self.cache = a
        return self.fc2.forward(self.drop.forward(np.maximum(a, 0)))   # (B, 3)

    def backward(self, dout):
        dh = self.drop.backward(self.fc2.backward(dout))  # (B, d_hidden)
        return self.fc1.backward(dh * (self.cache > 0))  # (B, 2)


def points(seed, batch=32, dtype=np.float32):
    """Endless batches of 2-D points; the class counts how many coordinates are positive (0, 1 or 2)."""
    rng = np.random.default_rng(seed)
    while True:
        x = rng.standard_normal((batch, 2)).astype(dtype)   # (B, 2)
        y = (x > 0).sum(axis=1)                             # (B,)
        yield (x,), y


def accuracy(model, batches):
    model.eval()
    hits = [np.mean(model.forward(*inputs).argmax(-1) == y) for inputs, y in batches]
    model.train()
    return float(np.mean(hits))


def test_training_a_classifier_lowers_the_loss():
    model = TinyMLP(seed=0)
    history = train(model, CrossEntropyLoss(), AdamW(model.parameters(), lr=1e-2), points(1), num_steps=250,
                    schedule=cosine_schedule(1e-2, warmup=20, total_steps=250), clip_norm=1.0, progress=False)
    assert len(history) == 250 and history.step == list(range(1, 251))
    assert history.mean_loss(last=10) > 0 and np.mean(history.loss[:10]) > 0.8   # chance: log 3 = 1.10
    assert history.mean_loss(last=25) < 0.3
    test = [next(points(99, batch=500))]
    assert evaluate(model, CrossEntropyLoss(), test) < 0.3
    assert accuracy(model, test) > 0.9


def test_training_a_regression_with_sgd():
    rng = np.random.default_rng(0)
    w_true = np.array([[1.5], [-2.0], [0.5]])              # (3, 1)

    def data(seed):
        r = np.random.default_rng(seed)
        while True:
            x = r.standard_normal((16, 3))                  # (B, 3)
            yield x, x @ w_true + 0.3                       # single-array inputs are fine too

    model = Linear(3, 1, rng=rng, dtype=np.float64)
    history = train(model, MSELoss(), SGD(model, lr=0.05, momentum=0.9), data(1), num_steps=200, progress=False)
    assert history.loss[0] > 1.0 and history.mean_loss(last=10) < 1e-6
    assert np.allclose(model.params["W"], w_true, atol=1e-3) and np.allclose(model.params["b"], 0.3, atol=1e-3)


def run(seed, steps=40):
    model = TinyMLP(dropout=0.2, seed=seed)
    history = train(model, CrossEntropyLoss(label_smoothing=0.1), AdamW(model.parameters(), lr=1e-2), points(seed),
                    num_steps=steps, clip_norm=0.5, progress=False)
    return model, history


def test_same_seed_same_history():
    (m1, h1), (m2, h2) = run(3), run(3)
    assert h1 == h2                                    # every loss, lr and grad norm (time excluded)
    assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(m1.parameters(), m2.parameters()))
    _, h3 = run(4)
    assert h3.loss != h1.loss                          # the comparison above can fail


def test_schedule_sets_the_lr_and_clipping_bounds_the_step():
    model = TinyMLP(seed=1, dtype=np.float64)
    sched = noam_schedule(16, warmup=5, factor=0.5)
    before = [p.copy() for p, _ in model.parameters()]
    history = train(model, CrossEntropyLoss(), SGD(model, lr=1.0), points(2, dtype=np.float64), num_steps=1,
                    schedule=sched, clip_norm=1e-3, progress=False)
    assert history.lr == [sched(1)]
    assert history.grad_norm[0] > 1e-3                 # recorded before clipping
    step = math.sqrt(sum(np.sum((p - b) ** 2) for (p, _), b in zip(model.parameters(), before)))
    assert step == pytest.approx(sched(1) * 1e-3, rel=1e-9)   # plain SGD: lr * clipped norm
    history = train(model, CrossEntropyLoss(), SGD(model, lr=1.0), points(2, dtype=np.float64), num_steps=10,
                    schedule=sched, progress=False)
    assert history.lr == [sched(s) for s in range(1, 11)]


def test_eval_records_and_mode():
    model = TinyMLP(dropout=0.5, seed=0)
    modes = []

    def eval_fn(m):
        modes.append(m.training)
        return {"loss": evaluate(m, CrossEntropyLoss(), [next(points(7))]), "acc": accuracy(m, [next(points(7))])}

    model.eval()
    history = train(model, CrossEntropyLoss(), AdamW(model.parameters()), points(0), num_steps=12,
                    eval_every=5, eval_fn=eval_fn, progress=False)
    assert [r["step"] for r in history.evals] == [5, 10, 12]   # and the final model
    assert set(history.evals[0]) == {"step", "loss", "acc"}
    assert history.eval_series("acc")[0] == [5, 10, 12]
    assert modes == [True, True, True]                         # train() trains in training mode...
    assert model.training is False                             # ...and restores the mode it found


def test_training_mode_comes_back_after_an_eval_fn_that_leaves_eval_mode():
    model = TinyMLP(dropout=0.5, seed=0)
    forward_modes = []
    forward = model.forward
    model.forward = lambda x: (forward_modes.append(model.training), forward(x))[1]

    def eval_fn(m):
        m.eval()                                               # and never switches back
        return 1.5

    h = train(model, CrossEntropyLoss(), AdamW(model.parameters()), points(0), num_steps=4,
              eval_every=2, eval_fn=eval_fn, progress=False)
    assert h.evals == [{"step": 2, "loss": 1.5}, {"step": 4, "loss": 1.5}]
    assert forward_modes == [True] * 4                         # dropout stayed on for every step


def test_evaluate_weights_batches_by_counted_tokens():
    model = TinyMLP(seed=0, dtype=np.float64)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 2))
    y = np.array([0, 1, 2, -1, -1, -1])
    y[3] = 1                                                   # batch two has 1 counted item of 3
    loss_fn = CrossEntropyLoss(ignore_index=-1)
    whole = evaluate(model, loss_fn, [(x, y)])
    split = evaluate(model, loss_fn, [(x[:3], y[:3]), (x[3:], y[3:])])
    assert split == pytest.approx(whole, rel=1e-12)
    with pytest.raises(ValueError, match="no batches"):
        evaluate(model, loss_fn, [])


def test_progress_bar_on_stderr(capsys):
    model = TinyMLP(seed=0)
    train(model, CrossEntropyLoss(), AdamW(model.parameters()), points(0), num_steps=3, progress=True)
    out = capsys.readouterr()
    assert out.out == "" and "3/3" in out.err and "loss=" in out.err and "lr=" in out.err
    train(model, CrossEntropyLoss(), AdamW(model.parameters()), points(0), num_steps=3, progress=False)
    assert capsys.readouterr().err == ""


def test_batches_that_run_out():
    model = TinyMLP(seed=0)
    gen = points(0)
    batches = [next(gen) for _ in range(5)]
    h = train(model, CrossEntropyLoss(), AdamW(model.parameters()), batches, progress=False)
    assert len(h) == 5                                         # num_steps=None: one pass
    with pytest.warns(UserWarning, match="ran out after 5 of num_steps=8"):
        h = train(model, CrossEntropyLoss(), AdamW(model.parameters()), batches, num_steps=8, progress=False)
    assert len(h) == 5


def test_divergence_and_bad_batches_raise():
    model = Linear(2, 1, seed=0, dtype=np.float64)
    bad = [(np.array([[np.nan, 1.0]]), np.zeros((1, 1)))]
    with pytest.raises(FloatingPointError, match="loss is nan at step 1"):
        train(model, MSELoss(), SGD(model, lr=0.1), bad, progress=False)
    with pytest.raises(TypeError, match=r"\(inputs, targets\) pairs"):
        train(model, MSELoss(), SGD(model, lr=0.1), [np.zeros((1, 2))], progress=False)
    with pytest.raises(ValueError, match="together"):
        train(model, MSELoss(), SGD(model, lr=0.1), [], eval_every=3, progress=False)


def test_history_plot():
    _, h = run(0, steps=30)
    h.evals = [{"step": 10, "loss": 1.0}, {"step": 30, "loss": 0.8}]
    fig = h.plot(smooth=5)
    loss_ax, lr_ax = fig.axes
    assert len(loss_ax.lines) == 3 and lr_ax.get_ylabel() == "learning rate"   # raw, mean of 5, evaluation
    assert len(h.plot().axes[0].lines) == 2          # 30 steps: no smoothing by default
    plt.close("all")
    with pytest.raises(ValueError, match="empty"):
        History().plot()


# ----------------------------------------------------------------------------
# checkpoints

@dataclass
class TinyConfig:
    d_hidden: int = 16           # hidden width
    dtype: type = np.float32     # parameter dtype


def test_checkpoint_round_trip(tmp_path):
    model = TinyMLP(seed=0)
    opt = AdamW(model.parameters(), lr=1e-2)
    batches = points(5)
    train(model, CrossEntropyLoss(), opt, batches, num_steps=5, progress=False)
    path = save_checkpoint(tmp_path / "ckpt.npz", model, opt, step=5, config=TinyConfig())
    assert path == str(tmp_path / "ckpt.npz") and not (tmp_path / "ckpt.npz.tmp").exists()
    saved = model.state_dict()
    batch = next(batches)
    expected = train(model, CrossEntropyLoss(), opt, [batch], progress=False, start_step=6)
    after = model.state_dict()

    train(model, CrossEntropyLoss(), opt, points(8), num_steps=3, progress=False)   # move everything on
    assert not np.array_equal(model.fc1.params["W"], saved["fc1.W"])
    meta = load_checkpoint(path, model, opt)
    assert meta["step"] == 5 and meta["config"] == {"d_hidden": 16, "dtype": "float32"}
    assert meta["optimizer"] == "AdamW" and opt.step_count == 5
    for name, p in model.state_dict().items():
        assert np.array_equal(p, saved[name]) and p.dtype == np.float32
    again = train(model, CrossEntropyLoss(), opt, [batch], progress=False, start_step=6)
    assert again == expected                                   # the same next step: moments restored
    for name, p in model.state_dict().items():
        assert np.array_equal(p, after[name])


def test_resume_equals_one_run(tmp_path):
    gen = points(11)
    batches = [next(gen) for _ in range(20)]
    sched = cosine_schedule(1e-2, warmup=4, total_steps=20)

    def fresh():
        m = TinyMLP(seed=2)
        return m, AdamW(m.parameters(), lr=1e-2)

    m1, o1 = fresh()
    whole = train(m1, CrossEntropyLoss(), o1, batches, schedule=sched, progress=False)
    m2, o2 = fresh()
    first = train(m2, CrossEntropyLoss(), o2, batches[:10], schedule=sched, progress=False)
    save_checkpoint(tmp_path / "half.npz", m2, o2, step=10)
    m3, o3 = fresh()
    meta = load_checkpoint(tmp_path / "half.npz", m3, o3)
    rest = train(m3, CrossEntropyLoss(), o3, batches[10:], schedule=sched, progress=False,
                 start_step=meta["step"] + 1, history=first)
    assert rest == whole
    assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(m1.parameters(), m3.parameters()))


def test_checkpoint_mismatch_errors(tmp_path):
    model = TinyMLP(d_hidden=16)
    save_checkpoint(tmp_path / "a.npz", model)
    with pytest.raises(ValueError, match=r"'fc1.W' has shape \(2, 8\) in the model but \(2, 16\)"):
        load_checkpoint(tmp_path / "a.npz", TinyMLP(d_hidden=8))
    with pytest.raises(ValueError, match="no optimizer state"):
        load_checkpoint(tmp_path / "a.npz", model, AdamW(model.parameters()))
    other = TinyMLP(d_hidden=16, seed=1)
    save_checkpoint(tmp_path / "b.npz", other, AdamW(other.parameters()))
    before = model.state_dict()
    with pytest.raises(ValueError, match="this SGD cannot load a state saved by AdamW:"):
        load_checkpoint(tmp_path / "b.npz", model, SGD(model, lr=0.1))
    assert all(np.array_equal(p, before[k]) for k, p in model.state_dict().items())   # left as it was
    np.savez(tmp_path / "c.npz", x=np.zeros(2))
    with pytest.raises(ValueError, match="not an attnkit checkpoint"):
        load_checkpoint(tmp_path / "c.npz", model)
    with pytest.raises(TypeError, match="cannot be stored as JSON"):
        save_checkpoint(tmp_path / "d.npz", model, config={"f": object()})
