"""Checkpoints: streamlin's zarr snapshots, and reading TensorFlow checkpoints (tf_reader)."""
