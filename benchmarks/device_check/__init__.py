r"""A one-shot check for a lent accelerator (issue 24 item 5), prepared for at most 8 minutes on
one H100 (an estimate: see `settings.py`).

  python -m benchmarks.device_check.bundle          # here, once: data subset + wheels
  bash benchmarks/device_check/run.sh --out DIR     # there: installs the wheels, runs the check
  python -m benchmarks.device_check --out DIR --smoke   # anywhere, in seconds (the test)

Writes `DIR/device_check.json` and `DIR/device_check.md`: the environment, step time and
images/s of CE and every method (interleaved), MFU from the compiled FLOPs, compile times and
peak memory, the host input pipeline against the step, translation tokens/s at IWSLT size, and
a short CE vs SD-Dropout training comparison on the bundled CIFAR-10 subset.
"""
