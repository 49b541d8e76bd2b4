"""wirewatch training side: data preparation, fine-tuning, evaluation and ONNX export."""
