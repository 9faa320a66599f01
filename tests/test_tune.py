from sweeps.planning.tune import grid_points, neighbours, next_points, point, tuned
from sweeps.study.sections import Lattice, Recipe

LAT = Lattice(epochs=(1, 2, 4), lr=(1e-3, 3e-3, 1e-2), weight_decay=(0.0, 0.1, 0.8))
REG = Recipe("regularized", search="adaptive", start={"epochs": 2, "lr": 3e-3, "weight_decay": 0.1})
STD = Recipe("standard", search="grid", fixed={"weight_decay": 0.1})


def bowl(p):
    """A convex loss with its minimum at (4, 1e-2, 0.8): a corner of the lattice."""
    v = dict(p)
    return (LAT.epochs.index(v["epochs"]) - 2) ** 2 + (LAT.lr.index(v["lr"]) - 2) ** 2 + \
        (LAT.weight_decay.index(v["weight_decay"]) - 2) ** 2


def test_neighbours_stay_on_the_lattice_and_respect_fixed_axes():
    centre = point({"epochs": 2, "lr": 3e-3, "weight_decay": 0.1})
    assert len(neighbours(centre, LAT, ("epochs", "lr", "weight_decay"))) == 6
    corner = point({"epochs": 1, "lr": 1e-3, "weight_decay": 0.1})
    assert len(neighbours(corner, LAT, ("epochs", "lr"))) == 2


def test_grid_search_is_the_whole_grid():
    assert len(grid_points(STD, LAT)) == 9
    assert all(dict(p)["weight_decay"] == 0.1 for p in grid_points(STD, LAT))


def test_certificate_needs_every_neighbour_and_none_better():
    centre = point({"epochs": 2, "lr": 3e-3, "weight_decay": 0.1})
    nbrs = neighbours(centre, LAT, REG.free_axes())
    losses = {centre: 1.0, **{n: 2.0 for n in nbrs}}
    t = tuned(REG, LAT, losses)
    assert t.best == centre and t.certified and not t.at_edge and t.runs_used == 7
    del losses[nbrs[0]]
    assert not tuned(REG, LAT, losses).certified
    losses[nbrs[0]] = 0.5
    assert tuned(REG, LAT, losses).best == nbrs[0]


def test_adaptive_search_walks_to_the_optimum_with_fewer_runs_than_the_lattice():
    losses, rounds = {}, 0
    while (todo := next_points(REG, LAT, losses, set(), rounds)):
        losses.update({p: bowl(p) for p in todo})
        rounds += 1
    t = tuned(REG, LAT, losses)
    assert dict(t.best) == {"epochs": 4, "lr": 1e-2, "weight_decay": 0.8}
    assert t.certified and t.at_edge
    assert len(losses) < 27
