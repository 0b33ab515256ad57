"""From a DAG to a network: the node operation, a random stage, the small regime, and a ResNet baseline.

Every node aggregates its inputs by a weighted sum with positive weights, then applies the
"triplet" ReLU → 3×3 depthwise-separable convolution → batch norm. A stage is one sweep over its
DAG in topological order; all nodes at the same depth are computed together as one grouped
convolution (their inputs are ready at the same time), so a stage costs one batched step per
level, not one per node, and nothing loops over samples.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from rfy.randwire.graphs import DAG


def aggregation_weights(logits: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
    """Positive weights of the node inputs: $w_{ij} = \\sigma(\\omega_{ij})$ on edges, 0 elsewhere.

    A node's input is then $x_j = \\sum_{i \\in \\mathrm{pred}(j)} w_{ij}\\, y_i$: a sigmoid keeps
    every learned weight in (0, 1), so an input can be turned down but never flipped in sign.
    """
    return torch.sigmoid(logits) * adjacency


def separable_level(count: int, in_channels: int, out_channels: int, stride: int) -> nn.ModuleDict:
    """The triplet's convolution and norm for ``count`` nodes at once (grouped, so each node has its own weights)."""
    return nn.ModuleDict({
        "depthwise": nn.Conv2d(count * in_channels, count * in_channels, 3, stride, 1,
                               groups=count * in_channels, bias=False),
        "pointwise": nn.Conv2d(count * in_channels, count * out_channels, 1, groups=count, bias=False),
        "norm": nn.BatchNorm2d(count * out_channels),
    })


class RandomStage(nn.Module):
    """One stage wired by ``dag``: an input tensor [B, C_in, H, W] becomes [B, C_out, H/stride, W/stride].

    Node j computes $y_j = \\mathrm{BN}(\\mathrm{SepConv}(\\mathrm{ReLU}(x_j)))$ with $x_j$ the
    weighted sum of ``aggregation_weights``. The input nodes read the stage input and carry the
    stride and the change of width C_in → C_out; every other node keeps C_out. The stage output is the
    unweighted mean of the output nodes, $\\frac{1}{|O|}\\sum_{j \\in O} y_j$.
    """

    def __init__(self, dag: DAG, in_channels: int, out_channels: int, stride: int = 2) -> None:
        super().__init__()
        self.dag, self.in_channels, self.out_channels, self.stride = dag, in_channels, out_channels, stride
        n = dag.num_nodes
        adjacency = torch.zeros(n, n + 1)  # column 0: the stage input, column i + 1: node i
        for node in dag.inputs:
            adjacency[node, 0] = 1.0
        for u, v in dag.edges:
            adjacency[v, u + 1] = 1.0
        self.register_buffer("adjacency", adjacency)
        self.register_buffer("edge_mask", torch.ones(n, n + 1))  # 0 removes an edge (see ``removed``)
        self.register_buffer("node_mask", torch.ones(n))  # 0 removes a node
        self.weight_logits = nn.Parameter(torch.zeros(n, n + 1))
        self.levels = [list(level) for level in dag.levels]
        self.ops = nn.ModuleList(
            separable_level(len(level), in_channels if depth == 0 else out_channels, out_channels,
                            stride if depth == 0 else 1)
            for depth, level in enumerate(self.levels))
        self.register_buffer("is_output", torch.zeros(n))
        self.is_output[list(dag.outputs)] = 1.0

    def node_op(self, depth: int, inputs: torch.Tensor) -> torch.Tensor:
        """The triplet on the stacked inputs [B, k, C, H, W] of the k nodes at ``depth``; returns [B, k, C_out, H', W']."""
        batch, count = inputs.shape[:2]
        op = self.ops[depth]
        h = torch.relu(inputs.flatten(1, 2))
        h = op["norm"](op["pointwise"](op["depthwise"](h)))
        return h.view(batch, count, self.out_channels, *h.shape[-2:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sources = torch.cat([self.node_mask.new_ones(1), self.node_mask])
        weights = aggregation_weights(self.weight_logits, self.adjacency * self.edge_mask) * sources
        first = self.levels[0]
        outputs = [self.node_op(0, x.unsqueeze(1) * weights[first, 0].view(1, -1, 1, 1, 1))]
        order = list(first)  # the node held by each slot of the stacked outputs
        for depth, level in enumerate(self.levels[1:], start=1):
            stacked = torch.cat(outputs, dim=1)
            mixing = weights[level][:, [node + 1 for node in order]]
            outputs.append(self.node_op(depth, torch.einsum("kn,bnchw->bkchw", mixing, stacked)))
            order += level
        stacked = torch.cat(outputs, dim=1)
        keep = (self.is_output * self.node_mask)[order]
        return torch.einsum("n,bnchw->bchw", keep / keep.sum().clamp_min(1.0), stacked)


@contextlib.contextmanager
def removed(stage: RandomStage, *, node: int | None = None, edge: tuple[int, int] | None = None) -> Iterator[None]:
    """Evaluate ``stage`` with one node (all its edges) or one edge ``(u, v)`` taken out, then put it back.

    The trained weights are untouched: this is the paper's removal study "without retraining".
    """
    if edge is not None and edge not in stage.dag.edges:
        raise ValueError(f"edge {edge} is not an edge of this stage's DAG")
    if node is not None and not 0 <= node < stage.dag.num_nodes:
        raise ValueError(f"node {node} is not a node of this stage's DAG (0..{stage.dag.num_nodes - 1})")
    saved = stage.node_mask.clone(), stage.edge_mask.clone()
    if node is not None:
        stage.node_mask[node] = 0.0
    if edge is not None:
        stage.edge_mask[edge[1], edge[0] + 1] = 0.0
    try:
        yield
    finally:
        stage.node_mask.copy_(saved[0])
        stage.edge_mask.copy_(saved[1])


def triplet(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """ReLU → full 3×3 convolution → BN: the small regime's ``conv2`` (Table 1 of Xie et al.), not a random node.

    Its cost is $H_{out} W_{out} \\cdot C_{out} C_{in} \\cdot 9$ multiply-adds, where a separable convolution
    would cost $H_{out} W_{out} (9 C_{in} + C_{in} C_{out})$; with the full convolution the ImageNet-size network
    has the paper's 583M FLOPs (a test checks it).
    """
    return nn.Sequential(nn.ReLU(), nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
                         nn.BatchNorm2d(out_channels))


class RandWireNet(nn.Module):
    """The small regime: 3×3 conv stem (C/2), one ReLU-conv-BN ``triplet`` (C), random stages C → C → 2C → 4C,
    1×1 conv, pool, linear.

    ``strides`` are those of the stem and the triplet (2, 2 on ImageNet's 224×224; 1, 1 for 32×32
    and 8×8 images); every random stage halves the resolution at its input nodes.
    """

    def __init__(self, dags: Sequence[DAG], *, in_channels: int, channels: int, width: int, num_classes: int,
                 strides: tuple[int, int] = (1, 1), dropout: float = 0.0) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, channels // 2, 3, strides[0], 1, bias=False),
                                  nn.BatchNorm2d(channels // 2), triplet(channels // 2, channels, strides[1]))
        self.stages = nn.ModuleList(RandomStage(dag, c_in, c_out)
                                    for dag, (c_in, c_out) in zip(dags, stage_widths(channels, len(dags))))
        last = self.stages[-1].out_channels
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(last, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for stage in self.stages:
            h = stage(h)
        return self.head(h)


def stage_widths(channels: int, num_stages: int) -> list[tuple[int, int]]:
    """(C_in, C_out) of each random stage: C → C, then the width doubles from stage to stage."""
    return [(channels * 2 ** max(stage - 1, 0), channels * 2 ** stage) for stage in range(num_stages)]


class BasicBlock(nn.Module):
    """The ResNet basic block: two 3×3 conv-BN layers and an identity (or 1×1 projection) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
                                  nn.BatchNorm2d(out_channels), nn.ReLU(),
                                  nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(out_channels))
        self.shortcut = nn.Identity() if stride == 1 and in_channels == out_channels else nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


def resnet(*, in_channels: int, width: int, num_classes: int, blocks: int = 3, stages: int = 3) -> nn.Sequential:
    """A CIFAR-style ResNet (He et al. 2016): 3×3 stem, ``stages`` stages of ``blocks`` basic blocks, widths w, 2w, 4w."""
    layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
    channels = width
    for stage in range(stages):
        for block in range(blocks):
            out = width * 2 ** stage
            layers.append(BasicBlock(channels, out, 2 if stage and not block else 1))
            channels = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)]
    return nn.Sequential(*layers)


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-adds of one forward pass of one input (the paper's "FLOPs"): convolutions and linear layers.

    A convolution costs $H_{out} W_{out} C_{out} \\cdot (C_{in}/g)\\, k_h k_w$, a linear layer $C_{in} C_{out}$.
    The aggregation sums and batch norm are left out, as is customary.
    """
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total += output[0].numel() * (module.in_channels // module.groups) * kh * kw
        elif isinstance(module, nn.Linear):
            total += module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *input_shape, device=next(model.parameters()).device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return total


def flop_matched_resnet(target_flops: int, *, in_channels: int, image_size: int, num_classes: int,
                        blocks: int = 3) -> nn.Sequential:
    """The CIFAR ResNet whose base width w makes its FLOPs closest to ``target_flops`` (w searched in 4..256)."""
    shape = (in_channels, image_size, image_size)
    best = min(range(4, 257), key=lambda w: abs(_resnet_flops(w, shape, num_classes, blocks) - target_flops))
    return resnet(in_channels=in_channels, width=best, num_classes=num_classes, blocks=blocks)


def _resnet_flops(width: int, shape: tuple[int, int, int], num_classes: int, blocks: int) -> int:
    """FLOPs of the CIFAR ResNet of base width ``width`` in closed form (no model built)."""
    _, size, _ = shape
    total, channels = size * size * width * shape[0] * 9, width
    for stage in range(3):
        out, size = width * 2 ** stage, size if stage == 0 else (size + 1) // 2
        for block in range(blocks):
            total += size * size * out * channels * 9 + size * size * out * out * 9
            if channels != out or (stage and not block):
                total += size * size * out * channels
            channels = out
    return total + channels * num_classes
