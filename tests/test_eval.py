"""Evaluation: the metrics against hand-computed values, and ``eval.py`` end to end on a tiny world."""

from __future__ import annotations

import importlib.util
import math
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from agents import metrics
from agents.base import make_agent
from agents.evaluate import (
    AgentSpec,
    Evaluation,
    ProgressAgent,
    agent_specs,
    evaluate,
    latest_checkpoints,
    parse_config,
    run,
)
from agents.rollout import evaluation_seed

# -- metrics, by hand ------------------------------------------------------------------------------


def test_mean_interval_is_the_t_interval():
    values = np.array([1.0, 2.0, 3.0, 4.0])
    interval = metrics.mean_interval(values)
    # mean 2.5, s = sqrt(5/3), t_{0.975, 3} = 3.182446305284263
    half = 3.182446305284263 * math.sqrt(5.0 / 3.0) / 2.0
    assert interval.mean == 2.5
    assert interval.low == pytest.approx(2.5 - half, abs=1e-12)
    assert interval.high == pytest.approx(2.5 + half, abs=1e-12)
    assert interval.half_width == pytest.approx(half, abs=1e-12)
    assert interval.n == 4
    assert interval.excludes_zero  # 2.5 - 2.05 > 0
    assert not metrics.mean_interval(values - 2.5).excludes_zero


def test_mean_interval_edge_cases():
    same = metrics.mean_interval(np.full(5, 0.7))
    assert (same.low, same.mean, same.high) == (0.7, 0.7, 0.7)
    single = metrics.mean_interval(np.array([3.0]))
    assert single.mean == 3.0 and math.isnan(single.low) and math.isnan(single.high)
    with pytest.raises(ValueError):
        metrics.mean_interval(np.array([]))


def test_paired_difference():
    a = np.array([1.0, 2.0, 3.0])
    b = np.array([0.5, 1.4, 2.3])
    diff = metrics.paired_difference(a, b)  # differences 0.5, 0.6, 0.7
    assert diff.mean == pytest.approx(0.6)
    half = stats.t.ppf(0.975, 2) * 0.1 / math.sqrt(3)
    assert diff.low == pytest.approx(0.6 - half)
    assert diff.high == pytest.approx(0.6 + half)
    assert diff.excludes_zero
    itself = metrics.paired_difference(a, a)
    assert (itself.mean, itself.low, itself.high) == (0.0, 0.0, 0.0)
    assert not itself.excludes_zero
    with pytest.raises(ValueError, match="same episode seeds"):
        metrics.paired_difference(a, b[:2])


# Two sessions of a 4-slot playlist: tracks 0, 1, 2 then the session ends; tracks 3, 3?, ...
TRACKS = np.array([[0, 1, 2, -1], [3, 4, 0, 5]])
RESPONSES = np.array([[0, 2, 1, -1], [0, 0, 2, 2]])
ARTISTS = np.array([10, 10, 11, 12, 12, 13])  # tracks 0 and 1 share an artist, 3 and 4 too


def test_response_rates():
    assert metrics.completion_rate(RESPONSES) == pytest.approx(3 / 7)
    assert metrics.skip_rate(RESPONSES) == pytest.approx(3 / 7)
    np.testing.assert_allclose(metrics.skip_rate_by_position(RESPONSES), [1.0, 0.5, 0.0, 0.0])
    late = metrics.skip_rate_by_position(np.array([[0, -1], [2, -1]]))
    assert late[0] == 0.5 and math.isnan(late[1])
    assert math.isnan(metrics.skip_rate(np.full((2, 3), -1)))
    np.testing.assert_array_equal(metrics.session_lengths(TRACKS), [3, 4])


def test_artist_diversity():
    # Session 1: artists 10, 10, 11 -> 2/3; session 2: 12, 12, 10, 13 -> 3/4.
    artists = np.where(TRACKS >= 0, ARTISTS[TRACKS], -1)
    assert metrics.artist_diversity(artists) == pytest.approx((2 / 3 + 3 / 4) / 2)
    # Unknown artists carry codes of their own (here: the track's): every play is a new "artist".
    assert metrics.artist_diversity(TRACKS) == 1.0
    # Sessions without plays are left out, not counted as zero.
    empty = np.array([[-1, -1, -1, -1]])
    assert metrics.artist_diversity(np.vstack([artists, empty])) == pytest.approx((2 / 3 + 3 / 4) / 2)
    assert math.isnan(metrics.artist_diversity(empty))


def test_popularity_percentiles_and_novelty():
    popularity = np.array([10.0, 20.0, 20.0, 40.0, np.nan])
    percentiles = metrics.popularity_percentiles(popularity)
    # Mid-ranks 1, 2.5, 2.5, 4 of 4 known tracks -> 100 * (rank - 0.5) / 4.
    np.testing.assert_allclose(percentiles[:4], [12.5, 50.0, 50.0, 87.5])
    assert math.isnan(percentiles[4])
    assert np.nanmean(percentiles) == 50.0
    tracks = np.array([[0, 3, -1], [1, 4, 0]])
    # Plays: 0 (12.5), 3 (87.5), 1 (50), 4 (unknown, left out), 0 (12.5).
    assert metrics.novelty(tracks, percentiles) == pytest.approx((12.5 + 87.5 + 50.0 + 12.5) / 4)
    np.testing.assert_array_equal(metrics.popularity_percentiles(np.full(3, 5.0)), [50.0, 50.0, 50.0])


def test_catalogue_coverage():
    assert metrics.catalogue_coverage(TRACKS, 12) == pytest.approx(6 / 12)
    assert metrics.catalogue_coverage(np.full((2, 2), -1), 12) == 0.0


def test_relative_gap_and_kendall_tau():
    assert metrics.relative_gap(11.0, 10.0) == pytest.approx(0.1)
    assert metrics.relative_gap(9.0, 10.0) == pytest.approx(-0.1)
    assert math.isnan(metrics.relative_gap(1.0, 0.0))
    assert metrics.kendall_tau(np.array([1, 2, 3]), np.array([10, 20, 30])) == pytest.approx(1.0)
    assert metrics.kendall_tau(np.array([1, 2, 3]), np.array([30, 20, 10])) == pytest.approx(-1.0)
    # One discordant pair of three: (2 - 1) / 3.
    assert metrics.kendall_tau(np.array([1, 2, 3]), np.array([1, 3, 2])) == pytest.approx(1 / 3)
    assert math.isnan(metrics.kendall_tau(np.array([1.0]), np.array([2.0])))


def test_fidelity():
    learned = {"random": 4.0, "greedy": 9.0, "planner": 10.0, "only_learned": 1.0}
    truth = {"random": 5.0, "greedy": 8.0, "planner": 10.0, "greedy_truth": 11.0}
    result = metrics.fidelity(learned, truth)
    assert result.agents == ("random", "greedy", "planner")
    np.testing.assert_allclose(result.relative_gaps, [-0.2, 0.125, 0.0])
    assert result.max_relative_return_gap == pytest.approx(0.2)
    assert result.kendall_tau == pytest.approx(1.0)
    swapped = metrics.fidelity({"a": 1.0, "b": 2.0}, {"a": 2.0, "b": 1.0})
    assert swapped.kendall_tau == pytest.approx(-1.0)


def test_episode_metrics_collects_everything():
    result = metrics.episode_metrics(
        returns=np.array([1.5, 2.0]),
        tracks=TRACKS,
        responses=RESPONSES,
        artists=np.where(TRACKS >= 0, ARTISTS[TRACKS], -1),
        left=np.array([True, False]),
        percentiles=metrics.popularity_percentiles(np.arange(6.0)),
    )
    assert result.episodes == 2
    assert result.mean_return.mean == 1.75
    assert result.session_length == 3.5
    assert result.left_rate == 0.5
    assert result.catalogue_coverage == 1.0
    assert result.skip_rate_by_position.shape == (4,)


# -- eval.py end to end on a tiny world ----------------------------------------------------------------

EPISODES = 24
AGENTS = "random,popular,greedy_learned,greedy_truth,planner_truth"


@pytest.fixture(scope="module")
def tiny_world_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small ground-truth world and the learned world built from its logs, saved (a few seconds)."""
    from musicenv.groundtruth import GroundTruthConfig, GroundTruthWorld
    from world_model.retrieval import RetrievalConfig
    from world_model.user_model import UserModelConfig
    from world_model.world import GroundTruthProvenance, WorldConfig, build_world

    torch.set_num_threads(1)
    truth = GroundTruthWorld(seed=3, config=GroundTruthConfig(n_users=120, n_tracks=300, n_artists=40))
    log = truth.simulate_logs(600, seed=0)
    config = WorldConfig(
        retrieval=RetrievalConfig(factors=8, iterations=3, n_trees=5, pool_size=30),
        user_model=UserModelConfig(hidden_size=8, mlp_size=16, interaction_size=8, max_epochs=1),
    )
    world = build_world(log, config, GroundTruthProvenance.of(truth, 600, 0))
    return world.save(tmp_path_factory.mktemp("worlds") / "tiny")


def run_eval(world_dir: Path, out: Path, *extra: str) -> Evaluation:
    return run(
        [
            "--world",
            str(world_dir),
            "--episodes",
            str(EPISODES),
            "--batch-size",
            "16",  # fewer sub-environments than episodes: some play two
            "--pool-size",
            "20",
            "--playlist-length",
            "8",
            "--no-progress",
            "--out",
            str(out),
            *extra,
        ]
    )


def test_eval_without_checkpoint(tiny_world_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    empty = tmp_path / "no_checkpoints"
    evaluation = run_eval(tiny_world_dir, tmp_path / "out", "--agents", AGENTS, "--checkpoint-dir", str(empty))
    printed = capsys.readouterr().out
    assert "evaluating the baselines only" in printed
    assert re.search(r"^fidelity_kendall_tau=-?[0-9.]+$", printed, re.MULTILINE)
    assert re.search(r"^max_relative_return_gap=[0-9.]+$", printed, re.MULTILINE)
    assert "episodes_per_second=" in printed

    out = tmp_path / "out"
    for name in (
        "results.csv",
        "results.md",
        "fidelity.csv",
        "mean_return.png",
        "skip_by_position.png",
        "run.json",
    ):
        assert (out / name).is_file(), name
    assert list((out / "tensorboard").rglob("events.out.tfevents.*"))
    table = pd.read_csv(out / "results.csv")
    assert len(table) == 2 * len(AGENTS.split(","))
    truth_only = table[(table.agent == "greedy_truth") & (table.world == "learned")]
    assert truth_only["mean_return"].isna().all()  # written as n/a
    played = table.dropna(subset=["mean_return"])
    assert (played["episodes"] == EPISODES).all()
    assert played["catalogue_coverage"].between(0, 1).all()
    reference = played[played.agent == "greedy_learned"]
    assert reference["diff_vs_reference"].isna().all()
    others = played[played.agent != "greedy_learned"]
    assert others["diff_vs_reference"].notna().all()
    assert "n/a" in (out / "results.md").read_text()
    # The fidelity covers the agents that ran in both worlds.
    assert set(evaluation.fidelity.agents) == {"random", "popular", "greedy_learned"}


def test_eval_with_checkpoints(tiny_world_dir: Path, tmp_path: Path):
    from world_model.world import load_world

    world = load_world(tiny_world_dir)
    checkpoints = tmp_path / "checkpoints"
    # train.py's layout: checkpoint_dir/<run name>/agent is the saved agent.
    make_agent("ahdqn", world, hidden_size=8, seed=1).save(checkpoints / "run_a" / "agent")
    evaluation = run_eval(
        tiny_world_dir, tmp_path / "latest", "--agents", "random", "--checkpoint-dir", str(checkpoints)
    )
    assert {r.agent for r in evaluation.results} == {"greedy_learned", "random", "ahdqn"}
    assert evaluation.result("ahdqn", "groundtruth").metrics is not None

    # Named on the command line (a checkpoint folder or the agent folder itself); two of one kind
    # are told apart by their run names.
    make_agent("ahdqn", world, hidden_size=8, seed=2).save(checkpoints / "run_b" / "agent")
    os.utime(checkpoints / "run_a" / "agent" / "manifest.json", (0, 0))
    assert latest_checkpoints(checkpoints) == [checkpoints / "run_b"]  # the newest of each kind
    named = run_eval(
        tiny_world_dir,
        tmp_path / "named",
        "--agents",
        "greedy_learned",
        "--checkpoints",
        str(checkpoints / "run_a"),
        str(checkpoints / "run_b" / "agent"),
    )
    labels = [r.agent for r in named.results if r.world == "learned"]
    assert labels == ["greedy_learned", "ahdqn:run_a", "ahdqn:agent"]
    table = pd.read_csv(tmp_path / "named" / "results.csv")
    assert table["agent"].str.startswith("ahdqn").sum() == 4


def test_same_seed_gives_the_same_tables(tiny_world_dir: Path, tmp_path: Path):
    for name in ("first", "second"):
        run_eval(tiny_world_dir, tmp_path / name, "--agents", "random,greedy_learned", "--checkpoints", "none")
    for name in ("results.csv", "fidelity.csv"):
        assert (tmp_path / "first" / name).read_text() == (tmp_path / "second" / name).read_text(), name
    # The Markdown report's first line is the command, which names each run's own output folder.
    first, second = ((tmp_path / run / "results.md").read_text().split("\n", 1) for run in ("first", "second"))
    assert first[1] == second[1]
    other = run_eval(tiny_world_dir, tmp_path / "third", "--agents", "random", "--checkpoints", "none", "--seed", "1")
    assert (tmp_path / "third" / "results.csv").read_text() != (tmp_path / "first" / "results.csv").read_text()
    assert other.rollouts["random", "learned"].env_seeds[0] == evaluation_seed(1)


def test_the_same_agent_twice_differs_by_exactly_zero(tiny_world_dir: Path):
    from world_model.world import groundtruth_for, load_world

    world = load_world(tiny_world_dir)
    specs = [AgentSpec("greedy_learned", "greedy_learned"), AgentSpec("again", "greedy_learned")]
    evaluation = evaluate(world, specs, groundtruth_for(world), episodes=30, pool_size=20, playlist_length=8)
    for world_name in ("learned", "groundtruth"):
        diff = evaluation.result("again", world_name).vs_reference
        assert (diff.mean, diff.low, diff.high) == (0.0, 0.0, 0.0)
        assert not diff.excludes_zero
    # Common random numbers across worlds too: the same listeners, episode by episode.
    learned, truth = evaluation.rollouts["again", "learned"], evaluation.rollouts["again", "groundtruth"]
    assert learned.paired_with(truth)


class _Bar:
    def __init__(self) -> None:
        self.n = 0

    def update(self, n: int) -> None:
        self.n += n


class _FirstSlot:
    name = "first_slot"
    needs_oracle = False

    def act(self, obs: dict[str, np.ndarray], oracle: object = None) -> np.ndarray:
        return np.zeros(len(obs["history_mask"]), dtype=np.int64)


def test_progress_agent_ticks_as_sessions_end():
    bar = _Bar()
    agent = ProgressAgent(_FirstSlot(), bar, episodes=3)
    assert agent.name == "first_slot" and not agent.needs_oracle

    def obs(*lengths: int) -> dict[str, np.ndarray]:
        return {"history_mask": (np.arange(4)[None, :] < np.array(lengths)[:, None]).astype(np.float32)}

    agent.act(obs(0, 0))  # the first reset is no episode's end
    agent.act(obs(1, 1))
    np.testing.assert_array_equal(agent.act(obs(0, 2)), [0, 0])  # row 0 ended and restarted
    assert (bar.n, agent.counted) == (1, 1)
    agent.act(obs(0, 0))
    agent.act(obs(0, 0))  # never more than the episodes asked for
    assert (bar.n, agent.counted) == (3, 3)


def test_config_accepts_comma_lists_and_adds_the_reference(tmp_path: Path):
    config = parse_config(["--agents", "random,popular", "als", "--checkpoints", "none"])
    assert config.agents == ("random", "popular", "als")
    specs, notes = agent_specs(config)
    assert [spec.label for spec in specs] == ["greedy_learned", "random", "popular", "als"]
    assert any("reference" in note for note in notes)
    with pytest.raises(SystemExit):
        parse_config(["--episodes", "0"])


# -- the README's results section --------------------------------------------------------------------------


def _readme_script():
    path = Path(__file__).resolve().parents[1] / "scripts" / "update_readme_results.py"
    spec = importlib.util.spec_from_file_location("update_readme_results", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_results_section_is_replaced_between_the_markers(tmp_path: Path):
    script = _readme_script()
    readme = "# musicenv\n\nintro\n"
    once = script.replace_section(readme, "| table 1 |")
    assert once.startswith(readme.rstrip("\n"))
    assert once.endswith(f"## Results\n\n{script.START}\n| table 1 |\n{script.END}\n")
    twice = script.replace_section(once + "\n## After\n\nkept\n", "| table 2 |")
    assert "| table 1 |" not in twice and "| table 2 |" in twice
    assert twice.count(script.START) == 1 and twice.endswith("## After\n\nkept\n")
    with pytest.raises(ValueError):
        script.replace_section(f"{script.START}\nno end\n", "x")

    run = tmp_path / "eval_out" / "run"
    run.mkdir(parents=True)
    (run / "results.md").write_text("| agent |\n| --- |\n| random |\n")
    (tmp_path / "README.md").write_text(readme)
    script.main([str(run), "--readme", str(tmp_path / "README.md")])
    assert "| random |" in (tmp_path / "README.md").read_text()


def test_rollout_records_each_episode_as_the_single_env_plays_it():
    """Users, tracks, responses and rewards by position are those of the episode itself (not the next one)."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from fakes import FakeWorld

    from agents.base import Agent
    from agents.rollout import rollout
    from musicenv.env import ListeningSessionEnv
    from musicenv.vector_env import ListeningSessionVectorEnv

    class LastValidSlot(Agent):
        name = "last_valid_slot"

        def act(self, obs, oracle=None):
            mask = obs["action_mask"].astype(bool)
            return mask.shape[1] - 1 - mask[:, ::-1].argmax(axis=1)

    def play_episode(single: ListeningSessionEnv, obs: dict) -> tuple[int, list[int], list[int], list[float]]:
        user, tracks, responses, rewards = single.user, [], [], []
        done = False
        while not done:
            slot = int(np.flatnonzero(obs["action_mask"])[-1])
            tracks.append(int(single.pool[slot]))
            obs, reward, terminated, truncated, info = single.step(slot)
            responses.append(["skip", "listen", "complete"].index(info["response"]))
            rewards.append(reward)
            done = terminated or truncated
        return user, tracks, responses, rewards

    world = FakeWorld(seed=0)
    env = ListeningSessionVectorEnv(2, world=world, playlist_length=4, pool_size=20)
    result = rollout(LastValidSlot(world), env, n_episodes=6, seed=11)
    single = ListeningSessionEnv(world=world, playlist_length=4, pool_size=20)
    for i, (env_seed, episode) in enumerate(zip(result.env_seeds, result.episode_numbers)):
        obs, _ = single.reset(seed=int(env_seed))
        for _ in range(int(episode)):  # the sub-env's earlier episodes
            play_episode(single, obs)
            obs, _ = single.reset()
        user, tracks, responses, rewards = play_episode(single, obs)
        n = len(tracks)
        assert (result.users[i], result.lengths[i]) == (user, n)
        np.testing.assert_array_equal(result.tracks[i, :n], tracks)
        np.testing.assert_array_equal(result.tracks[i, n:], -1)
        np.testing.assert_array_equal(result.responses[i, :n], responses)
        np.testing.assert_array_equal(result.rewards[i, :n], rewards)
