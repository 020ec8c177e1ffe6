"""The explore app in a real browser: serve it, open it in headless Chromium, play five steps by clicking.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them) and the ``app`` extra;
skips with the reason otherwise.
"""

from __future__ import annotations

import pytest

pytest.importorskip("streamlit", reason='the explore app needs the app extra: pip install "musicenv[app]"')

from musicenv.explore import browser

REASON = browser.browser_unavailable()


@pytest.mark.slow
@pytest.mark.skipif(REASON is not None, reason=f"no headless browser: {REASON}")
def test_five_clicked_steps_fill_the_playlist(tmp_path) -> None:
    with browser.served_app(checkpoint_dir=tmp_path) as url, browser.headless_chromium() as driver:
        browser.open_page(driver, url, "Session")
        assert browser.playlist_rows(driver, "playlist_you__pick_tracks__learned") == 0
        assert browser.play_steps(driver, 5) == 5
        # The same five tracks were answered by the ground truth too, and greedy_learned played beside them.
        for key in ("playlist_you__pick_tracks__groundtruth", "playlist_greedy_learned_learned"):
            assert browser.playlist_rows(driver, key) == 5
        assert "Traceback" not in driver.page_source
