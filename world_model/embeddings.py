"""Listener and track factors by implicit-feedback ALS (Hu, Koren & Volinsky, ICDM 2008).

The factors are fitted by ``implicit`` (Frederickson's library) with its conjugate-gradient
solver (Takács, Pilászy & Tikk, RecSys 2011), on the CPU by default or on a CUDA GPU through
``implicit.gpu`` when asked. The input is a *confidence* matrix from
:func:`world_model.interactions.confidence_matrix`, which already applies Hu et al.'s
``c = 1 + alpha * r``; implicit's own ``alpha`` is therefore left at 1 (it would only rescale
the stored values).

Determinism
    implicit seeds the initial factors from ``random_state``. On the CPU each listener's (and
    each track's) least-squares solve reads only the other side's fixed factors, so the result does
    not depend on how its threads share the rows: the same seed gives bit-identical factors for
    any ``num_threads`` (tested). The shared Gram matrix ``Y^T Y`` is a BLAS product, which this
    module runs with one BLAS thread (implicit's own advice, and what keeps it reproducible).
    The GPU solver is seeded too but not bit-reproducible across devices.
"""

from __future__ import annotations

import os

# implicit's threads and OpenBLAS's threads multiply; implicit warns and slows down many-fold
# unless BLAS is single-threaded. The variable only counts if set before OpenBLAS loads, so the
# fit below also limits BLAS threads at run time for programs that imported numpy first.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

DEVICES = ("cpu", "cuda")


def fit_als(
    confidence: sp.csr_matrix,
    factors: int,
    regularization: float,
    iterations: int,
    seed: int,
    device: str = "cpu",
    num_threads: int = 0,
    show_progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit ALS factors to a signed confidence matrix.

    Args:
        confidence: ``(n_users, n_items)`` CSR as :func:`~world_model.interactions.confidence_matrix`
            returns it.
        factors: latent dimension.
        regularization: L2 penalty ``lambda`` on both factor matrices.
        iterations: ALS sweeps (each solves users, then items).
        seed: ``random_state`` of the initial factors.
        device: ``"cpu"`` or ``"cuda"`` (``implicit.gpu``; a clear error when implicit was built
            without CUDA, as its pip wheels are).
        num_threads: CPU threads, 0 for all cores; ignored on the GPU.
        show_progress: implicit's tqdm bar over the sweeps.

    Returns:
        ``(user_factors, item_factors)`` float32 numpy arrays. A row with no stored entries
        (a track nobody played, a listener whose plays all weigh 0) is all zeros: implicit's
        solver sets it so, and every inner product with it is 0.
    """
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    confidence = sp.csr_matrix(confidence, dtype=np.float32)
    settings = {
        "factors": factors,
        "regularization": regularization,
        "alpha": 1.0,
        "iterations": iterations,
        "random_state": seed,
    }
    with threadpool_limits(limits=1, user_api="blas"):
        if device == "cuda":
            import implicit.gpu

            if not implicit.gpu.HAS_CUDA:
                raise RuntimeError(
                    "device='cuda' needs implicit built with CUDA (implicit.gpu.HAS_CUDA is False); "
                    "pip wheels of implicit are CPU-only, conda-forge's implicit has the GPU build. "
                    "Use device='cpu'."
                )
            import implicit.gpu.als

            model = implicit.gpu.als.AlternatingLeastSquares(**settings)
            model.fit(confidence, show_progress=show_progress)
            model = model.to_cpu()
        else:
            import implicit.cpu.als

            model = implicit.cpu.als.AlternatingLeastSquares(**settings, num_threads=num_threads)
            model.fit(confidence, show_progress=show_progress)
    users = np.ascontiguousarray(model.user_factors, dtype=np.float32)
    items = np.ascontiguousarray(model.item_factors, dtype=np.float32)
    return users, items
