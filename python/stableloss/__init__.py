"""stableloss: loss functions with their gradients, exact at extreme inputs and fast on the CPU.

The public contract is ``__all__``: the losses of ``torch.nn.functional`` for numpy arrays, the
log-sum-exp family, and the backend and thread controls.  Two classes come with them, to catch or
filter: ``BackendUnavailable`` (an ImportError: a requested backend does not load here) and
``CExtensionWarning`` (issued once when the C kernels did not load and another backend serves).
"""

from . import _api
from ._api import *  # noqa: F401,F403  (the public functions, _api.__all__)
from ._dispatch import BackendUnavailable, CExtensionWarning, available_backends, get_num_threads, set_num_threads

__all__ = [*_api.__all__, "available_backends", "set_num_threads", "get_num_threads"]
__version__ = "0.1.0"
