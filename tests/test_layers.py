"""The convolution layers against independent references: XLA's own convolution
(`lax.conv_general_dilated` at full precision), PyTorch's conv2d / conv_transpose2d, and
the Winograd transforms written out as matrices (Lavin & Gray 2016)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ifirnn_jax as ifr
from ifirnn_jax.model import layers, platforms

torch = pytest.importorskip("torch", reason="torch comes with the [test] extra")
import torch.nn.functional as F  # noqa: E402

_DIMS = ("NHWC", "HWIO", "NHWC")


def _relative(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _lax_conv3x3(x, kernel):
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), [(1, 1)] * 2, dimension_numbers=_DIMS,
                                      precision=jax.lax.Precision.HIGHEST)


def _random(shape, seed):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def _torch(x):  # NHWC -> NCHW
  return torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy())


# ------------------------------------------------------------------ Winograd F(4x4, 3x3)
def test_winograd_matrices_compute_a_1d_correlation():
  """y = A^T [(G g) * (B^T d)]: 4 outputs of the 3-tap correlation of a 6-sample input."""
  rng = np.random.default_rng(0)
  for _ in range(5):
    d, g = rng.standard_normal(6), rng.standard_normal(3)
    expected = np.array([d[i:i + 3] @ g for i in range(4)])
    got = layers._AT @ ((layers._G @ g) * (layers._BT @ d))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_winograd_kernel_is_g_kernel_g_transposed():
  kernel = _random((3, 3, 5, 7), 1)
  expected = np.einsum("ai,ijco,bj->abco", layers._G, np.asarray(kernel, np.float64), layers._G)
  np.testing.assert_allclose(layers.winograd_kernel(kernel), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n,h,w,c,o", [
    (2, 16, 24, 8, 8),   # whole tiles
    (1, 13, 18, 6, 5),   # odd sizes: partial tiles at the bottom and right
    (3, 1, 1, 3, 2),     # a single pixel
    (1, 5, 7, 16, 4),
    (2, 9, 4, 4, 12),
])
def test_winograd_equals_xla_and_torch_convolutions(n, h, w, c, o):
  x, kernel = _random((n, h, w, c), h * w), _random((3, 3, c, o), c * o)
  ours = layers.winograd_conv3x3(x, kernel)
  assert ours.shape == (n, h, w, o)
  assert _relative(ours, _lax_conv3x3(x, kernel)) < 3e-6
  theirs = F.conv2d(_torch(x), torch.from_numpy(np.asarray(kernel).transpose(3, 2, 0, 1).copy()),
                    padding=1).numpy().transpose(0, 2, 3, 1)
  assert _relative(ours, theirs) < 3e-6


@pytest.mark.parametrize("n,h,w,c,o", [(2, 11, 14, 6, 5), (1, 8, 8, 16, 16)])
def test_winograd_gradients_equal_the_xla_convolution_gradients(n, h, w, c, o):
  x, kernel = _random((n, h, w, c), 3), _random((3, 3, c, o), 4)
  cotangent = _random((n, h, w, o), 5)

  def grads(conv):
    return jax.vjp(conv, x, kernel)[1](cotangent)

  for ours, reference in zip(grads(layers.winograd_conv3x3), grads(_lax_conv3x3)):
    assert ours.shape == reference.shape
    assert _relative(ours, reference) < 3e-6


# ------------------------------------------------------------------ choice of algorithm
def _convolution_primitives(impl, x_shape, kernel_shape, padding=1):
  x = jax.ShapeDtypeStruct(x_shape, jnp.float32)
  kernel = jax.ShapeDtypeStruct(kernel_shape, jnp.float32)
  bias = jax.ShapeDtypeStruct(kernel_shape[-1:], jnp.float32)
  jaxpr = jax.make_jaxpr(lambda x, k, b: layers.conv2d(x, k, b, padding, impl))(x, kernel, bias)
  return {eqn.primitive.name for eqn in jaxpr.jaxpr.eqns}


def test_winograd_if_large_uses_winograd_for_large_3x3_convolutions_only():
  big, small = (1, 135, 240, 80), (1, 13, 11, 80)  # small: 4 x 3 = 12 4x4 tiles
  assert "conv_general_dilated" not in _convolution_primitives("winograd_if_large", big,
                                                               (3, 3, 80, 80))
  assert "conv_general_dilated" not in _convolution_primitives("winograd_if_large", (1, 16, 16, 80),
                                                               (3, 3, 80, 80))
  assert "conv_general_dilated" in _convolution_primitives("winograd_if_large", small, (3, 3, 80, 80))
  # Few channels: Winograd's matmuls would have K = 8; XLA's convolution is as fast.
  assert "conv_general_dilated" in _convolution_primitives("winograd_if_large", (1, 270, 480, 8),
                                                           (3, 3, 8, 80))
  assert "conv_general_dilated" in _convolution_primitives("xla", big, (3, 3, 80, 80))
  assert "conv_general_dilated" not in _convolution_primitives("winograd", small, (3, 3, 80, 80))
  # Winograd here is F(4x4, 3x3) only: other kernels and paddings stay XLA convolutions.
  assert "conv_general_dilated" in _convolution_primitives("winograd", big, (5, 5, 80, 80), 2)
  for bad in ("cudnn", "auto"):  # layers take a resolved impl: 'auto' is the model's to resolve
    with pytest.raises(ValueError, match="conv impl must be one of"):
      _convolution_primitives(bad, small, (3, 3, 80, 80))
  with pytest.raises(ValueError, match="conv_impl"):
    ifr.IFIRNN(conv_impl="fast")


@pytest.mark.parametrize("impl,dtype,expected", [
    ("auto", "float32", ("winograd_if_large", "xla")),  # cuDNN and co. on accelerators
    ("auto", "bfloat16", ("xla", "xla")),
    ("xla", "float32", ("xla", "xla")),
    ("winograd", "float32", ("winograd", "winograd")),
    ("winograd", "bfloat16", ("winograd", "winograd")),
])
def test_conv_impl_per_platform(impl, dtype, expected):
  """(on CPU, elsewhere): the layer impls conv_impl runs as."""
  assert platforms.conv_impls(impl, dtype) == expected
  assert "conv_impl" not in ifr.IFIRNN(conv_impl=impl, compute_dtype=dtype).description()


def test_building_tracing_and_running_never_ask_for_the_backend(monkeypatch):
  """conv_impl 'auto' is chosen per lowering platform, not from JAX's default backend."""
  def no_backend_lookup(*args, **kwargs):
    raise AssertionError("the model asked for the backend")

  monkeypatch.setattr(jax, "default_backend", no_backend_lookup)
  monkeypatch.setattr(jax, "devices", no_backend_lookup)
  # Widths no other test uses, so that no jit cache spares the trace.
  model = ifr.IFIRNN(cells=1, iterations=2, n1=3, n2=5, n3=7, nh=5, num_resblocks=1)
  params = model.init(jax.random.key(0))
  video = np.random.default_rng(0).uniform(size=(2, 8, 8, 3)).astype(np.float32)
  assert model.deblur(params, video).shape == (2, 8, 8, 3)


# ------------------------------------------------------------------ layers vs PyTorch
def _layer(module, x, kernel_shape, seed):
  params = {"params": {"kernel": _random(kernel_shape, seed),
                       "bias": _random(kernel_shape[-1:], seed + 1)}}
  return params, module.apply(params, x)


def test_strided_and_transposed_layers_with_winograd_equal_torch():
  """Both re-expressions (space-to-depth, depth-to-space) end in a Winograd 3x3 conv."""
  impl = "winograd"
  x = _random((2, 10, 14, 6), 7)
  params, ours = _layer(layers.Conv(9, 5, stride=2, impl=impl), x, (5, 5, 6, 9), 0)
  weight = torch.from_numpy(np.asarray(params["params"]["kernel"]).transpose(3, 2, 0, 1).copy())
  bias = torch.from_numpy(np.array(params["params"]["bias"]))
  theirs = F.conv2d(_torch(x), weight, bias, stride=2, padding=2).numpy().transpose(0, 2, 3, 1)
  assert ours.shape == (2, 5, 7, 9)
  assert _relative(ours, theirs) < 3e-6

  params, ours = _layer(layers.ConvTranspose(5, impl=impl), x, (4, 4, 6, 5), 2)
  weight = torch.from_numpy(np.asarray(params["params"]["kernel"]).transpose(2, 3, 0, 1).copy())
  bias = torch.from_numpy(np.array(params["params"]["bias"]))
  theirs = F.conv_transpose2d(_torch(x), weight, bias, stride=2, padding=1)
  assert ours.shape == (2, 20, 28, 5)
  assert _relative(ours, theirs.numpy().transpose(0, 2, 3, 1)) < 3e-6


@pytest.mark.parametrize("height,width", [(10, 14), (7, 9)])
@pytest.mark.parametrize("c_in,c_out", [(3, 8), (8, 3), (5, 5)])
def test_thin_5x5_conv_equals_torch(height, width, c_in, c_out):
  """RGB in (F_B's first layer) or out (F_L's last): on even sizes space_to_depth + 3x3
  conv + depth_to_space; odd sizes, and convs with more than 4 channels on both sides,
  keep the direct 5x5 conv."""
  x = _random((2, height, width, c_in), 9)
  conv = layers.Conv(c_out, 5, impl="winograd")
  params, ours = _layer(conv, x, (5, 5, c_in, c_out), 4)
  weight = torch.from_numpy(np.asarray(params["params"]["kernel"]).transpose(3, 2, 0, 1).copy())
  bias = torch.from_numpy(np.array(params["params"]["bias"]))
  theirs = F.conv2d(_torch(x), weight, bias, padding=2).numpy().transpose(0, 2, 3, 1)
  assert ours.shape == (2, height, width, c_out)
  assert _relative(ours, theirs) < 3e-6
  jaxpr = jax.make_jaxpr(conv.apply)(params, x)
  kernels = [eqn.invars[1].aval.shape for eqn in jaxpr.jaxpr.eqns
             if eqn.primitive.name == "conv_general_dilated"]
  thin = min(c_in, c_out) <= 4 and height % 2 == 0
  assert kernels == ([(3, 3, 4 * c_in, 4 * c_out)] if thin else [(5, 5, c_in, c_out)])


def test_model_with_winograd_equals_the_torch_reference(tmp_path):
  """Same parameter tree as the XLA model; frames equal PyTorch's to float32 rounding."""
  from ifirnn_jax.model import torch_reference
  widths = dict(n1=4, n2=6, n3=8, nh=4, num_resblocks=1)
  model = ifr.IFIRNN(cells=1, iterations=2, conv_impl="winograd", **widths)
  shapes = jax.eval_shape(model.init, jax.random.key(3))
  assert shapes == jax.eval_shape(ifr.IFIRNN(cells=1, **widths).init, jax.random.key(3))
  rng = np.random.default_rng(1)
  params = jax.tree.map(lambda s: jnp.asarray(rng.uniform(-0.3, 0.3, s.shape), s.dtype), shapes)
  reference = torch_reference.TorchIFIRNN(cells=1, iterations=2, **widths)
  torch_reference.load_safetensors(
      reference, ifr.save_weights(params, tmp_path / "w.safetensors", model=model))
  video = np.random.default_rng(0).uniform(size=(2, 13, 18, 3)).astype(np.float32)
  ours = np.asarray(model.deblur(params, video))
  theirs = torch_reference.deblur_numpy(reference, video)
  assert _relative(ours - video, theirs - video) < 1e-5  # the network's residual alone
