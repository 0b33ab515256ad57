"""Properties of the RandWire chapter: generators and their node order, the DAG mapping, the stages, training."""
import hashlib
import io
import math
import pickle
import tarfile
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import torch

from rfy import data as rfy_data
from rfy.checkpoint import RunState
from rfy.data import load_digits
from rfy.data.registry import DatasetSpec, RemoteFile
from rfy.errors import ConfigError
from rfy.randwire import (DAG, Config, ImageData, RandomStage, RandWireNet, aggregation_weights, barabasi_albert,
                          claims, count_flops, erdos_renyi, flop_matched_resnet, parse_generator, removed, resnet,
                          Study, run_experiment, spearman, stage_graphs, evaluate_accuracy, to_dag, train_network,
                          watts_strogatz)
from rfy.randwire.experiments import EDGE_FIELDS, NODE_FIELDS
from rfy.randwire.network import _resnet_flops
from rfy.runtime import torch_threads

#: A reduced run of seconds, for the chapter contract's end-to-end test (tests/test_chapters.py).
CONTRACT_SETTINGS = dict(nodes=6, channels=8, width=16, epochs=1, batch_size=64, generators=("ER(0.5)",), graph_seeds=1)

GENERATORS = ("ER(0.2)", "BA(3)", "WS(4, 0.75)", "WS(4, 0)", "chain")


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one thread is fastest, and stays fast on a busy machine."""
    with torch_threads(1):
        yield


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.mark.parametrize("text", GENERATORS)
@pytest.mark.parametrize("seed", range(4))
def test_every_generated_graph_is_a_dag_with_one_input_and_one_output_stage(text, seed):
    dag = parse_generator(text, 16).generate(16, rng(seed))
    assert all(u < v for u, v in dag.edges)  # edges run from lower to higher index: acyclic
    assert dag.inputs and dag.outputs
    assert all(dag.in_degree(node) == 0 for node in dag.inputs)
    reached = set(dag.inputs)  # every node is reached from the stage input ...
    for node in range(16):
        if any(u in reached for u in dag.predecessors[node]):
            reached.add(node)
    assert reached == set(range(16))
    stage = RandomStage(dag, 4, 8)
    assert stage(torch.randn(2, 4, 8, 8)).shape == (2, 8, 4, 4)  # ... and the stage has one output tensor


def test_ba_node_order_is_the_insertion_order():
    m, n = 3, 20
    dag = to_dag(n, barabasi_albert(n, m, rng(1)))
    # the M initial nodes come first and are not joined to one another; every later node, indexed by
    # its arrival, brings exactly M edges to earlier nodes. A random relabelling breaks both facts.
    assert [dag.in_degree(node) for node in range(n)] == [0] * m + [m] * (n - m)
    assert dag.inputs == tuple(range(m))


def test_ws_node_order_is_clockwise():
    n, k = 12, 4
    lattice = to_dag(n, watts_strogatz(n, k, 0.0, rng(0)))
    expected = {(u, v) for u in range(n) for v in range(u + 1, n) if min(v - u, n - (v - u)) <= k // 2}
    assert set(lattice.edges) == expected
    assert set(lattice.edges) == {tuple(sorted(e)) for e in nx.watts_strogatz_graph(n, k, 0.0).edges}
    assert lattice.inputs == (0,)
    rewired = to_dag(n, watts_strogatz(n, k, 0.75, rng(0)))
    assert len(rewired.edges) == n * k // 2 and set(rewired.edges) != expected


def test_er_draws_pairs_at_rate_p_and_shuffles_indices():
    edges = [e for seed in range(20) for e in erdos_renyi(30, 0.2, rng(seed))]
    assert abs(len(edges) / (20 * 30 * 29 / 2) - 0.2) < 0.02
    assert set(to_dag(6, erdos_renyi(6, 1.0, rng(0))).edges) == {(u, v) for u in range(6) for v in range(u + 1, 6)}


def test_isolated_nodes_are_both_inputs_and_outputs_and_do_not_crash():
    dag = to_dag(5, [(0, 1)])
    assert dag.inputs == (0, 2, 3, 4) and dag.outputs == (1, 2, 3, 4)
    empty = to_dag(4, erdos_renyi(4, 0.0, rng(0)))
    assert empty.edges == () and empty.inputs == empty.outputs == (0, 1, 2, 3)
    assert RandomStage(empty, 2, 4)(torch.randn(1, 2, 4, 4)).shape == (1, 4, 2, 2)


def test_each_stage_draws_its_own_graph():
    dags = stage_graphs(parse_generator("WS(4, 0.75)", 16), 16, 3, graph_seed := 7)
    assert len({dag.edges for dag in dags}) == 3
    assert [d.edges for d in dags] == [d.edges for d in stage_graphs(parse_generator("WS(4, 0.75)", 16), 16, 3, graph_seed)]
    net = RandWireNet(dags, in_channels=1, channels=8, width=16, num_classes=10)
    assert len({stage.dag.edges for stage in net.stages}) == 3


def test_channels_double_at_the_stage_input_nodes_with_stride_two():
    dags = stage_graphs(parse_generator("ER(0.3)", 10), 10, 3, 0)
    net = RandWireNet(dags, in_channels=3, channels=8, width=32, num_classes=10)
    assert [(s.in_channels, s.out_channels) for s in net.stages] == [(8, 8), (8, 16), (16, 32)]
    for stage in net.stages:
        first, *rest = stage.ops
        assert first["depthwise"].stride == (2, 2)
        assert first["pointwise"].in_channels == len(stage.dag.inputs) * stage.in_channels
        assert first["pointwise"].out_channels == len(stage.dag.inputs) * stage.out_channels
        for op, level in zip(rest, stage.levels[1:]):
            assert op["depthwise"].stride == (1, 1)
            assert op["pointwise"].in_channels == op["pointwise"].out_channels == len(level) * stage.out_channels
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_level_batched_stage_equals_a_node_by_node_sweep():
    torch.manual_seed(0)
    dag = parse_generator("WS(4, 0.75)", 10).generate(10, rng(3))
    stage = RandomStage(dag, 3, 5).eval()
    with torch.no_grad():
        stage.weight_logits.normal_()
        for op in stage.ops:
            op["norm"].running_mean.normal_()
    x = torch.randn(2, 3, 8, 8)
    weights = aggregation_weights(stage.weight_logits, stage.adjacency)
    outputs = {}
    for node in range(dag.num_nodes):  # the reference: one node at a time, in index order
        depth, slot = dag.depth[node], stage.levels[dag.depth[node]].index(node)
        op, c_in = stage.ops[depth], stage.in_channels if depth == 0 else stage.out_channels
        if depth == 0:
            h = weights[node, 0] * x
        else:
            h = sum(weights[node, u + 1] * outputs[u] for u in dag.predecessors[node])
        h = torch.nn.functional.conv2d(torch.relu(h), op["depthwise"].weight[slot * c_in:(slot + 1) * c_in],
                                       stride=op["depthwise"].stride, padding=1, groups=c_in)
        c_out = stage.out_channels
        h = torch.nn.functional.conv2d(h, op["pointwise"].weight[slot * c_out:(slot + 1) * c_out])
        norm = op["norm"]
        part = slice(slot * c_out, (slot + 1) * c_out)
        outputs[node] = torch.nn.functional.batch_norm(h, norm.running_mean[part], norm.running_var[part],
                                                       norm.weight[part], norm.bias[part], eps=norm.eps)
    expected = sum(outputs[node] for node in dag.outputs) / len(dag.outputs)
    assert torch.allclose(stage(x), expected, atol=1e-5)


def test_aggregation_weights_stay_positive_and_only_on_edges():
    logits = torch.tensor([[-30.0, 0.0, 5.0], [2.0, -2.0, 0.0]], requires_grad=True)
    adjacency = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    weights = aggregation_weights(logits, adjacency)
    assert torch.all(weights[adjacency > 0] > 0) and torch.all(weights[adjacency == 0] == 0)
    weights.sum().backward()
    assert torch.all(logits.grad[adjacency == 0] == 0) and torch.all(logits.grad[adjacency > 0] > 0)


def tiny_digits(count: int = 128) -> ImageData:
    """The first ``count`` of scikit-learn's bundled 8×8 digits (no download)."""
    images, labels = load_digits("train")
    images, labels = images[:count], labels[:count]
    return ImageData(images, labels, images[:64], labels[:64], flip=False, crop_padding=0, mean=(0.3,), std=(0.4,))


def training_loss(net, data):
    net.eval()
    with torch.no_grad():
        return torch.nn.functional.cross_entropy(net(data.normalise(data.train_images)), data.train_labels).item()


def test_training_lowers_the_loss_and_removing_a_node_changes_the_output(tmp_path):
    config = Config(nodes=6, channels=8, width=16, epochs=8, batch_size=16, generators=("ER(0.5)",))
    dags = stage_graphs(parse_generator("ER(0.5)", 6), 6, 2, 0)
    torch.manual_seed(0)
    net = RandWireNet(dags, in_channels=1, channels=8, width=16, num_classes=10)
    data = tiny_digits()
    before = training_loss(net, data)
    train_network(net, data, config, seed=0, checkpoint_path=tmp_path / "net.pt")
    assert training_loss(net, data) < 0.7 * before
    assert all(stage.weight_logits.abs().sum() > 0 for stage in net.stages)  # the aggregation weights learned
    x = data.normalise(data.test_images[:4])
    with torch.no_grad():
        out = net(x)
        for stage in net.stages:
            for node in range(6):
                with removed(stage, node=node):
                    assert not torch.allclose(net(x), out)
            u, v = stage.dag.edges[0]
            with removed(stage, edge=(u, v)):
                assert not torch.allclose(net(x), out)
        assert torch.allclose(net(x), out)  # everything is put back
    with pytest.raises(ValueError, match="not an edge"):
        with removed(net.stages[0], edge=(0, 5)):
            pass


def test_training_resumes_from_its_checkpoint(tmp_path):
    config = Config(nodes=4, channels=4, width=8, epochs=2, batch_size=16, generators=("chain",), baselines=())
    dags = stage_graphs(parse_generator("chain", 4), 4, 2, 0)
    data = tiny_digits()
    torch.manual_seed(0)
    first = train_network(RandWireNet(dags, in_channels=1, channels=4, width=8, num_classes=10), data, config, 0,
                          checkpoint_path=tmp_path / "run.pt")
    assert [h["epoch"] for h in first.history] == [2]
    longer = config.replace(epochs=3, eval_every=1)
    torch.manual_seed(0)
    resumed = train_network(RandWireNet(dags, in_channels=1, channels=4, width=8, num_classes=10), data, longer, 0,
                            checkpoint_path=tmp_path / "run.pt")
    assert [h["epoch"] for h in resumed.history] == [2, 3] and resumed.history[0] == first.history[0]


def test_flops_and_the_flop_matched_resnet():
    for width in (8, 16):
        net = resnet(in_channels=3, width=width, num_classes=10)
        assert count_flops(net, (3, 32, 32)) == _resnet_flops(width, (3, 32, 32), 10, 3)
    conv = torch.nn.Conv2d(4, 6, 3, padding=1, bias=False)
    assert count_flops(conv, (4, 5, 5)) == 5 * 5 * 6 * 4 * 9
    dags = stage_graphs(parse_generator("WS(4, 0.75)", 8), 8, 3, 0)
    target = count_flops(RandWireNet(dags, in_channels=3, channels=32, width=64, num_classes=10), (3, 32, 32))
    matched = count_flops(flop_matched_resnet(target, in_channels=3, image_size=32, num_classes=10), (3, 32, 32))
    assert abs(matched - target) / target < 0.15


def test_config_errors_name_the_field_and_allowed_values():
    with pytest.raises(ConfigError, match="dataset must be one of"):
        Config(dataset="imagenet")
    with pytest.raises(ConfigError, match="generators: 'XY\\(1\\)' is not a generator"):
        Config(generators=("XY(1)",))
    with pytest.raises(ConfigError, match="WS\\(K, P\\) with even"):
        Config(generators=("WS(3, 0.5)",))
    with pytest.raises(ConfigError, match="BA\\(M\\) with 1 <= M < N"):
        Config(nodes=8, generators=("BA(8)",))
    with pytest.raises(ConfigError, match="baselines"):
        Config(baselines=("densenet",))
    with pytest.raises(ConfigError, match="channels must be even"):
        Config(channels=15)
    with pytest.raises(ConfigError, match="dropout"):
        Config(dropout=1.0)
    with pytest.raises(ConfigError, match="graph_seeds"):
        Config(graph_seeds=0)
    with pytest.raises(ConfigError, match="training_repeats must be an integer from 0 to 9"):
        Config(training_repeats=10)
    full = Config.full()
    assert (full.nodes, full.channels, full.stages, full.width, full.baselines) == (32, 78, 3, 1280, ("resnet",))


def test_reduced_run_experiment_end_to_end_and_claims(tmp_path):
    config = Config(nodes=5, channels=4, width=8, epochs=1, batch_size=128, graph_seeds=2,
                    generators=("ER(0.5)", "WS(2, 0.5)"), baselines=("chain",), removal_instances=1,
                    removal_eval_images=50)
    metrics = run_experiment(config, RunState(tmp_path, resume=False))
    assert 0 <= metrics["digits_er-0.5-g1_accuracy"] <= 100
    assert metrics["digits_generators_range_max"] == max(
        metrics[f"digits_{slug}_accuracy_max"] - metrics[f"digits_{slug}_accuracy_min"]
        for slug in ("er-0.5", "ws-2-0.5"))
    assert "digits_chain_accuracy_mean" in metrics and "digits_node_removal_spearman_out_degree" in metrics
    found = claims(metrics)
    assert found and all(claim.key for claim in found)
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == ["chain-g0.pt", "er-0.5-g0-t1.pt", "er-0.5-g0.pt",
                                                             "er-0.5-g1.pt", "ws-2-0.5-g0-t1.pt", "ws-2-0.5-g0.pt",
                                                             "ws-2-0.5-g1.pt"]
    assert metrics["digits_er-0.5-g0-t1_accuracy"] != metrics["digits_er-0.5-g0_accuracy"] or \
        metrics["digits_ws-2-0.5-g0-t1_accuracy"] != metrics["digits_ws-2-0.5-g0_accuracy"]  # another seed
    assert "graph-spread-few-times-training-noise" in {claim.key for claim in found}


def removal(edge_degrees: list[int], edge_damages: list[float]) -> dict:
    """A removal study's JSON with three nodes and the given edges (target in-degrees and damages)."""
    nodes = [dict(zip(NODE_FIELDS, (0, node, 1, 3 - node, 3.0 - node))) for node in range(3)]
    edges = [dict(zip(EDGE_FIELDS, (0, 0, 1, degree, damage))) for degree, damage in zip(edge_degrees, edge_damages)]
    return {"accuracy": 90.0, "nodes": nodes, "edges": edges}


def test_spread_metrics_pool_generators_and_undefined_correlations_are_left_out():
    config = Config(generators=("ER(0.2)", "BA(5)"), graph_seeds=3, baselines=(), training_repeats=1)
    accuracy = {("ER(0.2)", 0): 90.0, ("ER(0.2)", 1): 92.0, ("ER(0.2)", 2): 94.0,
                ("BA(5)", 0): 91.0, ("BA(5)", 1): 91.0, ("BA(5)", 2): 88.0}
    run = lambda value: {"accuracy": value, "flops": 1, "params": 1, "train_seconds": 1.0}
    runs = {key: run(value) for key, value in accuracy.items()}
    runs["ER(0.2)", 0]["removal"] = removal([1, 2, 3, 4], [4.0, 3.0, 2.0, 1.0])  # perfectly decreasing: -1
    runs["BA(5)", 0]["removal"] = removal([5, 5, 5, 5], [1.0, 3.0, 2.0, 4.0])  # in-degree constant: undefined
    repeats = {("ER(0.2)", 1): run(91.0), ("BA(5)", 1): run(93.0)}
    metrics = Study(config, runs, repeats).metrics
    graph_std = ((4.0 + 3.0) / 2) ** 0.5  # sample variances 4 (ER) and 3 (BA)
    training_std = ((0.5 + 2.0) / 2) ** 0.5  # pairs (90, 91) and (91, 93): variances 0.5 and 2
    assert metrics["digits_graph_spread_std"] == pytest.approx(graph_std)
    assert metrics["digits_training_spread_std"] == pytest.approx(training_std)
    assert metrics["digits_graph_over_training_spread"] == pytest.approx(graph_std / training_std)
    assert math.isnan(spearman([5, 5, 5], [1.0, 2.0, 3.0]))
    assert math.isnan(metrics["digits_ba-5-g0_edge_removal_spearman_target_in_degree"])
    assert metrics["digits_edge_removal_spearman_target_in_degree"] == pytest.approx(-1.0)  # BA left out, not 0
    assert metrics["digits_edge_removal_spearman_target_in_degree_networks"] == 1
    assert metrics["digits_node_removal_spearman_out_degree_networks"] == 2
    edge_claim = next(claim for claim in claims(metrics) if claim.key == "edge-damage-shrinks-with-target-in-degree")
    assert "where it is defined, here 1;" in edge_claim.statement


def write_tiny_cifar(path: Path, per_batch: int = 4) -> None:
    """A cifar-10-python.tar.gz with the real member names and pickle layout."""
    generator = np.random.default_rng(0)
    with tarfile.open(path, "w:gz") as archive:
        for index, name in enumerate([*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]):
            payload = pickle.dumps({b"batch_label": name.encode(),
                                    b"data": generator.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                                    b"labels": [(index + i) % 10 for i in range(per_batch)]})
            member = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            member.size = len(payload)
            archive.addfile(member, io.BytesIO(payload))


def test_full_mode_end_to_end_on_tiny_cifar_files(tmp_path, monkeypatch, isolated_cache):
    folder = isolated_cache / "cifar-10"
    folder.mkdir(parents=True)
    archive = folder / "cifar-10-python.tar.gz"
    write_tiny_cifar(archive)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    real = rfy_data.REGISTRY["cifar-10"]
    monkeypatch.setitem(rfy_data.REGISTRY, "cifar-10", DatasetSpec(
        real.name, real.description, (RemoteFile(archive.name, digest, ("file:///nowhere",)),), real.homepage,
        real.license_note))
    config = Config.full(nodes=4, channels=32, width=64, epochs=1, batch_size=8, graph_seeds=1,
                         generators=("WS(2, 0.5)",), removal_eval_images=8, mixed_precision=False)
    metrics = run_experiment(config, RunState(tmp_path, resume=False))
    assert 0 <= metrics["cifar-10_ws-2-0.5-g0_accuracy"] <= 100
    assert 0 <= metrics["cifar-10_resnet_accuracy_mean"] <= 100
    ratio = metrics["cifar-10_resnet-g0_flops"] / metrics["cifar-10_ws-2-0.5-g0_flops"]
    assert 0.5 < ratio < 2


def test_full_mode_without_cifar_explains_what_to_download():
    from rfy.randwire import load_data

    with pytest.raises(Exception, match="cifar-10-python.tar.gz"):
        load_data(Config.full())


DDP_SCRIPT = """
import sys, torch
from rfy.data import load_digits
from rfy.distributed import join_process_group
from rfy.randwire import Config, ImageData, RandWireNet, parse_generator, stage_graphs, train_network
group = join_process_group(torch.device("cpu"))
images, labels = load_digits("train")
data = ImageData(images[:64], labels[:64], images[:16], labels[:16], flip=False, crop_padding=1, mean=(0.3,), std=(0.4,))
torch.manual_seed(group.rank)  # different initial weights: DDP must broadcast rank 0's
net = RandWireNet(stage_graphs(parse_generator("ER(0.5)", 5), 5, 2, 0), in_channels=1, channels=4, width=8,
                  num_classes=10)
train_network(net, data, Config(nodes=5, epochs=1, batch_size=16, generators=("ER(0.5)",), baselines=()), seed=0, group=group)
torch.save([p.detach() for p in net.parameters()], f"{sys.argv[1]}/rank{group.rank}.pt")
"""


def test_distributed_data_parallel_keeps_two_gloo_replicas_equal(tmp_path):
    import os
    import subprocess
    import sys

    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
               str(tmp_path)]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert finished.returncode == 0, finished.stderr[-2000:]
    first, second = (torch.load(tmp_path / f"rank{rank}.pt") for rank in (0, 1))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(first, second))
