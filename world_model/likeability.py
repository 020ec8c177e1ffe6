"""The likeability classifier: will this listener like this track, from its audio features alone?

Accounts of Spotify's recommender describe a dense network that predicts whether a listener
likes a track from the track's audio features (a few thousand liked and disliked songs, two
hidden ReLU layers, a sigmoid output, Adam and binary cross-entropy; ~98% train and ~80%
validation accuracy). Here "like" is the log's own signal, a play listened to the end
(``complete``), and the listener enters through their features (the world's user features: ALS
factors and the premium flag), so one network serves every listener:

    x = standardise([user features, track's acoustic block]),   P(like) = sigmoid(MLP(x))

The inputs are standardised by scikit-learn's :class:`~sklearn.preprocessing.StandardScaler`
fitted on the training plays; the network (:class:`LikeabilityNetwork`) is trained with Adam on
the binary cross-entropy (``BCEWithLogitsLoss``: the sigmoid and the cross-entropy in one,
numerically stable step), full epochs over seeded shuffles, on one CPU thread.

It differs from the world's sequential user-response model in what it cannot see: the session
(position, what was played before, skip runs, fatigue), the context and the listener's history
with the track. ``benchmarks/classics.py`` measures both on the same plays of held-out listeners.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.preprocessing import StandardScaler
from torch import nn

from world_model.metrics import auc

COMPLETE = 2
"""Response code of a completed play: the "like" label."""


@dataclass(frozen=True)
class LikeabilityConfig:
    """Settings of the likeability classifier.

    Attributes:
        hidden_size: width of each of the two hidden ReLU layers.
        epochs: full passes over the training plays.
        batch_size: plays per Adam step.
        learning_rate: Adam's step size.
        seed: seeds the initial weights and the shuffles.
    """

    hidden_size: int = 64
    epochs: int = 5
    batch_size: int = 512
    learning_rate: float = 1e-3
    seed: int = 0


class LikeabilityNetwork(nn.Module):
    """Two hidden ReLU layers and one logit: ``P(like) = sigmoid(forward(x))``."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(input_size, hidden_size),
            nn.ReLU(),
            nn.Linear(hidden_size, hidden_size),
            nn.ReLU(),
            nn.Linear(hidden_size, 1),
        )

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.layers(inputs).squeeze(-1)


class LikeabilityClassifier:
    """A fitted scaler and network; build with :meth:`fit`, or from saved arrays with :meth:`from_state`.

    Attributes:
        scaler_mean, scaler_scale: ``(d,)`` the standardisation of the inputs.
        network: the trained :class:`LikeabilityNetwork` (eval mode).
        losses: mean training loss per epoch.
    """

    def __init__(self, scaler_mean: np.ndarray, scaler_scale: np.ndarray, network: LikeabilityNetwork) -> None:
        self.scaler_mean = np.asarray(scaler_mean, dtype=np.float32)
        self.scaler_scale = np.asarray(scaler_scale, dtype=np.float32)
        self.network = network.eval()
        self.losses: list[float] = []

    @classmethod
    def fit(
        cls, inputs: np.ndarray, likes: np.ndarray, config: LikeabilityConfig | None = None
    ) -> LikeabilityClassifier:
        """Train on ``(n, d)`` inputs (user features then track features) and ``(n,)`` bool likes."""
        config = config or LikeabilityConfig()
        torch.set_num_threads(1)
        scaler = StandardScaler().fit(inputs)
        x = torch.as_tensor(scaler.transform(inputs), dtype=torch.float32)
        y = torch.as_tensor(np.asarray(likes, dtype=np.float32))
        generator = torch.Generator().manual_seed(config.seed)
        torch.manual_seed(config.seed)
        network = LikeabilityNetwork(x.shape[1], config.hidden_size)
        optimiser = torch.optim.Adam(network.parameters(), lr=config.learning_rate)
        loss_of = nn.BCEWithLogitsLoss()
        losses = []
        for _ in range(config.epochs):
            order = torch.randperm(len(x), generator=generator)
            total = 0.0
            for start in range(0, len(x), config.batch_size):
                batch = order[start : start + config.batch_size]
                loss = loss_of(network(x[batch]), y[batch])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(batch)
            losses.append(total / max(len(x), 1))
        classifier = cls(scaler.mean_, scaler.scale_, network)
        classifier.losses = losses
        return classifier

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], weights: dict[str, torch.Tensor]) -> LikeabilityClassifier:
        """Rebuild from :meth:`state` (the scaler's arrays and the network's state dict)."""
        network = LikeabilityNetwork(len(arrays["scaler_mean"]), weights["layers.0.weight"].shape[0])
        network.load_state_dict(weights)
        return cls(arrays["scaler_mean"], arrays["scaler_scale"], network)

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, torch.Tensor]]:
        """The scaler's arrays and the network's state dict, for saving."""
        return {"scaler_mean": self.scaler_mean, "scaler_scale": self.scaler_scale}, self.network.state_dict()

    @torch.no_grad()
    def like_probs(self, inputs: np.ndarray) -> np.ndarray:
        """``P(like)`` of ``(..., d)`` inputs: ``(...)`` float64."""
        inputs = np.asarray(inputs, dtype=np.float32)
        scaled = (inputs - self.scaler_mean) / self.scaler_scale
        logits = self.network(torch.as_tensor(scaled.reshape(-1, scaled.shape[-1])))
        return torch.sigmoid(logits).double().numpy().reshape(inputs.shape[:-1])


def classification_metrics(probs: np.ndarray, likes: np.ndarray) -> dict[str, float]:
    """Accuracy at the 0.5 threshold, AUC, and the share of likes (the accuracy of always saying "like")."""
    likes = np.asarray(likes, dtype=bool)
    return {
        "accuracy": float(np.mean((np.asarray(probs) >= 0.5) == likes)),
        "auc": auc(probs, likes),
        "like_rate": float(likes.mean()),
    }
