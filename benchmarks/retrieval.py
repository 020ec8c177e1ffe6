"""Benchmark of the retrieval stage: ALS fit, Annoy recall and speed, candidate-pool quality.

Usage::

    python benchmarks/retrieval.py             # the default ground-truth world, about a minute
    python benchmarks/retrieval.py --scale     # also 1,000,000 synthetic tracks x 64 factors
    python benchmarks/retrieval.py --agents    # also the RNN agent's ground-truth return (builds
                                               # or loads the default learned world)

Prints one ``name=value`` per line.

Default run (``GroundTruthWorld(seed=0).simulate_logs(20_000, seed=0)``, default
:class:`~world_model.retrieval.RetrievalConfig`)
    ``als_seconds``, ``index_build_seconds``: the fit on the whole log.
    ``ann_recall_at_100``: mean overlap of the Annoy index's top 100 with the exact top 100 by the
    same inner product, over every user's vector. ``ann_queries_per_second`` (one query at a
    time, as pools query) and ``exact_queries_per_second`` (numpy: one matrix product per batch
    of 256 users, then an exact top 100 per user) give ``ann_speedup``, their ratio.
    ``pools_per_second``: ``candidate_pools`` of every user at M = 100 with the default config
    (exact ranking at this catalogue size), ``pools_per_second_annoy`` through the index.
    ``truth_overlap_at_100``: overlap of pools with the 100 tracks of highest true P(complete) at
    the start of a session (the ground truth's own model), against ``truth_overlap_popular`` and
    the chance level ``truth_overlap_chance``.

Pool recall (held out by time)
    The log is cut at the date before which 80% of plays fall; retrieval is fitted on the plays
    before it. ``pool_recall_at_100`` is, per user with completed plays after the cutoff, the
    share of those completed plays whose track is in the user's pool (M = 100), averaged over
    users. Previously heard tracks count: pools admit familiar tracks on purpose and much of
    listening is re-listening. ``pool_recall_at_100_new`` counts only plays of tracks the user had
    not played before the cutoff (discovery). The same for a most-popular pool (``_popular``) and
    a uniformly random pool (``_random``), and for ALS fitted with other skip weights
    (``pool_recall_at_100_skip_weight_<w>``, listen 0.5 and complete 1.0 throughout).
    ``pool_recall_at_100_user_cf`` (and ``_new_user_cf``): pools of user-user collaborative
    filtering (:mod:`world_model.user_cf`) on the same plays.

Sequence source (De Boom et al. 2017, :mod:`world_model.sequence`), same held-out protocol
    The sequence stage is fitted on the same plays before the cutoff with the default
    :class:`~world_model.sequence.SequenceConfig`. ``pool_recall_at_100_sequence`` (and
    ``_new_sequence``) are the pool recall of its pools, ``pool_recall_at_100_mix`` of pools half
    from it and half from ALS. ``sequence_ann_recall_at_100``: its Annoy index against exact
    search for the users' taste vectors. ``next_track_hit_at_10``: over the held-out sessions'
    non-skipped plays, the share of next plays among the 10 tracks nearest to the GRU's taste
    vector after the user's history and the session so far, against
    ``next_track_hit_at_10_last_track`` (the 10 tracks most similar to the last play) and
    ``next_track_hit_at_10_softmax`` (the GRU trained with the sampled-softmax loss).

Agents (``--agents``)
    On the default learned world (ALS pools, cached under ``$MUSICENV_HOME``), ``--episodes``
    evaluation episodes answered by the ground truth, paired by common random numbers
    (:mod:`agents.rollout`): ``groundtruth_return_<agent>`` for the baselines and the
    ``sequence_rnn`` agent, whose stage is fitted on the logs the world was learned from, and
    ``sequence_rnn_minus_<agent>_low`` / ``_high``, the 95% t interval of the paired difference;
    ``sequence_rnn_softmax`` is the same agent with the GRU trained by the sampled softmax.

Scale run (``--scale``)
    Synthetic vectors shaped like the default world's ALS output, measured on it: directions from
    an 8-dimensional taste space embedded in the factors plus isotropic noise, with the top 8
    principal directions holding ~37% of the variance; log-normal norms with log-sd 1.0 for
    tracks and 0.5 for the user queries (measured: 0.97 and 0.46). Reports
    ``scale_ann_recall_at_100``, ``scale_ann_speedup`` and their parts, Annoy one query at a time
    on one core against exact numpy top-100 with every core for its batched matrix products.
    With pure isotropic directions (no taste structure at all) the same index needs a larger
    ``search_k`` for the same recall: trees split well only where the data has structure.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from collections.abc import Callable

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import pandas as pd

from musicenv.data import ListeningLog
from musicenv.groundtruth import GroundTruthWorld
from musicenv.world import Contexts
from world_model.ann_index import TrackIndex, exact_top_k
from world_model.retrieval import Retrieval, RetrievalConfig
from world_model.sequence import SequenceConfig, SequenceStage, next_track_hit_rates, session_documents

POOL = 100
SKIP_WEIGHTS = (-0.5, 0.0, 0.25, 0.5)


def emit(name: str, value: float | int | str) -> None:
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    print(f"{name}={text}", flush=True)


def queries_per_second(run: Callable[[], object], n_queries: int) -> float:
    started = time.perf_counter()
    run()
    return n_queries / (time.perf_counter() - started)


def ann_figures(vectors: np.ndarray, queries: np.ndarray, index: TrackIndex, prefix: str = "") -> None:
    """Recall of ``index`` against exact search at 100, and both speeds."""
    batches = range(0, len(queries), 256)
    exact: list[np.ndarray] = []
    exact_qps = queries_per_second(
        lambda: exact.extend(exact_top_k(queries[i : i + 256], vectors, POOL) for i in batches), len(queries)
    )
    found: list[np.ndarray] = []
    ann_qps = queries_per_second(lambda: found.extend(index.query(q, POOL) for q in queries), len(queries))
    truth = np.concatenate(exact)
    recall = np.mean([len(np.intersect1d(a, b)) / POOL for a, b in zip(found, truth)])
    emit(f"{prefix}ann_recall_at_100", float(recall))
    emit(f"{prefix}ann_queries_per_second", ann_qps)
    emit(f"{prefix}exact_queries_per_second", exact_qps)
    emit(f"{prefix}ann_speedup", ann_qps / exact_qps)


def split_by_time(log: ListeningLog, train_share: float) -> tuple[ListeningLog, pd.DataFrame]:
    """Plays before the date that ``train_share`` of plays precede, and completed plays from it on."""
    dates = log.plays["date"]
    cutoff = dates.quantile(train_share)
    before = log.plays[dates < cutoff].reset_index(drop=True)
    after = log.plays[(dates >= cutoff) & (log.plays["response"] == "complete")]
    # A subset of a valid log's canonical tables is canonical: no need to validate again.
    return ListeningLog(plays=before, tracks=log.tracks, blocks=log.blocks), after


class HeldOut:
    """Later completed plays per user, as track indices of the fitted retrieval."""

    def __init__(self, retrieval: Retrieval, later: pd.DataFrame, tracks: pd.DataFrame) -> None:
        listener = later["user_id"].fillna(later["session_id"]).to_numpy(dtype=str)
        known = np.isin(listener, retrieval.listener_ids)
        self.users = np.unique(retrieval.user_index(listener[known]))
        codes = retrieval.user_index(listener[known])
        track = pd.Index(tracks["track_id"]).get_indexer(later["track_id"][known])
        order = np.argsort(codes, kind="stable")
        bounds = (
            np.searchsorted(codes[order], self.users, side="left"),
            np.searchsorted(codes[order], self.users, side="right"),
        )
        self.plays = [track[order][lo:hi] for lo, hi in zip(*bounds)]
        self.heard = retrieval.heard

    def recall(self, pools: np.ndarray) -> tuple[float, float]:
        """Mean share of later completed plays in the pool: all, and of tracks new to the user."""
        everything, new = [], []
        for user, plays, pool in zip(self.users, self.plays, pools):
            hit = np.isin(plays, pool)
            everything.append(hit.mean())
            unheard = ~np.isin(plays, self.heard[user].indices)
            if unheard.any():
                new.append(hit[unheard].mean())
        return float(np.mean(everything)), float(np.mean(new))


def truth_overlap(world: GroundTruthWorld, retrieval: Retrieval, n_users: int = 400) -> tuple[float, float]:
    """Overlap of pools, and of the most-popular pool, with the truly best 100 tracks per user."""
    users = retrieval.listener_ids[np.linspace(0, retrieval.n_users - 1, n_users).astype(np.int64)]
    contexts = Contexts(np.zeros(n_users, np.int8), np.full(n_users, 12, np.int8), np.zeros(n_users, np.float32))
    state = world.session_model.initial_state(world.user_index(users), contexts)
    tracks = np.tile(world.track_index(retrieval.track_ids), (n_users, 1))
    complete = world.session_model.response_probs(state, tracks)[:, :, 2]
    best = np.argsort(-complete, axis=1, kind="stable")[:, :POOL]
    pools = retrieval.candidate_pools(retrieval.user_index(users), POOL)
    popular = np.argsort(-retrieval.popularity, kind="stable")[:POOL]
    als = np.mean([len(np.intersect1d(p, b)) / POOL for p, b in zip(pools, best)])
    pop = np.mean([len(np.intersect1d(popular, b)) / POOL for b in best])
    return float(als), float(pop)


def default_run(args: argparse.Namespace) -> None:
    config = RetrievalConfig(seed=args.seed)
    world = GroundTruthWorld(seed=args.world_seed)
    log = world.simulate_logs(args.sessions, seed=args.log_seed)
    emit("world_users", log.plays["user_id"].nunique())
    emit("world_tracks", log.n_tracks)
    emit("log_plays", log.n_plays)

    retrieval = Retrieval.fit(log, config)
    emit("als_seconds", retrieval.timings["als_seconds"])
    emit("index_build_seconds", retrieval.timings["index_build_seconds"])
    ann_figures(retrieval.track_vectors, retrieval.user_vectors, retrieval.index)

    users = np.arange(retrieval.n_users)
    emit("pools_per_second", queries_per_second(lambda: retrieval.candidate_pools(users, POOL), len(users)))
    emit(
        "pools_per_second_explicit_filter",
        queries_per_second(lambda: retrieval.candidate_pools(users, POOL, explicit_filter=True), len(users)),
    )
    through_index = retrieval.als_pool(exact_max_tracks=0)
    emit("pools_per_second_annoy", queries_per_second(lambda: through_index.pools(users, POOL), len(users)))
    als, popular = truth_overlap(world, retrieval)
    emit("truth_overlap_at_100", als)
    emit("truth_overlap_popular", popular)
    emit("truth_overlap_chance", POOL / retrieval.n_tracks)

    train, later = split_by_time(log, 1.0 - args.holdout_share)
    emit("holdout_train_plays", train.n_plays)
    emit("holdout_completed_plays", len(later))
    fitted = {weight: Retrieval.fit(train, dataclasses.replace(config, skip_weight=weight)) for weight in SKIP_WEIGHTS}
    if config.skip_weight not in fitted:
        fitted[config.skip_weight] = Retrieval.fit(train, config)
    default = fitted[config.skip_weight]
    held_out = HeldOut(default, later, log.tracks)
    emit("holdout_users", len(held_out.users))
    recall, recall_new = held_out.recall(default.candidate_pools(held_out.users, POOL))
    emit("pool_recall_at_100", recall)
    emit("pool_recall_at_100_new", recall_new)
    most_popular = np.tile(np.argsort(-default.popularity, kind="stable")[:POOL], (len(held_out.users), 1))
    recall, recall_new = held_out.recall(most_popular)
    emit("pool_recall_at_100_popular", recall)
    emit("pool_recall_at_100_new_popular", recall_new)
    rng = np.random.default_rng(args.seed)
    uniform = np.stack([rng.choice(default.n_tracks, POOL, replace=False) for _ in held_out.users])
    recall, recall_new = held_out.recall(uniform)
    emit("pool_recall_at_100_random", recall)
    emit("pool_recall_at_100_new_random", recall_new)
    for weight in SKIP_WEIGHTS:
        recall, recall_new = held_out.recall(fitted[weight].candidate_pools(held_out.users, POOL))
        emit(f"pool_recall_at_100_skip_weight_{weight:g}", recall)
        emit(f"pool_recall_at_100_new_skip_weight_{weight:g}", recall_new)
    recall, recall_new = held_out.recall(default.with_source("user_cf").candidate_pools(held_out.users, POOL))
    emit("pool_recall_at_100_user_cf", recall)
    emit("pool_recall_at_100_new_user_cf", recall_new)
    sequence_figures(args, train, log, default, held_out)


def sequence_figures(
    args: argparse.Namespace, train: ListeningLog, log: ListeningLog, als: Retrieval, held_out: HeldOut
) -> None:
    """Pool recall of the sequence source, its index's recall, and next-track hits (module docstring)."""
    import torch

    torch.set_num_threads(1)
    stage = SequenceStage.fit(train, SequenceConfig(), seed=args.seed)
    for name, seconds in stage.timings.items():
        emit(name, seconds)
    sequence = als.with_source("sequence", sequence=stage)
    recall, recall_new = held_out.recall(sequence.candidate_pools(held_out.users, POOL))
    emit("pool_recall_at_100_sequence", recall)
    emit("pool_recall_at_100_new_sequence", recall_new)
    recall, recall_new = held_out.recall(als.with_source("mix", sequence=stage).candidate_pools(held_out.users, POOL))
    emit("pool_recall_at_100_mix", recall)
    emit("pool_recall_at_100_new_mix", recall_new)
    tasteful = stage.taste_vectors[np.any(stage.taste_vectors != 0, axis=1)]
    truth = exact_top_k(tasteful, stage.track_vectors, POOL)
    found = [stage.index.query(q, POOL) for q in tasteful]
    emit("sequence_ann_recall_at_100", float(np.mean([len(np.intersect1d(a, b)) / POOL for a, b in zip(found, truth)])))

    later = log.plays[log.plays["date"] >= log.plays["date"].quantile(1.0 - args.holdout_share)].reset_index(drop=True)
    later_log = ListeningLog(plays=later, tracks=log.tracks, blocks=log.blocks)
    sessions = session_documents(later_log)
    first_play = np.r_[0, np.flatnonzero(np.diff(later_log.session_codes())) + 1]
    listener = later["user_id"].fillna(later["session_id"]).to_numpy(dtype=str)[first_play]
    users = np.searchsorted(als.listener_ids, listener)
    known = (users < als.n_users) & (als.listener_ids[np.minimum(users, als.n_users - 1)] == listener)
    # Listeners the fitted log never saw have no history: their sessions start from nothing.
    users = np.where(known, users, -1)
    rates = next_track_hit_rates(stage, sessions, users, k=10)
    emit("next_track_predictions", int(rates["predictions"]))
    emit("next_track_hit_at_10", rates["rnn"])
    emit("next_track_hit_at_10_last_track", rates["last_track"])
    softmax = SequenceStage.fit(train, SequenceConfig(loss="sampled_softmax"), seed=args.seed)
    emit("sequence_softmax_taste_seconds", softmax.timings["sequence_taste_seconds"])
    emit("next_track_hit_at_10_softmax", next_track_hit_rates(softmax, sessions, users, k=10)["rnn"])
    emit(
        "pool_recall_at_100_sequence_softmax",
        held_out.recall(als.with_source("sequence", sequence=softmax).candidate_pools(held_out.users, POOL))[0],
    )


AGENTS = ("random", "popular", "als", "content", "greedy_learned", "sequence_rnn", "greedy_truth")


def agent_run(args: argparse.Namespace) -> None:
    """Ground-truth returns of the baselines and the ``sequence_rnn`` agent on the default world."""
    import tempfile

    import torch

    from agents.base import make_agent
    from agents.metrics import paired_difference
    from agents.rollout import evaluation_seed, rollout
    from musicenv.vector_env import ListeningSessionVectorEnv
    from world_model.world import (
        DEFAULT_GROUNDTRUTH_SEED,
        DEFAULT_LOG_SEED,
        DEFAULT_LOG_SESSIONS,
        default_world,
        groundtruth_for,
    )

    torch.set_num_threads(1)
    world = default_world()
    log = GroundTruthWorld(seed=DEFAULT_GROUNDTRUTH_SEED).simulate_logs(DEFAULT_LOG_SESSIONS, seed=DEFAULT_LOG_SEED)
    ids = world.retrieval.listener_ids
    listeners = (ids, np.searchsorted(ids, log.listener_ids().to_numpy(dtype=str)).astype(np.int64))
    env = ListeningSessionVectorEnv(
        min(args.episodes, 250), world=world, split="eval", responder=groundtruth_for(world)
    )
    returns = {}
    with tempfile.TemporaryDirectory() as folder:
        for loss in ("l2", "sampled_softmax"):
            stage = SequenceStage.fit(log, SequenceConfig(loss=loss), seed=args.seed, listeners=listeners)
            stage.save(f"{folder}/{loss}")
        runs = [(name, name, {"sequence_dir": f"{folder}/l2"} if name == "sequence_rnn" else {}) for name in AGENTS]
        runs.append(("sequence_rnn_softmax", "sequence_rnn", {"sequence_dir": f"{folder}/sampled_softmax"}))
        for label, name, kwargs in runs:
            started = time.perf_counter()
            result = rollout(make_agent(name, world, **kwargs), env, args.episodes, evaluation_seed(0))
            returns[label] = result.returns
            emit(f"groundtruth_return_{label}", float(result.returns.mean()))
            emit(f"agent_seconds_{label}", time.perf_counter() - started)
    for label, values in returns.items():
        if label != "sequence_rnn":
            difference = paired_difference(returns["sequence_rnn"], values)
            emit(f"sequence_rnn_minus_{label}_low", difference.low)
            emit(f"sequence_rnn_minus_{label}_high", difference.high)


TASTE_DIM = 8
"""Latent taste dimensions of the synthetic scale vectors, as in the default ground-truth world."""
NOISE_SD = 0.55
"""Per-factor noise of the synthetic scale vectors. At 64 factors it leaves the top 8 principal
directions 37% of the directions' variance (``scale_taste_variance_share`` reports it), as the
default world's ALS track vectors have (measured: 0.37 of 32 factors)."""


def synthetic_vectors(rng: np.random.Generator, n: int, embedding: np.ndarray, norm_sd: float) -> np.ndarray:
    """ALS-like vectors: a taste direction plus isotropic noise, with log-normal norms (float32).

    ``embedding`` maps the ``TASTE_DIM``-dimensional taste space into the factors (orthonormal
    columns).
    """
    factors = embedding.shape[0]
    taste = rng.standard_normal((n, TASTE_DIM), dtype=np.float32) @ embedding.T
    out = taste + NOISE_SD * rng.standard_normal((n, factors), dtype=np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    out *= rng.lognormal(0.0, norm_sd, size=(n, 1)).astype(np.float32)
    return out


def scale_run(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(args.seed)
    embedding = np.linalg.qr(rng.standard_normal((args.scale_factors, TASTE_DIM)))[0].astype(np.float32)
    # Log-sd of ALS norms on the default world: 0.97 for tracks, 0.46 for users.
    tracks = synthetic_vectors(rng, args.scale_tracks, embedding, norm_sd=1.0)
    queries = synthetic_vectors(rng, args.scale_queries, embedding, norm_sd=0.5)
    emit("scale_tracks", args.scale_tracks)
    emit("scale_factors", args.scale_factors)
    sample = tracks[:20_000] / np.linalg.norm(tracks[:20_000], axis=1, keepdims=True)
    spectrum = np.linalg.svd(sample, compute_uv=False) ** 2
    emit("scale_taste_variance_share", float(spectrum[:TASTE_DIM].sum() / spectrum.sum()))
    emit("scale_n_trees", args.scale_trees)
    emit("scale_n_bands", args.scale_bands)
    emit("scale_search_k", args.scale_search_k)
    started = time.perf_counter()
    index = TrackIndex.build(
        tracks, args.scale_trees, args.seed, args.scale_search_k, n_bands=args.scale_bands, n_jobs=-1
    )
    emit("scale_index_build_seconds", time.perf_counter() - started)
    # Exact search gets every core for its matrix products; Annoy queries run on one.
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=os.cpu_count(), user_api="blas"):
        ann_figures(tracks, queries, index, prefix="scale_")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=20_000, help="sessions of ground-truth logs")
    parser.add_argument("--world-seed", type=int, default=0)
    parser.add_argument("--log-seed", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0, help="retrieval seed")
    parser.add_argument("--holdout-share", type=float, default=0.2, help="share of plays after the cutoff")
    parser.add_argument("--scale", action="store_true", help="also run the large synthetic catalogue")
    parser.add_argument("--agents", action="store_true", help="also the agents' ground-truth returns")
    parser.add_argument("--episodes", type=int, default=1000, help="evaluation episodes per agent (--agents)")
    parser.add_argument("--no-default", action="store_true", help="skip the default run (with --scale/--agents)")
    parser.add_argument("--scale-tracks", type=int, default=1_000_000)
    parser.add_argument("--scale-factors", type=int, default=64)
    parser.add_argument("--scale-queries", type=int, default=500)
    parser.add_argument("--scale-trees", type=int, default=10)
    parser.add_argument("--scale-bands", type=int, default=16)
    parser.add_argument("--scale-search-k", type=int, default=4000)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if not args.no_default:
        default_run(args)
    if args.agents:
        agent_run(args)
    if args.scale:
        scale_run(args)
    emit("benchmark_seconds", time.perf_counter() - started)


if __name__ == "__main__":
    main()
