"""Evaluate playlist agents in the learned world and its ground truth: ``python eval.py --help``.

A thin entry point; the logic lives in :mod:`agents.evaluate` (also the ``musicenv-eval`` command).
"""

from agents.evaluate import main

if __name__ == "__main__":
    main()
