"""What the layers know of a loss, declared once per loss beside its public function (``_api.py``).

A :class:`Kernel` is the argument list of ``sl_<stem>_f32/_f64`` (kernels/stableloss.h, checked against
it by tests/test_spec.py): each argument's name, the same in every backend, and its kind.  A loss kernel
follows the calling convention of the header, so :func:`loss_kernel` builds it from the loss's own
inputs, parameters and gradients.  :func:`declare` files a kernel under its stem in :data:`KERNELS`,
which the dispatcher, the backends' loaders and every generic consumer read: no other list of stems
exists.
"""

import dataclasses
import functools
import operator

#: Argument kinds: an array read per row, an array of class indices per row, an array read whole by
#: every row (not split among threads), an integer or float scalar, an output array per row, and the
#: per-block sums.
IN, INDEX, SHARED, INT, FLOAT, OUT, SUMS = "in", "index", "shared", "int", "float", "out", "sums"
ARRAYS = (IN, INDEX, SHARED, OUT, SUMS)


@dataclasses.dataclass(frozen=True)
class Workload:
    """A performance workload: a shape, about 1/100 of it for smoke runs, a dtype, whether the gradient
    is wanted, and the loss's options added to its typical inputs (((name, value), ...))."""

    shape: tuple
    quick_shape: tuple
    dtype: str = "float32"
    grad: bool = True
    options: tuple = ()


@dataclasses.dataclass(frozen=True)
class Bench:
    """How the benchmarks call a loss: the reduction, its performance workloads (docs/design.md), and
    the sizes of the pytest-benchmark suite, the first tiny (its time is the fixed cost of a call)."""

    reduction: str = "mean"
    workloads: tuple = ()
    sizes: tuple = ()


@dataclasses.dataclass(frozen=True)
class Kernel:
    """The kernel of ``stem``: ``args`` is ((name, kind), ...) in the header's order.

    ``outputs``: the output arrays in order (for a loss: ``loss``, then its gradients, each of the
    shape of the input it belongs to, then its extra outputs, each asked for by ``return_<name>=True``
    and returned after the gradients); ``row_width``: the argument holding the number of elements per
    row (None: one element per row); ``function``: the public function; ``variants``: ((keyword,
    function), ...), the other public functions computed by the kernel, each told apart by a keyword
    only it takes (see :meth:`function_of`); ``families``: the stem whose
    stability families it is tested on (default its own); ``bench``: how the benchmarks call it (None:
    not benchmarked); ``constants``: ((name, value), ...), the numeric contract of the kernel, the
    constants that decide a path or a result, the same in every backend (the C kernel defines each as
    ``<STEM>_<NAME>``, checked by tests/test_spec.py); ``gather``: a row is read at one element (nll: its
    target's) and costs its width only through its gradient, so that the dispatcher sizes the blocks and
    the thread split of a call without a gradient by rows (the block sums then group rows differently
    from a call with one: the same values within the reduction budget, not bitwise).
    """

    stem: str
    function: str
    args: tuple
    row_width: str = None
    variants: tuple = ()
    families: str = None
    bench: Bench = None
    constants: tuple = ()
    gather: bool = False

    def constant(self, name):
        """The value of the constant ``name`` of the contract."""
        return dict(self.constants)[name]

    def function_of(self, part):
        """The public function that the keyword arguments ``part`` (a family part, typical inputs) are a
        call of: the variant whose keyword ``part`` holds, else ``function``."""
        return next((function for keyword, function in self.variants if keyword in part), self.function)

    @functools.cached_property
    def family_stem(self):
        return self.families or self.stem

    @functools.cached_property
    def names(self):
        return tuple(name for name, _ in self.args)

    def of_kind(self, *kinds):
        return tuple(name for name, kind in self.args if kind in kinds)

    def position(self, name):
        return self.names.index(name)

    @functools.cached_property
    def in_order(self):
        """The arguments, a dict by name, as the tuple in the header's order (one C-level lookup each)."""
        return operator.itemgetter(*self.names)

    @functools.cached_property
    def outputs(self):
        return self.of_kind(OUT)

    @functools.cached_property
    def gradients(self):
        """The gradient outputs: ``grad`` and ``grad_<name>`` after ``loss`` (none for a kernel without a loss)."""
        outputs = self.outputs
        return tuple(name for name in outputs[1:] if name == "grad" or name.startswith("grad_")) \
            if outputs[:1] == ("loss",) else ()

    @functools.cached_property
    def extras(self):
        """A loss's outputs after its gradients (e.g. ``lse``), each returned with ``return_<name>=True``."""
        return self.outputs[1 + len(self.gradients):] if self.gradients else ()

    def named_outputs(self, result):
        """{output: value} of the public function's ``result`` called with ``return_grad=True`` and
        ``return_<extra>=True`` for every extra output: ``(loss, grad, *extras)`` or
        ``(loss, (grad_a, grad_b), *extras)``."""
        loss, grads, *extras = result
        return dict(zip(self.outputs, (loss, *(grads if isinstance(grads, tuple) else (grads,)), *extras)))

    def everything(self):
        """The keyword arguments asking the public function for every output (see :meth:`named_outputs`)."""
        return {"return_grad": True, **{f"return_{name}": True for name in self.extras}}

    @functools.cached_property
    def differentiable(self):
        """The argument each gradient belongs to, in order: ``grad`` is the first argument's (``input``,
        ``inputs``), ``grad_<name>`` the argument ``<name>``'s."""
        return tuple(self.names[0] if name == "grad" else name.removeprefix("grad_") for name in self.gradients)

    @functools.cached_property
    def blocked(self):
        """Whether the kernel adds its per-row losses into per-block sums (the loss kernels)."""
        return "block_sums" in self.names


def loss_kernel(stem, function, inputs, parameters=(), gradients=("grad",), row_width=None, bench=None,
                constants=None, variants=(), gather=False, extras=()):
    """The kernel of a loss, in the header's calling convention: ``inputs`` ((name, kind) of the arrays
    read), ``n_rows``, ``parameters`` ((name, kind) of the scalars), ``grad_scale``, ``rows_per_block``,
    ``loss``, ``gradients`` (names), ``extras`` (names of further outputs, one value per row),
    ``block_sums``; ``constants`` a dict, name -> value."""
    args = (*inputs, ("n_rows", INT), *parameters, ("grad_scale", FLOAT), ("rows_per_block", INT),
            ("loss", OUT), *((name, OUT) for name in gradients), *((name, OUT) for name in extras),
            ("block_sums", SUMS))
    return Kernel(stem, function, args, row_width, variants=variants, bench=bench,
                  constants=tuple((constants or {}).items()), gather=gather)


#: Every declared kernel by stem, in the order of declaration.
KERNELS = {}


def declare(kernel):
    """File ``kernel`` under its stem; returns it.  The same declaration again (a module imported a
    second time, as doctest collection does) changes nothing; a different one for the stem raises."""
    if KERNELS.setdefault(kernel.stem, kernel) != kernel:
        raise ValueError(f"two different kernels are declared as {kernel.stem!r}")
    return kernel
