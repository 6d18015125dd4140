"""Steps shared by several methods: minibatch drawing."""
from __future__ import annotations

from .._solver import Solver
from ..options import Option

__all__ = ["MinibatchSolver"]


class MinibatchSolver(Solver):
    """Base of the methods with a ``batch_size`` option (deterministic when it is None).

    :meth:`draw` returns a fresh minibatch of one level from the run's
    generator, or None (full objective) in deterministic mode.
    """

    stochastic = True
    options = {
        "batch_size": Option.integer(
            None, "Minibatch size of both levels, fresh batches from the run's generator "
            "(None: full objectives, deterministic mode; benchopt uses 64).", low=1, allow_none=True),
    }

    def sample_or_full(self, level, size):
        """A fresh minibatch of ``size`` ids of ``level``, or None (full objective) if size is None."""
        return None if size is None else self.problem.sample(self.rng, size, level)

    def draw(self, level):
        """A fresh ``level`` (``"lower"``/``"upper"``) minibatch, or None in deterministic mode."""
        return self.sample_or_full(level, self.opts["batch_size"])

    def draws(self, level, count):
        """``count`` fresh minibatches of one level (a list of None in deterministic mode)."""
        return [self.draw(level) for _ in range(count)]

    def lower_sgd(self, x, y, step, steps):
        """``steps`` gradient steps on g(x, ·) from ``y``, each on a fresh lower minibatch."""
        for _ in range(steps):
            y = y - step * self.problem.grad_y_g(x, y, batch=self.draw("lower"))
        return y
