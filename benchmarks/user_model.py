"""Benchmark of the user-response and session-end models against the ground truth.

What it measures (one ``name=value`` per line on stdout):

1. The default ground-truth world's logs (``GroundTruthWorld(seed=0).simulate(20_000, seed=0)``),
   ALS retrieval and features as the default learned world builds them.
2. On the evaluation users' sessions (never trained on), for every logged play: the learned
   model's probabilities (as the learned world answers: shuffled flag 1) against the ground
   truth's exact probabilities of the same play (``oracle_*``, from replaying each session
   through ``gt.session_model``): AUC of skip and of complete, log-loss, ECE, the ratios
   ``auc / oracle_auc`` and the lift ratios ``(auc - 0.5) / (oracle_auc - 0.5)``, and the mean
   KL divergence from the truth (``kl_to_oracle``, nats per play). The oracle knows each
   session's latent attention, which nothing observable shows; ``observable_oracle_*`` is the
   truth with it integrated out given the session's earlier responses
   (:func:`observable_oracle_replay`, the best a model of the logs can do), and
   ``*_observable_lift_ratio`` the lift ratios against it; and by how the session has gone so
   far (the share of skips among its earlier plays), the observed rates beside the model's and the
   observable oracle's (``streak_*``, and ``streak_shuffled_*`` on the shuffled sessions alone;
   :func:`streak_calibration`).
3. Baselines on the same plays: the track's historical response rates from training plays
   (``track_rate_*``, smoothed towards the global rates), the non-sequential model
   (``nonsequential_*``), and the model with the listener-track history switched the other way
   from the default (``history_*``, or ``no_history_*`` when the default reads it).
4. The shuffled-share handling variants (``flag``, ``weight``, ``pooled``), each on all
   evaluation plays and on the shuffled sessions' plays alone (``*_shuffled``: responses to
   choices the logging policy did not make, which is what an agent's choices are).
5. The session-end model's log-loss on the evaluation sessions against the ground-truth hazard's
   (``oracle_session_end_logloss``).
6. A smoke run on ``../shared/data/mssd/log_real_11_sessions.csv`` (load, ALS, features, train,
   score), skipped with a message when ``shared`` is absent.
7. Training time and the cost of one B=1 call on the numpy and the torch path.

Run::

    python benchmarks/user_model.py            # about five minutes on a 2-core CPU
    python benchmarks/user_model.py --quick    # default model only, no variants
    python benchmarks/user_model.py --quick --world.retrieval.factors 8 --world.user_model.weight-decay 1e-4

The ``--world.*`` options set fields of :class:`~world_model.world.WorldConfig` (:func:`add_world_options`),
as ``benchmarks/fidelity.py``'s do.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
import time
import timeit
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

from agents.config import add_config_arguments, apply_overrides
from musicenv.data import ListeningLog, load_mssd
from musicenv.familiarity import played_session_familiarity
from musicenv.groundtruth import GroundTruthWorld
from musicenv.groundtruth.simulate import SimulatedSessions, log_frames
from musicenv.rewards import RewardConfig
from musicenv.world import COMPLETE, SKIP, Contexts, is_eval_user, member_disagreement
from world_model.genres import track_genres
from world_model.history import ListeningHistory
from world_model.learned_session import LearnedSessionModel
from world_model.metrics import binary_log_loss, lift_ratio, response_metrics
from world_model.retrieval import Retrieval, RetrievalConfig
from world_model.session_end import SessionEndModel, session_end_examples
from world_model.sessions import SessionTable
from world_model.user_model import (
    SessionSplit,
    UserModelConfig,
    UserResponseModel,
    logged_response_probs,
    train_user_model,
)
from world_model.world import WorldConfig, learn_features

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
TRACK_RATE_PRIOR = 20.0
"""Pseudo-plays of the global response mix added to every track's counts (the baseline's smoothing)."""
ATTENTION_NODES = 24
"""Quadrature nodes over a session's latent attention (:func:`observable_oracle_replay`)."""
SKIP_SHARE_BANDS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
"""Bands of the share of skips among a session's earlier plays (:func:`streak_calibration`)."""
STREAK_MIN_PLAYS = 3
"""Plays before a play for :func:`streak_calibration` to count it (a share of fewer says little)."""


def emit(name: str, value: float | int | str) -> None:
    print(f"{name}={value:.6g}" if isinstance(value, float) else f"{name}={value}", flush=True)


def features_of(log: ListeningLog, sessions: SessionTable, retrieval: Retrieval, world: WorldConfig | None = None):
    """Track and user features as a learned world of ``world`` (default settings) builds them
    (:func:`world_model.world.learn_features`)."""
    world = world or WorldConfig()
    return learn_features(
        log, sessions, retrieval, world.retrieval, world.leave_session_out, world.track_folds, world.seed
    )


def add_world_options(parser: argparse.ArgumentParser) -> None:
    """One ``--world.<field>`` flag per field of :class:`WorldConfig` on ``parser``
    (:func:`agents.config.add_config_arguments`: ``--world.retrieval.factors 8``,
    ``--world.user_model.weight-decay 1e-4``, ``--no-world.user_model.history``)."""
    add_config_arguments(parser, WorldConfig, "world.")


def chosen_world(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[WorldConfig, dict[str, Any]]:
    """The default :class:`WorldConfig` with the ``--world.*`` options given, and those options by
    dotted field name; a value the config refuses ends the run through ``parser`` with its message."""
    settings = {name.removeprefix("world."): value for name, value in vars(args).items() if name.startswith("world.")}
    try:
        return apply_overrides(WorldConfig(), settings), settings
    except ValueError as error:
        parser.error(str(error))


def oracle_replay(
    gt: GroundTruthWorld, sims, rows: np.ndarray, sessions: SessionTable, attention: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Replay ``sessions`` (rows ``rows`` of the simulation) through ``gt.session_model``.

    Returns the exact response probabilities ``(S, L, 3)`` of each logged play and the exact
    leaving probabilities ``(S, L)`` after it. ``attention``: every session's latent attention
    set to this value instead of the one it was simulated with.
    """
    model = gt.session_model
    contexts = sims.contexts.take(rows)
    if attention is not None:
        contexts = dataclasses.replace(contexts, attention=np.full(len(rows), attention, dtype=np.float32))
    state = model.initial_state(sims.users[rows], contexts)
    n, length = sessions.tracks.shape
    probs = np.zeros((n, length, 3))
    leave = np.zeros((n, length))
    for t in range(length):
        tracks = np.maximum(sessions.tracks[:, t], 0)
        probs[:, t] = model.response_probs(state, tracks[:, None])[:, 0]
        state = model.advance(state, tracks, np.maximum(sessions.responses[:, t], 0).astype(np.int8))
        leave[:, t] = model.leave_probs(state)
    return probs, leave


def observable_oracle_replay(gt: GroundTruthWorld, sims, rows: np.ndarray, sessions: SessionTable) -> np.ndarray:
    """``(S, L, 3)``: the truth's probabilities of each logged play with the session's latent attention
    integrated out, given the responses before it in the session.

    The oracle of :func:`oracle_replay` knows each session's attention draw, which no log and no
    observation shows (:class:`musicenv.world.Contexts`); a model can only infer it from how the
    session has gone so far. This is the best any such model can do: the truth's probabilities
    averaged over the attention's posterior, its standard-normal prior (on
    :data:`ATTENTION_NODES` Gauss-Hermite nodes) times the likelihood of the session's earlier
    responses. Leaving does not depend on the attention, so the session's length tells nothing
    more. Everything else (the listener's taste and bias, the catalogue) it still knows exactly,
    as a model learned from unlimited logs could.
    """
    nodes, weights = np.polynomial.hermite_e.hermegauss(ATTENTION_NODES)
    node_probs = np.stack([oracle_replay(gt, sims, rows, sessions, attention=float(a))[0] for a in nodes])
    played = sessions.responses >= 0
    observed = np.take_along_axis(node_probs, np.maximum(sessions.responses, 0)[None, :, :, None], axis=-1)[..., 0]
    log_likelihood = np.where(played, np.log(np.clip(observed, 1e-300, 1.0)), 0.0)
    # Play t is predicted from the responses before it: the likelihood summed over plays 0..t-1.
    before = np.cumsum(log_likelihood, axis=-1) - log_likelihood
    log_posterior = np.log(weights)[:, None, None] + before
    posterior = np.exp(log_posterior - log_posterior.max(axis=0, keepdims=True))
    posterior /= posterior.sum(axis=0, keepdims=True)
    return np.einsum("ksl,kslr->slr", posterior, node_probs)


def held_out_sessions(
    gt: GroundTruthWorld, future: SimulatedSessions, listener_ids: np.ndarray, max_session_length: int
) -> tuple[SessionTable, np.ndarray, np.ndarray, np.ndarray]:
    """The evaluation users' sessions of ``future``, simulated apart from a world's log, as held-out plays.

    Only listeners the world knows (``listener_ids``, its sorted listener ids) are kept: the model
    scores a play with its listener's vector. Returns the sessions indexed by ``listener_ids``,
    the exact response ``(S, L, 3)`` and leaving ``(S, L)`` probabilities of each play
    (:func:`oracle_replay`), and the response probabilities of the oracle that does not know the
    session's attention (:func:`observable_oracle_replay`).
    """
    plays = log_frames(future, gt.config, gt.user_ids, gt.track_ids, gt.catalogue.premium)
    user_ids = plays["user_id"].to_numpy(dtype=str)
    known = np.isin(user_ids, np.asarray(listener_ids, dtype=str)) & is_eval_user(gt.user_ids)[gt.user_index(user_ids)]
    future_log = ListeningLog.from_frames(plays[known].reset_index(drop=True), gt.tracks)
    held_out = SessionTable.from_log(future_log, max_session_length, listener_ids=listener_ids)
    sim_rows = np.char.lstrip(held_out.session_ids.astype(str), "s").astype(np.int64)
    oracle_probs, oracle_leave = oracle_replay(gt, future, sim_rows, held_out)
    observable_probs = observable_oracle_replay(gt, future, sim_rows, held_out)
    return held_out, oracle_probs, oracle_leave, observable_probs


def held_out_familiarity(history: ListeningHistory, held_out: SessionTable) -> np.ndarray:
    """``(S, L, 12)`` what a world knows of each held-out play's (listener, track): its logged plays
    (the held-out sessions themselves are in no log), then its artist's and genre's earlier plays
    in the session; zeros where nothing was played."""
    mask = held_out.play_mask()
    tracks = np.maximum(held_out.tracks, 0)
    logged = history.features(held_out.listeners[:, None], tracks)
    in_session = played_session_familiarity(np.where(mask, history.play_codes[tracks], -1))
    features = np.concatenate([logged, in_session], axis=-1)
    features[~mask] = 0.0
    return features


def report(
    prefix: str,
    probs: np.ndarray,
    responses: np.ndarray,
    oracle: dict[str, float],
    truth: np.ndarray,
    observable: dict[str, float] | None = None,
) -> dict:
    """Emit ``probs``' metrics on the plays, their lift ratios against the ``oracle``'s metrics and, given
    the metrics of :func:`observable_oracle_replay`'s probabilities (``observable``), against those
    (``*_observable_lift_ratio``: the share of what a model that cannot see the session's
    attention could gain)."""
    metrics = response_metrics(probs, responses)
    metrics["kl_to_oracle"] = float(
        np.mean(np.sum(truth * (np.log(np.clip(truth, 1e-12, 1)) - np.log(np.clip(probs, 1e-12, 1))), axis=1))
    )
    for name in ("auc_skip", "auc_complete"):
        metrics[f"{name}_ratio"] = metrics[name] / oracle[name]
        metrics[f"{name}_lift_ratio"] = lift_ratio(metrics[name], oracle[name])
        if observable is not None:
            metrics[f"{name}_observable_lift_ratio"] = lift_ratio(metrics[name], observable[name])
    for name, value in metrics.items():
        emit(f"{prefix}{name}", value)
    return metrics


def ensemble_report(
    prefix: str, member_probs: np.ndarray, responses: np.ndarray, truth: np.ndarray, known: np.ndarray
) -> None:
    """Is the members' disagreement where the mean is wrong? ``(n, E, 3)`` members' probabilities of n plays.

    ``disagreement`` is :func:`~musicenv.world.member_disagreement` with the default reward, the
    error the absolute gap between the mean's expected reward and the truth's; their Pearson and
    Spearman correlations, the disagreement on tracks the listener played before (``known``) and
    on new ones, and each member's log-loss beside the mean's (``logloss`` above).
    """
    values = RewardConfig().response_values
    disagreement = member_disagreement(member_probs, values)
    error = np.abs(member_probs.mean(axis=1) @ values - truth @ values)
    emit(f"{prefix}disagreement_mean", float(disagreement.mean()))
    emit(f"{prefix}disagreement_known", float(disagreement[known].mean()))
    emit(f"{prefix}disagreement_new", float(disagreement[~known].mean()))
    emit(f"{prefix}disagreement_error_pearson", float(np.corrcoef(disagreement, error)[0, 1]))
    emit(f"{prefix}disagreement_error_spearman", float(spearmanr(disagreement, error).statistic))
    emit(f"{prefix}error_mean", float(error.mean()))
    members = range(member_probs.shape[1])
    member_loglosses = [response_metrics(member_probs[:, e], responses)["logloss"] for e in members]
    emit(f"{prefix}member_logloss_mean", float(np.mean(member_loglosses)))


def streak_calibration(
    held_out: SessionTable,
    probs: np.ndarray,
    observable: np.ndarray,
    prefix: str = "streak",
    shuffled_only: bool = False,
) -> None:
    """Emit, by how the session has gone so far, the observed skip and completion rates beside the
    model's mean probabilities ``probs`` ``(S, L, 3)`` and the observable oracle's (``observable``,
    :func:`observable_oracle_replay`).

    Plays with at least :data:`STREAK_MIN_PLAYS` earlier plays are banded by the share of skips
    among those (:data:`SKIP_SHARE_BANDS`; ``<prefix>_<lo>_<hi>_*``), of the shuffled sessions
    alone with ``shuffled_only`` (responses to choices no recommender made, as an agent's are). The
    observable oracle reads the earlier responses as the truth does and follows the observed rates
    in every band; a model that makes too little of a session going well (or badly) is too
    pessimistic (optimistic) in the low (high) bands, and an agent rolled out in its world meets
    that error on every play.
    """
    played = held_out.play_mask()
    skipped = np.where(played, held_out.responses == SKIP, False)
    earlier = np.arange(held_out.tracks.shape[1])[None, :]
    share = (np.cumsum(skipped, axis=1) - skipped) / np.maximum(earlier, 1)
    counted = played & (earlier >= STREAK_MIN_PLAYS)
    if shuffled_only:
        counted &= held_out.shuffled[:, None]
    for low, high in itertools.pairwise(SKIP_SHARE_BANDS):
        band = counted & (share >= low) & ((share < high) | (high == SKIP_SHARE_BANDS[-1]))
        name = f"{prefix}_{low:.1f}_{high:.1f}"
        emit(f"{name}_plays", int(band.sum()))
        if not band.any():
            continue
        for response, label in ((SKIP, "skip"), (COMPLETE, "complete")):
            emit(f"{name}_observed_{label}", float(np.mean(held_out.responses[band] == response)))
            emit(f"{name}_learned_{label}", float(probs[band][:, response].mean()))
            emit(f"{name}_observable_{label}", float(observable[band][:, response].mean()))


def track_rate_probs(train: SessionTable, n_tracks: int, tracks: np.ndarray) -> np.ndarray:
    """The historical-rate baseline: each track's smoothed response mix in the training plays."""
    mask = train.play_mask()
    counts = np.zeros((n_tracks, 3))
    np.add.at(counts, (train.tracks[mask], train.responses[mask]), 1.0)
    overall = counts.sum(axis=0) / counts.sum()
    rates = (counts + TRACK_RATE_PRIOR * overall) / (counts.sum(axis=1, keepdims=True) + TRACK_RATE_PRIOR)
    return rates[tracks]


def call_microseconds(fn, number: int = 2000) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def path_timings(session_model: LearnedSessionModel) -> None:
    users = np.array([0])
    contexts = Contexts(np.array([0], np.int8), np.array([12], np.int8), np.zeros(1, np.float32))
    state = session_model.initial_state(users, contexts)
    track, response, candidate = np.array([1]), np.array([1]), np.array([[1]])
    emit("numpy_us_response_probs_b1", call_microseconds(lambda: session_model.response_probs(state, candidate)))
    emit("torch_us_response_probs_b1", call_microseconds(lambda: session_model.torch_response_probs(state, candidate)))
    emit("numpy_us_advance_b1", call_microseconds(lambda: session_model.advance(state, track, response)))
    emit(
        "torch_us_advance_b1",
        call_microseconds(
            lambda: session_model._torch_step(state["hidden"], track, response, users, state["recent_codes"])
        ),
    )
    emit("numpy_us_leave_probs_b1", call_microseconds(lambda: session_model.leave_probs(state)))
    rng = np.random.default_rng(0)
    for batch, k in ((1, 100), (4, 100), (16, 100), (64, 100)):
        big = session_model.initial_state(
            np.zeros(batch, np.int64), Contexts(*(np.zeros(batch, t) for t in (np.int8, np.int8, np.float32)))
        )
        candidates = rng.integers(0, len(session_model.track_features), (batch, k))
        saved = session_model.numpy_threshold
        session_model.numpy_threshold = 1 << 30
        numpy_us = call_microseconds(
            lambda big=big, candidates=candidates: session_model.response_probs(big, candidates), number=50
        )
        session_model.numpy_threshold = saved
        torch_us = call_microseconds(
            lambda big=big, candidates=candidates: session_model.torch_response_probs(big, candidates), number=50
        )
        emit(f"numpy_us_response_probs_bk{batch * k}", numpy_us)
        emit(f"torch_us_response_probs_bk{batch * k}", torch_us)


def mssd_smoke() -> None:
    path = SHARED / "data" / "mssd" / "log_real_11_sessions.csv"
    if not path.is_file():
        print(f"# MSSD smoke run skipped: {path} is absent", flush=True)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        log = load_mssd(path)
    retrieval_config = RetrievalConfig(factors=8, n_trees=2)
    retrieval = Retrieval.fit(log, retrieval_config)
    genres, _ = track_genres(log.tracks, retrieval.track_vectors)
    sessions = SessionTable.from_log(log)
    features = features_of(log, sessions, retrieval, WorldConfig(retrieval=retrieval_config))
    track_features, user_features = features.track_features, features.user_features
    # Eleven sessions: no evaluation split can be held out of so few, so the smoke run trains on
    # all of them (the validation split is what early stopping reads) and scores them back.
    config = UserModelConfig(max_epochs=3, validation_share=0.2, test_share=0.0)
    model, _ = train_user_model(
        sessions,
        track_features,
        user_features,
        config,
        progress=False,
        session_user_features=features.session_user_features,
        session_track_features=features.session_track_features,
        track_artists=log.track_artist_codes(),
        track_genres=genres,
    )
    session_history = None
    if model.history_dim:
        session_history = ListeningHistory.from_sessions(
            sessions, log.n_tracks, log.track_artist_codes(), genres
        ).session_features(sessions)
    probs = logged_response_probs(
        model,
        sessions,
        track_features,
        user_features,
        session_user_features=features.session_user_features,
        session_history=session_history,
    )
    mask = sessions.play_mask()
    metrics = response_metrics(probs[mask], sessions.responses[mask])
    emit("mssd_plays", int(mask.sum()))
    for name, value in metrics.items():
        emit(f"mssd_{name}", value)
    emit("mssd_finite", int(bool(np.isfinite(probs[mask]).all() and np.isfinite(metrics["logloss"]))))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20_000, help="logged sessions to learn from")
    parser.add_argument("--seed", type=int, default=0, help="ground-truth world and log seed")
    parser.add_argument("--eval-sessions", type=int, default=20_000, help="later sessions simulated to hold out")
    parser.add_argument("--quick", action="store_true", help="only the default model (no variants, no baselines)")
    parser.add_argument(
        "--ensemble-size", type=int, default=None, help="members of the default model (default: UserModelConfig's)"
    )
    add_world_options(parser)
    args = parser.parse_args(argv)
    if args.ensemble_size is not None:
        setattr(args, "world.user_model.ensemble_size", args.ensemble_size)
    world, _ = chosen_world(parser, args)
    torch.set_num_threads(1)

    gt = GroundTruthWorld(seed=args.seed)
    log = gt.simulate_logs(args.sessions, seed=args.seed)
    emit("plays", log.n_plays)
    emit("shuffled_share", float(log.plays["shuffled"].mean()))
    started = time.perf_counter()
    retrieval_config = world.retrieval
    retrieval = Retrieval.fit(log, retrieval_config)
    genres, _ = track_genres(log.tracks, retrieval.track_vectors)
    emit("retrieval_seconds", time.perf_counter() - started)
    config = world.user_model
    sessions = SessionTable.from_log(log, config.max_session_length)
    started = time.perf_counter()
    features = features_of(log, sessions, retrieval, world)
    emit("feature_seconds", time.perf_counter() - started)
    track_features, user_features = features.track_features, features.user_features
    # Held out: later sessions of the evaluation users, simulated with another seed. Their plays
    # are in no log the world saw (ALS reads every logged play, outcomes included, so scoring
    # logged plays would let the ALS vectors leak the answers).
    future = gt.simulate(args.eval_sessions, seed=args.seed + 1)
    held_out, oracle_probs, oracle_leave, observable_probs = held_out_sessions(
        gt, future, sessions.listener_ids, config.max_session_length
    )
    history = ListeningHistory.from_sessions(sessions, log.n_tracks, log.track_artist_codes(), genres)
    held_out_history = held_out_familiarity(history, held_out)
    mask = held_out.play_mask()
    responses = held_out.responses[mask]
    truth = oracle_probs[mask]
    shuffled_mask = mask & held_out.shuffled[:, None]
    emit("evaluation_plays", int(mask.sum()))
    oracle = response_metrics(truth, responses)
    oracle_shuffled = response_metrics(oracle_probs[shuffled_mask], held_out.responses[shuffled_mask])
    for name, value in oracle.items():
        emit(f"oracle_{name}", value)
    for name, value in oracle_shuffled.items():
        emit(f"oracle_{name}_shuffled", value)
    observable = report("observable_oracle_", observable_probs[mask], responses, oracle, truth)

    def evaluate(prefix: str, model_config: UserModelConfig) -> tuple[UserResponseModel, np.ndarray]:
        model, training = train_user_model(
            sessions,
            track_features,
            user_features,
            model_config,
            progress=False,
            session_user_features=features.session_user_features,
            session_track_features=features.session_track_features,
            track_artists=log.track_artist_codes(),
            track_genres=genres,
        )
        emit(f"{prefix}train_seconds", training.train_seconds)
        emit(f"{prefix}epochs", training.epochs)
        member_probs = logged_response_probs(
            model,
            held_out,
            track_features,
            user_features,
            shuffled=True,
            session_history=held_out_history if model.history_dim else None,
            members=True,
        )
        probs = member_probs.mean(axis=-2)
        report(prefix, probs[mask], responses, oracle, truth, observable)
        if model.ensemble_size > 1:
            ensemble_report(prefix, member_probs[mask], responses, truth, held_out_history[mask][:, 0] > 0)
        shuffled_metrics = response_metrics(probs[shuffled_mask], held_out.responses[shuffled_mask])
        shuffled_metrics["kl_to_oracle"] = float(
            np.mean(
                np.sum(
                    oracle_probs[shuffled_mask]
                    * (np.log(np.clip(oracle_probs[shuffled_mask], 1e-12, 1)) - np.log(probs[shuffled_mask])),
                    axis=1,
                )
            )
        )
        for name, value in shuffled_metrics.items():
            emit(f"{prefix}{name}_shuffled", value)
        return model, probs

    model, probs = evaluate("", config)
    streak_calibration(held_out, probs, observable_probs)
    streak_calibration(held_out, probs, observable_probs, "streak_shuffled", shuffled_only=True)
    if not args.quick:
        split = SessionSplit.of(sessions, config.validation_share, config.test_share, config.seed)
        train_sessions = sessions.take(split.train)
        report(
            "track_rate_",
            track_rate_probs(train_sessions, log.n_tracks, held_out.tracks)[mask],
            responses,
            oracle,
            truth,
            observable,
        )
        evaluate("nonsequential_", dataclasses.replace(config, sequential=False))
        evaluate(
            "no_history_" if config.history else "history_", dataclasses.replace(config, history=not config.history)
        )
        for handling in ("flag", "weight", "pooled"):
            if handling != config.shuffled_handling:
                evaluate(f"{handling}_", dataclasses.replace(config, shuffled_handling=handling))

    session_end = SessionEndModel.fit(sessions)
    _, labels, end_mask = session_end_examples(held_out)
    end_features, _, _ = session_end_examples(held_out)
    learned_leave = 1.0 / (1.0 + np.exp(-(end_features @ session_end.weights)))
    emit("session_end_logloss", binary_log_loss(learned_leave[end_mask], labels[end_mask]))
    emit("oracle_session_end_logloss", binary_log_loss(oracle_leave[end_mask], labels[end_mask]))
    emit(
        "session_end_base_rate_logloss",
        binary_log_loss(np.full(end_mask.sum(), labels[end_mask].mean()), labels[end_mask]),
    )

    path_timings(
        LearnedSessionModel(model, session_end, track_features, user_features, features.stats, history=history)
    )
    mssd_smoke()


if __name__ == "__main__":
    main(sys.argv[1:])
