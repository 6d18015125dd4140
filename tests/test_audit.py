"""One-step audits of the stochastic methods against transcriptions of their algorithm boxes.

For MRBO, VRBO, AmIGO, stocBiO, SOBA, SABA and F2SA: the library runs one and
two iterations on a small finite-sum quadratic whose ``sample`` records every
minibatch it returns (and whose ``grad_f``/``fused_g`` record the batches they
receive: SABA picks its fixed minibatches itself).  Each test then replays the
same batches through an independent transcription of the method's algorithm
box, written here in plain NumPy with the problem's per-sample matrices
(read once through the per-sample oracles ``hess_*``/``grad_*`` with
one-element batches), and compares x, y and the method's own state (v, z,
the STORM/SARAH directions, F2SA's λ) at 1e-12 relative (norm-wise).

Which recorded batch plays which role (the paper's B_y, B_F, B_1..B_Q, ...) is
given by each method's documented draw order; the replay checks the level of
every batch it takes and that every recorded batch is used.

The algorithm boxes are cited by paper, algorithm number and the step
transcribed; the step sizes, where a box leaves them as inputs (α_k, γ_k, …),
are the library's documented schedules.
"""
import numpy as np
import pytest

import bilevel_ref as br
from bilevel_ref.problems.finite_sum import FiniteSumQuadratic, finite_sum_quadratic

RTOL = 1e-12
N, DIM_Y, DIM_X, BATCH = 16, 4, 3, 4


# ---------------------------------------------------------------------------
# the recording problem and the library runs
# ---------------------------------------------------------------------------
class RecordingQuadratic(FiniteSumQuadratic):
    """The finite-sum quadratic; records what ``sample`` returns and the batches of ``grad_f``/``fused_g``."""

    def __init__(self, base):
        super().__init__(base.lower, base.upper, sampler=base.sampler)
        self.drawn = []     # (level, indices) returned by sample(), in order
        self.seen = []      # (level, batch) received by grad_f / fused_g, in order

    def sample(self, rng, size, level):
        idx = super().sample(rng, size, level)
        self.drawn.append((level, np.array(idx)))
        return idx

    def grad_f(self, x, y, batch=None):
        self.seen.append(("upper", None if batch is None else np.array(batch)))
        return super().grad_f(x, y, batch=batch)

    def fused_g(self, x, y, v, batch=None):
        self.seen.append(("lower", None if batch is None else np.array(batch)))
        return super().fused_g(x, y, v, batch=batch)


@pytest.fixture(scope="module")
def base():
    return finite_sum_quadratic(n_inner=N, n_outer=N, dim_inner=DIM_Y, dim_outer=DIM_X, seed=4)


@pytest.fixture(scope="module")
def start():
    rng = np.random.default_rng(7)
    return rng.standard_normal(DIM_X), rng.standard_normal(DIM_Y)


def run_library(base, method, start, options, iters, seed=3):
    """``minimize`` for ``iters`` iterations on a fresh recording problem: (result, problem)."""
    problem = RecordingQuadratic(base)
    x0, y0 = start
    res = br.minimize(problem, method, x0, seed=seed,
                      options={**options, "y0": y0, "maxiter": iters, "record_exact": False})
    assert res.nit == iters, res.message
    return res, problem


def run_solver(base, method, start, options, iters, seed=3):
    """The method's :class:`~bilevel_ref.Solver` stepped ``iters`` times (to read its state): (solver, problem)."""
    problem = RecordingQuadratic(base)
    cls = br.get_method(method)
    opts = cls.validate_options({**options, "y0": start[1]})
    solver = cls(br.OracleCounter(problem), start[0].copy(), start[1].copy(),
                 np.random.default_rng(seed), opts)
    for k in range(iters):
        solver.step(k)
    return solver, problem


def assert_close(actual, expected, what):
    actual, expected = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    err = np.linalg.norm(actual - expected)
    assert err <= RTOL * max(np.linalg.norm(expected), 1e-300), \
        f"{what}: relative error {err / max(np.linalg.norm(expected), 1e-300):.3e}"


def audit(base, method, start, options, transcribe, *, log="drawn", state=()):
    """Compare the library's x, y after 1 and 2 iterations (and ``state`` after 2) with ``transcribe``.

    ``transcribe(batches, iters)`` replays the recorded batches and returns a
    list of dicts (one per iteration) with "x", "y" and the state names.
    """
    res1, p1 = run_library(base, method, start, options, 1)
    res2, p2 = run_library(base, method, start, options, 2)
    rec1, rec2 = getattr(p1, log), getattr(p2, log)
    assert len(rec1) < len(rec2)
    for (l1, b1), (l2, b2) in zip(rec1, rec2):   # same seed: the first iteration's batches agree
        assert l1 == l2 and np.array_equal(b1, b2)
    ref = transcribe(Batches(rec2), 2)
    for k, res in ((0, res1), (1, res2)):
        assert_close(res.x, ref[k]["x"], f"{method} x after {k + 1} iteration(s)")
        assert_close(res.y, ref[k]["y"], f"{method} y after {k + 1} iteration(s)")
    if state:
        solver, p3 = run_solver(base, method, start, options, 2)
        assert len(getattr(p3, log)) == len(rec2)
        for name in state:
            assert_close(getattr(solver, name), ref[1][name], f"{method} {name} after 2 iterations")


class Batches:
    """The recorded batches, handed out in order; each take names the level it expects."""

    def __init__(self, records):
        self.records = list(records)
        self.pos = 0

    def take(self, level):
        got, batch = self.records[self.pos]
        assert got == level, f"batch {self.pos}: recorded a {got} batch where the box needs a {level} one"
        self.pos += 1
        return batch

    def done(self):
        assert self.pos == len(self.records), f"{len(self.records) - self.pos} recorded batches unused"


# ---------------------------------------------------------------------------
# the problem written out: per-sample matrices, means over a batch
# ---------------------------------------------------------------------------
class Level:
    r"""One level's samples :math:`h_i = \tfrac12 y^\top Y_i y + \tfrac12 x^\top X_i x + x^\top C_i y + l_i^\top y + m_i^\top x`."""

    def __init__(self, problem, level):
        hess = problem.hess_g if level == "lower" else problem.hess_f
        grad = problem.grad_g if level == "lower" else problem.grad_f
        n = problem.n_lower if level == "lower" else problem.n_upper
        zx, zy = np.zeros(problem.dx), np.zeros(problem.dy)
        parts = [(hess(zx, zy, batch=np.array([i])), grad(zx, zy, batch=np.array([i]))) for i in range(n)]
        self.X = np.array([h[0] for h, _ in parts])     # ∇²_xx h_i
        self.C = np.array([h[1] for h, _ in parts])     # ∇²_xy h_i, dx × dy
        self.Y = np.array([h[2] for h, _ in parts])     # ∇²_yy h_i
        self.m = np.array([g[0] for _, g in parts])     # ∇_x h_i(0, 0)
        self.l = np.array([g[1] for _, g in parts])     # ∇_y h_i(0, 0)

    @staticmethod
    def _mean(a, batch):
        return a.mean(axis=0) if batch is None else a[batch].mean(axis=0)

    def grad_y(self, x, y, batch):
        return self._mean(self.Y, batch) @ y + self._mean(self.C, batch).T @ x + self._mean(self.l, batch)

    def grad_x(self, x, y, batch):
        return self._mean(self.X, batch) @ x + self._mean(self.C, batch) @ y + self._mean(self.m, batch)

    def hess_yy(self, batch):
        return self._mean(self.Y, batch)

    def jac(self, batch):
        return self._mean(self.C, batch)


@pytest.fixture(scope="module")
def levels(base):
    return Level(base, "lower"), Level(base, "upper")   # g, f


def neumann_hypergradient(g, f, x, y, eta, batch_f, hess_batches, batch_j):
    r"""stocBiO's estimator (Ji, Yang, Liang 2021, eq. (4)/Algorithm 2):
    :math:`\nabla_x F - J_{D_G}\,\eta\sum_{q=0}^{Q}\prod_{i=q}^{1}(I - \eta H_{B_i})\nabla_y F`,
    the products formed as matrices, :math:`B_1` the first Hessian batch drawn."""
    gy_f = f.grad_y(x, y, batch_f)
    product, total = np.eye(len(y)), np.zeros((len(y), len(y)))
    total += product
    for batch in hess_batches:
        product = (np.eye(len(y)) - eta * g.hess_yy(batch)) @ product
        total += product
    return f.grad_x(x, y, batch_f) - g.jac(batch_j) @ (eta * total @ gy_f)


# ---------------------------------------------------------------------------
# stocBiO
# ---------------------------------------------------------------------------
def test_stocbio_one_step_audit(base, start, levels):
    """stocBiO — Ji, Yang, Liang, ICML 2021, Algorithm 1 (stocBiO) with the hypergradient of Algorithm 2.

    Transcribed: the D SGD steps on y (warm start) :math:`y^t = y^{t-1} - \\alpha\\nabla_y G(x_k, y^{t-1}; S_t)`;
    :math:`v_0 = \\nabla_y F(x_k, y^D; D_F)`; the Q-term Neumann sum with one Hessian batch per
    factor; :math:`\\hat\\nabla\\Phi = \\nabla_x F(D_F) - \\nabla_x\\nabla_y G(D_G)\\,v_Q`;
    :math:`x_{k+1} = x_k - \\beta\\hat\\nabla\\Phi`.  Draw order: S_1..S_D, D_F, B_1..B_Q, D_G.
    """
    g, f = levels
    D, Q, alpha, eta, beta = 3, 4, 0.3, 0.25, 0.2
    options = {"batch_size": BATCH, "inner_steps": D, "linsys_steps": Q, "step_y": alpha, "step_v": eta,
               "step_x": beta}

    def transcribe(b, iters):
        x, y, out = start[0].copy(), start[1].copy(), []
        for _ in range(iters):
            for _ in range(D):
                y = y - alpha * g.grad_y(x, y, b.take("lower"))
            batch_f = b.take("upper")
            hess = [b.take("lower") for _ in range(Q)]
            batch_j = b.take("lower")
            x = x - beta * neumann_hypergradient(g, f, x, y, eta, batch_f, hess, batch_j)
            out.append({"x": x, "y": y})
        b.done()
        return out

    audit(base, "stocbio", start, options, transcribe)


# ---------------------------------------------------------------------------
# AmIGO
# ---------------------------------------------------------------------------
def test_amigo_one_step_audit(base, start, levels):
    """AmIGO — Arbel & Mairal, ICLR 2022, Algorithm 1 with SGD as both inner solvers.

    Transcribed: :math:`y_k` = T SGD steps on g from :math:`y_{k-1}`; one upper batch for
    :math:`(\\partial_x f, \\partial_y f)(x_k, y_k)`; :math:`z_k` = T SGD steps on
    :math:`\\tfrac12 z^\\top \\partial_{yy} g\\, z - z^\\top\\partial_y f` from :math:`z_{k-1}`
    (one lower batch per step, the right-hand side fixed); :math:`\\psi_k = \\partial_x f -
    \\partial_{xy} g\\, z_k`; :math:`x_{k+1} = x_k - \\gamma\\psi_k`.  Draw order: T lower, the
    upper batch, T lower, the Jacobian's lower batch.  State: v (the paper's z).
    """
    g, f = levels
    T, Tv, rho, eta, gamma = 3, 2, 0.3, 0.25, 0.2
    options = {"batch_size": BATCH, "inner_steps": T, "linsys_steps": Tv, "step_y": rho, "step_v": eta,
               "step_x": gamma}

    def transcribe(b, iters):
        x, y, v, out = start[0].copy(), start[1].copy(), np.zeros(DIM_Y), []
        for _ in range(iters):
            for _ in range(T):
                y = y - rho * g.grad_y(x, y, b.take("lower"))
            batch_f = b.take("upper")
            gx_f, gy_f = f.grad_x(x, y, batch_f), f.grad_y(x, y, batch_f)
            for _ in range(Tv):
                v = v - eta * (g.hess_yy(b.take("lower")) @ v - gy_f)
            x = x - gamma * (gx_f - g.jac(b.take("lower")) @ v)
            out.append({"x": x, "y": y, "v": v})
        b.done()
        return out

    audit(base, "amigo", start, options, transcribe, state=("v",))


# ---------------------------------------------------------------------------
# MRBO
# ---------------------------------------------------------------------------
MRBO_OPTIONS = {"batch_size": BATCH, "linsys_steps": 3, "step_y": 0.3, "step_x": 0.2, "step_v": 0.25,
                "eta_scale": 0.9, "m0": 2.0, "momentum_scale_x": 0.3, "momentum_scale_y": 0.7}


@pytest.mark.parametrize("variant", ["paper", "benchopt"])
def test_mrbo_one_step_audit(base, start, levels, variant):
    """MRBO — Yang, Ji, Liang, NeurIPS 2021, Algorithm 1 (MRBO); ``variant="benchopt"``:
    benchopt/benchmark_bilevel ``solvers/mrbo.py`` (``mrbo_one_iter``).

    Transcribed, per iteration k: draw :math:`B_y` and :math:`B_x = \\{B_F, B_1..B_Q, B_G\\}`;
    k = 0: :math:`v_0 = \\nabla_y G(x_0, y_0; B_y)`, :math:`u_0 = \\hat\\nabla\\Phi(x_0, y_0; B_x)`;
    k ≥ 1: :math:`v_k = \\nabla_y G(x_k, y_k; B_y) + (1-\\beta_k)(v_{k-1} - \\nabla_y G(x_{k-1}, y_{k-1}; B_y))`,
    :math:`u_k` likewise with :math:`\\hat\\nabla\\Phi(\\cdot; B_x)` and :math:`\\alpha_k`; then
    :math:`y_{k+1} = y_k - \\lambda\\eta_k v_k`, :math:`x_{k+1} = x_k - \\gamma\\eta_k u_k` with
    :math:`\\eta_k = c/(k+m_0)^{1/3}`, :math:`\\alpha_k = c_1\\eta_k^2`, :math:`\\beta_k = c_2\\eta_k^2`.
    Draw order: B_y, B_F, B_1..B_Q, B_G.  benchopt's code differs in two places: its
    memories (old point, old directions) start at zero, so the k ≥ 1 recursion also runs
    at k = 0, and the Jacobian product uses B_y (no B_G drawn).  State: u (the
    y-direction, the paper's v_k) and h (the paper's u_k).  Non-default c, m₀ and
    c₁ ≠ c₂, so that a mix-up shows.
    """
    g, f = levels
    o = {**MRBO_OPTIONS, "variant": variant}
    Q, eta_v = o["linsys_steps"], o["step_v"]

    def transcribe(b, iters):
        x, y, out = start[0].copy(), start[1].copy(), []
        x_old, y_old, v_dir, u_dir = np.zeros(DIM_X), np.zeros(DIM_Y), np.zeros(DIM_Y), np.zeros(DIM_X)
        for k in range(iters):
            eta_k = o["eta_scale"] / (k + o["m0"]) ** (1 / 3)
            alpha_k, beta_k = o["momentum_scale_x"] * eta_k ** 2, o["momentum_scale_y"] * eta_k ** 2
            B_y, B_F = b.take("lower"), b.take("upper")
            B_H = [b.take("lower") for _ in range(Q)]
            B_G = B_y if variant == "benchopt" else b.take("lower")
            grad = g.grad_y(x, y, B_y)
            hyper = neumann_hypergradient(g, f, x, y, eta_v, B_F, B_H, B_G)
            if k == 0 and variant == "paper":
                v_dir, u_dir = grad, hyper
            else:
                v_dir = grad + (1 - beta_k) * (v_dir - g.grad_y(x_old, y_old, B_y))
                u_dir = hyper + (1 - alpha_k) * (
                    u_dir - neumann_hypergradient(g, f, x_old, y_old, eta_v, B_F, B_H, B_G))
            x_old, y_old = x, y
            x, y = x - o["step_x"] * eta_k * u_dir, y - o["step_y"] * eta_k * v_dir
            out.append({"x": x, "y": y, "u": v_dir, "h": u_dir})
        b.done()
        return out

    audit(base, "mrbo", start, o, transcribe, state=("u", "h"))


# ---------------------------------------------------------------------------
# VRBO
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("large_batch", [None, 8])
def test_vrbo_one_step_audit(base, start, levels, large_batch):
    """VRBO — Yang, Ji, Liang, NeurIPS 2021, Algorithm 2 (VRBO), in the form this library documents.

    Transcribed: every q = ``period`` iterations :math:`v_k, u_k` recomputed at
    :math:`(x_k, y_k)` on the large batch :math:`S_1` (full objectives or a
    ``large_batch`` draw: lower, upper, Q lower); :math:`x_{k+1} = x_k - \\alpha u_k`;
    then m = ``inner_steps`` recursive steps :math:`y \\leftarrow y - \\beta v`,
    :math:`v \\leftarrow v + \\nabla_y G(x_{k+1}, y; S_2) - \\nabla_y G(x^-, y^-; S_2)`,
    :math:`u` likewise with :math:`\\hat\\nabla\\Phi(\\cdot; S_2)` (its Jacobian on S_2's
    lower batch), :math:`(x^-, y^-)` the previous evaluation point, :math:`(x_k, y_k)` at the
    first step.  Draw order per inner step: lower, upper, B_1..B_Q.  Period 2, so the
    second iteration continues the recursion.  (The box's own text was not available to
    this audit; the authors' code orders the inner loop differently, see the module
    docstring of ``bilevel_ref.algorithms.hypergradient``.)  State: u (the y-direction) and h.
    """
    g, f = levels
    Q, m, alpha, beta, eta = 3, 2, 0.2, 0.3, 0.25
    options = {"batch_size": BATCH, "linsys_steps": Q, "inner_steps": m, "period": 2, "step_x": alpha,
               "step_y": beta, "step_v": eta, "large_batch": large_batch}

    def transcribe(b, iters):
        x, y, out = start[0].copy(), start[1].copy(), []
        for k in range(iters):
            if k % 2 == 0:
                if large_batch is None:
                    S_g, S_f, S_h = None, None, [None] * Q
                else:
                    S_g, S_f = b.take("lower"), b.take("upper")
                    S_h = [b.take("lower") for _ in range(Q)]
                v_dir = g.grad_y(x, y, S_g)
                u_dir = neumann_hypergradient(g, f, x, y, eta, S_f, S_h, S_g)
            x_old, y_old = x, y
            x = x - alpha * u_dir
            for _ in range(m):
                y = y - beta * v_dir
                S_g, S_f = b.take("lower"), b.take("upper")
                S_h = [b.take("lower") for _ in range(Q)]
                v_dir = v_dir + g.grad_y(x, y, S_g) - g.grad_y(x_old, y_old, S_g)
                u_dir = (u_dir + neumann_hypergradient(g, f, x, y, eta, S_f, S_h, S_g)
                         - neumann_hypergradient(g, f, x_old, y_old, eta, S_f, S_h, S_g))
                x_old, y_old = x, y
            out.append({"x": x, "y": y, "u": v_dir, "h": u_dir})
        b.done()
        return out

    audit(base, "vrbo", start, options, transcribe, state=("u", "h"))


# ---------------------------------------------------------------------------
# SOBA, SABA
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("schedule", ["constant", "sqrt"])
def test_soba_one_step_audit(base, start, levels, schedule):
    """SOBA — Dagréou, Ablin, Vaiter, Moreau, NeurIPS 2022, Algorithm 1 with SOBA's directions.

    Transcribed: draw i (lower) and j (upper); :math:`D_y = \\nabla_y G_i(x_t, y_t)`,
    :math:`D_z = \\nabla^2_{yy}G_i\\, z_t + \\nabla_y F_j`, :math:`D_x = \\nabla^2_{xy}G_i\\, z_t
    + \\nabla_x F_j`, all at :math:`(x_t, y_t, z_t)`; simultaneous
    :math:`y_{t+1} = y_t - \\rho_t D_y`, :math:`z_{t+1} = z_t - \\rho_t D_z`,
    :math:`x_{t+1} = x_t - \\gamma_t D_x`, :math:`z_0 = 0`.  The box takes
    :math:`\\rho_t, \\gamma_t` as inputs: constant, or benchopt's :math:`c/\\sqrt{t+1}`
    (``schedule="sqrt"``); ρ on y and on z are separate options here (set unequal).
    State: z.
    """
    g, f = levels
    rho_y, rho_z, gamma = 0.3, 0.25, 0.2
    options = {"batch_size": BATCH, "step_y": rho_y, "step_v": rho_z, "step_x": gamma, "schedule": schedule}

    def transcribe(b, iters):
        x, y, z, out = start[0].copy(), start[1].copy(), np.zeros(DIM_Y), []
        for t in range(iters):
            s = 1 / np.sqrt(t + 1) if schedule == "sqrt" else 1.0
            i, j = b.take("lower"), b.take("upper")
            D_y = g.grad_y(x, y, i)
            D_z = g.hess_yy(i) @ z + f.grad_y(x, y, j)
            D_x = g.jac(i) @ z + f.grad_x(x, y, j)
            x, y, z = x - s * gamma * D_x, y - s * rho_y * D_y, z - s * rho_z * D_z
            out.append({"x": x, "y": y, "z": z})
        b.done()
        return out

    audit(base, "soba", start, options, transcribe, state=("z",))


@pytest.mark.parametrize("memory_init", ["zero", "full"])
def test_saba_one_step_audit(base, start, levels, memory_init):
    """SABA — Dagréou, Ablin, Vaiter, Moreau, NeurIPS 2022, Algorithm 1 with SABA's SAGA directions.

    Transcribed: the samples of each level in fixed minibatches (here n = 16, b = 4:
    four per level, equal sizes, so every minibatch is one of the box's
    "samples"); each iteration draws a lower id i and an upper id j; each of
    :math:`\\nabla_y G, \\nabla^2_{yy}G\\,z, \\nabla^2_{xy}G\\,z` (id i) and
    :math:`\\nabla_y F, \\nabla_x F` (id j) at :math:`(x_t, y_t, z_t)` enters the SAGA
    direction :math:`D = q - m_i + \\frac1{n_b}\\sum_{i'} m_{i'}`, then :math:`m_i \\leftarrow q`;
    SOBA's simultaneous constant-step updates with these directions.  Memory at
    zero, or (``memory_init="full"``) every minibatch's values at :math:`(x_0, y_0, z_0)`.
    The ids come from the batches the oracles received.  State: z.
    """
    g, f = levels
    rho_y, rho_z, gamma = 0.3, 0.25, 0.2
    options = {"batch_size": BATCH, "step_y": rho_y, "step_v": rho_z, "step_x": gamma,
               "memory_init": memory_init}
    n_b = N // BATCH
    batches = [np.arange(s, s + BATCH) for s in range(0, N, BATCH)]

    def quantities(x, y, z, i, j):
        return [g.grad_y(x, y, batches[i]), g.hess_yy(batches[i]) @ z, g.jac(batches[i]) @ z,
                f.grad_y(x, y, batches[j]), f.grad_x(x, y, batches[j])]

    def batch_id(batch):
        assert len(batch) == BATCH and np.array_equal(batch, np.arange(batch[0], batch[0] + BATCH))
        return int(batch[0]) // BATCH

    def transcribe(b, iters):
        x, y, z, out = start[0].copy(), start[1].copy(), np.zeros(DIM_Y), []
        memory = [np.zeros((n_b, d)) for d in (DIM_Y, DIM_Y, DIM_X, DIM_Y, DIM_X)]
        if memory_init == "full":
            for j in range(n_b):
                assert batch_id(b.take("upper")) == j
            for i in range(n_b):
                assert batch_id(b.take("lower")) == i
            for i in range(n_b):
                for mem, q in zip(memory, quantities(x, y, z, i, i)):
                    mem[i] = q                      # lower rows from id i, upper rows from id i
        for _ in range(iters):
            j, i = batch_id(b.take("upper")), batch_id(b.take("lower"))
            directions = []
            for mem, q, idx in zip(memory, quantities(x, y, z, i, j), (i, i, i, j, j)):
                directions.append(q - mem[idx] + mem.mean(axis=0))
                mem[idx] = q
            D_gy, D_hz, D_jz, D_fy, D_fx = directions
            x, y, z = x - gamma * (D_jz + D_fx), y - rho_y * D_gy, z - rho_z * (D_hz + D_fy)
            out.append({"x": x, "y": y, "z": z})
        b.done()
        return out

    audit(base, "saba", start, options, transcribe, log="seen", state=("z",))


# ---------------------------------------------------------------------------
# F2SA
# ---------------------------------------------------------------------------
def test_f2sa_one_step_audit(base, start, levels):
    """F2SA — Kwon, Kwon, Wright, Nowak, ICML 2023, Algorithm 1 (F2SA).

    Transcribed, per outer iteration k from :math:`z_{k,0} = z_k`, :math:`y_{k,0} = y_k`:
    T steps :math:`z_{k,t+1} = z_{k,t} - \\gamma_k\\nabla_y G(x_k, z_{k,t}; \\phi)` and
    :math:`y_{k,t+1} = y_{k,t} - \\alpha_k(\\nabla_y F(x_k, y_{k,t}; \\zeta) + \\lambda_k\\nabla_y G(x_k, y_{k,t}; \\phi'))`
    (independent samples for each term); :math:`x_{k+1} = x_k - \\xi_k(\\nabla_x F(x_k, y_{k+1}) +
    \\lambda_k(\\nabla_x G(x_k, y_{k+1}) - \\nabla_x G(x_k, z_{k+1})))` on three independent batches;
    :math:`\\lambda_{k+1} = \\lambda_k + \\delta_k`.  The box takes the step sequences as inputs:
    the library's (benchopt's) :math:`\\alpha_k = c/(k+1)^{5/7}`, :math:`\\gamma_k = c/(k+1)^{4/7}`,
    :math:`\\xi_k = \\xi_0/(k+1)^{4/7}`, :math:`\\delta_k = \\delta/(k+1)^{1/7}`.  The z and y loops
    do not interact, so the library runs them one after the other: draw order T lower (z),
    T × (upper, lower) (y), then upper, lower, lower (x).  State: the penalised iterate and λ
    (the reported y is z).
    """
    g, f = levels
    T, c, xi0, lam0, delta = 3, 0.3, 0.2, 1.5, 0.4
    options = {"batch_size": BATCH, "inner_steps": T, "step_y": c, "step_x": xi0, "lam": lam0,
               "delta": delta}

    def transcribe(b, iters):
        x, z, y, lam, out = start[0].copy(), start[1].copy(), start[1].copy(), lam0, []
        for k in range(iters):
            alpha, gam = c / (k + 1) ** (5 / 7), c / (k + 1) ** (4 / 7)
            xi, d_k = xi0 / (k + 1) ** (4 / 7), delta / (k + 1) ** (1 / 7)
            for _ in range(T):
                z = z - gam * g.grad_y(x, z, b.take("lower"))
            for _ in range(T):
                zeta, phi = b.take("upper"), b.take("lower")
                y = y - alpha * (f.grad_y(x, y, zeta) + lam * g.grad_y(x, y, phi))
            b_f, b_1, b_2 = b.take("upper"), b.take("lower"), b.take("lower")
            x = x - xi * (f.grad_x(x, y, b_f) + lam * (g.grad_x(x, y, b_1) - g.grad_x(x, z, b_2)))
            lam = lam + d_k
            out.append({"x": x, "y": z, "y_pen": y, "lam": lam})
        b.done()
        return out

    audit(base, "f2sa", start, options, transcribe, state=("y_pen", "lam"))
