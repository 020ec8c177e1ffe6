"""``musicenv explore``: a web app to look inside a learned world and watch agents play in it.

An optional extra (``pip install "musicenv[app]"``, Streamlit), started by one command::

    musicenv explore [--world FOLDER] [--checkpoint-dir DIR] [--port P]

It serves on ``127.0.0.1`` only (see :mod:`musicenv.explore.cli`) and has four pages:

* **Listener** (:mod:`~musicenv.explore.listener_page`): a listener's taste profile from the logs and
  their candidate pool with the world's predicted (skip, listen, complete) for the next play, beside
  the true probabilities where the world has a ground truth.
* **Session** (:mod:`~musicenv.explore.session_page`): play a session step by step, choosing tracks
  yourself or letting registered agents and saved checkpoints choose, two players side by side on
  the same episode, in the learned world and in the ground truth.
* **Explore by sound** (:mod:`~musicenv.explore.sound_page`): sliders over the audio features rank
  the catalogue by cosine similarity, without the listener's blocked (and optionally explicit) tracks.
* **Results** (:mod:`~musicenv.explore.results_page`): an ``eval.py`` output folder's tables and plots.

The pages are thin: what they show is computed by :mod:`musicenv.explore.data`, which has no
Streamlit import and is what the tests and the benchmark call too. ``import musicenv`` imports none
of this package.
"""
