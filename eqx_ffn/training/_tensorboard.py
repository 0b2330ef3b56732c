"""`TensorBoardLogger`: a callback that writes a fit's losses to a TensorBoard event file.

Needs tensorboardX (`pip install "eqx_ffn[tensorboard]"`), imported when a logger is made:
importing eqx_ffn never imports it.
"""

from __future__ import annotations

import itertools
import math
import os
import time
import weakref
from typing import Any

import numpy as np

from .._validation import check_int, check_path

POINTS = 1000
"""With `every=None`, about this many training steps per curve are written (TensorBoard's own
default sample of a scalar curve)."""

_EXTRA = 'pip install "eqx_ffn[tensorboard]"'
_FILES = itertools.count()  # tells apart the event files loggers open in the same second


def _tensorboardx() -> Any:
    try:
        from tensorboardX import event_file_writer
        from tensorboardX.proto import event_pb2, summary_pb2
    except ImportError:
        raise ImportError(
            f"TensorBoardLogger needs tensorboardX, which is not installed: {_EXTRA} "
            "(or pip install tensorboardX)."
        ) from None
    return event_file_writer, event_pb2, summary_pb2


class TensorBoardLogger:
    """A callback that writes the fit's losses as TensorBoard scalars.

    ```python
    model, history = eqx_ffn.fit(model, x, y, callbacks=[eqx_ffn.TensorBoardLogger("runs/a")])
    # then: tensorboard --logdir runs
    ```

    Called between program calls (as every callback: no work inside the compiled loop), it
    writes the steps run since its last call, one event a step, with the scalars `loss` (the
    training loss with the penalty, `History.loss`), `data_loss` (without it,
    `History.data_loss`) and, at the steps where one was measured, `val_loss`; an ensemble's
    member `j` gets the tags `member_j/loss`, ... Step `s` holds `History.loss[s - 1]` (the
    rows of `History.to_csv`). The file is flushed after every call.

    A logger writes one event file in `logdir`. A new fit (a resumed one included) writes its
    curves again from step 1 and tells TensorBoard to drop the steps that earlier files in the
    folder hold, so the folder shows the latest fit: give each fit its own folder to compare
    them (TensorBoard shows each subfolder of its `--logdir` as a run).

    **Arguments:**

    - `logdir`: the folder of the event file (created if missing).
    - `every`: write the training losses of every `every`-th step and of the last step run;
      `None` (the default): about 1000 steps per curve, `every = ceil(steps / 1000)`. The
      validation losses are written at every step that measured one.

    **Raises:** `ImportError` naming the `tensorboard` extra when tensorboardX is missing.
    """

    def __init__(self, logdir: str | os.PathLike[str], *, every: int | None = None):
        self.logdir = check_path(logdir, "logdir", empty_hint="pass the folder to write to")
        self.every = None if every is None else check_int(every, "every", 1)
        _tensorboardx()  # a missing tensorboardX fails here, not in the fit
        self._writer: Any = None
        self._fit: Any = None  # a weak reference to the record of the fit logged
        self._done: list[int] = []  # per member: training steps written
        self._val_done: list[int] = []  # per member: validation losses written

    def _open(self) -> Any:
        if self._writer is None:
            self.logdir.mkdir(parents=True, exist_ok=True)
            event_file_writer, _, _ = _tensorboardx()
            suffix = f".{os.getpid()}.{next(_FILES)}"
            self._writer = event_file_writer.EventsWriter(str(self.logdir / "events"), suffix)
        return self._writer

    def __call__(self, info: Any) -> None:
        writer = self._open()
        _, event_pb2, summary_pb2 = _tensorboardx()
        if self._fit is None or info._record is not self._fit():
            # a new fit: its curves from step 1, and a START event at step 1 that tells
            # TensorBoard to drop the steps older files in the folder hold
            k = info.ensemble or 1
            self._fit, self._done, self._val_done = weakref.ref(info._record), [0] * k, [0] * k
            start = event_pb2.SessionLog(status=event_pb2.SessionLog.START)
            writer.write_event(event_pb2.Event(step=1, wall_time=time.time(), session_log=start))
        now = time.time()
        for step, scalars in sorted(self._scalars(info).items()):
            values = [summary_pb2.Summary.Value(tag=t, simple_value=v) for t, v in scalars]
            summary = summary_pb2.Summary(value=values)
            writer.write_event(event_pb2.Event(step=step, wall_time=now, summary=summary))
        writer.flush()

    def _scalars(self, info: Any) -> dict[int, list[tuple[str, float]]]:
        """The `(tag, value)` pairs not written yet, by step (and the counts updated)."""
        every = self.every or max(1, math.ceil(info.steps / POINTS))
        out: dict[int, list[tuple[str, float]]] = {}
        for j, (loss, data, val, val_steps) in enumerate(_members(info)):
            prefix = f"member_{j}/" if info.ensemble is not None else ""
            steps = np.arange(self._done[j] + 1, len(loss) + 1)
            steps = steps[(steps % every == 0) | (steps == len(loss))]
            columns = (steps.tolist(), loss[steps - 1].tolist(), data[steps - 1].tolist())
            for s, a, d in zip(*columns, strict=True):
                out.setdefault(s, []).extend([(f"{prefix}loss", a), (f"{prefix}data_loss", d)])
            new = slice(self._val_done[j], None)
            for s, v in zip(val_steps[new].tolist(), val[new].tolist(), strict=True):
                out.setdefault(s, []).append((f"{prefix}val_loss", v))
            self._done[j], self._val_done[j] = len(loss), len(val)
        return out

    def close(self) -> None:
        """Close the event file (a later fit writes a new one)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __getstate__(self) -> dict[str, Any]:  # a copy writes a file of its own
        return {"logdir": self.logdir, "every": self.every}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["logdir"], every=state["every"])

    def __enter__(self) -> TensorBoardLogger:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TensorBoardLogger({str(self.logdir)!r}, every={self.every!r})"


def _members(info: Any) -> list[tuple[np.ndarray, ...]]:
    """`(loss, data_loss, val_loss, val_steps)` of each member of the fit `info` shows."""
    columns = [info.loss, info.data_loss, info.val_loss, info.val_steps]
    if info.ensemble is None:
        return [tuple(columns)]
    return list(zip(*columns, strict=True))
