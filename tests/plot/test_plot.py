from __future__ import annotations

import dataclasses
import types

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from matplotlib.figure import Figure
from mpl_toolkits.mplot3d import Axes3D

import eqx_ffn
from eqx_ffn._metrics import r2_score
from eqx_ffn.io._lecture_data import lecture_params, sine_1d, sine_cosine_2d, sine_cosine_2d_target
from eqx_ffn.plot._plot import (
    plot_confusion,
    plot_fit_1d,
    plot_loss,
    plot_parity,
    plot_residuals,
    plot_surface_2d,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    data = path.read_bytes()
    assert len(data) > 1000 and data.startswith(PNG_MAGIC)


@pytest.fixture(scope="module")
def model_1d():
    return eqx_ffn.FFN.from_params(lecture_params())


@pytest.fixture(scope="module")
def model_2d():
    return eqx_ffn.FFN(2, 1, (4,), key=jr.key(0))


def test_plot_loss_from_history_and_array(tmp_path):
    loss = np.geomspace(10.0, 1e-3, 100)
    history = types.SimpleNamespace(
        loss=loss, val_loss=np.array([5.0, 0.5, 0.05]), val_steps=np.array([33, 66, 99])
    )
    fig = plot_loss(history, path=tmp_path / "deep" / "loss.png")
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    lines = ax.get_lines()
    assert len(lines) == 2
    np.testing.assert_array_equal(lines[0].get_ydata(), loss)
    np.testing.assert_array_equal(lines[1].get_xdata(), [33, 66, 99])
    assert_png(tmp_path / "deep" / "loss.png")

    plain = plot_loss(jnp.asarray(loss))
    assert len(plain.axes[0].get_lines()) == 1
    empty_val = types.SimpleNamespace(loss=loss, val_loss=np.array([]), val_steps=np.array([]))
    assert len(plot_loss(empty_val).axes[0].get_lines()) == 1
    override = plot_loss(loss, val_loss=[1.0, 0.1], val_steps=[50, 100])
    assert len(override.axes[0].get_lines()) == 2
    several = plot_loss({"full batch": loss, "mini-batch": loss * 2})
    assert [ln.get_label() for ln in several.axes[0].get_lines()] == ["full batch", "mini-batch"]
    with pytest.raises(ValueError, match="val_steps has 1 entries but val_loss has 2"):
        plot_loss(loss, val_loss=[1.0, 0.1], val_steps=[50])


def test_plot_loss_says_step_and_names_its_curves():
    """Issue 24: the axis says "step" (as the API and CLI do), never "Iteration"; the curves
    can be named (the CLI's training curve includes the L2 penalty, the validation one not)."""
    history = types.SimpleNamespace(
        loss=np.geomspace(1.0, 0.1, 20), val_loss=np.array([0.5]), val_steps=np.array([10])
    )
    fig = plot_loss(history, labels=("training: MSE + L2 penalty", "validation: MSE"))
    ax = fig.axes[0]
    assert ax.get_xlabel() == "step" and "teration" not in (ax.get_title() or "")
    assert [ln.get_label() for ln in ax.get_lines()] == [
        "training: MSE + L2 penalty",
        "validation: MSE",
    ]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "training: MSE + L2 penalty",
        "validation: MSE",
    ]
    with pytest.raises(ValueError, match="labels must be a pair of names"):
        plot_loss(history, labels=("training",))  # type: ignore[arg-type]


def test_plot_loss_takes_a_real_history():
    history = eqx_ffn.History(
        loss=np.array([3.0, 2.0, 1.0]),
        val_loss=np.array([2.5]),
        val_steps=np.array([3]),
        steps=3,
        stop_reason="completed",
        best_step=None,
        final_loss=1.0,
        wall_time=0.0,
        compile_time=0.0,
        message="",
    )
    assert len(plot_loss(history).axes[0].get_lines()) == 2
    assert len(history.plot().axes[0].get_lines()) == 2
    stopped = dataclasses.replace(history, best_step=2, stop_reason="early_stopping")
    fig = plot_loss(stopped, ylabel="MSE (standardised units)")
    *_, marker = fig.axes[0].get_lines()
    assert marker.get_label() == "returned model (step 2)"
    assert list(marker.get_xdata()) == [2, 2]
    assert fig.axes[0].get_ylabel() == "MSE (standardised units)"


def test_plot_fit_1d(tmp_path, model_1d):
    x, y = sine_1d(40)
    fig = plot_fit_1d(model_1d, x, y, initial_model=model_1d, path=tmp_path / "fit.png")
    assert len(fig.axes) == 1
    data, fit, initial = fig.axes[0].get_lines()
    assert data.get_label() == "data" and initial.get_label() == "initial"
    xs = np.asarray(fit.get_xdata())
    assert np.all(np.diff(xs) >= 0)  # drawn over sorted x
    expected = jax.vmap(model_1d)(jnp.asarray(xs)[:, None])[:, 0]
    np.testing.assert_allclose(fit.get_ydata(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.sort(np.asarray(x[:, 0])), xs)
    assert_png(tmp_path / "fit.png")
    with_f = plot_fit_1d(model_1d, x, y, f=sine_1d().f)
    assert len(with_f.axes[0].get_lines()) == 3
    with pytest.raises(ValueError, match=r"x must have shape \(N, 1\)"):
        plot_fit_1d(model_1d, jnp.zeros((5, 2)), jnp.zeros((5, 1)))


def test_plot_fit_1d_one_axes_per_output():
    two_out = eqx_ffn.FFN(1, 2, (3,), key=jr.key(0))
    x = jnp.linspace(-1, 1, 9)[:, None]
    fig = plot_fit_1d(two_out, x, jnp.zeros((9, 2)))
    assert len(fig.axes) == 2 and all(len(ax.get_lines()) == 2 for ax in fig.axes)


def test_plot_surface_2d(tmp_path, model_2d):
    fig = plot_surface_2d(model_2d, sine_cosine_2d_target, n=12, path=tmp_path / "surf.png")
    assert len(fig.axes) == 2 and all(isinstance(ax, Axes3D) for ax in fig.axes)
    assert [ax.get_title() for ax in fig.axes] == ["True function", "Learned model"]
    assert fig.axes[0].get_xlim() == pytest.approx((-2, 2), abs=0.5)
    assert_png(tmp_path / "surf.png")
    only_model = plot_surface_2d(model_2d, lim=((0, 1), (-3, 3)), n=5)
    assert len(only_model.axes) == 1
    with pytest.raises(
        ValueError, match="draws a model of 2 inputs over a grid; this model takes 3"
    ):
        plot_surface_2d(eqx_ffn.FFN(3, 1, (2,), key=jr.key(0)), n=5)
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        plot_surface_2d(model_2d, n=1)


def test_plot_residuals_and_parity(tmp_path, model_2d):
    ds = sine_cosine_2d(30, 20)
    fig = plot_residuals(model_2d, ds.x_test, ds.y_test, path=tmp_path / "res.png")
    # issue 24: predictions and residuals on axes of their own (each with its own y scale)
    assert len(fig.axes) == 3
    lines = fig.axes[0].get_lines() + fig.axes[1].get_lines()
    assert [ln.get_label() for ln in lines] == ["predicted", "ŷ = y", "residual", "zero"]
    pred = np.asarray(model_2d(ds.x_test[0]))
    np.testing.assert_allclose(lines[0].get_ydata()[0], pred[0], rtol=1e-6)
    np.testing.assert_allclose(lines[2].get_ydata()[0], ds.y_test[0, 0] - pred[0], rtol=1e-5)
    assert fig.axes[0].get_ylabel() == "predicted y"
    assert fig.axes[1].get_ylabel() == "residual: y - predicted"
    assert len(fig.axes[2].patches) == 30  # histogram bars
    assert_png(tmp_path / "res.png")

    fig = plot_parity(model_2d, ds.x, ds.y, path=tmp_path / "parity.png")
    assert len(fig.axes) == 1 and len(fig.axes[0].get_lines()) == 2
    assert "R²" in fig.axes[0].get_title()
    assert_png(tmp_path / "parity.png")
    with pytest.raises(ValueError, match=r"predictions of shape \(30, 1\).*shape \(30, 2\)"):
        plot_parity(model_2d, ds.x, jnp.zeros((30, 2)))


def test_figures_use_the_column_names(model_2d):
    ds = sine_cosine_2d(30, 20)
    fig = plot_parity(model_2d, ds.x, ds.y, names=["Weight"])
    r2 = r2_score(ds.y, jax.vmap(model_2d)(ds.x))
    assert fig.axes[0].get_title().startswith(f"Weight: R² {r2:.4f}, RMSE ")
    assert fig.axes[0].get_xlabel() == "measured Weight"
    res = plot_residuals(model_2d, ds.x, ds.y, names=["Weight"])
    assert res.axes[2].get_title().startswith("Residuals of Weight: RMSE")
    with pytest.raises(ValueError, match=r"names must be a list of 1 output name"):
        plot_parity(model_2d, ds.x, ds.y, names=["a", "b"])


def test_plot_confusion(tmp_path):
    cm = np.array([[5, 1, 0], [0, 7, 2], [1, 0, 9]])
    fig = plot_confusion(cm, ["barolo", "grignolino", "barbera"], path=tmp_path / "c.png")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["barolo", "grignolino", "barbera"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["barolo", "grignolino", "barbera"]
    assert [t.get_text() for t in ax.texts] == [str(v) for v in cm.ravel()]
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    assert "accuracy 0.840 (25 samples)" in ax.get_title()
    assert_png(tmp_path / "c.png")
    with pytest.raises(ValueError, match=r"square, shape \(K, K\)"):
        plot_confusion(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="class_names has 2 names but the matrix has 3"):
        plot_confusion(cm, ["a", "b"])


def test_plot_leaves_pyplot_alone(model_2d):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plot_parity(model_2d, jnp.zeros((3, 2)), jnp.zeros((3, 1)))
    assert plt.get_fignums() == before
