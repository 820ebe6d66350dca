import json
import os

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch
from torch_geometric.transforms import Compose

from pyg_implicit.chem import determine_bonds
from pyg_implicit.datasets import QM9
from pyg_implicit.datasets.paths import shared_data_dir
from pyg_implicit.datasets.qm9 import PROPERTY_NAMES, read_qm9pack_csv
from pyg_implicit.groups import get_group
from pyg_implicit.models import QM9Net
from pyg_implicit.testing import assert_equivariant, equivariance_error
from pyg_implicit.transforms import AtomOneHot, BondOneHot, QM9Targets, RadiusGraph, StandardizeTargets
from pyg_implicit.transforms.molecule import HARTREE_TO_MEV

from conftest import run_example

QM9_DIR = os.path.join(shared_data_dir(), "qm9")
NPZ = os.path.join(QM9_DIR, "qm9_full_130831.npz")
pytestmark = pytest.mark.skipif(not os.path.exists(NPZ), reason=f"shared QM9 data not found at {NPZ}")


@pytest.fixture(scope="module")
def archive():
    with np.load(NPZ) as f:
        return {k: f[k] for k in ("ptr", "Z", "pos", "index", "smiles", "props")}


def molecule(archive, gdb_id):
    i = int(np.where(archive["index"] == gdb_id)[0][0])
    a, b = archive["ptr"][i], archive["ptr"][i + 1]
    return archive["Z"][a:b].astype(np.int64), archive["pos"][a:b], str(archive["smiles"][i]), archive["props"][i]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return QM9(str(tmp_path_factory.mktemp("qm9")), source="npz", subset=300)


@pytest.mark.parametrize(
    "gdb_id, smiles, counts",
    [
        (1, "C", {0: 4}),  # methane: four C-H single bonds
        (214, "C1=CC=CC=C1", {0: 6, 3: 6}),  # benzene: six C-H single, six aromatic C-C
        (8496, "CC1(O)C2CC1(O)C2", {0: 19}),  # strained cage: a non-bonded C-C pair is within bonding distance
    ],
)
def test_bonds_of_known_molecules(archive, gdb_id, smiles, counts):
    z, pos, smi, _ = molecule(archive, gdb_id)
    assert smi == smiles
    pairs, types, method = determine_bonds(z, pos, smi)
    assert method == "smiles"
    assert dict(zip(*np.unique(types, return_counts=True))) == counts
    lengths = np.linalg.norm(pos[pairs[:, 0]] - pos[pairs[:, 1]], axis=1)
    assert lengths.max() < 1.7  # every bond is a short contact of the geometry


def test_bonds_from_coordinates_alone(archive):
    z, pos, _, _ = molecule(archive, 214)
    pairs, types, method = determine_bonds(z, pos)  # no SMILES: xyz2mol bond orders
    assert method == "coordinates" and len(pairs) == 12 and set(types.tolist()) == {0, 3}


def test_dataset_fields_report_and_split(dataset):
    assert dataset.bond_report["molecules"] + dataset.bond_report["dropped"] == 300
    assert dataset.bond_report["dropped"] == 0
    data = dataset[0]
    assert data.edge_index.shape[1] == data.bond_type.numel() and data.props.shape == (1, 15)
    assert data.props.dtype == torch.float64
    src, dst = data.edge_index
    assert set(zip(src.tolist(), dst.tolist())) == set(zip(dst.tolist(), src.tolist()))  # both directions
    train, val, test = dataset.split(seed=0)
    assert (len(train), len(val), len(test)) == (252, 23, 25)
    ids = [set(torch.cat([d.idx for d in s]).tolist()) for s in (train, val, test)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    small, val2, test2 = dataset.split(seed=0, train_size=100)
    assert len(small) == 100 and set(torch.cat([d.idx for d in test2]).tolist()) == ids[2]
    with pytest.raises(ValueError, match="train_size"):
        dataset.split(train_size=10_000)


def test_one_hot_transforms(dataset):
    data = BondOneHot()(AtomOneHot()(dataset[3]))
    assert data.x.shape == (data.num_nodes, 5) and torch.all(data.x.sum(1) == 1)
    assert data.edge_attr.shape == (data.num_edges, 4) and torch.all(data.edge_attr.sum(1) == 1)
    assert torch.equal(data.x.argmax(1), torch.tensor([{1: 0, 6: 1, 7: 2, 8: 3, 9: 4}[z] for z in data.z.tolist()]))
    bad = dataset[3].clone()
    bad.z[0] = 16
    with pytest.raises(ValueError, match=r"z: atomic numbers \[16\]"):
        AtomOneHot()(bad)


def test_radius_graph_keeps_bond_types(dataset):
    data = dataset[5]
    bonded = {(int(i), int(j)): int(t) for i, j, t in zip(*data.edge_index, data.bond_type)}
    out = BondOneHot()(RadiusGraph(5.0)(data.clone()))
    dist = (out.pos[out.edge_index[0]] - out.pos[out.edge_index[1]]).norm(dim=1)
    assert dist.max() < 5.0 and out.num_edges > len(bonded)
    for (i, j), t, attr in zip(out.edge_index.t().tolist(), out.bond_type.tolist(), out.edge_attr):
        assert t == bonded.get((i, j), -1)
        assert attr.sum() == (t >= 0)


def test_targets_units_and_atomization_match_the_reference_split(archive):
    """Atomization energies match U - U_thermo of the Cormorant/EGNN test file for the same molecules.

    The file's thermo columns are exact float64 sums of the atom references; its energies are
    float32-rounded (up to 3e-5 Hartree = 0.8 meV off the archive's), and y is float32 (an ulp
    of 5e4 meV is 1.4e-7 Hartree): hence the two tolerances.
    """
    from torch_geometric.data import Data

    with np.load(os.path.join(QM9_DIR, "qm9_egnn_cormorant_test.npz")) as ref:
        ref = {k: ref[k] for k in ref.files}
    names = ("U0", "U", "H", "G", "homo", "gap", "mu", "Cv")
    targets = QM9Targets(names)
    assert targets.units == ["meV", "meV", "meV", "meV", "meV", "meV", "D", "cal/(mol K)"]
    for row in range(0, 13083, 650):
        gdb_id = int(ref["index"][row])
        z, _, _, props = molecule(archive, gdb_id)
        y = targets(Data(z=torch.as_tensor(z), props=torch.as_tensor(props)[None])).y[0].double().numpy()
        for k, name in enumerate(names):
            total = props[PROPERTY_NAMES.index(name)]
            if name in ("U0", "U", "H", "G"):
                assert total - y[k] / HARTREE_TO_MEV == pytest.approx(ref[f"{name}_thermo"][row], abs=5e-7), (gdb_id, name)
                assert y[k] == pytest.approx((ref[name][row] - ref[f"{name}_thermo"][row]) * HARTREE_TO_MEV, abs=1.0)
            elif name in ("homo", "gap"):
                assert y[k] == pytest.approx(total * HARTREE_TO_MEV, rel=1e-6)
            else:
                assert y[k] == pytest.approx(ref[name][row], rel=1e-5)
    with pytest.raises(ValueError, match="names"):
        QM9Targets("energy")


def test_standardize_targets_round_trip():
    y = torch.randn(50, 2) * torch.tensor([3.0, 0.1]) + torch.tensor([10.0, -2.0])
    standardize = StandardizeTargets.fit(y)
    from torch_geometric.data import Data

    z = torch.stack([standardize(Data(y=row[None].clone())).y[0] for row in y])
    torch.testing.assert_close(z.mean(0), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.std(0), torch.ones(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(standardize.inverse(z), y, atol=1e-5, rtol=0)


def test_qm9pack_csv_matches_the_archive(archive):
    rows = list(read_qm9pack_csv([os.path.join(QM9_DIR, "qm9pack_part1_first1000.csv")]))
    assert len(rows) == 1000
    for gdb_id, z, pos, smiles, props in rows[::97]:
        z2, pos2, smiles2, props2 = molecule(archive, gdb_id)
        assert np.array_equal(z, z2) and smiles == smiles2
        np.testing.assert_allclose(pos, pos2, atol=1e-6)
        np.testing.assert_allclose(props, props2, rtol=1e-9)


def test_sdf_source_gives_the_same_molecules(tmp_path, archive):
    """PyG's raw layout (gdb9.sdf, gdb9.sdf.csv, uncharacterized.txt), written from archive molecules."""
    from rdkit import Chem

    ids = [1, 2, 214, 8496]
    raw = tmp_path / "raw"
    raw.mkdir()
    writer = Chem.SDWriter(str(raw / "gdb9.sdf"))
    csv_rows = ["mol_id," + ",".join(PROPERTY_NAMES) + ",u0_atom,u298_atom,h298_atom,g298_atom"]
    expected = {}
    for n, gdb_id in enumerate(ids + [3]):  # the last one is listed as uncharacterized
        z, pos, smi, props = molecule(archive, gdb_id)
        pairs, types, _ = determine_bonds(z, pos, smi)
        mol = Chem.RWMol()
        for number in z.tolist():
            mol.AddAtom(Chem.Atom(number))
        kinds = [Chem.BondType.SINGLE, Chem.BondType.DOUBLE, Chem.BondType.TRIPLE, Chem.BondType.AROMATIC]
        for (i, j), t in zip(pairs.tolist(), types.tolist()):
            mol.AddBond(i, j, kinds[t])
        Chem.Kekulize(mol, clearAromaticFlags=True)
        conformer = Chem.Conformer(len(z))
        for i, xyz in enumerate(pos.astype(float).tolist()):
            conformer.SetAtomPosition(i, xyz)
        mol.AddConformer(conformer)
        writer.write(mol)
        csv_rows.append(f"gdb_{n + 1}," + ",".join(f"{v!r}" for v in props.tolist()) + ",0,0,0,0")
        expected[n + 1] = (z, pairs, types, props)
    writer.close()
    (raw / "gdb9.sdf.csv").write_text("\n".join(csv_rows) + "\n")
    (raw / "uncharacterized.txt").write_text("header\n" * 9 + "    5    3  x\n" + "footer\n")
    dataset = QM9(str(tmp_path), source="auto")
    assert dataset.source == "sdf" and len(dataset) == 4 and dataset.bond_report["bonds_from"] == {"sdf": 4}
    for data in dataset:
        z, pairs, types, props = expected[int(data.idx)]
        assert np.array_equal(data.z.numpy(), z)
        np.testing.assert_allclose(data.props[0].numpy(), props)
        bonds = {(min(i, j), max(i, j)): int(t) for (i, j), t in zip(data.edge_index.t().tolist(), data.bond_type)}
        assert bonds == {(min(i, j), max(i, j)): int(t) for (i, j), t in zip(pairs.tolist(), types)}


def test_missing_and_corrupt_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="QM9 archive not found: .*nothing.npz"):
        QM9(str(tmp_path / "a"), source="npz", npz_path=str(tmp_path / "nothing.npz"))
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"not a numpy archive")
    with pytest.raises(ValueError, match="unreadable"):
        QM9(str(tmp_path / "b"), source="npz", npz_path=str(corrupt))
    with pytest.raises(FileNotFoundError, match="gdb9.sdf"):
        QM9(str(tmp_path / "c"), source="sdf")
    with pytest.raises(ValueError, match="source"):
        QM9(str(tmp_path / "d"), source="web")


class _Invariant(torch.nn.Module):
    """``QM9Net`` called on tensors, for :func:`assert_equivariant`."""

    def __init__(self, model, template):
        super().__init__()
        self.model, self.template = model, template

    def forward(self, x, pos, edge_attr):
        batch = self.template.clone()
        batch.x, batch.pos, batch.edge_attr = x, pos, edge_attr
        return self.model(batch)


def _batch(dataset, dtype):
    transform = Compose([AtomOneHot(), BondOneHot()])
    batch = Batch.from_data_list([transform(dataset[i]) for i in (0, 1, 2)])
    batch.x, batch.pos, batch.edge_attr = batch.x.to(dtype), batch.pos.to(dtype), batch.edge_attr.to(dtype)
    return batch


@pytest.mark.parametrize("kernel, attrs, options", [("implicit", (True, True), {}), ("implicit", (False, False), {}),
                                                    ("standard", (False, False), {}), ("implicit", (True, True), {"form": "factorized"}),
                                                    ("implicit", (False, False), {"shell": False, "polynomial_norm": "data", "mlp_layers": 3,
                                                                                  "kernel_activation": "scalar_gate"})])
def test_qm9net_is_invariant_to_rotations_reflections_translations(dataset, float64, kernel, attrs, options):
    batch = _batch(dataset, torch.float64)
    model = QM9Net("8x0e+4x1o+2x2e", num_layers=2, kernel=kernel, bond_attr=attrs[0], atom_attr=attrs[1], readout=16, **options).eval()
    assert model(batch).shape == (3, 1)
    assert_equivariant(_Invariant(model, batch), "o3", (batch.x, batch.pos, batch.edge_attr),
                       ["5x0e", "cartesian_points", "4x0e"], "1x0e", tolerance=1e-10)  # fmt: skip


def test_qm9net_for_a_subgroup_is_invariant_only_to_it(dataset):
    batch = _batch(dataset, torch.float32)
    module = _Invariant(QM9Net("8x0e+4x1o+2x2e", num_layers=2, group="so2", readout=16).eval(), batch)
    args, actions = (batch.x, batch.pos, batch.edge_attr), ["5x0e", "cartesian_points", "4x0e"]
    assert_equivariant(module, "so2", args, actions, "1x0e", tolerance=1e-4)
    outside = get_group("o3").sample(4, torch.Generator().manual_seed(1))
    assert equivariance_error(module, outside, args, actions, "1x0e").max() > 1e-3


def test_train_qm9_runs_two_steps(tmp_path):
    from train_qm9 import main

    metrics = main(["--target", "U0", "--subset", "300", "--train-size", "64", "--val-size", "20", "--epochs", "2",
                    "--batch-size", "32", "--width", "1", "--readout", "8", "--layers", "1", "--kernel-form", "factorized",
                    "--data-root", str(tmp_path / "data"), "--out-dir", str(tmp_path / "run"), "--no-progress"])  # fmt: skip
    assert len(metrics["history"]) == 2 and np.isfinite(metrics["test_mae"])
    assert metrics["config"]["extra"]["variant"].startswith("implicit-factorized")
    std = metrics["config"]["extra"]["standardize"]["std"]
    assert all(r["val_mae"] == pytest.approx(r["val_loss"] * float(np.ravel(std)[0])) for r in metrics["history"])
    with open(tmp_path / "run" / "metrics.json") as f:
        saved = json.load(f)
    extra = saved["config"]["extra"]
    assert extra["target"] == "U0" and extra["unit"] == "meV" and saved["test_mae"] == metrics["test_mae"]


def test_train_qm9_kernel_options_reach_every_kernel():
    from train_qm9 import build_model, parse_args, variant_name

    args = parse_args(["--no-bond-attr", "--no-atom-attr", "--no-shell", "--polynomial-norm", "data", "--kernel-mlp-layers", "3",
                       "--kernel-activation", "scalar_gate"])  # fmt: skip
    assert variant_name(args) == "implicit-mlp3-scalargate-noshell-polydata"
    for block in build_model(1, args).cnn.blocks:
        kernel = block.conv.kernel
        assert kernel.sigma is None and kernel.harmonics.norm == "data" and kernel.mlp_layers == 3
        assert kernel.mlp.layers[1].scalar_invariants and not block.update.layers[1].scalar_invariants  # the kernel's alone
    wide = parse_args(["--no-bond-attr", "--no-atom-attr", "--kernel-hidden", "2x0e+2x1o"])
    assert variant_name(wide) == "implicit-hidden2x0e+2x1o" and str(build_model(1, wide).cnn.blocks[0].conv.kernel.irreps_features) == "2x0e+2x1o"
    for flag in (["--no-shell"], ["--kernel-hidden", "2x0e"]):  # argparse's error: the standard kernel has no G-MLP, shell or polynomials
        with pytest.raises(SystemExit):
            parse_args(["--kernel", "standard", *flag])
    standard = parse_args(["--kernel", "standard", "--radial-basis", "3"])
    assert variant_name(standard) == "standard+dist3+bond+atoms" and build_model(1, standard).cnn.blocks[0].conv.kernel.num_basis == 3
    assert variant_name(parse_args(["--kernel", "standard"])) == "standard+bond+atoms"  # its default embedding, 10 Gaussians
    with pytest.raises(SystemExit):
        parse_args(["--kernel", "standard", "--radial-basis", "0"])


def _in_pyg_layout(data):
    """The molecule as torch_geometric.datasets.QM9 stores it: 11 atom features, one-hot bonds, 19 targets in eV."""
    from torch_geometric.data import Data

    from pyg_implicit.transforms.molecule import HARTREE_TO_EV, PYG_QM9_TARGETS

    props = dict(zip(PROPERTY_NAMES, data.props[0].double()))
    in_ev = {"homo", "lumo", "gap", "zpve", "U0", "U", "H", "G"}
    y = [props[name] * (HARTREE_TO_EV if name in in_ev else 1.0) if name in props else 0.0 for name in PYG_QM9_TARGETS]
    x = torch.cat([AtomOneHot()(data.clone()).x, data.z[:, None].float(), torch.zeros(data.num_nodes, 5)], dim=1)
    return Data(x=x, z=data.z, pos=data.pos, edge_index=data.edge_index, edge_attr=BondOneHot()(data.clone()).edge_attr,
                y=torch.tensor([y], dtype=torch.float32))  # fmt: skip


def test_transforms_and_qm9net_read_pyg_layout(dataset):
    """A molecule in PyG's QM9 layout gives the same inputs and targets (units converted) as in ours."""
    ours = Compose([AtomOneHot(), RadiusGraph(3.0), BondOneHot(), QM9Targets(["homo", "U0", "mu", "A"])])
    for i in (0, 7):
        mine, theirs = ours(dataset[i].clone()), ours(_in_pyg_layout(dataset[i]))
        assert theirs.x.shape == (theirs.num_nodes, 5)
        for key in ("x", "edge_index", "edge_attr", "bond_type"):
            assert torch.equal(mine[key], theirs[key]), key
        torch.testing.assert_close(theirs.y, mine.y, rtol=2e-5, atol=1e-3)  # PyG keeps float32 eV: ~1 meV on a total energy
    model = QM9Net("8x0e+4x1o", num_layers=1, readout=8).eval()
    mine, theirs = Compose([AtomOneHot(), BondOneHot()]), Compose([AtomOneHot(), BondOneHot()])
    torch.testing.assert_close(model(theirs(_in_pyg_layout(dataset[3]))), model(mine(dataset[3].clone())))
    with pytest.raises(ValueError, match=r"data: expected QM9 properties, as props \(1, 15\) or as PyG's y \(1, 19\)"):
        QM9Targets("homo")(_in_pyg_layout(dataset[3]).update({"y": torch.zeros(1, 12)}))


@pytest.mark.slow
def test_ablation_runs_jobs_in_parallel_and_plots_the_curves(tmp_path):
    run_example("qm9_ablation.py", "--variants", "standard kernel", "implicit kernel", "--seeds", "0", "--subset", "300",
                "--train-size", "64", "--val-size", "20", "--epochs", "2", "--lr-step", "1", "--layers", "1", "--width", "1",
                "--jobs", "2", "--out-dir", str(tmp_path / "ablation"), "--data-root", str(tmp_path / "data"), timeout=600)  # fmt: skip
    results = json.loads((tmp_path / "ablation" / "results.json").read_text())["results"]
    assert set(results) == {"standard kernel", "implicit kernel"} and all(len(runs[0]["val_mae"]) == 2 for runs in results.values())
    assert "| implicit kernel |" in (tmp_path / "ablation" / "results.md").read_text() and (tmp_path / "ablation" / "results.png").exists()
    # the paper's protocol: every row at --width, the wide G-MLP at its own parameter count
    run_example("qm9_ablation.py", "--no-match-budget", "--variants", "implicit kernel, wide G-MLP", "--seeds", "0", "--subset", "300",
                "--train-size", "64", "--val-size", "20", "--epochs", "1", "--layers", "1", "--width", "1",
                "--out-dir", str(tmp_path / "paper"), "--data-root", str(tmp_path / "data"), timeout=600)  # fmt: skip
    wide = json.loads((tmp_path / "paper" / "results.json").read_text())["results"]["implicit kernel, wide G-MLP"][0]
    assert wide["width"] == 1 and wide["parameters"] > 1.5 * results["implicit kernel"][0]["parameters"]
    assert "width 1, parameters not matched" in (tmp_path / "paper" / "results.md").read_text()
