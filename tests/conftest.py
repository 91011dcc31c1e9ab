"""Every test process uses the command lines' set-up (experiments.cli.start_jax): the CPU devices
(adaps_jax.runtime.configure_cpu) and the compilation cache, so that the many tests that compile
the same small programs (and the command lines they start) compile each one once."""
from experiments.cli import start_jax

start_jax()
