"""Every test process uses the command lines' CPU set-up (adaps_jax.runtime.configure_cpu)."""
from adaps_jax.runtime import configure_cpu

configure_cpu()
