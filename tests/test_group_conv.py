import pytest
import torch

from pyg_implicit.models import match_budget
from pyg_implicit.models.gcnn import GCNN
from pyg_implicit.groups import get_group, rotation_z
from pyg_implicit.nn.group_conv import GroupConv2d, coset_max_pool
from pyg_implicit.nn.image_action import grid_group, multiplication_table, transform_group_map, transform_image
from pyg_implicit.training import count_parameters


ELEMENTS = {"p4": get_group("c4").coset_representatives, "p4m": get_group("d4").coset_representatives}


def test_image_action_moves_pixels_as_the_matrix_says():
    """(L_R f)(p) = f(R^-1 p): a quarter turn about z takes the pixel at +x to +y."""
    x = torch.zeros(1, 5, 5)
    x[0, 4, 2] = 1.0  # axes (x, y), centred: the pixel at p = (+2, 0)
    moved = transform_image(x, rotation_z(torch.pi / 2))
    assert moved[0, 2, 4] == 1.0 and moved.sum() == 1.0  # now at (0, +2)
    with pytest.raises(ValueError, match="R: expected a matrix that maps the pixel grid"):
        transform_image(x, rotation_z(0.3))
    with pytest.raises(ValueError, match="group: expected a finite group that maps the pixel grid"):
        grid_group("c6")


@pytest.mark.parametrize("group", ["p4", "p4m", "c2", "d2"])
def test_actions_compose_as_the_group_law(group):
    """L_a L_b = L_ab on images and group maps, with the table read off the matrices."""
    elements = grid_group(group).coset_representatives
    n = elements.shape[0]
    table, inverse = multiplication_table(grid_group(group))
    x, maps = torch.randn(2, 3, 5, 5), torch.randn(2, 3, n, 5, 5)
    for a in range(n):
        for b in range(n):
            torch.testing.assert_close(transform_image(transform_image(x, elements[b]), elements[a]),
                                       transform_image(x, elements[table[a][b]]), rtol=0, atol=0)  # fmt: skip
            torch.testing.assert_close(transform_group_map(transform_group_map(maps, b, group), a, group),
                                       transform_group_map(maps, table[a][b], group), rtol=0, atol=0)  # fmt: skip
        assert table[a][inverse[a]] == 0


@pytest.mark.parametrize("group", ["p4", "p4m"])
@pytest.mark.parametrize("kernel_size, padding, size", [(3, 1, 9), (4, 0, 10), (5, 2, 8)])
def test_lifting_and_group_convolutions_are_equivariant(float64, group, kernel_size, padding, size):
    lift = GroupConv2d(3, 5, kernel_size, group, lifting=True, padding=padding)
    conv = GroupConv2d(5, 4, kernel_size, group, padding=padding)
    x = torch.randn(2, 3, size, size)
    y = lift(x)
    z = conv(torch.relu(y))
    for g, R in enumerate(ELEMENTS[group]):
        gx = transform_image(x, R)
        torch.testing.assert_close(lift(gx), transform_group_map(y, g, group), rtol=0, atol=1e-12)
        torch.testing.assert_close(conv(torch.relu(lift(gx))), transform_group_map(z, g, group), rtol=0, atol=1e-12)
        # coset pooling leaves a plain image that rotates (and flips) with the input
        torch.testing.assert_close(coset_max_pool(conv(torch.relu(lift(gx)))), transform_image(coset_max_pool(z), R), rtol=0, atol=1e-12)


def test_group_conv_takes_a_group_and_the_wallpaper_names():
    assert GroupConv2d(1, 2, 3, get_group("d4")).order == 8 == GroupConv2d(1, 2, 3, "p4m").order
    assert GroupConv2d(1, 2, 3, "c2", lifting=True).order == 2


def test_group_convolution_is_not_invariant_without_pooling():
    lift = GroupConv2d(1, 2, 3, "p4", lifting=True, padding=1)
    x = torch.randn(1, 1, 7, 7)
    R = ELEMENTS["p4"][1]
    assert (lift(transform_image(x, R)) - transform_image(lift(x), R)).abs().max() > 1e-3  # the group axis must move too


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="group"):
        GroupConv2d(1, 1, 3, "p6")
    with pytest.raises(ValueError, match="group: expected 'z2', 'p4' or 'p4m'"):
        GCNN("p6")
    with pytest.raises(ValueError, match=r"x: expected shape \(B, C_in, 4, H, W\)"):
        GroupConv2d(2, 1, 3, "p4")(torch.randn(1, 2, 8, 8))
    with pytest.raises(ValueError, match="28, 28"):
        GCNN("p4")(torch.randn(1, 1, 32, 32))


@pytest.mark.parametrize("group", ["p4", "p4m"])
def test_gcnn_logits_are_invariant(float64, group):
    model = GCNN(group).eval()
    x = torch.randn(3, 1, 28, 28)
    for R in ELEMENTS[group]:
        torch.testing.assert_close(model(transform_image(x, R)), model(x), rtol=0, atol=1e-10)


def test_z2cnn_is_not_invariant_and_p4cnn_not_to_mirrors(float64):
    x = torch.randn(3, 1, 28, 28)
    z2, p4 = GCNN("z2").eval(), GCNN("p4").eval()
    mirror = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))  # in d4, not in c4: y -> -y on the image
    assert (z2(transform_image(x, ELEMENTS["p4"][1])) - z2(x)).abs().max() > 1e-3
    assert (p4(transform_image(x, mirror)) - p4(x)).abs().max() > 1e-3  # outside p4


def test_p4mcnn_pooled_over_c4_is_invariant_to_rotations_and_not_to_mirrors(float64):
    """invariant_group="c4": the logits of a p4m network are invariant to the rotations alone."""
    model = GCNN("p4m", 3, invariant_group="c4").eval()
    x = torch.randn(3, 1, 28, 28)
    for R in ELEMENTS["p4"]:
        torch.testing.assert_close(model(transform_image(x, R)), model(x), rtol=0, atol=1e-10)
    for R in ELEMENTS["p4m"][torch.det(ELEMENTS["p4m"][:, :2, :2]) < 0]:  # the four mirrors of the image
        assert (model(transform_image(x, R)) - model(x)).abs().max() > 1e-3
    assert count_parameters(model) == count_parameters(GCNN("p4m", 3))  # the same network, pooled differently


@pytest.mark.parametrize("group, invariant_group", [("p4", None), ("p4m", None), ("p4m", "c4")])
def test_gcnn_mean_readout_is_invariant_and_linear_in_the_last_map(float64, group, invariant_group):
    """readout="mean": the logits are the mean of the last map over the pooled elements, still invariant to them."""
    model = GCNN(group, 3, invariant_group=invariant_group, readout="mean").eval()
    x = torch.randn(3, 1, 28, 28)
    pooled = ELEMENTS["p4" if invariant_group else group]
    for R in pooled:
        torch.testing.assert_close(model(transform_image(x, R)), model(x), rtol=0, atol=1e-10)
    maxed = GCNN(group, 3, invariant_group=invariant_group).eval()
    maxed.load_state_dict(model.state_dict())  # same weights, max over the group axis instead
    assert (maxed(x) - model(x)).abs().min() > 0 and (maxed(x) >= model(x)).all()


def test_gcnn_invariant_group_errors():
    with pytest.raises(ValueError, match="invariant_group: expected a subgroup of c4"):
        GCNN("p4", invariant_group="d4")
    with pytest.raises(ValueError, match="invariant_group: the Z2CNN has no point group"):
        GCNN("z2", invariant_group="c4")
    with pytest.raises(ValueError, match="readout: expected 'max' or 'mean'"):
        GCNN("p4", readout="sum")
    with pytest.raises(ValueError, match="readout: expected 'max' or 'mean'.*'z2'"):
        GCNN("z2", readout="mean")


def test_parameter_count_table():
    """Z2CNN vs P4CNN vs P4MCNN: the paper's channels (20 / 10 / 7) and budget-matched ones (within 10%)."""
    z2 = count_parameters(GCNN("z2"))
    counts = {group: count_parameters(GCNN(group)) for group in ("p4", "p4m")}
    assert z2 == 21750 and counts == {"p4": 24680, "p4m": 26799}
    for group in ("p4", "p4m"):
        model, channels = match_budget(lambda c: GCNN(group, c), z2)
        assert abs(count_parameters(model) / z2 - 1) < 0.1
