import torch

from metad2a.models.generator import GeneratorModel
from metad2a.models.predictor import PredictorModel
from metad2a.nn.graph_batch import GraphBatch
from metad2a.search_spaces.nasbench201 import cell as nb


def nb_batch(strs):
    return GraphBatch.from_lists([nb.arch_str_to_types(s) for s in strs], [nb.CANONICAL_EDGES] * len(strs), 8)


STRS = [s for i, s in enumerate(nb.all_arch_strs()) if i % 1999 == 0][:6]


def test_generator_loss_finite_backward_and_overfits_one_batch():
    torch.manual_seed(0)
    m = GeneratorModel(7, 8, hs=16, nz=16, feature_dim=12, num_sample=4).train()
    X, graphs = torch.randn(6, 3 * 4, 12), nb_batch(STRS)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss, recon, kld = m.loss(*m.set_encode(X), graphs)
        assert torch.isfinite(loss) and kld >= 0
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_trained_generator_decodes_its_training_architectures():
    torch.manual_seed(0)
    m = GeneratorModel(7, 8, hs=16, nz=16, feature_dim=12, num_sample=4)
    X, target = torch.randn(1, 3 * 4, 12), nb_batch(STRS[:1])
    opt = torch.optim.Adam(m.parameters(), lr=2e-2)
    for _ in range(150):
        opt.zero_grad()
        m.loss(*m.set_encode(X), target)[0].backward()
        opt.step()
    m.eval()
    out = m.generate(X.expand(50, -1, -1))
    assert out.types.shape == (50, 8)
    archs = [nb.types_to_arch_str(t) for t, _ in out.to_lists()]
    assert sum(a == STRS[0] for a in archs) >= 40


def test_predictor_shapes_and_learning():
    torch.manual_seed(0)
    m = PredictorModel(7, 8, hs=32, nz=8, feature_dim=12, num_sample=4)
    X, graphs = torch.randn(6, 2 * 4, 12), nb_batch(STRS)
    y = torch.linspace(-0.05, 0.05, 6)[:, None]
    assert m(X, graphs).shape == (6, 1)
    assert m(X[:1], graphs[:1]).shape == (1, 1)  # batch of one keeps its axis
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    first = None
    for _ in range(60):
        opt.zero_grad()
        loss = m.mseloss(m(X, graphs), y)
        first = first if first is not None else loss.item()
        loss.backward()
        opt.step()
    assert loss.item() < 0.2 * first


def test_feature_dimension_is_a_constructor_argument():
    m = PredictorModel(7, 8, hs=16, nz=8, feature_dim=1280)
    assert m.intra_setpool.enc[0].mab.fc_q.in_features == 1280
    assert m.set_encode(torch.randn(2, 40, 1280)).shape == (2, 8)
