"""Problem constants: what constants() may report and where each value came from."""
import numpy as np

import bilevel_ref as br
from bilevel_ref.problems import CONSTANT_KEYS
from byo_problem import RidgeHyperparameters, make_ridge

print("Keys constants() may report:")
for key, meaning in CONSTANT_KEYS.items():
    print(f"  {key:8} {meaning}")


class RidgeWithConstants(RidgeHyperparameters):
    """The ridge problem reporting the bounds it knows for every x."""

    def constants(self):
        # ∇²_yy g = AᵀA/n + diag(e^x) ⪰ λ_min(AᵀA/n)·I for every x, and f does not
        # depend on x through its y-Hessian.  L_g grows with e^x, so no global
        # bound exists: it is left out and estimated when a method needs it.
        return {"mu_g": float(np.linalg.eigvalsh(self.G)[0]),
                "L_f": float(np.linalg.eigvalsh(self.G_val)[-1])}


base = make_ridge()
problem = RidgeWithConstants(base.A, base.b, base.A_val, base.b_val)
x0 = np.zeros(problem.dx)


def report(title, res):
    print(f"\n{title}: {res.message}")
    for key in sorted(res.constants):
        print(f"  {key:6} = {res.constants[key]:.4f}   from {res.constant_sources[key]!r}")
    print(f"  hvp_yy_g calls = {res.oracle_calls['hvp_yy_g']}")


# 1. nothing given: mu_g from the problem, L_g and L_phi estimated (the
#    estimates' Hessian-vector products are counted like any other call)
report("aid, defaults", br.minimize(problem, "aid", x0, options={"maxiter": 200}))

# 2. an explicit option wins over everything else
report("aid, L_g given", br.minimize(problem, "aid", x0, options={"maxiter": 200, "L_g": 3.0}))

# 3. a second-order method needs mu_g, L_g and L_f for its inner AGD loops
report("fsba", br.minimize(problem, "fsba", x0, options={"maxiter": 50, "lam": 100.0, "M": 1.0}))


# A key outside CONSTANT_KEYS is an error, before any oracle is called.
class Misspelt(RidgeHyperparameters):
    def constants(self):
        return {"Lg": 3.0}


bad = Misspelt(base.A, base.b, base.A_val, base.b_val)
try:
    br.minimize(bad, "aid", x0)
except ValueError as exc:
    print(f"\nValueError: {exc}")
