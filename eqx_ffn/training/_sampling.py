"""Mini-batch indices: drawn on the host (NumPy, CPUs) or on the device (`jax.random`, inside the
program, accelerators).

Both are functions of the fit's key and the step alone, so the batches do not depend on how the
steps are cut into program calls. Host draws: each epoch's permutation from a NumPy PCG64 stream
seeded by the key and the epoch (replacement sampling: by blocks of `REPLACEMENT_BLOCK` steps).
Device draws: each epoch's permutation from `jax.random` keyed by the key and the epoch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax import lax

from ._config import Config
from ._state import MemberState

# --- on the device, inside the program ---------------------------------------------------------


def device_epoch_permutation(key: jax.Array, epoch, n, width: int) -> jax.Array:
    """A permutation of `range(n)` (`n` traced) in the first `n` of `width` slots: padding rows
    (indices `n .. width-1`) sort last. Keyed by the fit's key and the epoch."""
    bits = jr.bits(jr.fold_in(key, epoch), (width,), jnp.uint32) >> 1
    bits = jnp.where(jnp.arange(width) < n, bits, jnp.uint32(0xFFFFFFFF))
    return jnp.argsort(bits, stable=True).astype(jnp.int32)


def device_chunk_indices(
    cfg: Config, member: MemberState, t0, n, width: int
) -> tuple[jax.Array, MemberState]:
    """`(chunk, batch_size)` indices for steps `t0 .. t0 + chunk - 1`, drawn on the device, and
    the member with its updated permutation cache."""
    bs = cfg.batch_size
    assert bs is not None and member.key is not None
    key = member.key
    c = cfg.chunk
    steps = t0 + jnp.arange(c)
    if cfg.sampling == "replacement":
        keys = jax.vmap(lambda t: jr.fold_in(key, t))(steps)
        return jax.vmap(lambda k: jr.randint(k, (bs,), 0, n, dtype=jnp.int32))(keys), member
    spe = cfg.steps_per_epoch(n)
    e0 = t0 // spe
    e_last = (t0 + c - 1) // spe
    # `perm` holds the permutation of the last epoch the previous chunk touched: a function of
    # t0 alone, so the test below is the same for every member (a real branch under vmap)
    cached, cached_epoch = member.perm, jnp.where(t0 > 0, (t0 - 1) // spe, -1)
    if cfg.epoch_rows <= 2:
        # large epochs (the case that matters for speed): draw only what the chunk needs
        rows = []
        for r in range(cfg.epoch_rows):
            e = e0 + r
            need = (e <= e_last) & (e != cached_epoch)
            rows.append(
                lax.cond(
                    need,
                    lambda e=e: device_epoch_permutation(key, e, n, width),
                    lambda: cached,
                )
            )
        perms = jnp.stack(rows)
    else:
        # a chunk spans many small epochs: one batched draw (one sort) for all of them, which
        # costs less than the chunk's steps and compiles in a fraction of a branch per row
        epochs = e0 + jnp.arange(cfg.epoch_rows)
        perms = jax.vmap(lambda e: device_epoch_permutation(key, e, n, width))(epochs)
    perms = jnp.concatenate([perms, jnp.zeros((perms.shape[0], bs), jnp.int32)], axis=1)
    row, slot = steps // spe - e0, steps % spe
    idx = jax.vmap(lambda r, s: lax.dynamic_slice(perms[r], (s * bs,), (bs,)))(row, slot)
    last = jnp.clip(e_last - e0, 0, cfg.epoch_rows - 1)
    return idx, member.update(perm=perms[last, :width])


# --- on the host, a program input ---------------------------------------------------------------


def epoch_permutation(key_data: np.ndarray, epoch: int, n: int) -> np.ndarray:
    """The permutation of `range(n)` for `epoch`: a NumPy PCG64 stream seeded by the fit's key
    and the epoch, so it does not depend on how the steps are cut into calls."""
    seed = np.random.SeedSequence([*(int(v) for v in np.ravel(key_data)), int(epoch)])
    return np.random.Generator(np.random.PCG64(seed)).permutation(n).astype(np.int32)


REPLACEMENT_BLOCK = 256
"""Steps whose replacement-sampling indices come from one seeded NumPy stream."""


def replacement_block(
    key_data: np.ndarray, block: int, n: int, batch_size: int, rows: int = REPLACEMENT_BLOCK
) -> np.ndarray:
    """Indices, shape `(rows, batch_size)`, drawn uniformly with replacement from `range(n)` for
    steps `block * REPLACEMENT_BLOCK ...`: a NumPy PCG64 stream seeded by the fit's key and the
    block, so it does not depend on how the steps are cut into calls. NumPy draws the stream's
    values in order, so the first `rows` rows are those of the whole block's draw: a call of a
    few steps draws only those (8 steps of 1,024 indices: 0.06 ms, the block 1.1 ms)."""
    seed = np.random.SeedSequence([*(int(v) for v in np.ravel(key_data)), int(block), 1])
    rng = np.random.Generator(np.random.PCG64(seed))
    return rng.integers(0, n, size=(rows, batch_size), dtype=np.int32)


def _epoch_steps(key_data: np.ndarray, e0: int, e1: int, n: int, spe: int, bs: int) -> np.ndarray:
    """The batches of epochs `e0 .. e1`, shape `((e1 - e0 + 1) * spe, bs)`."""
    rows = []
    for e in range(e0, e1 + 1):
        perm = epoch_permutation(key_data, e, n)[: spe * bs]
        if perm.shape[0] < spe * bs:  # the last batch: pad with indices masked out
            perm = np.concatenate([perm, perm[: spe * bs - perm.shape[0]]])
        rows.append(perm.reshape(spe, bs))
    return np.concatenate(rows)


def host_indices(cfg: Config, key_data: np.ndarray, n: int, start: int, count: int) -> np.ndarray:
    """The program's index input for steps `start .. start + count - 1`: shape
    `(steps_per_call, batch_size)`, or `(steps_per_call, K, batch_size)` for an ensemble
    (`key_data` then has a leading member axis). Rows past `count` are zeros (never used)."""
    bs = cfg.batch_size
    assert bs is not None
    members = key_data if cfg.ensemble else key_data[None]
    out = np.zeros((cfg.steps_per_call, members.shape[0], bs), np.int32)
    if count > 0 and cfg.sampling == "replacement":
        b0, b1 = start // REPLACEMENT_BLOCK, (start + count - 1) // REPLACEMENT_BLOCK
        off = start - b0 * REPLACEMENT_BLOCK
        for m, kd in enumerate(members):
            # the last block only up to the call's last step
            last = (start + count - 1) % REPLACEMENT_BLOCK + 1
            blocks = [
                replacement_block(kd, b, n, bs, REPLACEMENT_BLOCK if b < b1 else last)
                for b in range(b0, b1 + 1)
            ]
            out[:count, m] = np.concatenate(blocks)[off : off + count]
    elif count > 0:
        spe = cfg.steps_per_epoch(n)
        e0, e1 = start // spe, (start + count - 1) // spe
        for m, kd in enumerate(members):
            steps = _epoch_steps(kd, e0, e1, n, spe, bs)
            off = start - e0 * spe
            out[:count, m] = steps[off : off + count]
    return out if cfg.ensemble else out[:, 0]
