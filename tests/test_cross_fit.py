"""The cross-fitted world: the split, the fresh log of a ground truth, the translation, ``eval.py --cross-world``."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import sys
import warnings
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from test_world import SMALL_TRUTH, TINY  # the small ground truth and tiny settings the world tests build with

from agents.evaluate import AgentSpec, evaluate, summary
from agents.report import publish
from musicenv.data import load_mssd
from musicenv.groundtruth import GroundTruthWorld
from world_model.cross_fit import (
    build_cross_fitted_worlds,
    cross_log_seed,
    cross_responder,
    cross_world_for,
    session_halves,
    split_sessions,
)
from world_model.world import LearnedWorld, default_world, groundtruth_for

torch.set_num_threads(1)

CHEAP_AGENTS = [AgentSpec(name, name) for name in ("random", "popular", "greedy_learned")]


@pytest.fixture(scope="module")
def truth_log():
    truth = GroundTruthWorld(seed=1, config=SMALL_TRUTH)
    return truth, truth.simulate_logs(500, seed=2)


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> tuple[LearnedWorld, LearnedWorld]:
    """A tiny default-style world of a small ground truth and its cross world (cached in a temporary home)."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MUSICENV_HOME", str(home))
        world = default_world(groundtruth_seed=1, log_sessions=400, config=TINY, groundtruth_config=SMALL_TRUTH)
        return world, cross_world_for(world)


def test_split_is_deterministic_disjoint_and_covers_every_session(truth_log) -> None:
    _, log = truth_log
    halves = session_halves(log)
    np.testing.assert_array_equal(halves, session_halves(log))
    assert not np.array_equal(halves, session_halves(log, seed=1))  # the seed salts it
    first, second = split_sessions(log)
    ids = [set(part.plays["session_id"]) for part in (first, second)]
    assert not ids[0] & ids[1]
    assert ids[0] | ids[1] == set(log.plays["session_id"])
    assert first.n_plays + second.n_plays == log.n_plays
    assert first.n_tracks == second.n_tracks == log.n_tracks  # both keep the catalogue
    # Half of every listener's sessions (one more on either side for an odd count).
    per_listener = pd.DataFrame({"session": log.session_codes(), "user": log.plays["user_id"].to_numpy()})
    per_listener = per_listener.drop_duplicates("session")
    per_listener["half"] = halves[per_listener["session"].to_numpy()]
    counts = per_listener.groupby("user")["half"].agg(["sum", "count"])
    assert ((counts["count"] - 2 * counts["sum"]).abs() <= 1).all()


def test_cross_world_of_a_ground_truth_reads_a_fresh_log_of_it(worlds) -> None:
    world, cross = worlds
    assert cross.provenance.seed == world.provenance.seed
    assert cross.provenance.config == world.provenance.config
    assert cross.provenance.log_sessions == world.provenance.log_sessions
    assert cross.provenance.log_seed == cross_log_seed(world.provenance.log_seed) != world.provenance.log_seed
    assert cross.config == world.config
    assert len(cross.session_users) == len(world.session_users)
    # Other sessions: the logged contexts differ.
    assert not np.array_equal(cross.session_hours, world.session_hours)


def test_cross_responder_translates_by_id_and_answers_newcomers(worlds) -> None:
    world, cross = worlds
    responder = cross_responder(cross, world)
    users = np.arange(len(world.user_ids))
    contexts = world.sample_sessions(np.random.default_rng(0), len(users), "all")[1]
    pools = world.candidate_pools(users, 10)
    probs = responder.response_probs(responder.initial_state(users, contexts), pools)
    assert probs.shape == (len(users), 10, 3) and np.isfinite(probs).all()
    # A listener and tracks both worlds know: the cross world's own answer.
    cross_users = pd.Index(cross.user_ids).get_indexer(world.user_ids)
    known = np.flatnonzero(cross_users >= 0)[:5]
    cross_tracks = pd.Index(cross.tracks["track_id"]).get_indexer(world.tracks["track_id"])
    own = cross.session_model.response_probs(
        cross.session_model.initial_state(cross_users[known], contexts.take(known)), cross_tracks[pools[known]]
    )
    np.testing.assert_allclose(probs[known], own, atol=1e-6)
    # The translation of a world to itself is the identity.
    same = cross_responder(world, world)
    state = world.session_model.initial_state(users[:4], contexts.take(np.arange(4)))
    np.testing.assert_allclose(
        same.response_probs(same.initial_state(users[:4], contexts.take(np.arange(4))), pools[:4]),
        world.session_model.response_probs(state, pools[:4]),
        atol=1e-6,
    )


def test_cross_world_evaluation_reports_beside_the_truth(worlds, tmp_path: Path) -> None:
    world, cross = worlds
    evaluation = evaluate(
        world,
        CHEAP_AGENTS,
        groundtruth_for(world),
        episodes=24,
        batch_size=8,
        pool_size=20,
        cross=cross_responder(cross, world),
    )
    assert {r.world for r in evaluation.results} == {"learned", "groundtruth", "cross"}
    assert evaluation.cross_fidelity is not None and evaluation.cross_fidelity.agents == evaluation.fidelity.agents
    text = summary(evaluation)
    assert "predicted gap" in text and "cross_world_kendall_tau=" in text and "max_relative_return_gap=" in text
    paths = publish(
        tmp_path,
        evaluation.results,
        evaluation.reference,
        evaluation.fidelity,
        tensorboard=False,
        cross_fidelity=evaluation.cross_fidelity,
    )
    gaps = pd.read_csv(paths["fidelity"])
    assert list(gaps.columns) == [
        "agent",
        "learned_return",
        "groundtruth_return",
        "relative_gap",
        "cross_return",
        "cross_world_gap",
    ]
    row = gaps.set_index("agent").loc["random"]
    assert row["cross_world_gap"] == pytest.approx((row["learned_return"] - row["cross_return"]) / row["cross_return"])
    assert "cross" in set(pd.read_csv(paths["csv"])["world"])


def test_cross_world_on_mssd_rows_without_a_ground_truth(shared_dir: Path, tmp_path: Path) -> None:
    """The MSSD's use: no ground truth, a split at build time, the cross world's verdict alone."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        log = load_mssd(shared_dir / "data/mssd/log_real_11_sessions.csv")
    config = dataclasses.replace(
        TINY,
        retrieval=dataclasses.replace(TINY.retrieval, factors=4, pool_size=10),
        user_model=dataclasses.replace(TINY.user_model, validation_share=0.5, test_share=0.0),
    )
    world, cross = build_cross_fitted_worlds(log, config)
    assert world.provenance is None and cross.provenance is None
    assert not set(world.user_ids) & set(cross.user_ids)  # sessions are the listeners: every one a newcomer
    with pytest.raises(ValueError, match="build time"):
        cross_world_for(world)
    evaluation = evaluate(
        world,
        CHEAP_AGENTS[:2],
        None,
        episodes=6,
        batch_size=3,
        pool_size=10,
        reference="random",
        cross=cross_responder(cross, world),
    )
    assert evaluation.fidelity is None and evaluation.cross_fidelity is not None
    assert {r.world for r in evaluation.results} == {"learned", "cross"}
    paths = publish(
        tmp_path,
        evaluation.results,
        evaluation.reference,
        None,
        tensorboard=False,
        cross_fidelity=evaluation.cross_fidelity,
    )
    gaps = pd.read_csv(paths["fidelity"])
    assert gaps["groundtruth_return"].isna().all() and gaps["cross_world_gap"].notna().all()
    assert "n/a" in paths["markdown"].read_text()


def load_benchmark(script: str) -> ModuleType:
    """``benchmarks/<script>.py`` as a module, its folder on the path while it loads (a script run
    from there imports its siblings, e.g. fidelity.py's ``user_model``)."""
    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    sys.path.insert(0, str(folder))
    try:
        spec = importlib.util.spec_from_file_location(f"{script}_benchmark", folder / f"{script}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    return module


@pytest.fixture(scope="module")
def fidelity_benchmark() -> ModuleType:
    return load_benchmark("fidelity")


def test_fidelity_figures_on_hand_made_numbers(fidelity_benchmark) -> None:
    from agents.metrics import fidelity

    bench = fidelity_benchmark
    # random 1.0, greedy_truth 3.0: greedy_learned at 2.5 gets 75% of the true ranker's gain.
    assert bench.greedy_learned_truth_share(2.5, 3.0, 1.0) == pytest.approx(0.75)
    assert np.isnan(bench.greedy_learned_truth_share(2.0, 1.0, 1.0))
    true = fidelity({"a": 1.2, "b": 2.0}, {"a": 1.0, "b": 2.5})  # gaps +0.2, -0.2
    predicted = fidelity({"a": 1.2, "b": 2.0, "c": 1.0}, {"a": 1.2, "b": 2.0, "c": 2.0})  # gaps 0, 0, -0.5
    errors = bench.cross_world_gap_errors(true, predicted)
    assert errors == pytest.approx({"a": -0.2, "b": 0.2})  # c has no true gap
    figures = {
        "sessions": 20_000,
        "max_abs_gap": 0.1,
        "greedy_pick_bias": 0.01,
        "kendall_tau": 1.0,
        "greedy_learned_truth_share": 0.8,
        "auc_lift_ratio": 0.97,
        "ece": 0.01,
        "max_abs_cross_world_gap_error": 0.05,
        "build_seconds": 90.0,
    }
    assert bench.goals_failed(figures) == []
    worse = {**figures, "kendall_tau": 0.8, "ece": float("nan"), "build_seconds": 130.0}
    assert bench.goals_failed(worse) == ["kendall_tau", "ece", "build_seconds"]
    assert bench.goals_failed({**worse, "sessions": 80_000}) == ["kendall_tau", "ece"]  # build goal: default size
    table = bench.summary_table([{**figures, "seed": 0, "goals_failed": "none"}])
    assert table.splitlines()[0].startswith("| seed | sessions | max_abs_gap") and "| 20,000 |" in table
    builds = bench.summary_table([{**figures, "seed": 0, "world_seed": w, "goals_failed": "none"} for w in (0, 1)])
    assert builds.splitlines()[0].startswith("| seed | sessions | world_seed | max_abs_gap")
    assert [line.split("|")[3].strip() for line in builds.splitlines()[2:]] == ["0", "1"]


def test_fidelity_spread_between_builds_on_hand_made_numbers(
    fidelity_benchmark, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bench = fidelity_benchmark
    settings = {"seed": 0, "sessions": 20_000, "ensemble_size": 5, "shared_trunk": False}
    settings |= {"truth_ablated": "none", "world_settings": "default"}
    builds = [
        {**settings, "world_seed": 0, "max_abs_gap": 0.2, "kendall_tau": 0.9, "gap_popular": -0.1, "ece": 0.01},
        {**settings, "world_seed": 1, "max_abs_gap": 0.5, "kendall_tau": 0.7, "gap_popular": 0.4, "ece": math.nan},
        {**settings, "world_seed": 2, "max_abs_gap": 0.3, "kendall_tau": 0.8, "gap_popular": 0.0, "ece": 0.02},
    ]
    other_case = {**settings, "seed": 1, "world_seed": 0, "max_abs_gap": 9.0}  # one build: no spread
    rows = {row["figure"]: row for row in bench.build_spread([*builds, other_case])}
    assert {row["seed"] for row in rows.values()} == {0}
    assert rows["max_abs_gap"]["builds"] == 3
    assert rows["max_abs_gap"]["mean"] == pytest.approx(1 / 3)
    assert (rows["max_abs_gap"]["min"], rows["max_abs_gap"]["max"]) == (0.2, 0.5)
    assert rows["max_abs_gap"]["spread"] == pytest.approx(0.3)
    assert rows["gap_popular"]["spread"] == pytest.approx(0.5) and rows["kendall_tau"]["spread"] == pytest.approx(0.2)
    assert rows["ece"]["builds"] == 2 and rows["ece"]["spread"] == pytest.approx(0.01)  # the NaN is left out
    assert "greedy_pick_bias" not in rows  # no build has it
    assert bench.build_spread(builds[:1]) == []
    table = bench.spread_table(list(rows.values()))
    assert table.splitlines()[0] == "| seed | sessions | builds | figure | mean | min | max | spread |"
    assert "| 0 | 20,000 | 3 | max_abs_gap | 0.333 | 0.200 | 0.500 | 0.300 |" in table

    # main() ends a run of several builds with the spread (the builds' figures stand in for real ones).
    def fake_case(seed, sessions, args, bar, world_seed=0):
        return {**builds[world_seed], "seed": seed, "sessions": sessions, "goals_failed": "none"}, None

    monkeypatch.setattr(bench, "case_figures", fake_case)
    bench.main(["--seeds", "0", "--sessions", "20000", "--world-seeds", "0,1,2", "--out", str(tmp_path / "f.csv")])
    out = capsys.readouterr().out
    assert "seed=0 sessions=20000 builds=3 max_abs_gap_spread=0.3000" in out
    assert "| 0 | 20,000 | 3 | gap_popular | 0.100 | -0.100 | 0.400 | 0.500 |" in out
    bench.main(["--seeds", "0", "--sessions", "20000", "--out", str(tmp_path / "g.csv")])
    assert "_spread=" not in capsys.readouterr().out  # one build: nothing to compare


def test_fidelity_sets_world_fields_by_dotted_name(fidelity_benchmark, capsys: pytest.CaptureFixture[str]) -> None:
    bench = fidelity_benchmark
    args = bench.parse_args(["--world.retrieval.factors", "8", "--no-world.user_model.history"])
    assert args.world == {"retrieval.factors": 8, "user_model.history": False}
    config = bench.apply_overrides(bench.WorldConfig(), args.world)
    assert config.retrieval.factors == 8 and config.user_model.history is False
    assert config.user_model.weight_decay == bench.WorldConfig().user_model.weight_decay
    for bad, message in (
        (["--world.retrieval.colour", "8"], "unrecognized arguments: --world.retrieval.colour"),
        (["--world.retrieval.factors", "eight"], "--world.retrieval.factors: invalid int value"),
        (["--world.user_model.shuffled-handling", "ignore"], "invalid choice: 'ignore'"),
        (["--world.user_model.ensemble-size", "0"], "ensemble_size"),
    ):
        with pytest.raises(SystemExit):
            bench.parse_args(bad)
        assert message in capsys.readouterr().err


def test_the_observable_oracle_learns_the_attention_from_the_responses_before(truth_log) -> None:
    """benchmarks/user_model.py's oracle without the session's latent attention: the exact oracle
    when the truth ignores attention, the same first-play answer whatever the attention drawn, and
    after a completion (a skip) more (less) likely to predict a completion than before any play."""
    bench = load_benchmark("user_model")
    truth, _ = truth_log
    future = truth.simulate(400, seed=5)
    held_out, oracle, _, observable = bench.held_out_sessions(truth, future, np.sort(truth.user_ids), 20)
    played = held_out.play_mask()
    assert played.sum() > 200
    np.testing.assert_allclose(observable[played].sum(axis=-1), 1.0)
    assert not np.allclose(observable[played], oracle[played])

    blind = GroundTruthWorld(seed=1, config=dataclasses.replace(SMALL_TRUTH, attention_weight=0.0))
    _, blind_oracle, _, blind_observable = bench.held_out_sessions(blind, future, np.sort(truth.user_ids), 20)
    np.testing.assert_allclose(blind_observable[played], blind_oracle[played], rtol=1e-10)

    rows = np.char.lstrip(held_out.session_ids.astype(str), "s").astype(np.int64)
    attention = np.zeros_like(future.contexts.attention)
    calm = SimpleNamespace(users=future.users, contexts=dataclasses.replace(future.contexts, attention=attention))
    np.testing.assert_allclose(bench.observable_oracle_replay(truth, calm, rows, held_out)[:, 0], observable[:, 0])

    # The second play's answer averaged over the attention's prior, as if nothing had been heard.
    nodes, weights = np.polynomial.hermite_e.hermegauss(bench.ATTENTION_NODES)
    prior = sum(
        w * bench.oracle_replay(truth, future, rows, held_out, attention=float(a))[0][:, 1]
        for a, w in zip(nodes, weights / weights.sum(), strict=True)
    )
    second = played[:, 1]
    completed, skipped = second & (held_out.responses[:, 0] == 2), second & (held_out.responses[:, 0] == 0)
    assert completed.any() and skipped.any()
    assert (observable[completed, 1, 2] > prior[completed, 2]).all()
    assert (observable[skipped, 1, 2] < prior[skipped, 2]).all()


def test_streak_calibration_bands_the_plays_by_the_sessions_earlier_skips(
    truth_log, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = load_benchmark("user_model")
    truth, _ = truth_log
    future = truth.simulate(400, seed=5)
    held_out, _, _, observable = bench.held_out_sessions(truth, future, np.sort(truth.user_ids), 20)
    played = held_out.play_mask()
    # "Probabilities" that are the responses themselves: the model's rates equal the observed ones.
    answered = np.eye(3)[np.maximum(held_out.responses, 0)] * played[..., None]
    capsys.readouterr()
    bench.streak_calibration(held_out, answered, observable)
    lines = dict(line.split("=") for line in capsys.readouterr().out.split())
    bands = [name.removesuffix("_plays") for name in lines if name.endswith("_plays")]
    assert len(bands) == len(bench.SKIP_SHARE_BANDS) - 1
    earlier = np.broadcast_to(np.arange(held_out.tracks.shape[1]), played.shape)
    assert sum(int(lines[f"{band}_plays"]) for band in bands) == (played & (earlier >= bench.STREAK_MIN_PLAYS)).sum()
    for band in bands:
        if int(lines[f"{band}_plays"]):
            for label in ("skip", "complete"):
                observed = float(lines[f"{band}_observed_{label}"])
                assert float(lines[f"{band}_learned_{label}"]) == pytest.approx(observed)
    # Sessions that went well skip less than sessions that went badly.
    assert float(lines[f"{bands[0]}_observed_skip"]) < float(lines[f"{bands[-1]}_observed_skip"])
    assert float(lines[f"{bands[0]}_observable_skip"]) < float(lines[f"{bands[-1]}_observable_skip"])


def test_eval_cross_world_command(worlds, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agents.evaluate import parse_config, run

    assert parse_config(["--cross-world"]).cross_world == "default"  # the flag alone
    assert parse_config([]).cross_world is None
    world, cross = worlds
    world_dir, cross_dir = world.save(tmp_path / "world"), cross.save(tmp_path / "cross")
    out = tmp_path / "out"
    common = ["--world", str(world_dir), "--agents", "random,popular", "--checkpoints", "none", "--no-progress"]
    sizes = ["--episodes", "16", "--batch-size", "8", "--pool-size", "20"]
    run([*common, *sizes, "--out", str(out), "--cross-world", str(cross_dir)])
    printed = capsys.readouterr().out
    assert "cross_world_kendall_tau=" in printed and "fidelity_kendall_tau=" in printed
    assert set(pd.read_csv(out / "results.csv")["world"]) == {"learned", "groundtruth", "cross"}
    assert {"cross_return", "cross_world_gap"} <= set(pd.read_csv(out / "fidelity.csv").columns)
    assert "predicted gap" in (out / "results.md").read_text()
    with pytest.raises(SystemExit, match="--cross-world"):
        run([*common, "--episodes", "4", "--out", str(tmp_path / "bad"), "--cross-world", str(tmp_path / "none")])


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--sessions", "0"], "--sessions"),
        (["--episodes", "0"], "--episodes"),
        (["--batch-size", "-1"], "--batch-size"),
        (["--seeds", "-1"], "--seeds"),
        (["--ahdqn-steps", "-5"], "--ahdqn-steps"),
        (["--ensemble-size", "0"], "--ensemble-size"),
        (["--world-seeds", "-1"], "--world-seeds"),
        (["--world.seed", "3"], "--world.seed"),
        (["--truth-ablate", "mood,weather"], "--truth-ablate"),
    ],
)
def test_fidelity_benchmark_refuses_bad_arguments_naming_them(
    fidelity_benchmark, capsys: pytest.CaptureFixture[str], argv: list[str], named: str
) -> None:
    with pytest.raises(SystemExit):
        fidelity_benchmark.parse_args(argv)
    assert named in capsys.readouterr().err


@pytest.mark.parametrize(
    ("script", "argv", "named"),
    [
        ("lcb_kappa", ["--kappas", "-1"], "--kappas"),
        ("lcb_kappa", ["--kappas", "nan"], "--kappas"),
        ("lcb_kappa", ["--episodes", "0"], "--episodes"),
        ("lcb_kappa", ["--groundtruth-seed", "-2"], "--groundtruth-seed"),
        ("pessimism", ["--lambdas", "-0.5"], "--lambdas"),
        ("pessimism", ["--lambdas", "nan"], "--lambdas"),
        ("pessimism", ["--lambdas", "inf"], "--lambdas"),
        ("pessimism", ["--steps", "0"], "--steps"),
        ("pessimism", ["--episodes", "0"], "--episodes"),
        ("pessimism", ["--groundtruth-seed", "-1"], "--groundtruth-seed"),
        ("pessimism", ["--train-seed", "-1"], "--train-seed"),
        ("pessimism", ["--eval-seed", "-3"], "--eval-seed"),
        ("scoring", ["--batches", "64x0"], "--batches"),
        ("scoring", ["--batches", "64"], "--batches"),
        ("scoring", ["--rounds", "0"], "--rounds"),
        ("pick_bias", ["--episodes", "0"], "--episodes"),
        ("pick_bias", ["--batch-size", "0"], "--batch-size"),
        ("pick_bias", ["--seed", "-1"], "--seed"),
        ("pick_bias", ["--agent", "nobody"], "--agent"),
        ("pick_bias", ["--second-build", "-1"], "--second-build"),
        ("pick_bias", ["--out", "."], "--out"),
        ("fidelity", ["--out", "."], "--out"),
    ],
)
def test_benchmarks_refuse_bad_arguments_naming_them(
    capsys: pytest.CaptureFixture[str], script: str, argv: list[str], named: str
) -> None:
    with pytest.raises(SystemExit):
        load_benchmark(script).parse_args(argv)
    assert named in capsys.readouterr().err


@pytest.mark.parametrize("script", ["scoring", "pick_bias"])
def test_benchmarks_name_a_world_folder_they_cannot_open(tmp_path: Path, script: str) -> None:
    with pytest.raises(SystemExit, match=r"--world .*no manifest\.json"):
        load_benchmark(script).main(["--world", str(tmp_path)])


def test_greedy_pick_bias_is_the_mean_over_the_recorded_episodes_plays(worlds, fidelity_benchmark) -> None:
    from agents.base import make_agent
    from agents.baselines import learned_response_probs
    from agents.rollout import evaluation_seed, rollout
    from musicenv.vector_env import ListeningSessionVectorEnv
    from musicenv.world import COMPLETE

    world, _ = worlds
    truth = groundtruth_for(world)
    bias = fidelity_benchmark.greedy_pick_bias(world, truth, 12, 0, 3)

    # Recomputed play by play in a second run of the same episodes (3 sub-environments, 4 episodes each).
    env = ListeningSessionVectorEnv(3, world=world, responder=truth, split="eval", copy=False)
    agent = make_agent("greedy_learned", world)
    result = rollout(agent, env, 12, evaluation_seed(0))
    differences: list[float] = []
    seen = np.zeros(3, dtype=np.int64)
    obs, _ = env.reset(seed=evaluation_seed(0))
    while (seen < 4).any():
        actions = agent.act(obs, env.oracle)
        rows = np.arange(3)
        learned = learned_response_probs(agent.model, obs)[rows, actions, COMPLETE]
        true = env.oracle.response_probs(actions[:, None])[:, 0, COMPLETE]
        for row in rows[seen < 4]:
            differences.append(learned[row] - true[row])
        obs, _, terminated, truncated, _ = env.step(actions)
        seen += terminated | truncated
    assert len(differences) == result.lengths.sum()
    assert bias == pytest.approx(np.mean(differences), abs=1e-12)


@pytest.fixture(scope="module")
def pick_bias_benchmark() -> ModuleType:
    return load_benchmark("pick_bias")


def test_pick_bias_strata_split_the_greedy_pick_bias(worlds, fidelity_benchmark, pick_bias_benchmark) -> None:
    world, _ = worlds
    plays = pick_bias_benchmark.record(world, 12, 0, 3)
    bias = fidelity_benchmark.greedy_pick_bias(world, groundtruth_for(world), 12, 0, 3)
    assert (plays["learned"] - plays["true"]).mean() == pytest.approx(bias, abs=1e-12)  # the same plays
    np.testing.assert_array_equal(plays["own_pick_bias"], plays["learned"] - plays["true"])  # its own picks
    assert not any(name.startswith("second_") for name in plays)
    # Every episode starts at position 0 and counts up; a skip run never exceeds the plays so far.
    assert (plays["position"] == 0).sum() == 12
    assert ((plays["skip_run"] >= 0) & (plays["skip_run"] <= plays["position"])).all()
    assert set(plays["played_before"]) <= {0.0, 1.0}
    assert (plays["artist_penalty"] >= 0).all() and (plays["genre_penalty"] >= 0).all()
    assert (plays.loc[plays["position"] == 0, ["artist_penalty", "genre_penalty"]] == 0).all().all()
    table = pick_bias_benchmark.strata_table(plays)
    for name in pick_bias_benchmark.STRATA:
        rows = table[table["stratum"].str.startswith(name + " ")]
        assert rows["plays"].sum() == len(plays)  # the bins of each quantity cover every play once
        assert (rows["plays"] * rows["pick_bias"]).sum() / len(plays) == pytest.approx(bias, abs=1e-9)


def test_a_second_build_scores_the_same_states_with_its_own_noise(
    worlds, pick_bias_benchmark, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world, _ = worlds
    monkeypatch.setenv("MUSICENV_HOME", str(tmp_path))
    with pytest.raises(ValueError, match="needs another"):
        pick_bias_benchmark.second_build(world, world.config.seed)
    with pytest.raises(ValueError, match="ground truth"):
        pick_bias_benchmark.second_build(SimpleNamespace(provenance=None, config=world.config), 1)
    second = pick_bias_benchmark.second_build(world, world.config.seed + 1)
    assert not np.array_equal(second.track_features, world.track_features)  # another ALS, another model
    plays = pick_bias_benchmark.record(world, 6, 0, 3, "random", second)
    alone = pick_bias_benchmark.record(world, 6, 0, 3, "random")
    pd.testing.assert_frame_equal(plays[alone.columns], alone)  # the second build changes nothing of the first's
    second_columns = [name for name in pick_bias_benchmark.BIASES if name.startswith("second_")]
    assert plays[second_columns].notna().all().all()
    assert not np.allclose(plays["second_pick_bias"], plays["learned"] - plays["true"])
    # random's picks are not greedy_learned's: its own pick is scored apart from them.
    assert not np.allclose(plays["own_pick_bias"], plays["learned"] - plays["true"])
    assert (plays["own_pick_bias"].mean(), plays["second_own_pick_bias"].mean()) != (0.0, 0.0)
    table = pick_bias_benchmark.strata_table(plays)
    assert set(second_columns) <= set(table.columns)

    # Each build's model reads the states through its own feature tables.
    scored: list[tuple[object, dict]] = []
    score = pick_bias_benchmark.learned_response_probs

    def recording(model: object, obs: dict, *args: object, **kwargs: object) -> np.ndarray:
        scored.append((model, obs))
        return score(model, obs, *args, **kwargs)

    monkeypatch.setattr(pick_bias_benchmark, "learned_response_probs", recording)
    pick_bias_benchmark.record(world, 3, 0, 3, "random", second)
    rows = {id(w.session_model.response_model): {r.tobytes() for r in w.track_features} for w in (world, second)}
    assert {id(model) for model, _ in scored} == set(rows)
    for model, obs in scored:
        candidates = obs["candidates"][obs["action_mask"].astype(bool)]
        assert {r.tobytes() for r in candidates} <= rows[id(model)]


def test_pick_bias_strata_on_hand_made_plays(pick_bias_benchmark) -> None:
    plays = pd.DataFrame(
        {
            "learned": [0.5, 0.6, 0.2, 0.9],
            "true": [0.4, 0.4, 0.2, 0.9],
            "pool_bias": [0.1, 0.0, 0.0, -0.1],
            "skip_bias": [-0.1, -0.2, 0.0, 0.0],
            "position": [0, 1, 2, 12],
            "played_before": [0.0, 1.0, 1.0, 1.0],
            "artist_penalty": [0.0, 0.0, 0.8, 0.0],
            "genre_penalty": [0.0, 0.3, 0.3, 1.5],
            "mood": [0.0, 1.0, -3.0, 2.5],
            "skip_run": [0, 0, 1, 4],
        }
    )
    table = pick_bias_benchmark.strata_table(plays).set_index("stratum")
    assert table.loc["position [1, 3)", ["plays", "share"]].tolist() == [2, 0.5]
    assert table.loc["position [1, 3)", "pick_bias"] == pytest.approx(0.1)  # (0.2 + 0.0) / 2
    assert table.loc["artist_penalty [0.5, 1)", "pick_bias"] == pytest.approx(0.0)
    assert table.loc["mood [2, inf)", "pool_bias"] == pytest.approx(-0.1)
    assert table.loc["played_before [0.5, inf)", "skip_bias"] == pytest.approx(-0.2 / 3)
    assert "position [3, 6)" not in table.index  # empty bins are left out
