"""Test-wide set-up: 8 simulated CPU devices, so every test can build a multi-device mesh.

The flag must be set before JAX is imported anywhere; a caller's own XLA_FLAGS wins.
"""
import os

os.environ.setdefault('XLA_FLAGS', '--xla_force_host_platform_device_count=8')
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
