"""Every index backend finds the same nearest centroid at the same L1 distance, and the same k nearest bank rows
at the same L2 distances."""

import pytest
import torch

from pipeline.ood.index import CentroidIndex, NeighbourIndex, faiss_has_gpu

pytest.importorskip("faiss", reason="faiss is not installed (pip install 'nero-monitor[cpu]')")


def brute_force(queries, centroids):
    distances = (queries[:, None, :] - centroids[None]).abs().sum(-1)
    return distances.min(1)


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(3)
    return torch.randn(200, 341, generator=g), torch.randn(8, 341, generator=g)


@pytest.mark.parametrize("backend", ["faiss", "torch"])
def test_backends_agree_with_brute_force(data, backend):
    queries, centroids = data
    index = CentroidIndex(centroids, backend=backend)
    distance, nearest = index.search(queries)
    expected = brute_force(queries, centroids)
    assert torch.equal(nearest.long(), expected.indices)
    torch.testing.assert_close(distance, expected.values, rtol=1e-5, atol=1e-4)


def test_auto_prefers_faiss(data):
    assert CentroidIndex(data[1]).description in ("faiss-cpu", "faiss-gpu")


@pytest.mark.skipif(not (torch.cuda.is_available() and faiss_has_gpu()), reason="needs CUDA and faiss-gpu")
def test_gpu_index_matches_cpu(data):
    queries, centroids = data
    gpu = CentroidIndex(centroids.cuda(), backend="faiss")
    assert gpu.description == "faiss-gpu"
    distance, nearest = gpu.search(queries.cuda())
    expected = brute_force(queries, centroids)
    assert torch.equal(nearest.cpu().long(), expected.indices)
    torch.testing.assert_close(distance.cpu(), expected.values, rtol=1e-5, atol=1e-4)


def test_unknown_backend_is_refused(data):
    with pytest.raises(ValueError, match="unknown index backend"):
        CentroidIndex(data[1], backend="annoy")


BANK_SEARCHES = [("auto", None), ("faiss", None), ("torch", torch.float32), ("torch", torch.bfloat16)]


@pytest.mark.parametrize(("backend", "proposal"), BANK_SEARCHES)
@pytest.mark.parametrize("batch", [1, 16, 200])
def test_bank_search_agrees_with_brute_force(data, backend, proposal, batch):
    queries, bank = data[0][:batch], torch.randn(500, 341, generator=torch.Generator().manual_seed(4))
    distances, rows = NeighbourIndex(bank, backend=backend, proposal_dtype=proposal).search(queries, 7)
    expected = torch.cdist(queries.double(), bank.double()).topk(7, dim=1, largest=False)
    assert torch.equal(rows.long(), expected.indices)
    torch.testing.assert_close(distances.double(), expected.values, rtol=1e-5, atol=1e-5)


def test_cpu_bank_searches_by_matrix_product_faiss_on_request(data):
    assert NeighbourIndex(data[1]).description in ("torch-bfloat16", "torch-float32")
    assert NeighbourIndex(data[1], proposal_dtype=torch.float32).description == "torch-float32"
    assert NeighbourIndex(data[1], backend="faiss").description == "faiss-cpu"


def test_a_query_gets_the_same_neighbours_whatever_its_batch_threads_or_backend():
    # A matrix product's last bits depend on the batch size and the thread count; with near and exact
    # duplicates in the bank (as the unlabelled windows give) that had swapped the k-th neighbour, and with
    # it the explanation, between a live batch of 1, a replay of 16 and a one-thread archive worker.
    g = torch.Generator().manual_seed(0)
    base = torch.nn.functional.normalize(torch.randn(1500, 640, generator=g), dim=1)
    bank = torch.cat([base, base[:400] + 1e-7, base[:200]])
    queries = torch.cat([torch.nn.functional.normalize(torch.randn(8, 640, generator=g), dim=1),
                         bank[:8] + 1e-4 * torch.randn(8, 640, generator=g)])
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        batched = NeighbourIndex(bank).search(queries, 20)
        alone = [NeighbourIndex(bank).search(query[None], 20) for query in queries]
        by_faiss = NeighbourIndex(bank, backend="faiss").search(queries, 20)
        in_float32 = NeighbourIndex(bank, proposal_dtype=torch.float32).search(queries, 20)
        in_bfloat16 = NeighbourIndex(bank, proposal_dtype=torch.bfloat16).search(queries, 20)
        torch.set_num_threads(1)
        one_thread = NeighbourIndex(bank).search(queries, 20)
    finally:
        torch.set_num_threads(threads)
    others = [(torch.cat([a[0] for a in alone]), torch.cat([a[1] for a in alone])), by_faiss, in_float32,
              in_bfloat16, one_thread]
    for distances, rows in others:
        assert torch.equal(distances, batched[0])
        assert torch.equal(rows, batched[1])


def test_a_query_the_bfloat16_proposal_cannot_settle_is_searched_row_by_row():
    # 300 rows within 1e-3 of one another: bfloat16 (8 bits) cannot order them, nor can 64 spare candidates
    # hold the 5 nearest for sure; the answer must still be the exact one.
    g = torch.Generator().manual_seed(5)
    centre = torch.nn.functional.normalize(torch.randn(1, 640, generator=g), dim=1)
    bank = torch.cat([centre + 1e-3 * torch.randn(300, 640, generator=g),
                      torch.nn.functional.normalize(torch.randn(700, 640, generator=g), dim=1)])
    query = centre + 1e-3 * torch.randn(1, 640, generator=g)
    index = NeighbourIndex(bank, backend="torch", proposal_dtype=torch.bfloat16)
    exact = torch.cdist(query.double(), bank.double()).topk(5, dim=1, largest=False)
    proposed = index._propose(query, 5)[1]
    assert not torch.equal(proposed, exact.indices)       # the proposal alone gets them wrong
    distances, rows = index.search(query, 5)
    assert torch.equal(rows, exact.indices)
    torch.testing.assert_close(distances.double(), exact.values, rtol=1e-5, atol=1e-6)
