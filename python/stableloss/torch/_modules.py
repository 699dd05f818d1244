"""The ``torch.nn`` loss modules of stableloss.torch: torch's own classes (constructor arguments, the
``weight``/``pos_weight`` buffers, ``state_dict``, ``.to()``, pickling, ``repr``) with a forward on the
stableloss functions, and a keyword-only ``backend``."""

import torch

from . import _functional as F


class _OnStableloss:
    """The keyword-only ``backend`` of every module; the rest of the constructor is torch's."""

    def __init__(self, *args, backend=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.backend = backend

    def extra_repr(self):
        shown = super().extra_repr()
        return shown if self.backend is None else ", ".join(filter(None, [shown, f"backend={self.backend!r}"]))


class CrossEntropyLoss(_OnStableloss, torch.nn.CrossEntropyLoss):
    """:class:`torch.nn.CrossEntropyLoss` computed by :func:`stableloss.torch.cross_entropy`."""

    def forward(self, input, target):
        return F.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing, backend=self.backend)


class NLLLoss(_OnStableloss, torch.nn.NLLLoss):
    """:class:`torch.nn.NLLLoss` computed by :func:`stableloss.torch.nll_loss`."""

    def forward(self, input, target):
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index, reduction=self.reduction,
                          backend=self.backend)


class BCEWithLogitsLoss(_OnStableloss, torch.nn.BCEWithLogitsLoss):
    """:class:`torch.nn.BCEWithLogitsLoss` computed by
    :func:`stableloss.torch.binary_cross_entropy_with_logits`."""

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, self.weight, reduction=self.reduction,
                                                  pos_weight=self.pos_weight, backend=self.backend)


class GaussianNLLLoss(_OnStableloss, torch.nn.GaussianNLLLoss):
    """:class:`torch.nn.GaussianNLLLoss` computed by :func:`stableloss.torch.gaussian_nll_loss`."""

    def forward(self, input, target, var):
        return F.gaussian_nll_loss(input, target, var, full=self.full, eps=self.eps, reduction=self.reduction,
                                   backend=self.backend)


class KLDivLoss(_OnStableloss, torch.nn.KLDivLoss):
    """:class:`torch.nn.KLDivLoss` computed by :func:`stableloss.torch.kl_div`."""

    def forward(self, input, target):
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target, backend=self.backend)


class MSELoss(_OnStableloss, torch.nn.MSELoss):
    """:class:`torch.nn.MSELoss` computed by :func:`stableloss.torch.mse_loss`."""

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction, backend=self.backend)


class L1Loss(_OnStableloss, torch.nn.L1Loss):
    """:class:`torch.nn.L1Loss` computed by :func:`stableloss.torch.l1_loss`."""

    def forward(self, input, target):
        return F.l1_loss(input, target, reduction=self.reduction, backend=self.backend)


class SmoothL1Loss(_OnStableloss, torch.nn.SmoothL1Loss):
    """:class:`torch.nn.SmoothL1Loss` computed by :func:`stableloss.torch.smooth_l1_loss`."""

    def forward(self, input, target):
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta, backend=self.backend)


class HuberLoss(_OnStableloss, torch.nn.HuberLoss):
    """:class:`torch.nn.HuberLoss` computed by :func:`stableloss.torch.huber_loss`."""

    def forward(self, input, target):
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta, backend=self.backend)


class PoissonNLLLoss(_OnStableloss, torch.nn.PoissonNLLLoss):
    """:class:`torch.nn.PoissonNLLLoss` computed by :func:`stableloss.torch.poisson_nll_loss`."""

    def forward(self, log_input, target):
        return F.poisson_nll_loss(log_input, target, log_input=self.log_input, full=self.full, eps=self.eps,
                                  reduction=self.reduction, backend=self.backend)
