"""Playlist agents for ``ListeningSession-v0``: build one by name, load a saved one.

::

    import agents

    agents.agent_names()                       # ("ahdqn", "als", ..., "random", ...)
    agent = agents.make_agent("als", world)
    agent = agents.load_agent("runs/run/checkpoint/agent", world)

These names are :mod:`agents.base`'s, resolved on first use, so ``import agents`` (which every
``agents.*`` import runs) stays free of numpy, torch and the worlds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agents.base import Agent, agent_names, load_agent, make_agent

__all__ = ["Agent", "agent_names", "load_agent", "make_agent"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        import agents.base

        return getattr(agents.base, name)
    raise AttributeError(f"module 'agents' has no attribute {name!r}")
