"""Checks of the environments' arguments and actions, shared by the single and the vector envs.

One rule for every environment: counts (``playlist_length``, ``pool_size``, ``num_envs``) and seeds
are integers, flags are booleans, weights (``pessimism``) are finite non-negative numbers, choices
(``responses``) are one of their texts, and an action is an integer slot. "Integer" means a Python
``int`` or a numpy integer (scalar, 0-d array, or for the vector envs an integer array); ``bool``
is not an integer here, though Python lets it pass for one, and neither are floats (``2.7`` would
be a silent truncation) or text (``"3"``). A wrong type raises ``TypeError`` naming the argument;
a value out of range raises ``ValueError``. Actions raise ``ValueError`` either way, as the vector
envs always have, so that one ``except`` catches every rejected action.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def _is_integer(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _shown(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def check_count(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an ``int``, after checking it is an integer of at least ``minimum``.

    Raises:
        TypeError: not an integer (a float, text, a bool, None), naming ``name``.
        ValueError: below ``minimum``, naming ``name``.
    """
    if not _is_integer(value):
        raise TypeError(f"{name} must be an integer, got {_shown(value)}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def check_seed(name: str, value: Any) -> int | None:
    """``value`` as an ``int`` (a non-negative integer seed), or None.

    Raises:
        TypeError: neither None nor an integer, naming ``name``.
        ValueError: negative, naming ``name``.
    """
    if value is None:
        return None
    return check_count(name, value, minimum=0)


def check_flag(name: str, value: Any) -> bool:
    """``value`` as a ``bool``; only ``True``/``False`` (numpy's included) are flags, not ``"no"`` or ``0``.

    Raises:
        TypeError: not a boolean, naming ``name``.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {_shown(value)}")
    return bool(value)


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """``value``, after checking it is one of ``choices``.

    Raises:
        ValueError: anything else (another text, None, a number), naming ``name`` and the choices.
    """
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {_shown(value)}")
    return value


def check_number(name: str, value: Any) -> float:
    """``value`` as a ``float``, after checking it is a finite real number (numpy's included).

    Raises:
        TypeError: not a real number (text, a bool, None), naming ``name``.
        ValueError: NaN, infinite, or an integer beyond a float's range, naming ``name``.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {_shown(value)}")
    try:
        number = float(value)
    except OverflowError as error:  # an integer beyond a float's range, e.g. 10**400
        raise ValueError(f"{name} must be a finite number, got an integer too large for a float") from error
    # A NaN or infinite value would turn every return into NaN (or inf) mid-episode.
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return number


def check_weight(name: str, value: Any) -> float:
    """``value`` as a ``float``, after checking it is a finite real number of at least 0 (:func:`check_number`).

    Raises:
        TypeError: not a real number, naming ``name``.
        ValueError: negative, NaN or infinite, naming ``name``.
    """
    number = check_number(name, value)
    if number < 0.0:
        raise ValueError(f"{name} must be at least 0, got {value!r}")
    return number


def check_action(action: Any, n_actions: int) -> int:
    """The slot ``action`` names, as an ``int``, for a ``Discrete(n_actions)`` action space.

    Accepted: a Python ``int``, a numpy integer scalar, a 0-d numpy integer array.

    Raises:
        ValueError: another type (float, bool, text, a 1-d array, ...), or outside ``[0, n_actions)``.
    """
    if isinstance(action, np.ndarray) and action.shape == () and _is_integer_dtype(action.dtype):
        action = action[()]
    if not _is_integer(action):
        raise ValueError(
            f"action must be an integer slot (a Python int or numpy integer) of Discrete({n_actions}), "
            f"got {_shown(action)}"
        )
    if not 0 <= action < n_actions:
        raise ValueError(f"action {action!r} is outside the action space Discrete({n_actions})")
    return int(action)


def check_actions(actions: Any, num_envs: int, n_actions: int) -> np.ndarray:
    """``actions`` as an ``(num_envs,)`` int64 array, for ``num_envs`` ``Discrete(n_actions)`` spaces.

    Accepted: an integer numpy array, or a sequence of Python or numpy integers.

    Raises:
        ValueError: not ``num_envs`` integers (floats, bools, text, another shape), or a slot
            outside ``[0, n_actions)``.
    """
    array = np.asarray(actions)
    if array.shape != (num_envs,) or not _is_integer_dtype(array.dtype):
        raise ValueError(
            f"actions must be {num_envs} integers (an integer array of shape ({num_envs},)), "
            f"got {actions!r} with dtype {array.dtype} and shape {array.shape}"
        )
    if array.min() < 0 or array.max() >= n_actions:
        raise ValueError(f"actions {actions!r} are outside the action space Discrete({n_actions})")
    return array.astype(np.int64, copy=False)


def _is_integer_dtype(dtype: np.dtype) -> bool:
    # numpy does not count bool arrays as integer arrays, so True/False actions are rejected too.
    return np.issubdtype(dtype, np.integer)
