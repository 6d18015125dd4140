"""Bring your own method: a minimal AID written as a Solver and run by minimize."""
import numpy as np

import bilevel_ref as br
from bilevel_ref.linalg import cg
from byo_problem import make_ridge, true_hypergradient


@br.register
class SimpleAID(br.Solver):
    """Simple AID: T gradient steps on y, CG for v = [∇²_yy g]⁻¹∇_y f, a step on ∇_x f − ∇²_xy g v."""

    name = "simple_aid"
    requires = ("grad_f", "grad_g", "hvp_yy_g", "cross_g")   # checked against problem.provides
    default_maxiter = 500
    options = {
        "inner_steps": br.Option.integer(20, "Gradient steps T on y per outer iteration.", low=1),
        "cg_steps": br.Option.integer(10, "CG iterations for v per outer iteration.", low=1),
        "step_y": br.Option.real(0.2, "Lower-level step β_y.", low=0),
        "step_x": br.Option.real(1.0, "Upper-level step β.", low=0),
    }

    def setup(self):
        self.v = np.zeros(self.problem.dy)                      # warm start of the CG solve

    def step(self, k):
        p, o, x, y = self.problem, self.opts, self.x, self.y    # p counts every call
        for _ in range(o.inner_steps):
            y = y - o.step_y * p.grad_g(x, y)[1]
        gx, gy = p.grad_f(x, y)
        self.v = cg(lambda u: p.hvp_yy_g(x, y, u), gy, x0=self.v, maxiter=o.cg_steps).x
        d = gx - p.cross_g(x, y, self.v)
        self.x, self.y = x - o.step_x * d, y
        return {"grad_est": float(np.linalg.norm(d))}        # compared with gtol


problem = make_ridge()
print("simple_aid registered:", "simple_aid" in br.methods())
print(br.show_options("simple_aid"))

res = br.minimize(problem, "simple_aid", np.zeros(problem.dx), options={"step_x": 10.0})
calls = {kind: n for kind, n in res.oracle_calls.items() if n}
print(f"\n{res.message} after {res.nit} iterations")
print(f"‖∇φ(x)‖ (dense check) = {np.linalg.norm(true_hypergradient(problem, res.x)):.3e}")
print(f"oracle_calls = {calls}")
print(f"history['grad_est'][1:4] = {np.array2string(res.history['grad_est'][1:4], precision=3)}")

try:
    br.minimize(problem, "simple_aid", np.zeros(problem.dx), options={"step_x": -1.0})
except ValueError as exc:
    print(f"\nValueError: {exc}")
