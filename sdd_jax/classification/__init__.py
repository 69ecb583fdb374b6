"""The image classification task: its trainer, step, evaluation,
init_from and probe."""
