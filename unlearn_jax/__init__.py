"""unlearn-jax: functional JAX/Flax kernels for machine-unlearning research."""

__version__ = "0.1.0"
