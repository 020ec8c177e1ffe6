"""The taste model: a GRU that reads the vectors of what a listener played and predicts the next.

De Boom et al. (2017) feed the word2vec vectors of a listener's plays, in order, to a recurrent
network whose output after each play is a prediction of the *vector* of the next play, the
listener's current "taste vector"; the tracks nearest to it are the recommendations. They train
it with an L2 loss between the predicted and the actual next vector, which needs no softmax over
the catalogue and so scales to any catalogue size.

Losses
    ``"l2"`` (the paper's): mean over predicted steps of ``|prediction - v_next|^2``.
    ``"sampled_softmax"`` (a variant, measured in ``benchmarks/retrieval.py``): the prediction's
    inner products with the next track's vector and with ``softmax_negatives`` noise tracks
    (drawn uniformly from the tracks that have a vector, shared by the batch) are logits of a
    softmax whose label is the true next track. It ranks rather than regresses, so it pushes the
    prediction towards the next track *and away from others*.

Training sequences are each listener's non-skipped plays in time order, cut into chunks of at
most ``max_length`` (the same sequences the retrieval stage feeds at query time: the listener's
recent plays, then the session so far; see :mod:`world_model.sequence`). Training is seeded and
runs on the CPU deterministically.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from world_model.session_vectors import Documents

LOSSES = ("l2", "sampled_softmax")


@dataclass(frozen=True)
class TasteModelConfig:
    """Settings of the GRU taste model.

    Attributes:
        hidden_size: GRU state size.
        max_length: plays per training sequence (a listener's plays are cut into chunks).
        epochs: passes over the training sequences.
        learning_rate: Adam step size.
        batch_size: sequences per step.
        loss: ``"l2"`` (De Boom et al.) or ``"sampled_softmax"`` (see the module docstring).
        softmax_negatives: noise tracks per batch of the sampled softmax.
    """

    hidden_size: int = 64
    max_length: int = 30
    epochs: int = 8
    learning_rate: float = 3e-3
    batch_size: int = 128
    loss: str = "l2"
    softmax_negatives: int = 256

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"TasteModelConfig.loss must be one of {LOSSES}, got {self.loss!r}")
        if min(self.hidden_size, self.epochs, self.batch_size, self.softmax_negatives) < 1 or self.max_length < 2:
            raise ValueError(
                "TasteModelConfig: hidden_size, epochs, batch_size, softmax_negatives must be positive and "
                f"max_length at least 2, got {dataclasses.asdict(self)}"
            )


class TasteModel(nn.Module):
    """GRU over track vectors, then a linear map to the predicted next-track vector.

    Args:
        dim: track vector dimension (input and output).
        hidden_size: GRU state size.
    """

    def __init__(self, dim: int, hidden_size: int) -> None:
        super().__init__()
        self.dim = dim
        self.hidden_size = hidden_size
        self.gru = nn.GRU(dim, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, dim)

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        """``(B, T, dim)`` inputs to ``(B, T, dim)`` predictions: step ``t`` predicts play ``t + 1``."""
        hidden, _ = self.gru(vectors)
        return self.head(hidden)

    @torch.no_grad()
    def taste(self, vectors: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The prediction after the last real play of each right-padded sequence: ``(B, dim)``.

        A sequence of length 0 gets the zero vector (no taste to speak of).
        """
        if vectors.shape[1] == 0:
            return torch.zeros(len(vectors), self.dim)
        out = self(vectors)[torch.arange(len(vectors)), (lengths - 1).clamp(min=0)]
        return torch.where((lengths > 0)[:, None], out, torch.zeros_like(out))


def chunk_sequences(documents: Documents, length: int) -> list[np.ndarray]:
    """Cut every document into chunks of at most ``length`` plays that overlap by one play (so no
    transition is lost); chunks of fewer than 2 plays are dropped."""
    chunks = []
    for d in range(documents.n_documents):
        tokens = documents[d]
        for start in range(0, max(len(tokens) - 1, 0), length - 1):
            chunks.append(tokens[start : start + length])
    return chunks


def padded(track_vectors: np.ndarray, sequences: list[np.ndarray], length: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded ``(B, length, dim)`` float32 vectors of ``sequences`` and their ``(B,)`` lengths."""
    out = np.zeros((len(sequences), length, track_vectors.shape[1]), dtype=np.float32)
    lengths = np.zeros(len(sequences), dtype=np.int64)
    for row, sequence in enumerate(sequences):
        sequence = np.asarray(sequence, dtype=np.int64)[-length:] if length else np.empty(0, np.int64)
        out[row, : len(sequence)] = track_vectors[sequence]
        lengths[row] = len(sequence)
    return out, lengths


def fit_taste_model(
    documents: Documents,
    track_vectors: np.ndarray,
    config: TasteModelConfig | None = None,
    seed: int = 0,
) -> tuple[TasteModel, list[float]]:
    """Train a :class:`TasteModel` on ordered plays.

    Args:
        documents: each listener's plays in order (track indices).
        track_vectors: ``(n_tracks, dim)`` float32, the vectors fed and predicted.
        config: settings; the defaults when None.
        seed: seeds the initial weights, the batch order and the softmax noise.

    Returns:
        The trained model (in eval mode) and the mean training loss of each epoch.

    Raises:
        ValueError: no sequence of two plays to learn from.
    """
    config = config or TasteModelConfig()
    chunks = chunk_sequences(documents, config.max_length + 1)
    if not chunks:
        raise ValueError("no listener has two plays in order: the taste model has nothing to learn")
    inputs, _ = padded(track_vectors, chunks, config.max_length + 1)
    tracks = np.full((len(chunks), config.max_length + 1), -1, dtype=np.int64)
    for row, chunk in enumerate(chunks):
        tracks[row, : len(chunk)] = chunk
    vectors_t = torch.as_tensor(track_vectors)
    inputs_t, tracks_t = torch.as_tensor(inputs), torch.as_tensor(tracks)
    valid = tracks_t[:, 1:] >= 0
    with_vector = torch.as_tensor(np.flatnonzero(np.any(track_vectors != 0, axis=1)))
    generator = torch.Generator().manual_seed(int(seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = TasteModel(track_vectors.shape[1], config.hidden_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    history = []
    model.train()
    for _ in range(config.epochs):
        order = torch.randperm(len(chunks), generator=generator)
        total, count = 0.0, 0
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            predictions = model(inputs_t[batch, :-1])
            mask = valid[batch]
            predicted = predictions[mask]
            if config.loss == "l2":
                loss = ((predicted - inputs_t[batch, 1:][mask]) ** 2).sum(dim=-1).mean()
            else:
                pick = torch.randint(len(with_vector), (config.softmax_negatives,), generator=generator)
                noise = vectors_t[with_vector[pick]]
                positive = (predicted * inputs_t[batch, 1:][mask]).sum(dim=-1, keepdim=True)
                logits = torch.cat([positive, predicted @ noise.T], dim=1)
                loss = nn.functional.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.int64))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
            count += len(batch)
        history.append(total / count)
    model.eval()
    return model, history
