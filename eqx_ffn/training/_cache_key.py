"""Keys for the compiled-program cache: what a program's shape depends on, compared by value.

Two `optax.adam(1e-2)` made separately are different objects holding equal functions; two
models built alike hold equal static parts. The program cache must see them as one program, as
`eqx.filter_jit` does for static pytrees: a function is keyed by its code and the values it
closes over or reads as globals, a pytree by its structure and its static leaves. What cannot
be keyed by value (an unhashable object of an unknown kind, a large array in a closure or a
global) is keyed by identity: the program is then reused only for that very object, and
`UncachedWarning` says so once.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import warnings
import weakref
from typing import Any

import equinox as eqx
import jax
import numpy as np

_SMALL_ARRAY = 4096  # arrays up to this many elements in closures are keyed by their bytes


class UncachedWarning(UserWarning):
    """An object in a program's cache key could only be compared by identity."""


class _ByIdentity(Exception):
    pass


class Identity:
    """A key part compared by identity (it keeps the object alive while the key lives)."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any):
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Identity) and other.obj is self.obj

    def __repr__(self) -> str:
        return f"Identity({type(self.obj).__name__})"


def _array_key(arr: Any) -> tuple:
    arr = np.asarray(arr)
    if arr.size > _SMALL_ARRAY or arr.dtype == object:
        raise _ByIdentity
    return ("array", arr.shape, str(arr.dtype), arr.tobytes())


@functools.lru_cache(maxsize=1024)
def _global_names(code: types.CodeType) -> frozenset[str]:
    """The names `code` (and the functions defined in it) may read as globals."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return frozenset(names)


def _key(obj: Any, stack: tuple[int, ...]) -> Any:
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes)):
        return (type(obj), obj)
    if isinstance(obj, (np.dtype, type)):
        return ("type", obj)
    if isinstance(obj, (np.ndarray, np.generic, jax.Array)):
        return _array_key(obj)
    if id(obj) in stack:
        return ("cycle", stack.index(id(obj)))
    stack = (*stack, id(obj))
    if isinstance(obj, (tuple, list)):
        return (type(obj), tuple(_key(v, stack) for v in obj))
    if isinstance(obj, dict):
        return (type(obj), tuple((_key(k, stack), _key(v, stack)) for k, v in obj.items()))
    if isinstance(obj, types.FunctionType):
        cells = []
        for cell in obj.__closure__ or ():
            try:
                cells.append(_key(cell.cell_contents, stack))
            except ValueError:  # an empty cell
                cells.append(("empty",))
        # the module-level names it reads, by value too: a loss redefined in a notebook
        # after `scale = 2.0` is another function (as a new function object is to `jax.jit`)
        names = sorted(n for n in _global_names(obj.__code__) if n in obj.__globals__)
        return (
            "function",
            obj.__module__,
            obj.__code__,
            _key(obj.__defaults__, stack),
            _key(obj.__kwdefaults__, stack),
            tuple(cells),
            tuple((n, _key(obj.__globals__[n], stack)) for n in names),
        )
    if isinstance(obj, functools.partial):
        return ("partial", _key(obj.func, stack), _key(obj.args, stack), _key(obj.keywords, stack))
    if isinstance(obj, types.MethodType):
        return ("method", _key(obj.__func__, stack), _key(obj.__self__, stack))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = tuple(
            (f.name, _key(getattr(obj, f.name, None), stack)) for f in dataclasses.fields(obj)
        )
        return ("dataclass", type(obj), fields)
    try:
        hash(obj)
    except TypeError:
        raise _ByIdentity from None
    return ("hashable", obj)


def identity_memo(fn=None, *, keep=None):
    """Memoise a one-argument function by the identity of its argument, for as long as that
    object lives (objects that cannot be weakly referenced are not memoised, nor values for
    which `keep(value)` is false). For immutable arguments only: models and their parts,
    functions, Equinox modules. The value must not refer to the argument (it would keep it
    alive)."""
    if fn is None:
        return functools.partial(identity_memo, keep=keep)
    memo: dict[int, tuple[weakref.ref, Any]] = {}

    def forget(ref: weakref.ref, ident: int) -> None:
        entry = memo.get(ident)
        if entry is not None and entry[0] is ref:
            memo.pop(ident, None)  # (another thread may have replaced it meanwhile: harmless)

    @functools.wraps(fn)
    def memoised(obj: Any) -> Any:
        ident = id(obj)
        entry = memo.get(ident)
        if entry is not None and entry[0]() is obj:
            return entry[1]
        value = fn(obj)
        if keep is not None and not keep(value):
            return value
        try:
            ref = weakref.ref(obj, lambda r: forget(r, ident))
        except TypeError:
            return value
        memo[ident] = (ref, value)
        return value

    return memoised


@identity_memo(keep=lambda key: not isinstance(key, Identity))  # an Identity holds the object
def _memo_key(obj: Any) -> Any:
    return _value_key(obj)


def value_key(obj: Any) -> Any:
    """A hashable key equal for objects that compute the same thing (see the module docstring);
    falls back to `Identity(obj)` with an `UncachedWarning`.

    Functions and Equinox modules are keyed once while they live: both are immutable in
    practice (JAX's own `jit` keys a function by identity, closure and all), and keying them
    again on every `fit` call would cost more than the rest of a short fit's preparation."""
    if isinstance(obj, (types.FunctionType, eqx.Module)):
        return _memo_key(obj)
    return _value_key(obj)


def by_value(obj: Any) -> Any | None:
    """`obj`'s hashable by-value key (see the module docstring), or None where it can only be
    compared by identity. No warning: `value_key` is the caller-facing form."""
    try:
        key = _key(obj, ())
        hash(key)
        return key
    except (_ByIdentity, TypeError, RecursionError):
        return None


def _value_key(obj: Any) -> Any:
    key = by_value(obj)
    if key is None:
        warnings.warn(
            f"eqx_ffn could not compare a {type(obj).__name__} by value, so compiled programs "
            "are reused only for this very object; pass the same object again to avoid "
            "compiling (or use a named optimizer / optax.inject_hyperparams to sweep values).",
            UncachedWarning,
            stacklevel=4,
        )
        return Identity(obj)
    return key


@identity_memo(keep=lambda key: not isinstance(key[1], Identity))  # an Identity holds the tree
def pytree_key(tree: Any) -> Any:
    """The key of a pytree's non-array part: its structure and its leaves by value (once per
    object while it lives, like `value_key`'s modules)."""
    leaves, treedef = jax.tree.flatten(tree)
    try:
        hash(treedef)
    except TypeError:  # a static field holding something unhashable, e.g. a list
        return ("tree-by-identity", value_key(tree))
    return ("tree", treedef, tuple(value_key(leaf) for leaf in leaves))


def signature(leaf: Any) -> Any:
    """What a compiled program depends on for one argument leaf: shape, dtype, placement."""
    if isinstance(leaf, jax.Array):
        return (leaf.shape, leaf.dtype, leaf.sharding, getattr(leaf, "weak_type", False))
    if isinstance(leaf, (np.ndarray, np.generic)):
        return (np.ndarray, np.shape(leaf), leaf.dtype)
    return value_key(leaf)
