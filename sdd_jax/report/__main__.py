"""`python -m sdd_jax.report`: see the package docstring."""
import sys

from sdd_jax.report.cli import main

sys.exit(main())
