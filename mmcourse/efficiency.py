"""Efficiency by hand: memory accounting, int8 quantisation, pruning, distillation, LoRA, FLOPs.

Each function is the few lines that a library does for you, written out so that notebook 09
can show the mechanism and then check it against the library (torchao, torch.nn.utils.prune,
torch.utils.flop_counter).

    >>> training_bytes(7e9)["total"] / 2**30      # mixed-precision Adam: 16 bytes a parameter
    104.3...
    >>> q, scale = quantize_int8(linear.weight)      # per-row symmetric int8
    >>> lora = LoRALinear(linear, rank=4)            # W x + (alpha/r) B A x, only A and B train
"""

from __future__ import annotations

import copy
import io
import math

import torch
import torch.nn.functional as F
from torch import nn

from mmcourse._checks import check_int, check_module, check_real

# Bytes that training keeps per parameter, by recipe (Rajbhandari et al., 2020, ZeRO, sec. 3.1).
# Mixed precision: bf16/fp16 weights and gradients for the compute, an fp32 master copy of the
# weights for the update, and Adam's two fp32 moments.
TRAINING_RECIPES: dict[str, dict[str, int]] = {
    "fp32 Adam": {"weights": 4, "gradients": 4, "optimizer": 8, "master weights": 0},
    "mixed-precision Adam": {"weights": 2, "gradients": 2, "optimizer": 8, "master weights": 4},
    "fp32 SGD (no momentum)": {"weights": 4, "gradients": 4, "optimizer": 0, "master weights": 0},
}


def training_bytes(num_params: float, recipe: str = "mixed-precision Adam") -> dict[str, float]:
    """Bytes of weights, gradients, optimizer state and master weights (no activations)."""
    check_real(num_params, "num_params", low=0.0)
    if recipe not in TRAINING_RECIPES:
        raise ValueError(f"recipe must be one of {sorted(TRAINING_RECIPES)}, got {recipe!r}")
    parts = {name: b * float(num_params) for name, b in TRAINING_RECIPES[recipe].items()}
    parts["total"] = sum(parts.values())
    return parts


def tensor_bytes(tensors) -> int:
    """Bytes held by an iterable of tensors (elements x element size)."""
    return sum(t.numel() * t.element_size() for t in tensors)


def measured_training_bytes(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, int]:
    """What one training step really keeps: weights, gradients and the optimizer's state.

    Call it after at least one ``optimizer.step()`` (Adam creates its moments lazily).
    """
    check_module(model)
    state = [v for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v)]
    params = list(model.parameters())
    return {
        "weights": tensor_bytes(params),
        "gradients": tensor_bytes(p.grad for p in params if p.grad is not None),
        # Adam's ``step`` counters are 1-element tensors: count only the per-parameter state
        "optimizer": tensor_bytes(v for v in state if v.numel() > 1),
    }


def activation_bytes(model: nn.Module, *inputs, **kw_inputs) -> int:
    """Bytes of the tensors that autograd saves in the forward pass for the backward pass.

    These activations grow with the batch (and, for a Transformer, with the sequence length);
    weights and optimizer state do not. Tensors saved twice (the same storage) count once;
    a view counts its own elements, not its whole storage.
    """
    check_module(model)
    seen: dict[int, int] = {}

    def pack(t):
        key = t.untyped_storage().data_ptr()  # a transposed weight is the weight itself
        seen[key] = max(seen.get(key, 0), t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(*inputs, **kw_inputs)
    return sum(seen.values())


def serialized_bytes(obj) -> int:
    """The size of ``torch.save(obj)`` (a state dict, a module): what a file would take."""
    buffer = io.BytesIO()
    torch.save(obj.state_dict() if isinstance(obj, nn.Module) else obj, buffer)
    return buffer.getbuffer().nbytes


# --------------------------------------------------------------------------- quantisation


def quantize_int8(weight: torch.Tensor, qmax: float = 127.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row int8: ``scale = max|w_row| / qmax``, ``q = clamp(round(w / scale))``.

    Returns ``q`` (int8, the shape of ``weight``, clamped to int8's range [-128, 127]) and
    ``scale`` (float32, one per row); ``q * scale`` approximates ``weight`` with an error of at
    most ``scale / 2`` per entry. ``qmax = 127`` maps the largest weight to +-127; torchao uses
    ``qmax = 127.5``, which spends the extra level -128 and clamps +128 to 127.
    """
    if not torch.is_tensor(weight) or not weight.is_floating_point() or weight.ndim != 2:
        raise TypeError(f"weight must be a 2-D float tensor (out, in), got {weight!r:.60}")
    check_real(qmax, "qmax", 1.0, 127.5)
    w = weight.detach().float()
    scale = w.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / qmax  # a zero row: no 0/0
    q = torch.clamp(torch.round(w / scale), -128, 127).to(torch.int8)
    return q, scale.squeeze(1)


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``q * scale`` row by row, back to float32."""
    return q.float() * scale[:, None]


class Int8Linear(nn.Module):
    """A linear layer that stores its weight as int8 plus one float scale per output row.

    The weight takes a quarter of the float32 bytes. This simple version multiplies in
    float32 after dequantising (a real int8 kernel multiplies the integers directly).
    """

    def __init__(self, linear: nn.Linear):
        super().__init__()
        check_module(linear, "linear")
        q, scale = quantize_int8(linear.weight)
        self.register_buffer("q", q)
        self.register_buffer("scale", scale)
        bias = None if linear.bias is None else linear.bias.detach().clone()
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, dequantize_int8(self.q, self.scale), self.bias)


def replace_linears(model: nn.Module, make) -> nn.Module:
    """A deep copy of ``model`` with every ``nn.Linear`` replaced by ``make(linear)``."""
    check_module(model)
    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Linear):
                setattr(parent, name, make(child))
    return model


def quantize_model_int8(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose linear layers are :class:`Int8Linear`."""
    return replace_linears(model, Int8Linear)


# --------------------------------------------------------------------------- pruning


def magnitude_prune(model: nn.Module, amount: float) -> nn.Module:
    """A copy of ``model`` with the smallest ``amount`` of each linear weight set to zero.

    Uses ``torch.nn.utils.prune.l1_unstructured`` and then ``prune.remove``, which bakes the
    mask into the weight: the tensor keeps its shape and dtype, now with zeros in it.
    """
    from torch.nn.utils import prune

    check_real(amount, "amount", 0.0, 1.0)
    model = copy.deepcopy(model)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            prune.l1_unstructured(module, "weight", amount=amount)
            prune.remove(module, "weight")
    return model


def sparsity(model: nn.Module) -> float:
    """The share of zeros among the weights of the linear layers."""
    weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    return sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)


# --------------------------------------------------------------------------- distillation


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor | None = None,
    temperature: float = 4.0,
    alpha: float = 1.0,
) -> torch.Tensor:
    """Hinton et al. (2015): match the teacher's softened probabilities.

    ``alpha * T**2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, labels)``. The
    factor ``T**2`` keeps the soft term's gradients the same size whatever ``T`` is (they
    shrink as ``1/T**2``). With ``alpha = 1`` no label is needed: the teacher labels the
    transfer set, which may be unlabelled data.
    """
    check_real(temperature, "temperature", low=0.0, low_open=True)
    check_real(alpha, "alpha", 0.0, 1.0)
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student_logits {tuple(student_logits.shape)} and teacher_logits "
            f"{tuple(teacher_logits.shape)} must have the same shape"
        )
    soft = F.kl_div(
        F.log_softmax(student_logits / temperature, dim=1),
        F.log_softmax(teacher_logits.detach() / temperature, dim=1),
        log_target=True,
        reduction="batchmean",
    )
    loss = alpha * temperature**2 * soft
    if alpha < 1:
        if labels is None:
            raise ValueError("labels are needed when alpha < 1 (the hard-label term)")
        loss = loss + (1 - alpha) * F.cross_entropy(student_logits, labels)
    return loss


# --------------------------------------------------------------------------- LoRA


class LoRALinear(nn.Module):
    """``y = W x + b + (alpha / r) B A x`` with ``W, b`` frozen (Hu et al., 2022).

    ``A`` (r, in) starts small and random, ``B`` (out, r) at zero, so the layer starts out
    exactly as the pretrained one; only ``r (in + out)`` numbers train instead of
    ``in x out``. :meth:`merge` folds ``(alpha / r) B A`` into ``W``: no extra cost at inference.
    """

    def __init__(self, linear: nn.Linear, rank: int = 4, alpha: float | None = None):
        super().__init__()
        check_module(linear, "linear")
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear must be an nn.Linear, got {type(linear).__name__}")
        check_int(rank, "rank", maximum=min(linear.in_features, linear.out_features))
        self.base = linear
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.rank = rank
        self.scaling = (rank if alpha is None else check_real(alpha, "alpha", low=0.0)) / rank
        self.A = nn.Parameter(torch.randn(rank, linear.in_features) / math.sqrt(linear.in_features))
        self.B = nn.Parameter(torch.zeros(linear.out_features, rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scaling * F.linear(F.linear(x, self.A), self.B)

    def delta_weight(self) -> torch.Tensor:
        """The low-rank update ``(alpha / r) B A`` (out, in)."""
        return self.scaling * self.B @ self.A

    def merge(self) -> nn.Linear:
        """A plain ``nn.Linear`` with ``W + (alpha / r) B A``: the same outputs, no adapter."""
        merged = nn.Linear(
            self.base.in_features, self.base.out_features, self.base.bias is not None
        )
        with torch.no_grad():
            merged.weight.copy_(self.base.weight + self.delta_weight())
            if self.base.bias is not None:
                merged.bias.copy_(self.base.bias)
        return merged


def add_lora(model: nn.Module, rank: int = 4, alpha: float | None = None) -> nn.Module:
    """A copy of ``model``: every parameter frozen, every ``nn.Linear`` a :class:`LoRALinear`."""
    model = copy.deepcopy(model)
    for p in model.parameters():
        p.requires_grad_(False)
    return replace_linears(model, lambda linear: LoRALinear(linear, rank, alpha))


def merge_lora(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every :class:`LoRALinear` merged into a plain ``nn.Linear``."""
    check_module(model)
    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LoRALinear):
                setattr(parent, name, child.merge())
    return model


# --------------------------------------------------------------------------- FLOPs


def training_step_flops(model: nn.Module, batch, loss_fn=None) -> int:
    """Floating-point operations of one forward + backward pass, counted by PyTorch.

    ``torch.utils.flop_counter.FlopCounterMode`` counts the matrix products (2 FLOPs per
    multiply-add), which is where nearly all of a network's arithmetic is.
    """
    from torch.utils.flop_counter import FlopCounterMode

    check_module(model)
    loss_fn = loss_fn or F.cross_entropy
    counter = FlopCounterMode(display=False)
    with counter:
        loss = loss_fn(model(batch), batch["label"])
        loss.backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())
