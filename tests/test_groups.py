import math

import pytest
import torch
from e3nn import o3

from pyg_implicit.groups import Group, get_group, irreps_D, rotation_x, rotation_z

FINITE_ORDERS = {
    "trivial": 1, "inv": 2, "mirror": 2, "t": 12, "th": 24, "td": 24, "o": 24, "oh": 48, "i": 60, "ih": 120,
    **{f"c{n}": n for n in range(1, 7)}, **{f"d{n}": 2 * n for n in range(1, 7)},
}  # fmt: skip
CONTINUOUS = {"o3": 3, "so3": 3, "so2": 1, "o2": 1, "cone": 1, "cyl": 1, "fullcyl": 1}
ALL_GROUPS = list(FINITE_ORDERS) + list(CONTINUOUS)
IRREPS = [o3.Irrep(l, p) for l in range(3) for p in (1, -1)]


@pytest.mark.parametrize("name", list(FINITE_ORDERS))
def test_finite_group_order(name):
    assert get_group(name).order == FINITE_ORDERS[name]


@pytest.mark.parametrize("name", list(CONTINUOUS))
def test_continuous_group_dimension(name):
    group = get_group(name)
    assert group.lie_dim == CONTINUOUS[name] and group.order == math.inf


@pytest.mark.parametrize("name", ALL_GROUPS)
def test_samples_are_orthogonal_group_elements_closed_under_products(name):
    group = get_group(name)
    R = group.sample(20, generator=torch.Generator().manual_seed(1))
    assert R.dtype == torch.float64 and R.shape == (20, 3, 3)
    torch.testing.assert_close(R @ R.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(20, 3, 3))
    assert group.contains(R).all()
    assert group.contains(R[:10] @ R[10:]).all()
    assert group.contains(R.transpose(1, 2)).all()


def test_sampling_is_uniform():
    g = torch.Generator().manual_seed(0)
    # SO(2): the angle is uniform; C4: the four elements are equally likely.
    R = get_group("so2").sample(20000, generator=g)
    angle = torch.atan2(R[:, 1, 0], R[:, 0, 0])
    hist = torch.histc(angle, bins=8, min=-math.pi, max=math.pi) / 20000
    assert (hist - 1 / 8).abs().max() < 0.015
    # SO(3): Haar measure gives E[trace R] = 0 and E[R] = 0
    R = get_group("so3").sample(20000, generator=g)
    assert R.mean(0).abs().max() < 0.02
    # Cosets of O(3): half of the elements are improper.
    assert abs((torch.det(get_group("o3").sample(20000, generator=g)) < 0).double().mean() - 0.5) < 0.02


def test_names_are_case_insensitive_and_unknown_names_raise():
    assert get_group("SO2") is get_group("so2")
    with pytest.raises(ValueError, match="group: unknown group name 'so4'"):
        get_group("so4")
    with pytest.raises(ValueError, match="unknown group name"):
        get_group("c0")
    with pytest.raises(TypeError, match="group"):
        get_group(3)


def test_user_defined_group_equals_named_one():
    mirror_y = torch.diag(torch.tensor([1.0, -1.0, 1.0]))
    Lz = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    cone = Group("my_cone", lie_generators=[2.5 * Lz], discrete_generators=[mirror_y])
    named = get_group("cone")
    for a, b, c in [("1o", "1o", "1o"), ("2e", "1o", "1e"), ("0e", "2e", "2e")]:
        torch.testing.assert_close(cone.bilinear_basis(a, b, c), named.bilinear_basis(a, b, c))
    assert cone.contains(named.sample(10)).all()


def test_invalid_generators_raise():
    with pytest.raises(ValueError, match="discrete_generators: each generator"):
        # a quarter turn about x does not normalise rotations about z: the group would be SO(3)
        Group("bad", lie_generators=[torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])],
              discrete_generators=[rotation_x(math.pi / 2)])  # fmt: skip
    with pytest.raises(ValueError, match="not closed"):
        Group("irrational", discrete_generators=[rotation_z(1.0)])
    with pytest.raises(ValueError, match="orthogonal"):
        Group("scaled", discrete_generators=[2 * torch.eye(3)])
    with pytest.raises(ValueError, match="antisymmetric"):
        Group("sym", lie_generators=[torch.eye(3)])


@pytest.mark.parametrize("name", ["so2", "cone", "d3", "td", "mirror", "ih", "trivial"])
def test_bases_satisfy_the_constraint_and_are_orthonormal(name):
    group = get_group(name)
    R = group.sample(3)
    for a in IRREPS[:4]:
        for b in IRREPS:
            W = group.linear_basis(a, b)
            D_a, D_b = irreps_D(o3.Irreps([(1, a)]), R), irreps_D(o3.Irreps([(1, b)]), R)
            assert torch.allclose(D_b[:, None] @ W[None], W[None] @ D_a[:, None], atol=1e-12, rtol=0)
            gram = torch.einsum("nij,mij->nm", W, W)
            torch.testing.assert_close(gram, torch.eye(W.shape[0], dtype=torch.float64))
            for c in IRREPS[:4]:
                C = group.bilinear_basis(a, c, b)  # [n, d_b, d_a, d_c]
                D_c = irreps_D(o3.Irreps([(1, c)]), R)
                lhs = torch.einsum("gij,njkl->gnikl", D_b, C)
                rhs = torch.einsum("nijm,gjk,gml->gnikl", C, D_a, D_c)
                assert torch.allclose(lhs, rhs, atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", ["o3", "so3"])
def test_o3_bases_reduce_to_schur_and_clebsch_gordan(name):
    group = get_group(name)
    for a in IRREPS:
        for b in IRREPS:
            n = group.linear_basis(a, b).shape[0]
            same = a.l == b.l and (a.p == b.p or name == "so3")
            assert n == int(same)
            for c in IRREPS:
                C = group.bilinear_basis(a, b, c)
                allowed = abs(a.l - b.l) <= c.l <= a.l + b.l and (name == "so3" or a.p * b.p == c.p)
                if not allowed:
                    assert C.shape[0] == 0
                    continue
                assert C.shape[0] == 1
                cg = o3.wigner_3j(a.l, b.l, c.l, dtype=torch.float64).permute(2, 0, 1)  # [c, a, b]
                cg = cg / cg.norm()
                overlap = (C[0] * cg).sum()
                assert abs(abs(overlap) - 1) < 1e-10


def test_subgroup_has_larger_space_than_o3():
    # SO(2): m = 0 components of every l are invariant, and 1o -> 1o has the commutant of dimension 3
    so2, o3_ = get_group("so2"), get_group("o3")
    assert so2.invariant_basis("2e").shape[0] == 1 and o3_.invariant_basis("2e").shape[0] == 0
    assert so2.linear_basis("1o", "1o").shape[0] == 3
    assert so2.bilinear_basis("2e", "2e", "2e").shape[0] > o3_.bilinear_basis("2e", "2e", "2e").shape[0]


def test_basis_is_canonical():
    # the same group from other generators (a -90 degree turn) gives the identical basis
    other = Group("c4_prime", discrete_generators=[rotation_z(-math.pi / 2)])
    for a, b, c in [("1o", "2e", "1o"), ("2e", "2e", "2e")]:
        torch.testing.assert_close(other.bilinear_basis(a, b, c), get_group("c4").bilinear_basis(a, b, c), atol=1e-12, rtol=0)


def test_irreps_D_is_accurate_in_float32_default():
    R = get_group("so3").sample(2)
    D = irreps_D("1x2e+1x1o", R)
    assert D.dtype == torch.float64
    torch.testing.assert_close(D[0] @ D[1], irreps_D("1x2e+1x1o", R[0] @ R[1]), atol=1e-13, rtol=0)


def test_irreps_D_matches_e3nn_and_is_exact_near_the_identity(float64):
    R = get_group("o3").sample(10)
    irreps = "2x0e+1x0o+1x1o+1x1e+1x2e+1x2o+1x3o"
    torch.testing.assert_close(irreps_D(irreps, R), o3.Irreps(irreps).D_from_matrix(R).double(), atol=1e-6, rtol=0)
    # a homomorphism to machine precision even for tiny angles, where Euler angles lose digits
    small, double = rotation_z(1e-6), rotation_z(2e-6)
    assert (irreps_D(irreps, small) @ irreps_D(irreps, small) - irreps_D(irreps, double)).abs().max() < 1e-14
    assert (irreps_D(irreps, R[:5] @ R[5:]) - irreps_D(irreps, R[:5]) @ irreps_D(irreps, R[5:])).abs().max() < 1e-13


@pytest.mark.parametrize("name", ["o3", "so2", "d6", "c5", "ih", "td"])
def test_all_bilinear_bases_up_to_l3_solve(name):
    """Regression: LAPACK's SVD failed to converge on the D6 constraints at l = 3 (now eigh of C^T C)."""
    group = get_group(name)
    R = group.sample(2)
    for a in range(4):
        for b in range(4):
            for c in range(4):
                irreps = [o3.Irrep(l, (-1) ** l) for l in (a, b, c)]
                C = group.bilinear_basis(*irreps)
                D = [irreps_D(o3.Irreps([(1, ir)]), R) for ir in irreps]
                lhs = torch.einsum("gij,njkl->gnikl", D[2], C)
                rhs = torch.einsum("nijm,gjk,gml->gnikl", C, D[0], D[1])
                assert torch.allclose(lhs, rhs, atol=1e-11, rtol=0)


def test_subgroup_relation_of_the_catalogue():
    supergroups = {  # G: every H of these names with G <= H
        "so2": {"so2", "o2", "cone", "fullcyl", "so3", "o3"}, "cone": {"cone", "fullcyl", "o3"},
        "c4": {"c4", "d4", "so2", "o2", "cone", "fullcyl", "oh", "so3", "o3"}, "d4": {"d4", "o2", "fullcyl", "oh", "so3", "o3"},
        "oh": {"oh", "o3"}, "o3": {"o3"},
    }  # fmt: skip
    for name, expected in supergroups.items():
        assert {h for h in ["o3", "so3", "so2", "o2", "cone", "fullcyl", "c4", "d4", "oh"] if get_group(name).is_subgroup_of(get_group(h))} == expected, name
