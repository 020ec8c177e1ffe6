"""Track vectors from listening sessions: word2vec's continuous bag of words with negative sampling.

De Boom et al. ("Large-scale user modeling with recurrent neural networks for music discovery",
2017) learn a vector per track the way word2vec (Mikolov et al., 2013) learns a vector per word:
each listening session is an ordered "document" whose "words" are its tracks, and a track is
predicted from the tracks around it. Tracks that are played in the same sessions, near each
other, end up with nearby vectors, whatever their audio or their listeners' ALS factors say.

The model (CBOW with negative sampling, Mikolov et al. 2013, "Distributed representations of
words and phrases and their compositionality")
    For a track ``w_t`` at position ``t`` of a session, its context is the up to ``2 * window``
    tracks at positions ``t - window .. t + window`` (other than ``t``) of the same session. The
    context vector ``h`` is the mean of their *input* vectors; the loss is

        -log sigma(u_{w_t} . h) - sum_{k=1..K} log sigma(-u_{n_k} . h)

    with *output* vectors ``u`` and ``K = negatives`` noise tracks ``n_k`` drawn from the
    tracks' document frequencies raised to the power 3/4 (word2vec's noise distribution). The
    track vectors are the input vectors, as in word2vec. Frequent-word subsampling is not used:
    a session is short (at most 20 plays in the MSSD) and its popular tracks are as much part of
    its context as its rare ones.

Why torch and not gensim
    gensim's ``Word2Vec`` is the reference implementation, but it would be a new core
    dependency (with its own compiled extension) for one model of a few dozen lines, and its
    training is reproducible only with a single worker thread and a fixed ``PYTHONHASHSEED``.
    This module trains the same objective with torch, already a core dependency: sparse
    embeddings and :class:`torch.optim.SparseAdam`, so each step touches only the rows of the
    tracks in its batch (the cost does not grow with the catalogue), seeded through one
    :class:`torch.Generator`, bit-for-bit deterministic on the CPU.

Usage::

    documents = Documents.from_sequences([[3, 7, 7, 1], [1, 3]])
    vectors = fit_session_vectors(documents, n_tracks=10, config=SessionVectorConfig(dim=16))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class SessionVectorConfig:
    """Settings of the CBOW track vectors.

    Attributes:
        dim: vector dimension (De Boom et al. use 100 for millions of tracks; 32 suffices for the
            default ground-truth world's 5,000 tracks in an 8-dimensional taste space).
        window: tracks on each side of the target that form its context (word2vec's default 5).
        negatives: noise tracks per target (word2vec's default 5).
        epochs: passes over every (context, target) example.
        learning_rate: SparseAdam step size.
        batch_size: examples per step.
        noise_power: exponent on document frequencies of the noise distribution (word2vec's 3/4).
    """

    dim: int = 32
    window: int = 5
    negatives: int = 5
    epochs: int = 5
    learning_rate: float = 0.01
    batch_size: int = 1024
    noise_power: float = 0.75

    def __post_init__(self) -> None:
        if min(self.dim, self.window, self.negatives, self.epochs, self.batch_size) < 1:
            raise ValueError(
                "SessionVectorConfig: dim, window, negatives, epochs and batch_size must be positive, "
                f"got {dataclasses.asdict(self)}"
            )
        if self.learning_rate <= 0:
            raise ValueError(f"SessionVectorConfig.learning_rate must be positive, got {self.learning_rate}")


@dataclass(frozen=True)
class Documents:
    """Ordered track sequences (sessions, or a listener's plays) in one flat array.

    Attributes:
        tokens: ``(P,)`` int64 track indices of every document, one after the other.
        offsets: ``(D + 1,)`` int64; document ``d`` is ``tokens[offsets[d]:offsets[d + 1]]``.
    """

    tokens: np.ndarray
    offsets: np.ndarray

    @classmethod
    def from_sequences(cls, sequences: Sequence[Sequence[int] | np.ndarray]) -> Documents:
        lengths = np.array([len(s) for s in sequences], dtype=np.int64)
        tokens = (
            np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences])
            if len(sequences)
            else np.empty(0, np.int64)
        )
        return cls(tokens.astype(np.int64), np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))

    @property
    def n_documents(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __getitem__(self, document: int) -> np.ndarray:
        return self.tokens[self.offsets[document] : self.offsets[document + 1]]

    def document_of_token(self) -> np.ndarray:
        """``(P,)`` int64, the document each token belongs to."""
        return np.repeat(np.arange(self.n_documents, dtype=np.int64), self.lengths)


def cbow_examples(documents: Documents, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (context, target) example of the documents.

    Returns:
        ``(contexts, targets)``: ``contexts`` ``(E, 2 * window)`` int64 track indices, ``-1`` where
        the document ends before the window does; ``targets`` ``(E,)`` int64. Only tokens with at
        least one context track are examples (a one-track document has none).
    """
    tokens, owner = documents.tokens, documents.document_of_token()
    n = len(tokens)
    offsets = [o for o in range(-window, window + 1) if o != 0]
    contexts = np.full((n, len(offsets)), -1, dtype=np.int64)
    positions = np.arange(n)
    for column, offset in enumerate(offsets):
        other = positions + offset
        inside = (other >= 0) & (other < n)
        inside[inside] &= owner[other[inside]] == owner[inside]
        contexts[inside, column] = tokens[other[inside]]
    keep = (contexts >= 0).any(axis=1)
    return contexts[keep], tokens[keep]


class CBOW(nn.Module):
    """Input and output track vectors of CBOW; row ``n_tracks`` of the input table is the padding."""

    def __init__(self, n_tracks: int, dim: int) -> None:
        super().__init__()
        self.n_tracks = n_tracks
        self.inputs = nn.Embedding(n_tracks + 1, dim, padding_idx=n_tracks, sparse=True)
        self.outputs = nn.Embedding(n_tracks, dim, sparse=True)
        with torch.no_grad():
            # word2vec's initialisation: small uniform inputs, zero outputs.
            self.inputs.weight.uniform_(-0.5 / dim, 0.5 / dim)
            self.inputs.weight[n_tracks] = 0.0
            self.outputs.weight.zero_()

    def loss(self, contexts: torch.Tensor, targets: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Mean negative-sampling loss of a batch: ``contexts`` (B, C) with -1 padding, ``targets``
        (B,), ``noise`` (B, K)."""
        present = contexts >= 0
        rows = torch.where(present, contexts, self.n_tracks)
        hidden = self.inputs(rows).sum(dim=1) / present.sum(dim=1, keepdim=True).clamp(min=1)
        positive = (self.outputs(targets) * hidden).sum(dim=-1)
        negative = torch.einsum("bkd,bd->bk", self.outputs(noise), hidden)
        return -(nn.functional.logsigmoid(positive) + nn.functional.logsigmoid(-negative).sum(dim=-1)).mean()


def noise_distribution(documents: Documents, n_tracks: int, power: float) -> np.ndarray:
    """word2vec's noise distribution: document frequency ``** power``, normalised (float64)."""
    counts = np.bincount(documents.tokens, minlength=n_tracks).astype(np.float64)
    weights = counts**power
    total = weights.sum()
    if total == 0:
        raise ValueError("the documents hold no tracks to learn vectors from")
    return weights / total


def fit_session_vectors(
    documents: Documents, n_tracks: int, config: SessionVectorConfig | None = None, seed: int = 0
) -> np.ndarray:
    """Learn CBOW track vectors from ordered documents of track indices.

    Args:
        documents: sessions as :class:`Documents` of track indices in ``[0, n_tracks)``.
        n_tracks: catalogue size (rows of the result).
        config: settings; the defaults when None.
        seed: seeds the initial vectors, the example order and the noise draws.

    Returns:
        ``(n_tracks, dim)`` float32 input vectors; all zeros for a track that never occurs in a
        document with a neighbour (it has no context to be learned from).

    Raises:
        ValueError: a token outside the catalogue, or no document with two tracks.
    """
    config = config or SessionVectorConfig()
    if len(documents.tokens) and (documents.tokens.min() < 0 or documents.tokens.max() >= n_tracks):
        raise ValueError(f"documents hold track indices outside [0, {n_tracks})")
    contexts, targets = cbow_examples(documents, config.window)
    if len(targets) == 0:
        raise ValueError("no document has two tracks: CBOW needs a context for each target")
    noise = torch.as_tensor(noise_distribution(documents, n_tracks, config.noise_power))
    generator = torch.Generator().manual_seed(int(seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = CBOW(n_tracks, config.dim)
    optimizer = torch.optim.SparseAdam(list(model.parameters()), lr=config.learning_rate)
    contexts_t, targets_t = torch.as_tensor(contexts), torch.as_tensor(targets)
    for _ in range(config.epochs):
        order = torch.randperm(len(targets_t), generator=generator)
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            drawn = torch.multinomial(noise, len(batch) * config.negatives, replacement=True, generator=generator)
            loss = model.loss(contexts_t[batch], targets_t[batch], drawn.view(len(batch), config.negatives))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    vectors = model.inputs.weight.detach()[:n_tracks].numpy().astype(np.float32, copy=True)
    vectors[np.bincount(contexts[contexts >= 0], minlength=n_tracks) == 0] = 0.0
    return vectors
