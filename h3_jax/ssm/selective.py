"""The selective SSM (Mamba's S6): a diagonal real SSM whose dt, B and C change at every step.

Per channel h and mode n, with A[h, n] < 0 and a step size dt_t[h] > 0 read from the input,
A is discretized by zero-order hold and B by an Euler step:

    x_t[h, n] = exp(dt_t[h] A[h, n]) x_{t-1}[h, n] + dt_t[h] B_t[n] u_t[h]
    y_t[h]    = sum_n C_t[n] x_t[h, n] + D[h] u_t[h]

B_t and C_t are shared by the H channels. Each step is the affine map x -> a x + b with
a = exp(dt A) and b = dt B u, so the sequence runs as an associative scan of those maps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from h3_jax.ssm._checks import Signature, positive_int
from h3_jax.ssm._chunks import scan_chunks
from h3_jax.ssm.kernels import HIGHEST
from h3_jax.ssm.scan import _combine


def _check(fn: str, seqs, A, D, x0, x0_name: str):
    """Validate (name, array, spec) of u, dt, B, C, then A, D, x0 -> (dtype, x0 or zeros).

    Every sequence and x0 must have the leading batch axes of u. The computation runs in the
    common dtype of the arguments.
    """
    sig = Signature(fn)
    u_name, u, u_spec = seqs[0]
    sig.array(u_name, u, u_spec, kind="real")
    batch = sig.batch_shape(u_name, u, u_spec)
    checks = [seqs[1], ("A", A, "H N"), *seqs[2:]]  # the order of the arguments
    if D is not None:
        checks.append(("D", D, "H"))
    if x0 is not None:
        checks.append((x0_name, x0, "... H N"))
    for name, x, spec in checks:
        sig.array(name, x, spec, kind="real")
        if spec.startswith("...") and sig.batch_shape(name, x, spec) != batch:
            expected = "(" + ", ".join([*map(str, batch), *spec.split()[1:]]) + ")"
            raise ValueError(
                f"{fn}: argument '{name}' must have shape {expected} with the batch axes of "
                f"'{u_name}', got shape {tuple(x.shape)}"
            )
    dtype = jnp.result_type(*[x for _, x, _ in seqs], A, *[x for x in (D, x0) if x is not None])
    if x0 is None:
        x0 = jnp.zeros((*batch, *A.shape), dtype)
    return dtype, x0.astype(dtype)


def _sequences(u, dt, B, C):
    """(name, array, shape spec) of the per-step inputs of a whole sequence, for `_check`."""
    return [("u", u, "... L H"), ("dt", dt, "... L H"), ("B", B, "... L N"), ("C", C, "... L N")]


def _readout(C, x, D, u):
    """y[..., h] = sum_n C[..., n] x[..., h, n] (+ D[h] u[..., h])."""
    y = jnp.einsum("...hn,...n->...h", x, C, precision=HIGHEST)
    return y if D is None else y + D * u


def _scan_block(A, D, x0, u, dt, B, C):
    """Associative scan over one block of T steps, u (..., T, H), from state x0 -> (y, x_last)."""
    a = jnp.exp(dt[..., None] * A)  # (..., T, H, N)
    b = (dt * u)[..., None] * B[..., None, :]  # (..., T, H, N)
    b = b.at[..., 0, :, :].add(a[..., 0, :, :] * x0)
    _, x = jax.lax.associative_scan(_combine, (a, b), axis=b.ndim - 3)
    return _readout(C, x, D, u), x[..., -1, :, :]


def selective_scan(
    u: Float[Array, "... L H"],
    dt: Float[Array, "... L H"],
    A: Float[Array, "H N"],
    B: Float[Array, "... L N"],
    C: Float[Array, "... L N"],
    D: Float[Array, " H"] | None = None,
    x0: Float[Array, "... H N"] | None = None,
    chunk_size: int | None = None,
) -> tuple[Float[Array, "... L H"], Float[Array, "... H N"]]:
    """Run the selective recurrence over u with `jax.lax.associative_scan` -> (y, x_last).

    dt must be positive and A negative (neither is checked). x0 defaults to zeros; x_last is
    the state after the last step. With `chunk_size`, the scan runs inside chunks of that many
    steps and a sequential loop carries the state between them, so the (..., T, H, N) arrays
    exist for one chunk at a time; the backward pass recomputes each chunk instead of storing
    its states.
    """
    fn = "selective_scan"
    seqs = _sequences(u, dt, B, C)
    dtype, x0 = _check(fn, seqs, A, D, x0, "x0")
    u, dt, A, B, C = (x.astype(dtype) for x in (u, dt, A, B, C))
    D = None if D is None else D.astype(dtype)
    length = u.shape[-2]
    if chunk_size is None or positive_int(fn, "chunk_size", chunk_size) >= length:
        return _scan_block(A, D, x0, u, dt, B, C)

    @jax.checkpoint
    def one_chunk(x, chunk):
        y, x = _scan_block(A, D, x, *chunk)
        return x, y

    return scan_chunks(one_chunk, x0, (u, dt, B, C), chunk_size)


def selective_step(
    x: Float[Array, "... H N"],
    u_t: Float[Array, "... H"],
    dt_t: Float[Array, "... H"],
    A: Float[Array, "H N"],
    B_t: Float[Array, "... N"],
    C_t: Float[Array, "... N"],
    D: Float[Array, " H"] | None = None,
) -> tuple[Float[Array, "... H N"], Float[Array, "... H"]]:
    """One step of the recurrence -> (x_new, y_t):

    x_new = exp(dt_t A) x + dt_t B_t u_t,    y_t = C_t x_new + D u_t.
    """
    seqs = [("u_t", u_t, "... H"), ("dt_t", dt_t, "... H"), ("B_t", B_t, "... N"),
            ("C_t", C_t, "... N")]
    dtype, x = _check("selective_step", seqs, A, D, x, "x")
    u_t, dt_t, A, B_t, C_t = (v.astype(dtype) for v in (u_t, dt_t, A, B_t, C_t))
    D = None if D is None else D.astype(dtype)
    x = jnp.exp(dt_t[..., None] * A) * x + (dt_t * u_t)[..., None] * B_t[..., None, :]
    return x, _readout(C_t, x, D, u_t)


def selective_recurrence(
    u: Float[Array, "... L H"],
    dt: Float[Array, "... L H"],
    A: Float[Array, "H N"],
    B: Float[Array, "... L N"],
    C: Float[Array, "... L N"],
    D: Float[Array, " H"] | None = None,
    x0: Float[Array, "... H N"] | None = None,
) -> tuple[Float[Array, "... L H"], Float[Array, "... H N"]]:
    """Reference for `selective_scan`: one step at a time with `jax.lax.scan` -> (y, x_last)."""
    seqs = _sequences(u, dt, B, C)
    _, x0 = _check("selective_recurrence", seqs, A, D, x0, "x0")

    def step(x, inputs):
        return selective_step(x, *inputs[:2], A, *inputs[2:], D)

    time_major = tuple(jnp.moveaxis(v, -2, 0) for v in (u, dt, B, C))
    x_last, ys = jax.lax.scan(step, x0, time_major)
    return jnp.moveaxis(ys, 0, -2), x_last
