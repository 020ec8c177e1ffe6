"""Registration of ``ListeningSession-v0`` with Gymnasium (run by ``import musicenv``).

The id carries no ``max_episode_steps``: the environment truncates at its own ``playlist_length``,
so ``gymnasium.make("ListeningSession-v0", playlist_length=30)`` gives 30-track sessions and no
``TimeLimit`` can cut one earlier than the environment would. Every constructor argument passes
through ``make`` and ``make_vec`` as a keyword (``responses="sample"``, ``pessimism=0.5``, ...);
the id registers no defaults of its own, so ``gymnasium.make`` and the classes build the same
environment. Entry points are strings, so
importing musicenv loads neither a world nor the environment module.
"""

from __future__ import annotations

import gymnasium

ENV_ID = "ListeningSession-v0"


def register_envs() -> None:
    """Register ``ListeningSession-v0`` and its vector entry point (once; later calls do nothing)."""
    if ENV_ID in gymnasium.registry:
        return
    gymnasium.register(
        id=ENV_ID,
        entry_point="musicenv.env:ListeningSessionEnv",
        vector_entry_point="musicenv.vector_env:make_vector_env",
        max_episode_steps=None,
    )
