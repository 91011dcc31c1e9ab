"""Every test process uses the command lines' set-up (experiments.cli.start_jax): the CPU devices
(adaps_jax.runtime.configure_cpu) and the compilation cache, so that the many tests that compile
the same small programs (and the command lines they start) compile each one once.

The fast suite (`make test`, `-m 'not slow'`) also compiles with XLA's backend optimisation level
0: its tests compile hundreds of small programs and run each for a moment, so compilation is most
of their time, and level 0 compiles them about 40% faster (3 of the slowest tests: 97 s -> 57 s
from an empty cache). The programs compute the same functions; only instruction selection and
ordering change, so float results may differ in the last bits from a default build, which no test
of the fast suite compares across builds (a test compares runs of one process, or against
tolerances). `make test-slow`, whose learning runs are long, keeps the default level, which is also
what users run.
"""
from adaps_jax.runtime import default_xla_flag
from experiments.cli import start_jax


def pytest_configure(config):
    if "not slow" in (config.option.markexpr or ""):
        default_xla_flag("xla_backend_optimization_level", "0")  # before JAX starts its backend
    start_jax()
