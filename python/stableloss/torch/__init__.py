"""stableloss for PyTorch: the losses of ``torch.nn.functional`` and ``torch.nn`` on CPU tensors, computed
by the stableloss kernels, with autograd.

Swap one import::

    import stableloss.torch as F        # instead of: import torch.nn.functional as F
    loss = F.cross_entropy(model(x), y)
    loss.backward()

The functions keep torch's signatures and defaults (``sigmoid_focal_loss``: torchvision's), plus a
keyword-only ``backend``; the modules (``CrossEntropyLoss`` ...) keep torch's constructors.  The gradient comes from the same kernel call as
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

from ._functional import (binary_cross_entropy_with_logits, cross_entropy, gaussian_nll_loss, huber_loss, kl_div,
                          l1_loss, linear_cross_entropy, log_softmax, logsumexp, mse_loss, nll_loss, poisson_nll_loss,
                          sigmoid_focal_loss, smooth_l1_loss, softmax)
from ._modules import (BCEWithLogitsLoss, CrossEntropyLoss, GaussianNLLLoss, HuberLoss, KLDivLoss, L1Loss, MSELoss,
                       NLLLoss, PoissonNLLLoss, SmoothL1Loss)

__all__ = [
    "cross_entropy",
    "linear_cross_entropy",
    "nll_loss",
    "binary_cross_entropy_with_logits",
    "gaussian_nll_loss",
    "kl_div",
    "mse_loss",
    "l1_loss",
    "smooth_l1_loss",
    "huber_loss",
    "sigmoid_focal_loss",
    "poisson_nll_loss",
    "logsumexp",
    "log_softmax",
    "softmax",
    "CrossEntropyLoss",
    "NLLLoss",
    "BCEWithLogitsLoss",
    "GaussianNLLLoss",
    "KLDivLoss",
    "MSELoss",
    "L1Loss",
    "SmoothL1Loss",
    "HuberLoss",
    "PoissonNLLLoss",
]
