"""Settings shared by the mixers built on the diagonal SSM (H3, S4D, GSS)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from h3_jax import validate
from h3_jax.mixers.base import MixerConfig

DISCRETIZATIONS = ("bilinear", "zoh")
A_INITS = ("lin", "inv", "legs")


@dataclasses.dataclass(frozen=True)
class DiagSSMConfig(MixerConfig):
    """The diagonal SSM's size, discretization, init and whole-sequence algorithm."""

    ALGORITHMS: ClassVar[tuple[str, ...]] = ("fft", "scan")

    d_state: int = 64
    """Real state size, as in the official H3: d_state / 2 complex modes (conjugate pairs) per
    channel; the H3 shift SSM has d_state taps. Must be even."""
    discretization: str = "bilinear"
    """"bilinear" or "zoh"."""
    A_init: str = "lin"
    """Eigenvalue init: "lin" (S4D-Lin), "inv" (S4D-Inv) or "legs" (S4D-LegS: the normal part
    of HiPPO-LegS)."""
    dt_min: float = 1e-3
    """Lower end of the log-uniform init of the step size dt."""
    dt_max: float = 1e-1
    """Upper end of the log-uniform init of the step size dt."""
    algorithm: str = "fft"
    """Whole sequences by "fft" (kernel + causal convolution) or "scan" (associative scan)."""

    def __post_init__(self):
        owner = type(self).__name__
        validate.positive_int(owner, "d_state", self.d_state)
        if self.d_state % 2:
            raise ValueError(
                f"{owner}.d_state: got {self.d_state}; must be even (d_state / 2 complex modes)"
            )
        validate.one_of(owner, "discretization", self.discretization, DISCRETIZATIONS)
        validate.one_of(owner, "A_init", self.A_init, A_INITS)
        validate.positive_float(owner, "dt_min", self.dt_min)
        validate.positive_float(owner, "dt_max", self.dt_max)
        if self.dt_min > self.dt_max:
            raise ValueError(
                f"{owner}.dt_min/dt_max: got dt_min={self.dt_min}, dt_max={self.dt_max}; "
                "need dt_min <= dt_max"
            )
        validate.one_of(owner, "algorithm", self.algorithm, self.algorithms)

    @property
    def n_modes(self) -> int:
        """Complex modes per channel (d_state / 2)."""
        return self.d_state // 2
