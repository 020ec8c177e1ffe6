"""Figures of the classic recommenders: the likeability classifier against the user model, content clusters.

Usage::

    python benchmarks/classics.py          # the default learned world and its logs, under a minute

Prints one ``name=value`` per line. The agents' returns come from ``eval.py``; user-user CF's
pool recall from ``benchmarks/retrieval.py`` (``pool_recall_at_100_user_cf``).

Likeability (:mod:`world_model.likeability`)
    The classifier is trained on the plays of the world's training listeners in the logs the
    world was learned from (:func:`agents.likeability.fitted_classifier`); ``likeability_train_*``
    are its accuracy, AUC and like rate on those plays, ``likeability_heldout_*`` on the plays of
    the evaluation listeners (never trained on). ``user_model_train_*`` and
    ``user_model_heldout_*`` are the world's sequential user-response model on the same plays,
    with P(like) its teacher-forced P(complete) (:func:`world_model.user_model.logged_response_probs`,
    the logged shuffled flags). Sessions are cut at the world's playlist length, as the user
    model was trained.

Content clusters (:mod:`world_model.content_clusters`)
    ``clusters_k`` (chosen by silhouette), ``clusters_silhouette_k<k>`` and ``clusters_inertia_k<k>``
    for every k tried, and the logistic-regression cluster classifier's accuracy on held-out tracks
    (``cluster_classifier_heldout_accuracy``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import torch

from agents.baselines import feature_block
from agents.likeability import fitted_classifier, like_inputs
from agents.world_logs import world_log
from world_model.content_clusters import ContentClusters
from world_model.likeability import COMPLETE, LikeabilityConfig, classification_metrics
from world_model.sessions import SessionTable
from world_model.user_model import logged_response_probs
from world_model.world import LearnedWorld, default_world


def emit(name: str, value: float | int | str) -> None:
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    print(f"{name}={text}", flush=True)


def likeability_figures(world: LearnedWorld) -> None:
    """The classifier's and the user model's accuracy and AUC on training and held-out listeners."""
    log = world_log(world)
    sessions = SessionTable.from_log(log.log, world.config.user_model.max_session_length, world.user_ids)
    model = world.session_model.response_model
    classifier = fitted_classifier(world, LikeabilityConfig())
    emit("likeability_epoch_losses", ",".join(f"{loss:.4f}" for loss in classifier.losses))
    for role, held_out in (("train", False), ("heldout", True)):
        part = sessions.take(sessions.eval_sessions() == held_out)
        history = world.session_model.history
        probs = logged_response_probs(
            model,
            part,
            world.track_features,
            world.user_features,
            shuffled=None,
            session_history=None if history is None else history.session_features(part),
        )
        mask = part.play_mask()
        likes = part.responses[mask] == COMPLETE
        users = np.broadcast_to(part.listeners[:, None], mask.shape)[mask]
        emit(f"{role}_plays", int(mask.sum()))
        for name, value in classification_metrics(probs[mask][:, COMPLETE], likes).items():
            emit(f"user_model_{role}_{name}", value)
        liked = classifier.like_probs(like_inputs(world, users, part.tracks[mask]))
        for name, value in classification_metrics(liked, likes).items():
            emit(f"likeability_{role}_{name}", value)


def cluster_figures(world: LearnedWorld) -> None:
    """k by silhouette, every k's silhouette and inertia, and the cluster classifier's held-out accuracy."""
    clusters = ContentClusters.fit(np.asarray(world.track_features)[:, feature_block(world, "acoustic")])
    emit("clusters_k", clusters.k)
    for k in clusters.silhouettes:
        emit(f"clusters_silhouette_k{k}", clusters.silhouettes[k])
        emit(f"clusters_inertia_k{k}", clusters.inertias[k])
    emit("cluster_classifier_heldout_accuracy", clusters.classifier_accuracy)


def main() -> None:
    torch.set_num_threads(1)
    world = default_world()
    likeability_figures(world)
    cluster_figures(world)


if __name__ == "__main__":
    main()
