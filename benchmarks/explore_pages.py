"""Response time of each page of ``musicenv explore`` on the default world, through Streamlit's AppTest.

Usage::

    python benchmarks/explore_pages.py [--repeats 10] [--world default]

Prints ``name=value`` lines. After a warm-up run (which loads the world into the cache, as the
first visitor of a server does), for each page it times ``--repeats`` times:

* ``<page>_open_s``: a whole rerun of the script that draws the page, arriving from another page;
* ``<page>_interact_s``: a rerun after the page's typical interaction: Listener, another listener
  (profile, pool, learned and true probabilities, scatter plot); Session, one *Play* step (a person
  and ``greedy_learned``, each in both worlds); Explore by sound, a slider moved (re-ranking the
  catalogue); Results, an agent filter changed (an ``eval.py`` folder of three baselines).

Each figure is the median (and ``_max_s``, the slowest) of the repeats, in seconds: the time the
server takes to answer. With ``--browser`` it also serves the app and times, in Debian's headless
Chromium, the whole round trip a user waits for: ``browser_<page>_open`` (a click on the page's
name until the page is drawn and the app idle) and ``browser_session_step`` (a click on *Play*
until the playlist has one more row).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from streamlit.testing.v1 import AppTest

from agents.evaluate import AgentSpec, evaluate
from agents.report import write_figures, write_tables
from musicenv.explore import data

APP = str(Path(data.__file__).with_name("app.py"))


def timed(action: Callable[[], object]) -> float:
    """Seconds ``action`` took."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def report(name: str, seconds: list[float]) -> None:
    """Print the median and the slowest of ``seconds``."""
    print(f"{name}_s={statistics.median(seconds):.3f}")
    print(f"{name}_max_s={max(seconds):.3f}")


def main(argv: list[str] | None = None) -> None:
    """Time every page; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=10, help="timed reruns per figure")
    parser.add_argument("--world", default=data.DEFAULT_WORLD, help="'default' or a saved world folder")
    parser.add_argument("--browser", action="store_true", help="also time the pages in headless Chromium")
    args = parser.parse_args(argv)
    os.environ[data.WORLD_ENV] = args.world
    bundle = data.open_world(args.world)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        specs = [AgentSpec(name, name) for name in ("greedy_learned", "random", "popular")]
        evaluation = evaluate(bundle.world, specs, bundle.groundtruth, episodes=50, batch_size=50)
        write_tables(folder, evaluation.results, evaluation.reference, evaluation.fidelity)
        write_figures(folder, evaluation.results)

        app = AppTest.from_file(APP, default_timeout=300)
        started = timed(app.run)
        print(f"first_run_with_world_load_s={started:.3f}")
        for name in ("Session", "Explore by sound", "Results"):  # load the agent registry, warm every page once
            app.sidebar.radio(key="page").set_value(name).run()
        app.text_input(key="eval_folder").set_value(str(folder)).run()
        user_ids = [str(user_id) for user_id in bundle.world.user_ids]
        slugs = {"Listener": "listener", "Session": "session", "Explore by sound": "sound", "Results": "results"}
        for name, slug in slugs.items():
            opens, interacts = [], []
            for repeat in range(args.repeats):
                app.sidebar.radio(key="page").set_value("Results" if name != "Results" else "Listener").run()
                opens.append(timed(app.sidebar.radio(key="page").set_value(name).run))
                if name == "Listener":
                    widget = app.selectbox(key="listener_select").set_value(user_ids[(repeat * 37) % len(user_ids)])
                elif name == "Session":
                    if app.success:  # the episode ended: a new one, untimed
                        app.number_input(key="episode_seed").set_value(repeat + 1).run()
                    widget = app.button(key="play_step").click()
                elif name == "Explore by sound":
                    user = data.user_index(bundle.world, app.selectbox(key="sound_select").value)
                    slider = app.slider(key=f"sound_energy_{user}")
                    widget = slider.set_value(slider.min + (slider.max - slider.min) * ((repeat % 5) + 1) / 6)
                else:
                    agents = ["random", "popular"] if repeat % 2 else ["greedy_learned", "random", "popular"]
                    widget = app.multiselect(key="results_agents").set_value(agents)
                interacts.append(timed(widget.run))
                if app.exception:
                    raise SystemExit(f"the {name} page failed: {app.exception}")
            report(f"{slug}_open", opens)
            report(f"{slug}_interact", interacts)
        if args.browser:
            in_browser(args.world, args.repeats, Path(scratch))


def in_browser(world: str, repeats: int, scratch: Path) -> None:
    """Time page opens and a Session step in headless Chromium (round trips, drawing included)."""
    from musicenv.explore import browser

    reason = browser.browser_unavailable()
    if reason is not None:
        raise SystemExit(f"--browser: {reason}")
    pages = {"Listener": "listener", "Session": "session", "Explore by sound": "sound", "Results": "results"}
    with browser.served_app(world, scratch / "checkpoints") as url, browser.headless_chromium() as driver:
        for name in pages:  # warm: the world and the agents load on the first visit
            browser.open_page(driver, url, name)
        browser.open_page(driver, url, "Session")
        steps = [browser.click_play(driver) for _ in range(min(repeats, 5))]
        report("browser_session_step", steps)
        for name, slug in pages.items():
            seconds = []
            for _ in range(repeats):
                browser.open_page(driver, url, "Results" if name != "Results" else "Listener")
                seconds.append(timed(lambda name=name: browser.open_page(driver, url, name)))
            report(f"browser_{slug}_open", seconds)


if __name__ == "__main__":
    main()
