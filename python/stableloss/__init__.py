"""stableloss: loss functions with their gradients, exact at extreme inputs and fast on the CPU.

The public contract is ``__all__``: the losses of ``torch.nn.functional`` for numpy arrays, the
log-sum-exp family, and the backend and thread controls.  Two classes come with them, to catch or
filter: ``BackendUnavailable`` (an ImportError: a requested backend does not load here) and
``CExtensionWarning`` (issued once when the C kernels did not load and another backend serves).
"""

from ._api import (binary_cross_entropy_with_logits, cross_entropy, gaussian_nll_loss, kl_div,
                   log_softmax, logsumexp, mse_loss, softmax)
from ._dispatch import BackendUnavailable, CExtensionWarning, available_backends, get_num_threads, set_num_threads

__all__ = [
    "cross_entropy",
    "binary_cross_entropy_with_logits",
    "gaussian_nll_loss",
    "kl_div",
    "mse_loss",
    "logsumexp",
    "log_softmax",
    "softmax",
    "available_backends",
    "set_num_threads",
    "get_num_threads",
]
__version__ = "0.1.0"
