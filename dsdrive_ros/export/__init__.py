"""Export library behind export/*.py: ONNX (validated), Q/DQ int8, TensorRT engines."""
