"""Detection transfer (paper §4.2, Table 4): torchvision's Faster R-CNN over an exported ResNet.

The optional extra (`pip install -r requirements-detection.txt`: torch, torchvision,
pycocotools). Nothing here is imported by `import sdd_jax`, and this file imports nothing, so
the core library never loads torch; the entry point is `python -m sdd_jax.detection.finetune`.
"""
