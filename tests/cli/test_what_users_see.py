"""What a user of `eqx-ffn fit` sees (issue 24): the loss figure names the penalty and
metrics.json says which loss includes it; the regression note only where the choice was close;
residuals on axes of their own; `summary` of a saved model; `--tol` stops lm as `fit` does.
And a legitimate classification still accepted by the shared rule (issue 25)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import eqx_ffn
from eqx_ffn.cli._main import main
from eqx_ffn.plot import _plot

NO_CACHE = ["--no-cache", "--no-progress"]


@pytest.fixture(scope="module")
def counts_run(tmp_path_factory):
    """A fit of a target of 30 whole numbers (more than --task auto classifies): a regression
    where a classification was possible. The figures are kept for inspection."""
    d = tmp_path_factory.mktemp("counts")
    rng = np.random.default_rng(0)
    u = rng.uniform(-1, 1, size=(300, 2))
    y = np.clip(np.round(15 + 10 * u[:, 0] + 4 * u[:, 1]), 0, 29).astype(int)
    rows = "".join(f"{a:.4f},{b:.4f},{c}\n" for (a, b), c in zip(u, y, strict=True))
    (d / "counts.csv").write_text("u1,u2,count\n" + rows)
    figures = {}
    mp = pytest.MonkeyPatch()
    for name in ("plot_loss", "plot_residuals"):
        original = getattr(_plot, name)

        def wrapper(*args, _original=original, _name=name, **kwargs):
            figures[_name] = fig = _original(*args, **kwargs)
            return fig

        mp.setattr(_plot, name, wrapper)
    try:
        argv = ["fit", str(d / "counts.csv"), "--out", str(d / "o"), "--steps", "300", *NO_CACHE]
        code = main(argv)
    finally:
        mp.undo()
    assert code == 0
    return d / "o", figures


def test_the_loss_figure_names_the_penalty(counts_run):
    _, figures = counts_run
    ax = figures["plot_loss"].axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:2] == ["training: MSE + L2 penalty", "validation: MSE"]
    assert ax.get_xlabel() == "step"
    assert ax.get_ylabel() == "loss (standardised units)"


def test_metrics_say_which_loss_includes_the_penalty(counts_run):
    out, _ = counts_run
    metrics = json.loads((out / "metrics.json").read_text())
    defs = metrics["loss_definitions"]
    assert "without the L2 penalty" in defs["returned_training_loss"]
    assert "MSE + L2 penalty" in defs["history.final_training_loss"]
    penalty = metrics["returned_training_penalty"]
    assert penalty > 0
    # The fit's final loss (float32, inside the compiled program) is the data loss plus the
    # penalty (float64 here, from the returned model's predictions): equal up to float32
    # rounding of a sum over the training rows, far below 1e-4 relative on any CPU.
    total = metrics["returned_training_loss"] + penalty
    assert total == pytest.approx(metrics["history"]["final_training_loss"], rel=1e-4)
    assert metrics["settings"]["tol"] == "the optimizer's default"


def test_residuals_have_axes_of_their_own(counts_run):
    out, figures = counts_run
    fig = figures["plot_residuals"]
    assert len(fig.axes) == 3
    assert fig.axes[0].get_ylabel() == "predicted count"
    assert fig.axes[1].get_ylabel() == "residual: count - predicted"
    assert (out / "residuals.png").read_bytes()[:4] == b"\x89PNG"


def test_summary_of_a_model_the_cli_saved(counts_run):
    out, _ = counts_run
    model = eqx_ffn.load(out / "model.eqx")
    assert isinstance(model, eqx_ffn.Standardized)
    text = eqx_ffn.summary(model)
    lines = text.splitlines()
    assert lines[0] == (
        "Standardized: x_scaler 2 columns, y_scaler 1 columns (means and scales, not trained)"
    )
    assert lines[1].startswith("FFN 2 -> [32] -> 1, activation=tanh")
    assert text.endswith(eqx_ffn.summary(model.model))
    with pytest.raises(TypeError, match="an eqx_ffn.FFN or a Standardized around one; got int"):
        eqx_ffn.summary(3)  # type: ignore[arg-type]


def test_the_regression_note_only_where_the_choice_was_close(tmp_path, capsys):
    """About 29 whole numbers in 300 rows: a note (a classification was possible). None for a
    continuous target (tests/cli/test_cli.py's Weight), for about 130 whole numbers of about 2
    rows each (as scikit-learn's diabetes target: 214 values in 442 rows), nor for an id
    column."""
    d = tmp_path
    rng = np.random.default_rng(1)
    u = rng.uniform(-1, 1, size=(300, 1))
    close = np.round(15 + 14 * u[:, 0]).astype(int)
    many = rng.integers(0, 150, size=300)
    ids = np.arange(300)
    for name, y in (("close", close), ("many", many), ("ids", ids)):
        rows = "".join(f"{a:.4f},{c}\n" for a, c in zip(u[:, 0], y, strict=True))
        (d / f"{name}.csv").write_text("u1,y\n" + rows)
    capsys.readouterr()
    assert (
        main(["fit", str(d / "close.csv"), "--out", str(d / "a"), "--steps", "5", *NO_CACHE]) == 0
    )
    err = capsys.readouterr().err
    assert "note: regression: y column 'y' holds" in err and "distinct whole numbers" in err
    for name in ("many", "ids"):
        argv = ["fit", str(d / f"{name}.csv"), "--out", str(d / name), "--steps", "5"]
        assert main([*argv, *NO_CACHE]) == 0
        assert "note: regression" not in capsys.readouterr().err


def test_lm_stops_by_tol_as_fit_does(tmp_path):
    """lm stops by `tol` as `eqx_ffn.fit` does: on an exactly linear table at once by the API's
    default; on a noisy one by `--tol` (1e-3 stops near step 27 on the machines tried, 0 never
    stops by tol)."""
    rng = np.random.default_rng(2)
    u = rng.uniform(-1, 1, size=(200, 2))
    noisy = np.sin(2 * u[:, 0]) + 0.5 * u[:, 1] ** 2 + 0.05 * rng.normal(size=200)
    for name, y in (("lin", 2 * u[:, 0] - u[:, 1]), ("noisy", noisy)):
        rows = "".join(f"{a:.4f},{b:.4f},{c:.4f}\n" for (a, b), c in zip(u, y, strict=True))
        (tmp_path / f"{name}.csv").write_text("u1,u2,y\n" + rows)

    def history(name: str, *options: str) -> dict:
        out = tmp_path / f"{name}{len(options)}"
        argv = ["fit", str(tmp_path / f"{name}.csv"), "--optimizer", "lm", "--steps", "40"]
        argv += ["--no-early-stopping", "--out", str(out), *options, *NO_CACHE]
        assert main(argv) == 0
        metrics = json.loads((out / "metrics.json").read_text())
        return {**metrics["history"], "tol": metrics["settings"]["tol"]}

    linear = history("lin", "--hidden", "none", "--l2", "0")
    assert linear["stop_reason"] == "converged" and linear["steps"] < 10  # 3 here
    loose = history("noisy", "--hidden", "8", "--tol", "1e-3")
    assert loose["stop_reason"] == "converged" and loose["steps"] < 40 and loose["tol"] == 1e-3
    never = history("noisy", "--hidden", "8", "--tol", "0")
    assert never["stop_reason"] == "completed" and never["steps"] == 40 and never["tol"] == 0


def test_a_legitimate_classification_is_accepted(tmp_path, capsys):
    """Whole-number labels with several rows per class, two rare classes among them: fitted."""
    rng = np.random.default_rng(3)
    u = rng.uniform(-1, 1, size=(120, 2))
    k = (u[:, 0] > 0).astype(int) + 2 * (u[:, 1] > 0)
    k[:2] = [7, 9]  # two classes of a single row: not "most classes"
    rows = "".join(f"{a:.4f},{b:.4f},{c}\n" for (a, b), c in zip(u, k, strict=True))
    (tmp_path / "k.csv").write_text("u1,u2,k\n" + rows)
    argv = ["fit", str(tmp_path / "k.csv"), "--task", "classify", "--steps", "50"]
    assert main([*argv, "--out", str(tmp_path / "o"), *NO_CACHE]) == 0
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["task"] == "classify" and metrics["classes"] == [0, 1, 2, 3, 7, 9]
