"""TensorBoard helpers for training runs (CleanRL's namespaced tags, plus musicenv's own views).

Tags written by ``train.py``:

============================  ==========================================================
``charts/episodic_return``    return of each finished training episode (mean per log step)
``charts/completion_rate``    share of plays completed in those episodes
``charts/skip_rate``          share of plays skipped
``charts/session_length``     plays per session
``charts/SPS``                agent steps per second (always logged, as CleanRL does)
``losses/td_loss``            Huber TD loss of the last gradient step
``losses/q_values``           mean Q of the actions taken in the sampled batch
``losses/epsilon``            exploration rate
``q_values``                  histogram of the Q-values of the sampled batch
``hyperparameters``           the configuration as a Markdown table (text), and in the
                              hparams plugin with the final evaluation's mean returns
``playlists``                 sample evaluation playlists with their responses (text)
projector                     the world's tracks (ALS block) in the embedding projector
============================  ==========================================================
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.tensorboard import SummaryWriter

from musicenv.world import RESPONSES, World


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config dict as one level with dotted keys (``{"ahdqn.gamma": 0.95, ...}``)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def log_hyperparameters_text(writer: SummaryWriter, config: Mapping[str, Any]) -> None:
    """The configuration as a Markdown table under the ``hyperparameters`` text tag (CleanRL's form)."""
    rows = "\n".join(f"|{key}|{value}|" for key, value in flatten(config).items())
    writer.add_text("hyperparameters", f"|param|value|\n|-|-|\n{rows}")


def log_hparams(writer: SummaryWriter, config: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
    """The configuration and final metrics in TensorBoard's hparams plugin, in the run's own folder.

    Values the plugin cannot show (tuples, None) are written as strings; metric names get an
    ``hparam/`` prefix so they never collide with the scalars of the same name.
    """
    hparams = {
        key: value if isinstance(value, bool | int | float | str) else str(value)
        for key, value in flatten(config).items()
    }
    writer.add_hparams(hparams, {f"hparam/{key}": float(value) for key, value in metrics.items()}, run_name=".")


def playlist_markdown(
    world: World,
    tracks: np.ndarray,
    responses: np.ndarray,
    title: str,
) -> str:
    """One session as a Markdown table: position, track id, artist, response.

    Args:
        world: the world whose track table names the tracks.
        tracks: ``(L,)`` track indices, ``-1`` after the session's end.
        responses: ``(L,)`` response codes, ``-1`` after the end.
        title: heading line (e.g. the user and the return).
    """
    table = world.tracks
    artists = table["artist_id"] if "artist_id" in table else None
    lines = [f"**{title}**", "", "|#|track|artist|response|", "|-|-|-|-|"]
    for position, (track, response) in enumerate(zip(tracks, responses, strict=True), start=1):
        if track < 0:
            break
        artist = "" if artists is None or artists.iloc[track] is None else artists.iloc[track]
        lines.append(f"|{position}|{table['track_id'].iloc[track]}|{artist}|{RESPONSES[int(response)]}|")
    return "\n".join(lines)


def log_track_projector(writer: SummaryWriter, world: World, max_tracks: int = 5_000) -> None:
    """The world's tracks in TensorBoard's embedding projector.

    A learned world's tracks go through the retrieval stage's own export
    (:func:`world_model.projector.export_projector`: ALS vectors with genre, popularity and
    artist metadata). Other worlds get the ALS block of their track features (or all features),
    labelled by track id and artist, for the first ``max_tracks`` tracks (the projector slows
    past that).
    """
    retrieval = getattr(world, "retrieval", None)
    if retrieval is not None:
        from world_model.projector import export_projector

        export_projector(retrieval, world.tracks, writer.log_dir, max_tracks=max_tracks)
        return
    layout = getattr(world, "track_feature_layout", {})
    block = layout.get("als")
    columns = slice(*block) if isinstance(block, tuple) else (block or slice(None))
    n = min(len(world.track_features), max_tracks)
    table = world.tracks.iloc[:n]
    artist = table["artist_id"].astype(str) if "artist_id" in table else [""] * n
    metadata = [[str(track), str(a)] for track, a in zip(table["track_id"], artist, strict=True)]
    writer.add_embedding(
        np.asarray(world.track_features[:n, columns], dtype=np.float32),
        metadata=metadata,
        metadata_header=["track_id", "artist_id"],
        tag="tracks",
    )


def make_writer(log_dir: str | Path, purge_step: int | None = None) -> SummaryWriter:
    """A SummaryWriter for one run's folder (created if needed).

    ``purge_step``: on a resumed run, the step it continues from; TensorBoard then hides what the
    interrupted run had logged at or after that step, so the curve has no doubled stretch.

    When the folder already holds event files (a resumed or overwritten run), this waits, at most
    a second, until the new file's name sorts after theirs: TensorBoard reads a folder's files in
    name order, and the purge works only when the new run's file is read after the earlier ones.
    """
    Path(log_dir).mkdir(parents=True, exist_ok=True)
    wait_for_a_later_event_file_name(Path(log_dir))
    return SummaryWriter(str(log_dir), purge_step=purge_step)


def wait_for_a_later_event_file_name(log_dir: Path) -> None:
    """Sleep until a new event file in ``log_dir`` gets a name that sorts after every existing one.

    Event files are named ``events.out.tfevents.<second>.<host>.<pid>.<counter>``. Within one
    second the order falls to the pid and to a per-process counter, both compared as text (a
    writer numbered 10 sorts before one numbered 9), so a run resumed in the second its
    interrupted part started (as in-process tests do) could be read first. A later second always
    sorts later.
    """
    seconds = [int(path.name.split(".")[3]) for path in log_dir.glob("events.out.tfevents.*")]
    if seconds:
        time.sleep(max(0.0, max(seconds) + 1 - time.time()))
