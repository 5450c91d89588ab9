"""Training's parts: the default config, the jitted train step, the input noise drawn on
the device, batches prefetched onto the devices and the metric writers.

The loop itself and its command are `ifirnn_jax.train`.
"""
