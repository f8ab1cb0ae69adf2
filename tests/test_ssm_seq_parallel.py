"""h3_jax.ssm.seq_parallel on its own: the length split over 4 fake devices (in a subprocess,
where XLA can still be given them) against the whole sequence on one device, in float64: the
diagonal SSM through the all-gathered incoming states (values and gradients, against the
sequential recurrence), the shift SSM's filter through the halo."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# float64 throughout: the paths differ only in summation order.
TOLERANCE = 1e-10

SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_num_cpu_devices", 4)
    jax.config.update("jax_enable_x64", True)
    from jax.sharding import PartitionSpec as P
    from h3_jax import ssm
    from h3_jax.ssm import seq_parallel

    H, N, L, S = 3, 4, 64, 4
    T = L // S
    rng = np.random.default_rng(0)
    dA = jnp.asarray(np.exp((-rng.uniform(0.01, 0.3, (H, N)) + 1j * rng.uniform(0, 1, (H, N)))))
    dB = jnp.asarray(rng.normal(size=(H, N)) + 1j * rng.normal(size=(H, N)))
    C = jnp.asarray(rng.normal(size=(H, N)) + 1j * rng.normal(size=(H, N)))
    u = jnp.asarray(rng.normal(size=(2, L, H)))
    g = jnp.asarray(rng.normal(size=(2, L, H)))
    taps = jnp.asarray(rng.normal(size=(H, 5)))
    mesh = jax.make_mesh((S,), ("seq",), axis_types=(jax.sharding.AxisType.Auto,))
    split = P(None, "seq", None)

    def diag_chunk(C, u):
        y = ssm.causal_conv(u, ssm.diag_ssm_kernel(dA, dB, C, T))
        x_in = seq_parallel.incoming_state(dA, ssm.diag_ssm_final_state(dA, dB, u), T, "seq")
        return y + ssm.diag_ssm_state_output(dA, C, x_in, T)

    def shift_chunk(u):
        width = taps.shape[-1] - 1
        return ssm.short_causal_conv(seq_parallel.with_halo(u, width, "seq"), taps)[:, width:]

    sharded = jax.shard_map(diag_chunk, mesh=mesh, in_specs=(P(), split), out_specs=split)
    whole = lambda C, u: ssm.diag_ssm_recurrence(dA, dB, C, u)[0]
    loss = lambda f: (lambda C, u: jnp.sum(f(C, u) * g))
    rel = lambda a, b: float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))
    errors = [rel(jax.jit(sharded)(C, u), whole(C, u))]
    for a, b in zip(jax.grad(loss(sharded), argnums=(0, 1))(C, u),
                    jax.grad(loss(whole), argnums=(0, 1))(C, u)):
        errors.append(rel(a, b))
    halo = jax.shard_map(shift_chunk, mesh=mesh, in_specs=split, out_specs=split)
    errors.append(rel(jax.jit(halo)(u), ssm.direct_causal_conv(u, taps)))
    print(*errors)
""")


def test_split_length_matches_the_whole_sequence():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    errors = [float(e) for e in done.stdout.split()]
    assert len(errors) == 4  # diagonal values, its gradients wrt C and u, the shift filter
    assert max(errors) < TOLERANCE, errors
