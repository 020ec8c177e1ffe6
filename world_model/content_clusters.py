"""Content clusters of the catalogue: min-max scaled audio features, KMeans, and a cluster classifier.

Accounts of Spotify's content-based exploration describe: audio features scaled to ``[0, 1]``,
the catalogue clustered by KMeans with k chosen by the elbow or the silhouette, a
logistic-regression classifier that assigns a track to its cluster (so a new track needs no
re-clustering), and a listener's taste as the mean vector of the tracks they liked, against which
tracks rank by cosine distance. All of it is scikit-learn's: :class:`~sklearn.preprocessing.MinMaxScaler`,
:class:`~sklearn.cluster.KMeans`, :func:`~sklearn.metrics.silhouette_score`,
:class:`~sklearn.linear_model.LogisticRegression`.

Choosing k
    KMeans is fitted for every k of ``k_range`` (``n_init`` seeded restarts each); the k with the
    highest silhouette (on a seeded sample of ``silhouette_sample`` tracks) is kept. Every k's
    silhouette and inertia (the elbow curve) are kept in :attr:`ContentClusters.silhouettes` and
    :attr:`ContentClusters.inertias` for the report. The default range starts at 4 so that a
    listener's clusters leave others to explore.

The cluster classifier
    Fitted on a seeded ``1 - holdout_share`` of the tracks with their KMeans labels; its accuracy
    on the other tracks is :attr:`ContentClusters.classifier_accuracy`. It is then refitted on
    every track, and it is what assigns clusters to tracks at play time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import silhouette_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import MinMaxScaler


@dataclass(frozen=True, eq=False)
class ContentClusters:
    """The fitted scaler, the chosen KMeans, the cluster classifier and the model-selection figures.

    Build with :meth:`fit`.

    Attributes:
        scaler: the :class:`~sklearn.preprocessing.MinMaxScaler` of the features.
        kmeans: the KMeans of the chosen k.
        classifier: the :class:`~sklearn.linear_model.LogisticRegression` from scaled features to clusters.
        silhouettes, inertias: per k tried.
        classifier_accuracy: the classifier's accuracy on the held-out tracks.
    """

    scaler: MinMaxScaler
    kmeans: KMeans
    classifier: LogisticRegression
    silhouettes: dict[int, float]
    inertias: dict[int, float]
    classifier_accuracy: float

    @property
    def k(self) -> int:
        return int(self.kmeans.n_clusters)

    @classmethod
    def fit(
        cls,
        features: np.ndarray,
        k_range: tuple[int, ...] = (4, 6, 8, 10, 12, 16),
        n_init: int = 3,
        silhouette_sample: int = 2000,
        holdout_share: float = 0.2,
        seed: int = 0,
    ) -> ContentClusters:
        """Cluster ``(n_tracks, d)`` audio features (see the module docstring)."""
        scaler = MinMaxScaler().fit(features)
        scaled = scaler.transform(features)
        fits, silhouettes, inertias = {}, {}, {}
        for k in k_range:
            fits[k] = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(scaled)
            inertias[k] = float(fits[k].inertia_)
            silhouettes[k] = float(
                silhouette_score(
                    scaled, fits[k].labels_, sample_size=min(silhouette_sample, len(scaled)), random_state=seed
                )
            )
        kmeans = fits[max(silhouettes, key=lambda k: silhouettes[k])]
        train, test = train_test_split(np.arange(len(scaled)), test_size=holdout_share, random_state=seed)
        held_out = LogisticRegression(max_iter=1000).fit(scaled[train], kmeans.labels_[train])
        accuracy = float(held_out.score(scaled[test], kmeans.labels_[test]))
        classifier = LogisticRegression(max_iter=1000).fit(scaled, kmeans.labels_)
        return cls(scaler, kmeans, classifier, silhouettes, inertias, accuracy)

    def scale(self, features: np.ndarray) -> np.ndarray:
        """Min-max scaled ``(..., d)`` features (float64)."""
        features = np.asarray(features, dtype=np.float64)
        return self.scaler.transform(features.reshape(-1, features.shape[-1])).reshape(features.shape)

    def clusters(self, features: np.ndarray) -> np.ndarray:
        """The classifier's cluster of ``(..., d)`` raw features: ``(...)`` int64."""
        scaled = self.scale(features)
        return self.classifier.predict(scaled.reshape(-1, scaled.shape[-1])).astype(np.int64).reshape(scaled.shape[:-1])


def cosine_distance(taste: np.ndarray, tracks: np.ndarray) -> np.ndarray:
    """``1 - cos`` between ``(N, d)`` taste vectors and ``(N, M, d)`` tracks: ``(N, M)``; 1 where a vector is zero."""
    norms = np.linalg.norm(taste, axis=-1)[:, None] * np.linalg.norm(tracks, axis=-1)
    dots = np.einsum("nd,nmd->nm", taste, tracks)
    return 1.0 - np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)
