"""A converted int8 FX graph (``ptq_static``, ``qat``) as an FP32 graph with explicit quantizers.

torch's converted graph holds quantized modules and quantize/dequantize calls. Each becomes its
FP32 counterpart, and every tensor torch rounds to int8 passes through :func:`qdq`
(quantize then dequantize with torch's own scale and zero point, saturating at the quint8
range 0..255 exactly as ``quantize_per_tensor`` and the int8 kernels' requantization do):

- ``quantize_per_tensor(x, scale, zero_point)`` -> ``qdq(x, scale, zero_point)``;
- ``dequantize`` -> nothing (the value is already the dequantized one);
- quantized ``Linear``/``LinearReLU``/``Conv1d``/``ConvReLU1d``/``LayerNorm`` -> the FP32
  operation on the dequantized weights, then ``qdq`` with the module's output scale
  (quantized ``Dropout``: nothing, as in eval mode);
- ``quantized::add``/``add_relu``/``mul``/``mul_relu`` -> the FP32 operation, then ``qdq``.

The modules keep their qualified names; :func:`flat_calls` gives the exporter a copy calling
each as a direct child with a unique name, so every exported node's scope names its torch
layer. ``qdq`` is torch's ``fake_quantize_per_tensor_affine`` on 0..255, which torch's
TorchScript exporter translates to ``QuantizeLinear`` -> ``DequantizeLinear`` with a uint8
zero point and the same scale. Other quantized operators raise ValueError naming them.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

QMIN, QMAX = 0, 255  # quint8: torch saturates every quantized activation to this range


def qdq(x: torch.Tensor, scale: float, zero_point: int) -> torch.Tensor:
    """Round ``x`` to the quint8 grid (``scale``, ``zero_point``) and read it back."""
    return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, QMIN, QMAX)


def _qparams(module: Any) -> tuple[float, int]:
    return float(module.scale), int(module.zero_point)


class SimLinear(nn.Module):
    """``qdq(relu?(x Wᵀ + b))`` on the dequantized int8 weight of a quantized Linear."""

    def __init__(self, q: Any, relu: bool) -> None:
        super().__init__()
        self.codes = q.weight()  # the quantized weight, kept to write its codes into ONNX
        self.weight = nn.Parameter(self.codes.dequantize(), requires_grad=False)
        bias = q.bias()
        self.bias = None if bias is None else nn.Parameter(bias.detach(), requires_grad=False)
        self.relu = relu
        self.out = _qparams(q)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.weight, self.bias)
        return qdq(F.relu(y) if self.relu else y, *self.out)


class SimConv1d(nn.Module):
    """``qdq(relu?(conv1d(x)))`` on the dequantized int8 weight of a quantized Conv1d."""

    def __init__(self, q: Any, relu: bool) -> None:
        super().__init__()
        self.codes = q.weight()
        self.weight = nn.Parameter(self.codes.dequantize(), requires_grad=False)
        bias = q.bias()
        self.bias = None if bias is None else nn.Parameter(bias.detach(), requires_grad=False)
        self.conv = {
            "stride": q.stride,
            "padding": q.padding,
            "dilation": q.dilation,
            "groups": q.groups,
        }
        if q.padding_mode != "zeros":
            raise ValueError(f"int8 Conv1d with padding_mode={q.padding_mode!r} has no export")
        self.relu = relu
        self.out = _qparams(q)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv1d(x, self.weight, self.bias, **self.conv)
        return qdq(F.relu(y) if self.relu else y, *self.out)


class SimLayerNorm(nn.Module):
    """``qdq(layer_norm(x))``: torch's int8 LayerNorm has FP32 parameters and an output scale."""

    def __init__(self, q: Any) -> None:
        super().__init__()
        self.weight = nn.Parameter(q.weight.detach().clone(), requires_grad=False)
        self.bias = nn.Parameter(q.bias.detach().clone(), requires_grad=False)
        self.shape, self.eps = tuple(q.normalized_shape), float(q.eps)
        self.out = _qparams(q)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return qdq(F.layer_norm(x, self.shape, self.weight, self.bias, self.eps), *self.out)


_MODULES = {
    "QuantizedLinear": lambda q: SimLinear(q, relu=False),
    "QuantizedLinearReLU": lambda q: SimLinear(q, relu=True),
    "QuantizedConv1d": lambda q: SimConv1d(q, relu=False),
    "QuantizedConvReLU1d": lambda q: SimConv1d(q, relu=True),
    "QuantizedLayerNorm": SimLayerNorm,
    "QuantizedDropout": lambda q: nn.Identity(),  # eval mode: passes its input through
}


def add_qdq(a: torch.Tensor, b: torch.Tensor, scale: float, zp: int) -> torch.Tensor:
    return qdq(a + b, scale, zp)


def add_relu_qdq(a: torch.Tensor, b: torch.Tensor, scale: float, zp: int) -> torch.Tensor:
    return qdq(F.relu(a + b), scale, zp)


def mul_qdq(a: torch.Tensor, b: torch.Tensor, scale: float, zp: int) -> torch.Tensor:
    return qdq(a * b, scale, zp)


def mul_relu_qdq(a: torch.Tensor, b: torch.Tensor, scale: float, zp: int) -> torch.Tensor:
    return qdq(F.relu(a * b), scale, zp)


# quantized::<op>(a, b, scale, zero_point) -> its FP32 operation followed by qdq
_BINARY = {"add": add_qdq, "add_relu": add_relu_qdq, "mul": mul_qdq, "mul_relu": mul_relu_qdq}


def _value(gm: fx.GraphModule, arg: Any) -> Any:
    """A scale or zero point argument: a constant, or a ``get_attr`` of the graph module."""
    if isinstance(arg, fx.Node) and arg.op == "get_attr":
        arg = _attr(gm, arg.target)
    return arg.item() if isinstance(arg, torch.Tensor) else arg


def _attr(gm: fx.GraphModule, target: str) -> Any:
    obj: Any = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _set_module(gm: fx.GraphModule, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(gm.get_submodule(parent), child, module)


def _quantized_op(node: fx.Node) -> str | None:
    """``add`` for ``torch.ops.quantized.add`` and the like; None for other targets."""
    name = getattr(node.target, "__name__", "")
    overload = getattr(node.target, "_overloadpacket", node.target)
    ns = getattr(overload, "__module__", "") or ""
    qualified = str(getattr(node.target, "_qualified_op_name", "") or "")
    if qualified.startswith("quantized::") or "quantized" in ns:
        return qualified.split("::")[-1] or name
    return None


def simulate(converted: fx.GraphModule) -> tuple[fx.GraphModule, dict[str, nn.Module]]:
    """The FP32 twin of a converted int8 graph module and its simulated layers by name."""
    gm = copy.deepcopy(converted)
    layers: dict[str, nn.Module] = {}
    for name, module in list(gm.named_modules()):
        if not name or any(name.startswith(f"{done}.") for done in layers):
            continue  # the model itself, or inside a replaced layer (its packed parameters)
        make = _MODULES.get(module._get_name())
        if make is not None:
            layers[name] = make(module)
            _set_module(gm, name, layers[name])
        elif type(module).__module__.startswith("torch.ao.nn.quantized"):
            raise ValueError(f"no ONNX translation for torch's {module._get_name()} ({name})")
    graph = gm.graph
    for node in list(graph.nodes):
        _rewrite(gm, node)
    graph.eliminate_dead_code()
    gm.recompile()
    return gm, layers


def _rewrite(gm: fx.GraphModule, node: fx.Node) -> None:
    graph = gm.graph
    if node.op == "call_method" and node.target == "dequantize":
        node.replace_all_uses_with(node.args[0])
        graph.erase_node(node)
        return
    if node.op != "call_function":
        return
    if node.target in (torch.quantize_per_tensor,):
        x, scale, zp = node.args[0], _value(gm, node.args[1]), _value(gm, node.args[2])
        with graph.inserting_before(node):
            new = graph.call_function(qdq, (x, float(scale), int(zp)))
    elif (qop := _quantized_op(node)) is not None:
        if qop not in _BINARY:
            raise ValueError(f"no ONNX translation for torch's quantized::{qop}")
        a, b = node.args[0], node.args[1]
        scale, zp = float(_value(gm, node.args[2])), int(_value(gm, node.args[3]))
        with graph.inserting_before(node):
            new = graph.call_function(_BINARY[qop], (a, b, scale, zp))
    else:
        return
    node.replace_all_uses_with(new)
    graph.erase_node(node)


def flat_calls(gm: fx.GraphModule) -> tuple[fx.GraphModule, dict[str, str]]:
    """A copy of ``gm`` calling each of its modules as a direct child named by its qualified
    name with ``-`` for ``.`` (``encoder-0-attn-qkv``), and the qualified name of each.

    torch's TorchScript exporter names a node's scope by the tail of its module's name
    (``qkv``), which repeats from block to block in a flat FX graph; these names do not.
    """
    graph = copy.deepcopy(gm.graph)
    targets: dict[str, Any] = {}
    names: dict[str, str] = {}
    for node in graph.nodes:
        if node.op == "get_attr":
            targets[node.target] = _attr(gm, node.target)
        elif node.op == "call_module":
            flat = node.target.replace(".", "-")
            if names.setdefault(flat, node.target) != node.target:
                raise ValueError(f"modules {names[flat]} and {node.target} share the name {flat}")
            targets[flat] = gm.get_submodule(node.target)
            node.target = flat
    return fx.GraphModule(targets, graph), names
