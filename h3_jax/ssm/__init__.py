"""The state space model core: pure `jax.numpy` functions, no Flax.

Axis letters, used in every shape in h3_jax:
    B  batch            L  sequence length     H  SSM channels (or heads)
    N  modes per channel (complex for the diagonal SSM, real taps for the shift SSM)
    D  model width      P  head dimension       V  vocabulary size
    T  steps of one chunk of L (a device's stretch of the sequence under sequence parallelism)

Sequences are channels-last, (..., L, H), with any leading batch axes. The diagonal SSM keeps
N complex modes per channel and reads out y = 2 Re(C x): the conjugate of each mode is implied.

Three exact views of one diagonal SSM, each with its reference:
    convolution  diag_ssm_kernel + causal_conv    (reference: direct_causal_conv;
                 short_causal_conv for short filters such as the shift SSM's)
    parallel     diag_ssm_scan                    (reference: diag_ssm_recurrence)
    recurrent    diag_ssm_step
and state passing (diag_ssm_state_passing) to run the convolution view chunk by chunk, or,
with the length split over devices, device by device (seq_parallel).
HiPPO-LegS (hippo_legs, legendre_reconstruction) is where the diagonal inits come from
(init_A: S4D-Lin, S4D-Inv, S4D-LegS).

The selective SSM (Mamba's S6), whose dt, B and C depend on the input, has only the recurrence:
selective_scan (reference: selective_recurrence) and selective_step.
"""

from h3_jax.ssm import seq_parallel
from h3_jax.ssm.conv import causal_conv, direct_causal_conv, fft_length, short_causal_conv
from h3_jax.ssm.discretize import discretize
from h3_jax.ssm.hippo import hippo_legs, legendre_reconstruction, legs_normal_eigenvalues
from h3_jax.ssm.init import init_A, init_C, init_diag_ssm, init_log_dt, init_shift_ssm
from h3_jax.ssm.kernels import diag_ssm_kernel, fit_length, shift_ssm_kernel, vandermonde
from h3_jax.ssm.scan import diag_ssm_recurrence, diag_ssm_scan, diag_ssm_step
from h3_jax.ssm.selective import selective_recurrence, selective_scan, selective_step
from h3_jax.ssm.state import diag_ssm_final_state, diag_ssm_state_output, diag_ssm_state_passing

__all__ = [
    "causal_conv",
    "diag_ssm_final_state",
    "diag_ssm_kernel",
    "diag_ssm_recurrence",
    "diag_ssm_scan",
    "diag_ssm_state_output",
    "diag_ssm_state_passing",
    "diag_ssm_step",
    "direct_causal_conv",
    "discretize",
    "fft_length",
    "fit_length",
    "hippo_legs",
    "init_A",
    "init_C",
    "init_diag_ssm",
    "init_log_dt",
    "init_shift_ssm",
    "legendre_reconstruction",
    "legs_normal_eigenvalues",
    "selective_recurrence",
    "selective_scan",
    "selective_step",
    "seq_parallel",
    "shift_ssm_kernel",
    "short_causal_conv",
    "vandermonde",
]
