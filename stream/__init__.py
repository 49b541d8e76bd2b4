"""wirewatch serving side: bundle loading, preprocessing and ONNX Runtime scoring over Kafka.

Nothing here imports torch, transformers or the ``training`` package: the model bundle is the
contract between training and serving.
"""

__version__ = "0.1.0"
