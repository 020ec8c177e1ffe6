"""The ground-truth world: a synthetic population of listeners and tracks whose responses are known.

See docs/design.md, "The two worlds". :class:`GroundTruthWorld` implements :class:`musicenv.world.World`
with the exact :class:`~musicenv.groundtruth.response.GroundTruthSessionModel`; its
:meth:`~GroundTruthWorld.simulate_logs` writes the listening logs a learned world is built from.

Example::

    from musicenv.groundtruth import GroundTruthWorld

    world = GroundTruthWorld(seed=0)
    log = world.simulate_logs()                     # 20,000 sessions, a ListeningLog
    users, contexts = world.sample_sessions(np.random.default_rng(1), 8, "eval")
    state = world.session_model.initial_state(users, contexts)
    probs = world.session_model.response_probs(state, tracks)   # tracks (8, K)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from musicenv.groundtruth.catalogue import FEATURE_NAMES, build_catalogue
from musicenv.groundtruth.config import GENRES, GroundTruthConfig
from musicenv.groundtruth.response import GroundTruthSessionModel
from musicenv.groundtruth.simulate import SimulatedSessions, draw_contexts, log_frames, simulate_sessions
from musicenv.world import Contexts, Split, is_eval_user

if TYPE_CHECKING:
    from musicenv.data import ListeningLog


class GroundTruthWorld:
    """A synthetic world built from a seed: listeners, artists, tracks, and how listeners respond.

    Args:
        seed: the world's seed; the same seed and config give the same world, bit for bit.
        config: sizes, effect strengths and switches; default :class:`GroundTruthConfig()`, whose
            fitted parameters come from ``calibration.json``.

    Attributes:
        name: ``"groundtruth"``.
        config: the configuration.
        seed: the seed.
        catalogue: the raw arrays of the population
            (:class:`~musicenv.groundtruth.catalogue.Catalogue`).
        user_ids: ``(n_users,)`` ids ``u0000000``, ``u0000001``, ... (sorted order = index order).
        track_ids: ``(n_tracks,)`` ids ``t0000000``, ...
        artist_ids: ``(n_artists,)`` ids ``a00000``, ...
        tracks: the track table (columns of :data:`musicenv.data.TRACK_COLUMNS`): ``track_id``,
            ``artist_id``, ``explicit``, ``genre`` (code into
            :data:`~musicenv.groundtruth.config.GENRES`) and the MSSD's track features.
        blocks: the block lists, one row per block: ``user_id`` and either ``track_id`` or
            ``artist_id`` (the other NA).
        track_features: ``(n_tracks, d)`` float32, the world's own true features: taste vector,
            standardized log popularity, standardized sound, genre one-hot, explicit.
        user_features: ``(n_users, d)`` float32: taste vector, premium.
        eval_users: ``(n_users,)`` bool, :func:`musicenv.world.is_eval_user` of ``user_ids``.
        session_model: the exact :class:`~musicenv.groundtruth.response.GroundTruthSessionModel`.
    """

    name = "groundtruth"

    def __init__(self, seed: int = 0, config: GroundTruthConfig | None = None) -> None:
        self.seed = int(seed)
        self.config = config if config is not None else GroundTruthConfig()
        rng = np.random.default_rng(np.random.SeedSequence(self.seed))
        self.catalogue = cat = build_catalogue(self.config, rng)
        self.user_ids = _ids("u", self.config.n_users, 7)
        self.track_ids = _ids("t", self.config.n_tracks, 7)
        self.artist_ids = _ids("a", self.config.n_artists, 5)
        self.session_model = GroundTruthSessionModel(self.config, cat)
        self.eval_users = is_eval_user(self.user_ids)

        tracks = pd.DataFrame(
            {
                "track_id": pd.array(self.track_ids, dtype=pd.StringDtype()),
                "artist_id": pd.array(self.artist_ids[cat.track_artist], dtype=pd.StringDtype()),
                "explicit": cat.explicit,
                "genre": pd.array(cat.track_genre, dtype=pd.Int16Dtype()),
            }
        )
        features = pd.DataFrame(cat.features, columns=list(FEATURE_NAMES))
        self.tracks = pd.concat([tracks, features], axis=1)
        by_track = cat.block_track >= 0
        self.blocks = pd.DataFrame(
            {
                "user_id": pd.array(self.user_ids[cat.block_user], dtype=pd.StringDtype()),
                "track_id": pd.array(
                    np.where(by_track, self.track_ids[np.maximum(cat.block_track, 0)], None), dtype=pd.StringDtype()
                ),
                "artist_id": pd.array(
                    np.where(by_track, None, self.artist_ids[np.maximum(cat.block_artist, 0)]), dtype=pd.StringDtype()
                ),
            }
        )
        genre_one_hot = np.eye(len(GENRES), dtype=np.float32)[cat.track_genre]
        self.track_features = np.concatenate(
            [cat.track_taste, cat.popularity_z[:, None], cat.track_sound, genre_one_hot, cat.explicit[:, None]],
            axis=1,
            dtype=np.float32,
        )
        self.user_features = np.concatenate([cat.user_taste, cat.premium[:, None]], axis=1, dtype=np.float32)

    def __repr__(self) -> str:
        c = self.config
        return f"GroundTruthWorld(seed={self.seed}, users={c.n_users}, tracks={c.n_tracks}, artists={c.n_artists})"

    # --- World -----------------------------------------------------------------------------------

    def sample_sessions(self, rng: np.random.Generator, n: int, split: Split) -> tuple[np.ndarray, Contexts]:
        """Draw ``n`` (user, context) pairs: users uniformly from ``split`` ("train", "eval" or
        "all"), contexts by each user's own preferences, using ``rng`` only."""
        if split == "all":
            pool = np.arange(len(self.user_ids))
        elif split in ("train", "eval"):
            pool = np.flatnonzero(self.eval_users == (split == "eval"))
        else:
            raise ValueError(f"split must be 'train', 'eval' or 'all', got {split!r}")
        if not len(pool):
            raise ValueError(f"the world has no {split} users")
        users = pool[rng.integers(0, len(pool), size=n)]
        return users, draw_contexts(self.catalogue, self.config, rng, users)

    def candidate_pools(self, users: np.ndarray, size: int, explicit_filter: bool = False) -> np.ndarray:
        """Not available: candidate pools always come from the learned world (docs/design.md, "Sim-to-real run")."""
        raise NotImplementedError(
            "the ground-truth world has no candidate pools: in a sim-to-real run the pools come from the "
            "learned world built from this world's logs (world_model), and the ground truth only answers"
        )

    # --- ids ---------------------------------------------------------------------------------------

    def user_index(self, ids: np.ndarray | pd.Series | list[str]) -> np.ndarray:
        """Indices of user ids; raises ``KeyError`` naming ids the world does not have."""
        return _index(self.user_ids, ids, "user")

    def track_index(self, ids: np.ndarray | pd.Series | list[str]) -> np.ndarray:
        """Indices of track ids; raises ``KeyError`` naming ids the world does not have."""
        return _index(self.track_ids, ids, "track")

    # --- logs --------------------------------------------------------------------------------------

    def simulate(self, n_sessions: int | None = None, seed: int = 0) -> SimulatedSessions:
        """Simulate logged sessions as arrays (with their exact response probabilities).

        Args:
            n_sessions: sessions to simulate; default ``config.n_sessions``.
            seed: seed of the logs; the world's seed is mixed in, so two worlds never share logs.
        """
        n = self.config.n_sessions if n_sessions is None else int(n_sessions)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, int(seed)]))
        return simulate_sessions(self.session_model, self.catalogue, self.config, n, rng)

    def simulate_logs(self, n_sessions: int | None = None, seed: int = 0) -> ListeningLog:
        """The world's listening logs: :meth:`simulate` as a :class:`musicenv.data.ListeningLog`
        with the world's tracks and block lists. Same seed, same logs."""
        return self.log_of(self.simulate(n_sessions, seed))

    def log_of(self, sessions: SimulatedSessions) -> ListeningLog:
        """Simulated ``sessions`` as the world's listening log (:meth:`simulate_logs`' second half), for
        a caller that keeps the sessions' exact probabilities too."""
        from musicenv.data import ListeningLog

        plays = log_frames(sessions, self.config, self.user_ids, self.track_ids, self.catalogue.premium)
        return ListeningLog.from_frames(plays, self.tracks, self.blocks)


def _ids(prefix: str, n: int, min_width: int) -> np.ndarray:
    """Zero-padded ids of one width, so that sorted order is index order."""
    width = max(min_width, len(str(max(n - 1, 0))))
    return np.char.add(prefix, np.char.zfill(np.arange(n).astype(str), width))


def _index(known: np.ndarray, ids: np.ndarray | pd.Series | list[str], kind: str) -> np.ndarray:
    wanted = np.asarray(ids, dtype=str)
    index = np.searchsorted(known, wanted)
    found = index < len(known)
    found[found] = known[index[found]] == wanted[found]
    if not found.all():
        missing = list(dict.fromkeys(wanted[~found]))
        raise KeyError(f"unknown {kind} ids ({len(missing)}): {missing[:5]}")
    return index.astype(np.int64)
