"""stableloss for PyTorch: the losses of ``torch.nn.functional`` and ``torch.nn`` on CPU tensors, computed
by the stableloss kernels, with autograd.

Swap one import::

    import stableloss.torch as F        # instead of: import torch.nn.functional as F
    loss = F.cross_entropy(model(x), y)
    loss.backward()

The functions keep torch's signatures and defaults, plus a keyword-only ``backend``; the modules
(``CrossEntropyLoss`` ...) keep torch's constructors.  The gradient comes from the same kernel call as
the loss and is saved for backward (none is computed when nothing requires grad).  Each function is a
custom operator (``stableloss::<name>``), so ``torch.compile(fullgraph=True)`` traces it without a graph
break, and DistributedDataParallel treats it like any other op.  Tensors must be on the CPU; float16
and bfloat16 compute in float32 and return their own dtype.  Double backward (``create_graph=True``)
raises.  ``import stableloss`` never imports torch; this module needs it.
"""

try:
    import torch  # noqa: F401  (absolute import: PyTorch itself)
except ImportError as exc:
    raise ImportError("stableloss.torch needs PyTorch; install its CPU build: "
                      "pip install torch --index-url https://download.pytorch.org/whl/cpu") from exc

from ._functional import (binary_cross_entropy_with_logits, cross_entropy, gaussian_nll_loss, kl_div,
                          linear_cross_entropy, log_softmax, logsumexp, mse_loss, poisson_nll_loss, softmax)
from ._modules import BCEWithLogitsLoss, CrossEntropyLoss, GaussianNLLLoss, KLDivLoss, MSELoss, PoissonNLLLoss

__all__ = [
    "cross_entropy",
    "linear_cross_entropy",
    "binary_cross_entropy_with_logits",
    "gaussian_nll_loss",
    "kl_div",
    "mse_loss",
    "poisson_nll_loss",
    "logsumexp",
    "log_softmax",
    "softmax",
    "CrossEntropyLoss",
    "BCEWithLogitsLoss",
    "GaussianNLLLoss",
    "KLDivLoss",
    "MSELoss",
    "PoissonNLLLoss",
]
