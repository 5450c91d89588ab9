"""ifirnn_jax: IFI-RNN video deblurring (Nah, Son, Lee, CVPR 2019) in JAX/Flax.

    import ifirnn_jax as ifr
    model = ifr.IFIRNN(cells=2, iterations=3)
    params = model.init(jax.random.key(0))       # or ifr.load_weights("w.safetensors")
    out = model.deblur(params, video)            # [T,H,W,3] or [B,T,H,W,3], float32 in [0,1]
    ifr.save_weights(params, "w.safetensors", model=model)
"""

from ifirnn_jax.model.network import IFIRNN, GateTrace, straight_through_gumbel
from ifirnn_jax.model.losses import content_loss, gate_regularizer, total_loss
from ifirnn_jax.storage.checkpoint import CheckpointError, load_checkpoint
from ifirnn_jax.storage.weights import (WeightsError, load_model, load_weights, save_weights,
                                to_torch_state_dict, from_torch_state_dict)

__all__ = [
    "IFIRNN", "GateTrace", "straight_through_gumbel",
    "content_loss", "gate_regularizer", "total_loss",
    "CheckpointError", "load_checkpoint",
    "WeightsError", "load_model", "load_weights", "save_weights",
    "to_torch_state_dict", "from_torch_state_dict",
]
__version__ = "0.1.0"
