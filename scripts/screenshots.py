"""Take the README's screenshots of ``musicenv explore``: one PNG per page, in headless Chromium.

Usage::

    python scripts/screenshots.py [--out docs/images] [--world default]

It evaluates three baselines briefly (for the Results page), serves the app on a free port of
127.0.0.1, opens each page in Debian's headless Chromium (``apt-get install chromium
chromium-driver``; see :mod:`musicenv.explore.browser`), plays five steps on the Session page, and
saves ``explore_listener.png``, ``explore_session.png``, ``explore_sound.png`` and
``explore_results.png``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from agents.evaluate import AgentSpec, evaluate
from agents.report import write_figures, write_tables
from musicenv.explore import browser, data

PAGES = {"Listener": "explore_listener", "Session": "explore_session", "Explore by sound": "explore_sound"}


def eval_output(bundle: data.WorldBundle, folder: Path) -> Path:
    """A small but real ``eval.py`` output in ``folder`` (three baselines, 200 episodes, both worlds)."""
    specs = [AgentSpec(name, name) for name in ("greedy_learned", "random", "popular", "als")]
    evaluation = evaluate(bundle.world, specs, bundle.groundtruth, episodes=200, batch_size=200)
    write_tables(folder, evaluation.results, evaluation.reference, evaluation.fidelity)
    write_figures(folder, evaluation.results)
    return folder


def main(argv: list[str] | None = None) -> None:
    """Take the four screenshots and print where they went."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images"), help="folder of the PNGs")
    parser.add_argument("--world", default=data.DEFAULT_WORLD, help="the world to show ('default' or a folder)")
    args = parser.parse_args(argv)
    reason = browser.browser_unavailable()
    if reason is not None:
        parser.error(reason)
    with tempfile.TemporaryDirectory() as scratch:
        results = eval_output(data.open_world(args.world), Path(scratch) / "eval")
        with browser.served_app(args.world, Path(scratch) / "checkpoints") as url:
            with browser.headless_chromium(1500, 1250) as driver:
                for page, name in PAGES.items():
                    browser.open_page(driver, url, page)
                    if page == "Session":
                        browser.play_steps(driver, 5)
                    print(browser.screenshot(driver, args.out / f"{name}.png"))
                browser.open_page(driver, url, "Results")
                browser.type_into(driver, "eval.py output folder", str(results))
                print(browser.screenshot(driver, args.out / "explore_results.png"))


if __name__ == "__main__":
    main()
