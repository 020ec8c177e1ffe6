"""Serve the explore app and drive it in headless Chromium: for its browser test, screenshots and benchmark.

Only Debian's ``chromium`` and ``chromium-driver`` packages are used (``apt-get install chromium
chromium-driver``), through selenium with the driver's path given explicitly, so Selenium Manager
never downloads a browser or a driver. :func:`browser_unavailable` says why a browser cannot run
here (for a test's skip reason).

Example::

    with served_app() as url, headless_chromium() as driver:
        open_page(driver, url, "Session")
        play_steps(driver, 5)
        driver.save_screenshot("session.png")
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from musicenv.explore.data import DEFAULT_WORLD

CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
"""Where Debian and Ubuntu install Chromium."""
CHROMEDRIVER = "/usr/bin/chromedriver"
"""Where Debian's ``chromium-driver`` installs the driver."""


def chromium_binary() -> str | None:
    """The installed Chromium, or None."""
    return next((path for path in CHROMIUM if os.access(path, os.X_OK)), None)


def browser_unavailable() -> str | None:
    """Why headless Chromium cannot run here (None when it can)."""
    if importlib.util.find_spec("selenium") is None:
        return 'selenium is not installed: pip install "musicenv[app]"'
    if chromium_binary() is None:
        return f"no Chromium at {' or '.join(CHROMIUM)}: apt-get install chromium chromium-driver"
    if not os.access(CHROMEDRIVER, os.X_OK):
        return f"no chromedriver at {CHROMEDRIVER}: apt-get install chromium-driver"
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def served_app(
    world: str = DEFAULT_WORLD,
    checkpoint_dir: str | os.PathLike[str] = "checkpoints",
    port: int | None = None,
    timeout: float = 120.0,
) -> Iterator[str]:
    """Run ``musicenv explore`` on a free port of 127.0.0.1 until the block ends; yields its URL.

    Raises:
        RuntimeError: the server exited or did not answer its health check within ``timeout``
            seconds (the message holds the end of its output).
    """
    port = port or free_port()
    command = [sys.executable, "-m", "musicenv.explore.cli", "explore", "--world", world, "--port", str(port)]
    command += ["--checkpoint-dir", str(checkpoint_dir)]
    with tempfile.TemporaryFile(mode="w+") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + timeout
            while not _healthy(url):
                if server.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"musicenv explore did not start: {log.read()[-2000:]}")
                time.sleep(0.2)
            yield url
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def headless_chromium(width: int = 1500, height: int = 1100) -> Iterator[Any]:
    """A selenium driver of Debian's headless Chromium (window ``width`` x ``height``), quit afterwards.

    Raises:
        RuntimeError: :func:`browser_unavailable` gives a reason.
    """
    reason = browser_unavailable()
    if reason is not None:
        raise RuntimeError(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium_binary())
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    options.add_argument(f"--window-size={width},{height}")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver: Any, timeout: float) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1)


def wait_idle(driver: Any, timeout: float = 60.0, settle: float = 0.2) -> None:
    """Wait until the app has finished its current run (no "running" status widget).

    The status widget appears a moment after a click: ``settle`` seconds are waited first.
    """
    from selenium.webdriver.common.by import By

    time.sleep(settle)
    _wait(driver, timeout).until(lambda d: not d.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]'))


def open_page(driver: Any, url: str, page: str, timeout: float = 120.0) -> None:
    """Open the app at ``url`` and go to ``page`` (its name in the sidebar), waiting until it is drawn."""
    from selenium.webdriver.common.by import By

    if not driver.current_url.startswith(url):
        driver.get(url)
    label = f'//section[@data-testid="stSidebar"]//label[.//p[normalize-space()="{page}"]]'
    _wait(driver, timeout).until(lambda d: d.find_elements(By.XPATH, label))
    driver.find_element(By.XPATH, label).click()
    heading = f'//h2[normalize-space()="{page}"]'
    _wait(driver, timeout).until(lambda d: d.find_elements(By.XPATH, heading))
    wait_idle(driver, timeout, settle=0.0)  # the new page's heading shows the run already answered


def playlist_rows(driver: Any, key: str) -> int:
    """The rows of the playlist table in the container with Streamlit key ``key``."""
    from selenium.webdriver.common.by import By

    return len(driver.find_elements(By.CSS_SELECTOR, f".st-key-{key} table tbody tr"))


PLAYLIST = "playlist_you__pick_tracks__learned"
"""Streamlit key of the person's playlist in the learned world, on the Session page."""


def click_play(driver: Any, key: str = PLAYLIST, timeout: float = 60.0) -> float:
    """Click *Play* once on the Session page (after the app went idle) and wait for the playlist ``key`` to grow.

    Returns:
        Seconds from the click until the new row was in the page.
    """
    from selenium.webdriver.common.by import By

    play = '//button[.//p[normalize-space()="Play"]]'
    wait_idle(driver, timeout, settle=0.5)  # a click while a run still draws the page can be lost
    _wait(driver, timeout).until(lambda d: d.find_elements(By.XPATH, play))
    before = playlist_rows(driver, key)
    start = time.perf_counter()
    driver.find_element(By.XPATH, play).click()
    _wait(driver, timeout).until(lambda d: playlist_rows(d, key) > before)
    return time.perf_counter() - start


def play_steps(driver: Any, steps: int, key: str = PLAYLIST, timeout: float = 60.0) -> int:
    """Click *Play* ``steps`` times on the Session page (:func:`click_play`).

    Returns:
        The playlist's rows at the end.
    """
    for _ in range(steps):
        click_play(driver, key, timeout)
    wait_idle(driver, timeout)
    return playlist_rows(driver, key)


def type_into(driver: Any, label: str, text: str, timeout: float = 60.0) -> None:
    """Replace the text of the text input labelled ``label`` and submit it (Enter)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    field = f'//input[@aria-label="{label}"]'
    _wait(driver, timeout).until(lambda d: d.find_elements(By.XPATH, field))
    element = driver.find_element(By.XPATH, field)
    element.send_keys(Keys.CONTROL + "a", Keys.DELETE)
    element.send_keys(text, Keys.ENTER)
    wait_idle(driver, timeout)


def screenshot(driver: Any, path: str | os.PathLike[str], settle: float = 3.0) -> Path:
    """Save the window as a PNG at ``path`` (folders made as needed), ``settle`` seconds after the
    app went idle: tables and charts are drawn in the browser after the run ends."""
    wait_idle(driver)
    time.sleep(settle)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    return path
