"""The explore app (``musicenv explore``): its data layer, each page through Streamlit's AppTest, the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("streamlit", reason='the explore app needs the app extra: pip install "musicenv[app]"')

from streamlit.testing.v1 import AppTest

from agents.base import make_agent
from agents.evaluate import AgentSpec, evaluate
from agents.report import write_figures, write_tables
from musicenv.explore import cli, data

APP = str(Path(data.__file__).with_name("app.py"))
TIMEOUT = 120  # the first run of a worker loads the default world


@pytest.fixture(scope="module")
def bundle() -> data.WorldBundle:
    return data.open_world("default")


@pytest.fixture(scope="module")
def eval_folder(bundle: data.WorldBundle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (small) eval.py output folder: two agents, both worlds."""
    out = tmp_path_factory.mktemp("eval")
    specs = [
        AgentSpec("greedy_learned", "greedy_learned"),
        AgentSpec("random", "random"),
        AgentSpec("popular", "popular"),
    ]
    evaluation = evaluate(bundle.world, specs, bundle.groundtruth, episodes=16, batch_size=16)
    write_tables(out, evaluation.results, evaluation.reference, evaluation.fidelity)
    write_figures(out, evaluation.results)
    return out


def _app(monkeypatch: pytest.MonkeyPatch, page: str, **environment: str) -> AppTest:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    app.run()
    app.sidebar.radio(key="page").set_value(page).run()
    assert not app.exception, app.exception
    return app


# -- data layer ------------------------------------------------------------------------------------------


def test_open_world_rejects_what_is_not_a_world(tmp_path: Path) -> None:
    with pytest.raises(data.ExploreError, match="is not a folder"):
        data.open_world(str(tmp_path / "missing"))
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(data.ExploreError, match="is not a musicenv world"):
        data.open_world(str(tmp_path))


def test_listener_profile_reads_the_logs(bundle: data.WorldBundle) -> None:
    world = bundle.world
    user = int(np.argmax(np.asarray(world.retrieval.heard.sum(axis=1)).ravel()))
    profile = data.listener_profile(world, user, top=5)
    assert profile.plays == world.retrieval.heard[user].sum() > 0
    assert profile.sessions == int((world.session_users == user).sum())
    assert profile.contexts["sessions"].sum() == profile.sessions
    assert list(profile.top_artists["plays"]) == sorted(profile.top_artists["plays"], reverse=True)
    assert list(profile.top_tracks["plays"]) == sorted(profile.top_tracks["plays"], reverse=True)
    assert profile.top_tracks["plays"].iloc[0] == world.retrieval.heard[user].max()


def test_pool_predictions_are_probabilities_beside_the_truth(bundle: data.WorldBundle) -> None:
    user = 3
    pool = data.pool_predictions(bundle, user, context_type=0, hour=12, pool_size=50, explicit_filter=True)
    assert len(pool) == 50 and not pool["explicit"].any()
    for prefix in ("learned", "true"):
        sums = pool[[f"{prefix}_skip", f"{prefix}_listen", f"{prefix}_complete"]].sum(axis=1)
        np.testing.assert_allclose(sums, 1.0, atol=1e-6)
    blocked = set(bundle.world.tracks["track_id"].to_numpy()[bundle.world.retrieval.blocked[user].indices])
    assert blocked.isdisjoint(pool["track_id"])
    np.testing.assert_allclose(pool["optimism"], pool["learned_complete"] - pool["true_complete"])
    # The learned and the true model disagree somewhere: the scatter has something to show.
    assert (pool["optimism"].abs() > 1e-3).any()
    assert len(data.learned_vs_true(pool)) == 3 * len(pool)


def test_rank_by_sound_finds_a_tracks_own_sound_and_skips_blocks(bundle: data.WorldBundle) -> None:
    world = bundle.world
    features = data.sound_features(world)
    assert {"energy", "valence", "danceability", "tempo", "acousticness"} <= set(features)
    assert "duration" not in features and not any(name.startswith("acoustic_vector") for name in features)
    user = int(np.flatnonzero(np.diff(world.retrieval.blocked.indptr))[0])  # a listener with blocks
    blocked = world.retrieval.blocked[user].indices
    allowed = np.setdiff1d(np.flatnonzero(~world.tracks["explicit"].to_numpy(dtype=bool)), blocked)
    track = int(allowed[10])
    target = {name: float(world.tracks[name].iloc[track]) for name in features}
    ranking = data.rank_by_sound(world, target, user, explicit_filter=True, top=5)
    assert ranking["track_id"].iloc[0] == world.tracks["track_id"].iloc[track]
    assert ranking["similarity"].iloc[0] == pytest.approx(1.0)
    # A blocked track is never ranked, even when the target is its own sound.
    target = {name: float(world.tracks[name].iloc[blocked[0]]) for name in features}
    ranked = data.rank_by_sound(world, target, user, top=50)["track_id"]
    assert world.tracks["track_id"].iloc[blocked[0]] not in set(ranked)
    with pytest.raises(data.ExploreError, match="at least one audio feature"):
        data.rank_by_sound(world, {}, user)


def test_a_session_pairs_players_and_worlds(bundle: data.WorldBundle) -> None:
    players = [data.Player(data.MANUAL), data.player_named("greedy_truth")]
    run = data.start_session(bundle, players, seed=5)
    assert [(lane.player.label, lane.world) for lane in run.lanes] == [
        (data.MANUAL, "learned"),
        (data.MANUAL, "groundtruth"),
        ("greedy_truth", "learned"),
        ("greedy_truth", "groundtruth"),
    ]
    # Common random numbers: every lane meets the same listener and pool.
    assert len({lane.env.user for lane in run.lanes}) == 1
    assert all(np.array_equal(lane.env.pool, run.pool) for lane in run.lanes)
    assert "ground-truth world only" in run.lanes[2].note
    with pytest.raises(data.ExploreError, match="pick the next track"):
        run.step()
    for _ in range(3):
        choices = run.choices(bundle)
        assert list(choices["p_complete"]) == sorted(choices["p_complete"], reverse=True)
        run.step(int(choices["slot"].iloc[0]))
    you_learned, you_truth = run.lanes[0].table(), run.lanes[1].table()
    # The person's tracks are played in both worlds; the two worlds answer with their own probabilities.
    assert list(you_learned["track_id"]) == list(you_truth["track_id"])
    assert not np.allclose(you_learned["p_complete"], you_truth["p_complete"])
    for table in (you_learned, you_truth, run.lanes[3].table()):
        assert len(table) == 3
        assert table["return"].iloc[-1] == pytest.approx(table["reward"].sum())
        assert ((table["p_leave"] > 0) & (table["p_leave"] < 1)).all()
        expected = table["response"].map({"skip": 0.0, "listen": 0.5, "complete": 1.0})
        np.testing.assert_allclose(table["reward"], expected)


def test_the_same_agent_twice_plays_the_same_episode(bundle: data.WorldBundle) -> None:
    run = data.start_session(bundle, [data.player_named("random"), data.player_named("random")], seed=11)
    for _ in range(4):
        run.step()
    pd.testing.assert_frame_equal(run.lanes[0].table(), run.lanes[2].table())


def test_checkpoints_load_and_corrupt_ones_say_so(bundle: data.WorldBundle, tmp_path: Path) -> None:
    make_agent("random", bundle.world, seed=3).save(tmp_path / "run_a" / "agent")
    make_agent("popular", bundle.world).save(tmp_path / "run_b")
    (tmp_path / "not_a_run").mkdir()
    found = data.checkpoints_in(tmp_path)
    assert [folder.name for folder in found] == ["run_a", "run_b"]
    player = data.player_named(data.checkpoint_label(found[0]), found)
    assert player.checkpoint == found[0] and player.build(bundle.world).name == "random"
    (found[1] / "manifest.json").write_text('{"format": "musicenv.agent", "broken": ')
    with pytest.raises(data.ExploreError, match="cannot load the checkpoint"):
        data.start_session(bundle, [data.player_named(data.checkpoint_label(found[1]), found)], seed=0)
    assert data.checkpoints_in(tmp_path / "missing") == []


def test_read_eval_output(eval_folder: Path, tmp_path: Path) -> None:
    output = data.read_eval_output(eval_folder)
    assert set(output.results["world"]) == {"learned", "groundtruth"}
    assert output.fidelity is not None and {figure.name for figure in output.figures} == {
        "mean_return.png",
        "skip_by_position.png",
    }
    shown = output.filtered(["random"], ["groundtruth"])
    assert list(shown["agent"]) == ["random"] and list(shown["world"]) == ["groundtruth"]
    with pytest.raises(data.ExploreError, match=r"holds no results\.csv"):
        data.read_eval_output(tmp_path)
    (tmp_path / "results.csv").write_text("")
    with pytest.raises(data.ExploreError, match="cannot be read"):
        data.read_eval_output(tmp_path)
    (tmp_path / "results.csv").write_text("agent,world,mean_return\n")
    with pytest.raises(data.ExploreError, match="has no rows"):
        data.read_eval_output(tmp_path)
    (tmp_path / "results.csv").write_text("a,b\n1,2\n")
    with pytest.raises(data.ExploreError, match="lacks the columns agent, world, mean_return"):
        data.read_eval_output(tmp_path)


# -- pages (Streamlit's headless AppTest) -------------------------------------------------------------------


def test_listener_page(monkeypatch: pytest.MonkeyPatch, bundle: data.WorldBundle) -> None:
    app = _app(monkeypatch, "Listener")
    user_id = str(bundle.world.user_ids[42])
    app.selectbox(key="listener_select").set_value(user_id).run()
    profile = data.listener_profile(bundle.world, 42)
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["Plays"] == str(profile.plays) and metrics["Sessions"] == str(profile.sessions)
    pools = [frame.value for frame in app.dataframe if "learned_complete" in frame.value.columns]
    assert len(pools) == 1 and len(pools[0]) == 100 and "true_complete" in pools[0].columns
    assert (
        pools[0]["track_id"].iloc[0]
        == bundle.world.tracks["track_id"].iloc[bundle.world.candidate_pools(np.array([42]), 1)[0, 0]]
    )
    assert app.get("vega_lite_chart"), "the learned-vs-true scatter plot is missing"
    app.number_input(key="listener_pool_size").set_value(10).run()
    pools = [frame.value for frame in app.dataframe if "learned_complete" in frame.value.columns]
    assert len(pools[0]) == 10
    app.button(key="listener_random").click().run()
    assert not app.exception and not app.warning
    # The listener chosen here is the one the sound page opens with.
    chosen = app.selectbox(key="listener_select").value
    app.sidebar.radio(key="page").set_value("Explore by sound").run()
    assert app.selectbox(key="sound_select").value == chosen


def test_session_page_plays_five_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    app = _app(monkeypatch, "Session")
    assert app.selectbox(key="player_a").value == data.MANUAL
    for _ in range(5):
        app.button(key="play_step").click().run()
        assert not app.exception and not app.error
    lengths = [len(table.value) for table in app.table]
    assert lengths == [5, 5, 5, 5]  # you and greedy_learned, each in both worlds (seed 0: nobody leaves by then)
    returns = [metric.value for metric in app.metric if metric.label == "Return"]
    assert len(returns) == 4
    # A new seed starts a new episode: empty playlists.
    app.number_input(key="episode_seed").set_value(1).run()
    assert [len(table.value) for table in app.table] == [0, 0, 0, 0]
    # Two agents play to the end without a person.
    app.selectbox(key="player_a").set_value("popular").run()
    app.button(key="play_to_end").click().run()
    assert not app.exception and app.success
    assert all(0 < len(table.value) <= 20 for table in app.table)


def test_session_page_reports_a_corrupt_checkpoint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    folder = tmp_path / "broken_run"
    folder.mkdir()
    (folder / "manifest.json").write_text('{"format": "musicenv.agent", "version": 1, "files": {"x": "0"}}')
    app = _app(monkeypatch, "Session", **{data.CHECKPOINT_DIR_ENV: str(tmp_path)})
    app.selectbox(key="player_a").set_value(data.checkpoint_label(folder)).run()
    assert not app.exception
    assert any("cannot load the checkpoint" in error.value for error in app.error)


def test_sound_page_reranks_as_a_slider_moves(monkeypatch: pytest.MonkeyPatch, bundle: data.WorldBundle) -> None:
    app = _app(monkeypatch, "Explore by sound")
    first = app.dataframe[0].value["track_id"].tolist()
    user = data.user_index(bundle.world, app.selectbox(key="sound_select").value)
    energy = app.slider(key=f"sound_energy_{user}")
    energy.set_value(energy.max if energy.value < (energy.min + energy.max) / 2 else energy.min).run()
    ranking = app.dataframe[0].value
    assert ranking["track_id"].tolist() != first and len(ranking) == 25
    app.checkbox(key="sound_explicit").check().run()
    explicit = set(bundle.world.tracks.loc[bundle.world.tracks["explicit"].astype(bool), "track_id"])
    assert explicit.isdisjoint(app.dataframe[0].value["track_id"])
    app.multiselect(key="sound_features").set_value([]).run()
    assert not app.exception and app.info


def test_results_page(monkeypatch: pytest.MonkeyPatch, eval_folder: Path, tmp_path: Path) -> None:
    app = _app(monkeypatch, "Results")
    app.text_input(key="eval_folder").set_value(str(tmp_path)).run()
    assert not app.exception and "holds no results.csv" in app.error[0].value
    app.text_input(key="eval_folder").set_value(str(eval_folder)).run()
    assert not app.error
    assert len(app.dataframe[0].value) == 6
    assert len(app.get("image")) == 2
    app.multiselect(key="results_agents").set_value(["random"]).run()
    app.multiselect(key="results_worlds").set_value(["learned"]).run()
    table = app.dataframe[0].value
    assert table[["agent", "world"]].values.tolist() == [["random", "learned"]]


def test_a_folder_that_is_not_a_world_is_a_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    app = _app(monkeypatch, "Listener", **{data.WORLD_ENV: str(tmp_path)})
    assert not app.exception
    assert "is not a musicenv world" in app.error[0].value


# -- the command ------------------------------------------------------------------------------------------


def test_cli_serves_on_localhost_by_default() -> None:
    args = cli.build_parser().parse_args(["explore", "--world", "w", "--port", "9999"])
    assert (args.world, args.port, args.address, args.checkpoint_dir) == ("w", 9999, "127.0.0.1", "checkpoints")
    command = cli.streamlit_command(args.port, args.address)
    assert command[command.index("--server.address") + 1] == "127.0.0.1"
    assert command[command.index("--server.port") + 1] == "9999"
    assert command[1:4] == ["-m", "streamlit", "run"] and Path(command[4]) == Path(APP)
    with pytest.raises(SystemExit):
        cli.main(["explore", "--port", "0"])


def test_stopping_the_command_stops_the_server() -> None:
    """``musicenv explore`` ended by SIGTERM (what ``served_app`` and service managers send) takes
    its server with it, instead of leaving it running, orphaned, on its port."""
    stand_in = "import os, time; print(os.getpid(), flush=True); time.sleep(120)"  # the server's place
    script = (
        "import sys\n"
        "from musicenv.explore import cli\n"
        f"cli.streamlit_command = lambda port, address: [sys.executable, '-c', {stand_in!r}]\n"
        "cli.main(['explore', '--port', '8501'])\n"
    )
    command = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert command.stdout is not None
        assert command.stdout.readline().startswith("musicenv explore: serving on")
        server = int(command.stdout.readline())
        command.terminate()
        assert command.wait(timeout=30) == 128 + signal.SIGTERM
        deadline = time.monotonic() + 30
        while _running(server) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running(server), "the server outlived the command"
    finally:
        command.kill()
        command.wait()


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists and, where ``/proc`` says, is not a zombie."""
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return state != "Z"
