# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The annotated H3
#
# A walk through H3 ("Hungry Hungry Hippos", Fu, Dao et al., ICLR 2023) in which each step
# calls `h3_jax`'s own functions rather than writing them again. We go from one continuous state
# space model (SSM) to a small H3 language model that learns associative recall, open it up, and
# generate with it.
#
# 1. One SSM, three ways to compute it
# 2. HiPPO-LegS: what a state can remember, and where the S4D initialisations come from
# 3. H3's two memories: the shift SSM and the diagonal SSM, and the H3 mixer built from them
# 4. Training a small H3 on associative recall, and looking inside
# 5. Generation with a recurrent state, and its cost per token against attention
#
# Shapes use the axis letters of `h3_jax.ssm`: **B** batch, **L** sequence length,
# **H** SSM channels (heads), **N** modes per channel, **D** model width, **P** head dimension,
# **V** vocabulary size.
#
# The source is `experiments/annotated_h3.py`, a plain script in jupytext's percent format. It
# runs as it is (`MPLBACKEND=Agg python experiments/annotated_h3.py`, about a minute on one CPU
# core, training included). From the repository's root, this command renders the executed
# notebook `experiments/annotated_h3.ipynb` and saves the figures under
# `experiments/results/annotated_h3/` (`jupyter execute` comes with nbclient and runs the
# notebook in its own folder, hence the absolute path):
#
# ```bash
# pip install -e ".[docs]"
# jupytext --to ipynb experiments/annotated_h3.py && \
#     ANNOTATED_H3_FIGURES=$PWD/experiments/results/annotated_h3 \
#     jupyter execute --inplace experiments/annotated_h3.ipynb
# ```
#
# The script writes nothing else: training goes to a temporary directory that is deleted, and
# figures are saved only when `ANNOTATED_H3_FIGURES` names a directory.

# %% [markdown]
# Imports, and `show`, which displays a figure and also saves it as a PNG when
# `ANNOTATED_H3_FIGURES` is set. Most calls below go through `jax.jit`: run eagerly, JAX compiles
# every small operation on its own, which costs more than compiling the whole function once.
# Compiled programs are also cached in a temporary directory, so that loading the trained model
# in section 4 reuses what the trainer compiled; the directory is deleted at the end.

# %%
import dataclasses
import functools
import logging
import os
import tempfile
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from h3_jax import generate, mixers, presets, ssm
from h3_jax.layers import diag_ssm, shift_ssm
from h3_jax.mixers import h3 as h3_mixer
from h3_jax.models import LM
from h3_jax.train import load_state, train
from h3_jax.train.replicas import unstack_tree

logging.getLogger("absl").setLevel(logging.ERROR)   # quiet orbax's notes when loading a checkpoint
SCRATCH = tempfile.TemporaryDirectory(prefix="annotated_h3_")
jax.config.update("jax_compilation_cache_dir", os.path.join(SCRATCH.name, "jax-cache"))
FIGURES = os.environ.get("ANNOTATED_H3_FIGURES")
if FIGURES:
    os.makedirs(FIGURES, exist_ok=True)
START = time.perf_counter()


def show(fig, name):
    """Display `fig`; with ANNOTATED_H3_FIGURES set, also save it there as `name`.png."""
    fig.tight_layout()
    if FIGURES:
        fig.savefig(os.path.join(FIGURES, f"{name}.png"), dpi=110)
    plt.show()
    plt.close(fig)


def max_diff(a, b):
    return float(jnp.max(jnp.abs(jnp.asarray(a) - jnp.asarray(b))))


# %% [markdown]
# ## 1. One SSM, three ways to compute it
#
# A continuous-time SSM maps an input signal u(t) to an output y(t) through a state x(t) of
# N numbers:
#
# $$x'(t) = A\,x(t) + B\,u(t), \qquad y(t) = C\,x(t) + D\,u(t).$$
#
# The state is the model's whole memory of the past. H3, like S4D, uses a **diagonal** A with
# complex entries A_n = -1/2 + i w_n: each mode n is a damped rotation, and the readout takes
# y = 2 Re(C x) (every mode stands for itself and its complex conjugate, so y is real). H
# channels each have their own SSM; below H = 1 and N = 4 modes, S4D-Lin's w_n = pi n.

# %%
H, N, L = 1, 4, 200
A = ssm.init_A(H, N, "lin")                          # (H, N) complex: -1/2 + i pi n
B = jnp.ones((H, N), jnp.complex64)                  # (H, N)
C = ssm.init_C(jax.random.key(0), H, N)              # (H, N), complex normal
D = jnp.array([0.5])                                 # (H,), the skip term
dt = jnp.array([0.05])                               # (H,), the step size
print("A =", np.round(np.asarray(A[0]), 3))

# %% [markdown]
# ### Discretisation
#
# A sequence model sees samples u_0, u_1, ... taken dt apart, so the ODE becomes a recurrence
# x_t = dA x_{t-1} + dB u_t. Two standard rules give dA and dB. **Zero-order hold** (ZOH)
# assumes u is constant over each step and solves the ODE exactly: dA = exp(dt A). The
# **bilinear** (Tustin) rule averages the two ends of the step: dA = (1 + dt A/2) / (1 - dt A/2).
# Both map the left half-plane into the unit disk, so a stable SSM stays stable; they differ by
# O((dt A)^3), which is tiny when |dt A| is small and visible when it is not. H3 uses bilinear.

# %%
for step_size in (0.05, 0.5):
    dA_zoh, _ = ssm.discretize(A, B, jnp.array([step_size]), "zoh")
    dA_bil, _ = ssm.discretize(A, B, jnp.array([step_size]), "bilinear")
    print(f"dt = {step_size}: |dA| zoh {np.round(np.abs(dA_zoh[0]), 4)}, "
          f"bilinear {np.round(np.abs(dA_bil[0]), 4)}; max |dA_zoh - dA_bilinear| = "
          f"{max_diff(dA_zoh, dA_bil):.1e}")
dA, dB = ssm.discretize(A, B, dt, "bilinear")        # (H, N) each: the SSM used from here on

# %% [markdown]
# ### A test signal
#
# A pulse, a step that switches on and off, and a slow oscillation, with a little noise (built
# in NumPy): u has shape (L, H), channels last, as everywhere in `h3_jax.ssm`.

# %%
t = np.arange(L)
noise = np.random.default_rng(0).standard_normal(L)
u = jnp.asarray((1.0 * (t == 10) + 1.0 * ((t >= 60) & (t < 120)) + 0.4 * np.sin(2 * np.pi * t / 45)
                 + 0.05 * noise)[:, None], jnp.float32)                    # (L, H)

# %% [markdown]
# ### View 1: the recurrence
#
# The plainest reading: carry the state forward one sample at a time, x_t = dA x_{t-1} + dB u_t,
# y_t = 2 Re(C x_t) + D u_t. `ssm.diag_ssm_step` is one step, and the loop below is the whole
# model. `ssm.diag_ssm_recurrence` runs the same loop as one `lax.scan`. This view costs O(L N)
# work but is strictly sequential, which is what makes it right for generation and slow for
# training.

# %%
step = jax.jit(ssm.diag_ssm_step)
x = jnp.zeros((H, N), jnp.complex64)                 # the state, (H, N)
outputs = []
for u_t in u:                                        # u_t: (H,)
    x, y_t = step(dA, dB, C, x, u_t)
    outputs.append(y_t)
y_loop = jnp.stack(outputs) + D * u                  # (L, H); the steps leave D u to the caller
y_rec, _ = ssm.diag_ssm_recurrence(dA, dB, C, u)
y_rec = y_rec + D * u
print(f"loop of diag_ssm_step vs diag_ssm_recurrence: max |diff| = {max_diff(y_loop, y_rec):.1e}")

# %% [markdown]
# ### View 2: a convolution
#
# Unroll the recurrence from x = 0 and the output is a weighted sum of past inputs,
# y_t = sum_l K_l u_{t-l} + D u_t, with the kernel K_l = 2 Re(C dA^l dB): the response to a
# single unit pulse. `ssm.diag_ssm_kernel` builds K (H, L) and `ssm.causal_conv` applies it by a
# zero-padded FFT in O(L log L), which trains fast on parallel hardware. `ssm.direct_causal_conv`
# is the O(L^2) sum over lags, kept as the reference.

# %%
kernel = jax.jit(ssm.diag_ssm_kernel, static_argnums=3)   # the length L is a static argument
K = kernel(dA, dB, C, L)                             # (H, L)
y_fft = ssm.causal_conv(u, K, D)                     # (L, H)
y_direct = ssm.direct_causal_conv(u, K, D)
pulse = jnp.asarray(np.eye(L, H), jnp.float32)         # a unit pulse at t = 0, (L, H)
response, _ = ssm.diag_ssm_recurrence(dA, dB, C, pulse)
print("kernel vs the recurrence's pulse response: max |diff| =", f"{max_diff(K.T, response):.1e}")
print("causal_conv (FFT) vs direct_causal_conv:   max |diff| =", f"{max_diff(y_fft, y_direct):.1e}")

# %% [markdown]
# ### View 3: a parallel scan
#
# One step is the affine map x -> a x + b with a = dA and b = dB u_t. Two such maps compose into
# another one, (a1, b1) then (a2, b2) is (a1 a2, a2 b1 + b2), and composition is associative, so
# all L prefixes can be combined in a tree of depth log L (`jax.lax.associative_scan`). That is
# `ssm.diag_ssm_scan`: the recurrence, computed in parallel, which also returns the last state.

# %%
y_scan, x_scan = jax.jit(ssm.diag_ssm_scan)(dA, dB, C, u)
y_scan = y_scan + D * u
print("max |diff| against the loop of diag_ssm_step (float32):")
for name, y_view in [("recurrence (lax.scan)", y_rec), ("convolution (FFT)", y_fft),
                     ("convolution (direct)", y_direct), ("associative scan", y_scan)]:
    print(f"  {name:22s} {max_diff(y_view, y_loop):.1e}")
print(f"  last state, scan vs loop {max_diff(x_scan, x):.1e}")

# %% [markdown]
# The four outputs lie on top of each other; their differences are float32 round-off. The
# kernel (bottom) is a sum of N = 4 damped oscillations: it is what the SSM remembers of a pulse
# l steps later.

# %%
fig, axes = plt.subplots(3, 1, figsize=(8, 6.5), sharex=True)
axes[0].plot(t, u[:, 0], color="0.3")
axes[0].set_title("input u")
for (name, y_view), style in zip([("loop of diag_ssm_step", y_loop), ("causal_conv (FFT)", y_fft),
                                  ("diag_ssm_scan", y_scan)], ["-", "--", ":"]):
    axes[1].plot(t, y_view[:, 0], style, lw=2, label=name)
axes[1].set_title("output y, three views")
axes[1].legend(fontsize=8)
axes[2].plot(t, K[0], color="C3")
axes[2].set_title("kernel K_l = 2 Re(C dA^l dB)")
axes[2].set_xlabel("time step (lag l for the kernel)")
show(fig, "1_three_views")

# %% [markdown]
# ## 2. HiPPO-LegS: what a state can remember
#
# Why should N numbers be a good memory of a long past? HiPPO (Gu et al., 2020) answers by
# construction: pick A and B so that the state is, at every moment, the list of coefficients of
# the best polynomial fit to the whole history seen so far. For LegS ("scaled Legendre") the
# history is the window [0, t], weighted uniformly, and the system is
#
# $$x'(t) = \tfrac{1}{t} A\,x(t) + \tfrac{1}{t} B f(t)$$
#
# with A, B from `ssm.hippo_legs(N)`. The 1/t stretches the window as time goes on. Reading the
# past back is a sum of Legendre polynomials, `ssm.legendre_reconstruction(x, s)`, at fractions
# s in [0, 1] of the window.
#
# We integrate the ODE ourselves (the package keeps only A, B and the readout), in float64, with
# bilinear steps. At t -> 0 the window holds the single value f(0), whose only nonzero
# coefficient is the first, so x starts at f(0) e_1.

# %%
def f(s):
    """A test signal on [0, 1]: a bump, a slow wave and a faster chirp."""
    return np.exp(-((s - 0.25) / 0.05) ** 2) + 0.5 * np.sin(4 * s) + 0.3 * np.sin(30 * s ** 2)


N_LEGS, STEPS = 32, 10_000
with jax.enable_x64(True):
    A_legs, B_legs = (np.asarray(m) for m in ssm.hippo_legs(N_LEGS, dtype=jnp.float64))
h, eye = 1.0 / STEPS, np.eye(N_LEGS)
x_legs = np.zeros(N_LEGS)
x_legs[0] = f(0.0)
states = {}
for k in range(1, STEPS + 1):
    t_mid = (k - 0.5) * h
    half = h / (2 * t_mid) * A_legs                    # (h / 2) (A / t) at the step's midpoint
    x_legs = np.linalg.solve(eye - half, (eye + half) @ x_legs + h / t_mid * B_legs * f(t_mid))
    if k in (STEPS // 2, STEPS):
        states[k * h] = x_legs.copy()
print("state x(1), first 6 of", N_LEGS, "coefficients:", np.round(states[1.0][:6], 3))

# %% [markdown]
# From the state at t = 0.5 and at t = 1 we read back the whole history up to that time. A is
# lower triangular, so the first 8 coordinates of this state are exactly the state of an N = 8
# LegS system: truncating the state shows what a smaller memory keeps (a blurrier past). The
# window [0, 1] holds more detail than [0, 0.5] (the chirp speeds up), so the same 32 numbers
# describe it less exactly.

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
with jax.enable_x64(True):
    for ax, (t_end, state) in zip(axes, states.items()):
        s = np.linspace(0, 1, 400)
        past = f(s * t_end)
        for n_keep, style in ((N_LEGS, "--"), (8, ":")):
            recon = np.asarray(ssm.legendre_reconstruction(jnp.asarray(state[:n_keep]), s))
            error = np.abs(recon - past).max() / np.abs(past).max()
            ax.plot(s * t_end, recon, style, lw=2, label=f"from N = {n_keep} (error {error:.0e})")
            print(f"t = {t_end}: N = {n_keep:2d}, max |reconstruction - f| / max |f| = {error:.2e}")
        ax.plot(s * t_end, past, color="0.3", lw=1, label="f")
        ax.set_title(f"the past [0, {t_end}] read back from x({t_end})")
        ax.set_xlabel("time")
        ax.legend(fontsize=8)
show(fig, "2_legs_memory")

# %% [markdown]
# ### From HiPPO to diagonal SSMs: S4D-LegS, S4D-Lin, S4D-Inv
#
# HiPPO-LegS is a dense matrix. S4 showed that it is a normal matrix minus a rank-one term;
# S4D dropped the rank-one term and kept only the eigenvalues of the normal part, which all have
# real part -1/2: for N complex modes, those of the size-2N matrix, one of each conjugate pair
# ("S4D-LegS", `init_A(..., "legs")`). Two closed forms imitate them: **S4D-Inv** puts w_n close
# to LegS's imaginary parts, (2N/pi)(2N/(2n+1) - 1), and **S4D-Lin** spaces them evenly,
# w_n = pi n, like the frequencies of a Fourier basis. H3 uses S4D-Lin.
#
# Below: the imaginary parts w_n of the three sets (the real parts are all -1/2), and for each
# set the kernels of its four slowest modes alone (C = e_n, one mode per channel), with
# dt = 1e-3, the lower end of H3's dt range.

# %%
N_MODES, L_KERNEL, SLOWEST = 32, 2048, 4
fig, axes = plt.subplots(1, 4, figsize=(13, 3.2))
for column, (kind, color) in enumerate((("legs", "C0"), ("inv", "C1"), ("lin", "C2")), start=1):
    A_kind = ssm.init_A(SLOWEST, N_MODES, kind)                   # (H, N), the same in every row
    w = np.asarray(A_kind[0].imag)
    axes[0].plot(np.sort(w), "o", ms=3, color=color, label=f"S4D-{kind.capitalize()}")
    one_mode = jax.nn.one_hot(np.argsort(w)[:SLOWEST], N_MODES, dtype=jnp.complex64)   # (H, N)
    dA_kind, dB_kind = ssm.discretize(A_kind, jnp.ones_like(A_kind), jnp.full((SLOWEST,), 1e-3))
    K_modes = kernel(dA_kind, dB_kind, one_mode, L_KERNEL)       # (H, L): one mode per row
    for n in range(SLOWEST):
        axes[column].plot(K_modes[n], lw=1, label=f"w = {np.sort(w)[n]:.2f}")
    axes[column].set_title(f"S4D-{kind.capitalize()}: its {SLOWEST} slowest modes")
    axes[column].set_xlabel("lag l")
    axes[column].legend(fontsize=7)
axes[0].set_yscale("symlog", linthresh=1)
axes[0].set_title("imaginary parts w_n, sorted")
axes[0].set_xlabel("mode")
axes[0].legend(fontsize=8)
show(fig, "2_s4d_inits")

# %% [markdown]
# S4D-Inv tracks S4D-LegS closely: many slow modes and a few very fast ones, and their slowest
# modes nearly coincide. S4D-Lin's modes are the harmonics 0, pi, 2 pi, ... of a Fourier basis,
# evenly spaced up to pi (N - 1). All three decay at the same rate (real part -1/2), and training
# moves every eigenvalue and dt anyway.
#
# ### Why a diagonal A makes the kernel cheap
#
# For a general (dense) A, K_l = C dA^l dB needs the powers of an N x N matrix: one
# matrix-vector product per lag, about 8 N^2 L real flops for complex numbers (or N^3 per
# matrix product). With a diagonal dA, the power is elementwise, dA^l = (z_1^l, ..., z_N^l), and
#
# $$K_l = 2\,\mathrm{Re} \sum_n (C_n\,dB_n)\, z_n^{\,l},$$
#
# a product of the vector C dB with the N x L **Vandermonde** matrix V[n, l] = z_n^l: about
# 8 N L flops, N times fewer, and with no sequential dependence between lags.
# `ssm.diag_ssm_kernel` goes one step further: it writes l = a T + b with T ~ sqrt(L), so it
# needs only two small tables of powers and one matrix product, O(N sqrt(L)) memory.
#
# To see the difference, take the same SSM written in another basis: dA_dense = M diag(dA) M^-1,
# dB_dense = M dB, C_dense = C M^-1 for a random invertible M. Its kernel is identical, but it
# can only be computed with matrix powers (here a `lax.scan` of matrix-vector products).

# %%
L_COST, N_COST = 4096, 32
A_cost = ssm.init_A(1, N_COST, "lin")
dA_cost, dB_cost = ssm.discretize(A_cost, jnp.ones_like(A_cost), jnp.array([1e-2]))
C_cost = ssm.init_C(jax.random.key(3), 1, N_COST)
rng = np.random.default_rng(4)
M = np.eye(N_COST) + 0.2 * (rng.standard_normal((N_COST, N_COST))
                           + 1j * rng.standard_normal((N_COST, N_COST)))
M_inv = np.linalg.inv(M)
dA_c, dB_c, C_c = (np.asarray(a[0]) for a in (dA_cost, dB_cost, C_cost))      # (N,) each
dA_dense, dB_dense, C_dense = (jnp.asarray(m, jnp.complex64)
                               for m in (M @ np.diag(dA_c) @ M_inv, M @ dB_c, C_c @ M_inv))


@jax.jit
def dense_kernel(dA_dense, dB_dense, C_dense):
    """K_l = 2 Re(C dA^l dB) by L matrix-vector products (what a dense A forces)."""
    def one_lag(v, _):
        return dA_dense @ v, 2 * jnp.real(C_dense @ v)
    return jax.lax.scan(one_lag, dB_dense, None, length=L_COST)[1]


def best_seconds(fn, *args, repeats=5):
    jax.block_until_ready(fn(*args))                       # compile outside the timing
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return min(times)


K_dense = dense_kernel(dA_dense, dB_dense, C_dense)
K_diag = kernel(dA_cost, dB_cost, C_cost, L_COST)[0]
print(f"same kernel: max |K_dense - K_diag| / max |K| = "
      f"{max_diff(K_dense, K_diag) / float(jnp.abs(K_diag).max()):.1e}")
for name, fn, args, flops in [
        ("dense A, matrix powers", dense_kernel, (dA_dense, dB_dense, C_dense),
         8 * N_COST ** 2 * L_COST),
        ("diagonal A, Vandermonde", kernel, (dA_cost, dB_cost, C_cost, L_COST),
         8 * N_COST * L_COST)]:
    print(f"{name:24s} ~{flops / 1e6:5.1f} MFLOP, {1e3 * best_seconds(fn, *args):6.2f} ms "
          f"(N = {N_COST}, L = {L_COST}, this CPU)")

# %% [markdown]
# ## 3. H3's two memories
#
# Associative recall ("a 2 c 4 b 3 ... a -> 2") needs two things: remember **exactly** which
# token came just before the current one (to bind a key to its value), and keep a **summary of
# everything** seen so far (to look the key up later). H3 gives each job its own SSM.
#
# The **shift SSM** has A = S, the shift matrix: x_t = S x_{t-1} + B u_t moves every slot of the
# state down by one and writes u_t into the first slot. With B = e_1 the state is literally the
# last N inputs, and the kernel K_j = C S^j B is the finite filter C itself
# (`ssm.shift_ssm_kernel`): zero beyond N taps. The **diagonal SSM** (S4D, as in section 1) has
# a kernel as long as the sequence, fading with the lag.
#
# A shift SSM with C = e_3 (one tap, at lag 2) outputs its input delayed by exactly two steps.
# A diagonal SSM blurs the same tokens into a running, fading summary.

# %%
tokens_demo = jnp.array([3., 1., 4., 1., 5., 9., 2., 6., 5., 3., 5., 8.])[:, None]   # (L, H=1)
L_demo, N_SHIFT = tokens_demo.shape[0], 8
B_shift = jnp.asarray(np.eye(1, N_SHIFT), jnp.float32)          # e_1, (H, N)
C_delay = jnp.asarray(np.eye(1, N_SHIFT, 2), jnp.float32)       # e_3: one tap at lag 2
shift_kernel = jax.jit(ssm.shift_ssm_kernel, static_argnums=2)
K_delay = shift_kernel(B_shift, C_delay, L_demo)                 # (H, L)
print("shift kernel, C = e_3:  ", np.asarray(K_delay[0]).astype(int))
print("input tokens:           ", np.asarray(tokens_demo[:, 0]).astype(int))
y_shift = jax.jit(ssm.short_causal_conv)(tokens_demo, K_delay)   # (L, H)
print("shift SSM output:       ", np.asarray(y_shift[:, 0]))
print("its state after the input (the last N inputs, newest first):",
      np.asarray(shift_ssm.final_state(tokens_demo, N_SHIFT)[0]).astype(int))
A_slow = ssm.init_A(1, 4, "lin")
dA_slow, dB_slow = ssm.discretize(A_slow, jnp.ones_like(A_slow), jnp.array([0.1]))
K_slow = kernel(dA_slow, dB_slow, jnp.full((1, 4), 0.25 + 0j), L_demo)
y_slow = jax.jit(ssm.causal_conv)(tokens_demo, K_slow)          # (L, H)
print("diagonal SSM output:    ", np.asarray(y_slow[:, 0]).round(2))

# %% [markdown]
# At initialisation H3's shift SSM has C drawn uniformly (64 taps for d_state 64), and its
# diagonal SSM uses S4D-Lin with dt drawn log-uniformly in [1e-3, 1e-1]. Below, three channels
# of each: 64 taps and then exact zeros, against kernels that reach every lag and fade. The step
# size dt sets how fast (here it is set to 0.002, 0.01 and 0.05 to show the range). Under ZOH
# every mode would shrink by exactly exp(-dt/2) per step, a factor e every 2/dt steps; the
# bilinear rule matches that for the slow modes but lets modes with dt w of order 1 or more
# fade more slowly, and those fast modes make the kernel rough at a large dt.

# %%
L_SHOW = 256
shift_init = jax.jit(ssm.init_shift_ssm, static_argnums=(1, 2))(jax.random.key(5), 3, 64)
K_shift = shift_kernel(shift_init["B"], shift_init["C"], L_SHOW)                # (3, L)
diag_init = jax.jit(ssm.init_diag_ssm, static_argnums=(1, 2))(jax.random.key(6), 3, 32)
dts = jnp.array([0.002, 0.01, 0.05])
dA_init, dB_init = ssm.discretize(diag_init["A"], diag_init["B"], dts)
K_init = kernel(dA_init, dB_init, diag_init["C"], L_SHOW)         # (3, L)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.2), sharex=True)
for c in range(3):
    axes[0].plot(K_shift[c], lw=1, label=f"channel {c}")
    axes[1].plot(K_init[c], lw=1, label=f"channel {c}, dt = {float(dts[c]):g}")
axes[0].axvline(63.5, color="0.5", ls=":")                    # after the last of 64 taps
axes[0].set_title("shift SSM kernels: a 64-tap filter (exact recent tokens)")
axes[1].set_title("diagonal SSM kernels: every lag, fading (a summary)")
for ax in axes:
    ax.set_xlabel("lag")
    ax.legend(fontsize=8)
show(fig, "3_two_memories")

# %% [markdown]
# ### The H3 mixer
#
# H3 combines them like linear attention: project the input x (B, L, D) to q, k, v; pass k
# through the shift SSM; bind it to v; let the diagonal SSM accumulate the bound pairs; read the
# result out with q:
#
# $$\mathrm{out} = W_o\,\big(q \odot \mathrm{SSM}_\mathrm{diag}
#   (\mathrm{SSM}_\mathrm{shift}(k) \odot v)\big).$$
#
# With head dimension P > 1 the D channels form H = D / P heads, the binding is the outer product
# shift(k)_t v_t^T (a P x P matrix per head), the diagonal SSM filters each of its P^2 entries,
# and q_t contracts the first index: one head is then a linear-attention head whose running sum
# is replaced by a decaying SSM. Here is `h3_jax.mixers.H3` on a toy input with D = 8, P = 2
# (H = 4 heads), stage by stage, through the module's own parts (`H3.qkv` and the functions
# `head_outer` and `head_contract` of `h3_jax/mixers/h3.py`); the last line checks that
# together they are the module's output.

# %%
Bt, Lt, Dt, Pt = 1, 6, 8, 2
h3_config = mixers.H3Config(head_dim=Pt, d_state=16)
mixer = mixers.H3(h3_config, mixers.Shared(d_model=Dt))
x_toy = jax.random.normal(jax.random.key(7), (Bt, Lt, Dt))           # (B, L, D): 6 "token" vectors
mixer_params = jax.jit(mixer.init)(jax.random.key(8), x_toy)["params"]


STAGES = ("x", "q", "k", "v", "shift(k)", "shift(k) (x) v", "SSM_diag(...)", "q . SSM_diag(...)",
          "out = W_o(...)")


def stages(m, x):
    """The forward pass of `h3_jax.mixers.H3`, one stage at a time (names in STAGES), and the
    module's own output."""
    q, k, v = m.qkv(x)                                              # each (B, L, D)
    k_shifted = shift_ssm.sequence(m.shift_ssm(), k)                # (B, L, D)
    kv = h3_mixer.head_outer(k_shifted, v, Pt)                      # (B, P, P, L, H)
    y = diag_ssm.sequence(m.diag_ssm(), kv, h3_config.algorithm)    # (B, P, P, L, H)
    qy = h3_mixer.head_contract(q, y, Pt)                           # (B, L, D)
    return (x, q, k, v, k_shifted, kv, y, qy, m.output_linear(qy)), m(x)


by_stage, out_module = jax.jit(functools.partial(mixer.apply, method=stages))(
    {"params": mixer_params}, x_toy)
for name, value in zip(STAGES, by_stage):
    print(f"{name:18s} {value.shape}")
print(f"the stages vs H3.__call__: max |diff| = {max_diff(by_stage[-1], out_module):.1e}")
print("SSM parameters:", jax.tree.map(jnp.shape, {name: mixer_params[name]
                                                 for name in ("shift_ssm", "diag_ssm")}))

# %% [markdown]
# The shift SSM keeps one filter per channel (D of them, 16 taps each here), the diagonal SSM
# one per head (H = 4, each with d_state / 2 = 8 complex modes); B and C of the diagonal SSM are
# stored as (real, imaginary) pairs.

# %% [markdown]
# ## 4. Training a small H3 on associative recall
#
# The task of the H3 paper: 10 random key-value pairs over 4 keys and 4 values (V = 10 with the
# two special tokens), then "=>" and a key; the model must output that key's value. The `tiny-ar`
# preset trains a 2-layer H3 (D = 64, P = 4, so H = 16 heads, d_state 64) on fresh examples with
# `h3_jax.train.train`, the same loop as `h3-jax train tiny-ar`. Its 500 steps take about half a
# minute on one CPU core. We evaluate and write a checkpoint only at the end, into a temporary
# directory.

# %%
config = presets.get_preset("tiny-ar")
# Evaluate and save only at the end.
config = dataclasses.replace(config, train=dataclasses.replace(
    config.train, eval_every=0, checkpoint_every=config.train.steps))
print(config.model.mixer)
print(f"{config.train.steps} steps, batch {config.train.batch_size}, lr {config.optim.lr}")
workdir = os.path.join(SCRATCH.name, "tiny-ar")
result = train(config, workdir, show_progress=False)
accuracy = result.summary["test_accuracy"][0]
summary = result.summary
print(f"status {result.status}: test accuracy {accuracy:.1%} on {config.task.num_test_examples} "
      f"test examples after {summary['final_step']} steps, {summary['elapsed_s']:.0f} s "
      f"(compiling {summary['compile_s']:.0f} s)")

# %% [markdown]
# On this machine the run ends at 100% test accuracy (chance is 25%: four possible values). The
# paper's H3 reaches 99.8% with head dimension 1 and 31,400 steps; four-dimensional heads learn
# the task in far fewer.
#
# Load the checkpoint back with `h3_jax.train.load_state`. The trainer stacks one replica per
# seed along a leading axis; there is one replica here. `run` also holds the test set the accuracy
# above was measured on.

# %%
run, state, step, _ = load_state(workdir)
params = unstack_tree(state["params"], 0)
test_set = run.data.tests[0]
model = config.model
print(f"step {step}; test set inputs {test_set.inputs.shape} (examples, L)")

# %% [markdown]
# ### The learned filters
#
# Each layer's SSM parameters go back through the package's own modules (`ShiftSSM`, `DiagSSM`)
# to give kernels. Left: every channel's shift-SSM filter over lags 0 to 21, the only ones a
# sequence of L = 22 tokens can use. Right: the 16 diagonal-SSM kernels of each layer over the
# same lags.

# %%
L_AR, H_AR = config.task.seq_len, model.d_model // model.mixer.head_dim


@jax.jit
def layer_kernels(p):
    """The shift-SSM filters (D, d_state) and diagonal-SSM kernels (H, L) of one H3 layer."""
    shift_module = shift_ssm.ShiftSSM(model.d_model, model.mixer.d_state)
    K_shift = shift_module.apply({"params": p["shift_ssm"]}).K
    dyn = diag_ssm.DiagSSM(H_AR, model.mixer.n_modes, model.mixer.discretization).apply(
        {"params": p["diag_ssm"]})
    return K_shift, ssm.diag_ssm_kernel(dyn.dA, dyn.dB, dyn.C, L_AR)


fig, axes = plt.subplots(2, 2, figsize=(11, 6.5))
for layer in range(model.n_layer):
    K_sh, K_dg = (np.asarray(k) for k in layer_kernels(params[f"layers_{layer}"]["mixer"]))
    K_sh = K_sh[:, :L_AR]
    limit = np.abs(K_sh).max()
    image = axes[layer, 0].imshow(K_sh, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit)
    fig.colorbar(image, ax=axes[layer, 0])
    axes[layer, 0].set_title(f"layer {layer}: shift-SSM filters (D = {model.d_model} channels)")
    axes[layer, 0].set_xticks(range(0, L_AR, 3))
    axes[layer, 0].set_xlabel("lag j")
    axes[layer, 0].set_ylabel("channel")
    axes[layer, 1].plot(K_dg.T, lw=1)
    axes[layer, 1].set_title(f"layer {layer}: diagonal-SSM kernels (H = {H_AR} heads)")
    axes[layer, 1].set_xlabel("lag l")
    largest = np.unravel_index(np.argsort(np.abs(K_sh), axis=None)[::-1][:5], K_sh.shape)
    print(f"layer {layer}: the 5 largest filter taps (channel, lag, value):",
          ", ".join(f"({c}, {j}, {K_sh[c, j]:+.2f})" for c, j in zip(*largest)))
show(fig, "4_trained_filters")

# %% [markdown]
# At initialisation every tap lies within +-1/8. After training, most of the largest taps of
# layer 0 sit at lag 1, in a handful of channels: there k_t carries the token *before* t, so
# shift(k)_t (x) v_t binds each value to the key that preceded it. That is the first half of
# recall. In layer 0 some diagonal kernels stay smooth and almost flat, a running sum of the
# bindings over the whole context (the store that the query later reads with q); others, and
# most of layer 1's, learned to oscillate within a few tokens.
#
# ### Watching the recall happen
#
# Take a test example in which the queried key occurs exactly once in the context, and its value
# only there, so a single key-value pair holds the answer. Replace one input position at a time
# with the noop token "." (id 0, which never occurs in the task) and record the probability the
# model gives the correct answer. Positions the answer depends on stand out as drops.

# %%
vocab = config.task.vocab
inputs, targets = np.asarray(test_set.inputs), np.asarray(test_set.targets)
for row in range(len(inputs)):        # the context holds keys at even, values at odd positions
    query, answer = inputs[row, -1], targets[row, -1]
    if np.sum(inputs[row, :-2:2] == query) == 1 and np.sum(inputs[row, 1:-2:2] == answer) == 1:
        break
tokens, answer = inputs[row], int(answer)
key_position = 2 * int(np.flatnonzero(tokens[:-2:2] == query)[0])
print("example:", vocab.decode(tokens), "->", vocab.decode([answer]))
ablated = np.repeat(tokens[None], L_AR + 1, axis=0)          # row 0 intact, row p + 1 without p
ablated[np.arange(1, L_AR + 1), np.arange(L_AR)] = vocab.noop_id
forward = jax.jit(LM(model).apply)
logits = forward({"params": params}, jnp.asarray(ablated))                # (L + 1, L, V)
p_answer = np.asarray(jax.nn.softmax(logits[:, -1]))[:, answer]
print(f"p(answer) intact {p_answer[0]:.3f}; with the key at position {key_position} removed "
      f"{p_answer[key_position + 1]:.3f}, its value {p_answer[key_position + 2]:.3f}, "
      f"the query key {p_answer[L_AR]:.3f}; lowest elsewhere "
      f"{np.delete(p_answer[1:], [key_position, key_position + 1, L_AR - 1]).min():.3f}")

# %% [markdown]
# The same numbers, one bar per removed token, with the key, its value and the query in colour.

# %%
fig, ax = plt.subplots(figsize=(10, 3.4))
colors = ["0.6"] * L_AR
for position, color in ((key_position, "C0"), (key_position + 1, "C1"), (L_AR - 1, "C2")):
    colors[position] = color
ax.bar(np.arange(L_AR), p_answer[1:], color=colors)
ax.axhline(p_answer[0], color="k", ls="--", lw=1)
ax.set_xticks(np.arange(L_AR), [vocab.decode([token]) for token in tokens])
ax.set_xlabel("input token removed (blue: the key, orange: its value, green: the query)")
ax.set_ylabel("p(correct answer)")
ax.set_title(f"which inputs the answer '{vocab.decode([answer])}' depends on "
             f"(dashed: nothing removed, p = {p_answer[0]:.2f})")
show(fig, "4_recall")

# %% [markdown]
# Removing any other token leaves the answer almost untouched. Removing the key, its value or the
# query breaks it: the model found this one pair among the ten and read its value out.

# %% [markdown]
# ## 5. Generation with a recurrent state
#
# Training runs whole sequences through the convolution view. Generation needs one token at a
# time, and there the recurrent view wins: `generate.prefill` runs the prompt through the
# convolution and reads the state off it (for H3: the shift SSM's last d_state inputs and the
# diagonal SSM's complex state, per layer); `generate.step` then advances by one token at
# constant cost. We
# prefill the first 8 tokens of the test example, step through the rest, and compare with the
# full forward pass (row 0 of the ablation batch above, the intact example).

# %%
prompt = jnp.asarray(tokens[None])                                      # (B = 1, L)
full = logits[:1]                                                       # (B, L, V)
logits_prefill, gen_state = generate.prefill(model, params, prompt[:, :8])
stepped = [logits_prefill]
for position in range(8, L_AR):
    logits_t, gen_state = generate.step(model, params, gen_state, prompt[:, position])
    stepped.append(logits_t[:, None])
stepped = jnp.concatenate(stepped, axis=1)
print("state per layer:", jax.tree.map(lambda a: (a.shape, str(a.dtype)), gen_state["layers"][0]))
print(f"prefill + step vs the full forward pass: max |logit diff| = {max_diff(stepped, full):.1e}")
print("after", vocab.decode(tokens), "the last step predicts",
      vocab.decode(np.argmax(stepped[:, -1], -1)))

# %% [markdown]
# ### Cost per generated token: H3 against attention
#
# An attention layer must keep every past key and value (its KV cache) and read all of them for
# each new token, so the cost of a token grows with the context. H3's state has a fixed size
# whatever the context. We time `generate.step` of the trained H3 against an attention LM of the
# same size (`"attention"` mixer, 4 heads, random weights: the cost does not depend on the
# values), each step inside one compiled `lax.scan` of 16 tokens so that Python's dispatch does
# not hide the compute. The attention step reads all max_len slots of its cache, masking the
# unwritten ones, so we start from the empty state of a cache of `context` slots placed at
# position context - 16. These are this CPU's numbers, one core, batch 1; they show the trend,
# not what an accelerator would do.

# %%
@functools.partial(jax.jit, static_argnums=(0, 4))
def generate_tokens(config, params, state, token, n):
    """n greedy tokens by generate.step, as one compiled loop."""
    def one(carry, _):
        state, token = carry
        logits, state = generate.step(config, params, state, token)
        return (state, jnp.argmax(logits, -1).astype(jnp.int32)), None
    return jax.lax.scan(one, (state, token), None, length=n)[0][1]


def cost_per_token(config, params, context, n=16):
    """(ms per token, MB of state) of n steps from a state of `context` positions."""
    state = generate.init_state(config, 1, max_len=context)
    state = {**state, "position": jnp.asarray(context - n, jnp.int32)}
    seconds = best_seconds(generate_tokens, config, params, state, jnp.zeros((1,), jnp.int32), n,
                           repeats=3)
    return 1e3 * seconds / n, sum(leaf.nbytes for leaf in jax.tree.leaves(state)) / 1e6


attention_model = model.replace(mixer=mixers.AttentionConfig(n_heads=4, dropout=0.0))
attention_params = jax.jit(LM(attention_model).init)(jax.random.key(9), prompt)["params"]
contexts = (512, 4096, 32768)
costs = {"H3 (recurrent state)": [cost_per_token(model, params, c) for c in contexts],
         "attention (KV cache)": [cost_per_token(attention_model, attention_params, c)
                                  for c in contexts]}
print("per generated token, D = 64, 2 layers, batch 1, one CPU core:")
print(f"{'context':22s}" + "".join(f"{c:>18d}" for c in contexts))
for name, values in costs.items():
    print(f"{name:22s}" + "".join(f"{ms:8.3f} ms {mb:5.2f} MB" for ms, mb in values))

# %% [markdown]
# The time per token against the context length, on log scales.

# %%
fig, ax = plt.subplots(figsize=(6, 3.6))
for name, values in costs.items():
    ax.loglog(contexts, [ms for ms, _ in values], "o-", label=name)
ax.set_xlabel("context length (tokens)")
ax.set_ylabel("ms per generated token")
ax.set_title("one generation step on this CPU (one core)")
ax.legend(fontsize=8)
show(fig, "5_generation_cost")

# %% [markdown]
# H3's cost per token stays flat because its state does not grow; attention's grows with the
# context, about linearly once reading the cache dominates. The state sizes printed above say
# the same for memory: the attention cache holds 2 layers x (keys, values) x context x D
# floats, while H3 keeps, per layer, the last d_state inputs of each of the D shift-SSM channels
# and P x P x H x N complex numbers of the diagonal SSM, at any length.

# %% [markdown]
# Last, delete the temporary directory: the training run and the compilation cache.

# %%
SCRATCH.cleanup()                                    # the run directory and the compilation cache
print(f"whole document: {time.perf_counter() - START:.0f} s")
