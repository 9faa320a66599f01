"""What a study file declares, loaded and validated before anything runs: the study and its
sections (recipes, lattice, ensembles, distillation, evals, executor), the base model of a
continued-pretraining study, and the cluster profiles executors submit to. The YAML reader
with ``file:line:column`` errors and the dataclass schema are shared by studies and profiles.
"""

from sweeps.study.basemodel import BASE_FILE, UNPINNED, Base
from sweeps.study.profiles import (
    ClusterProfile,
    available_profiles,
    chunk_for_array,
    load_profile,
    make_executor,
    max_array_size,
)
from sweeps.study.sections import AXES, Evals, Executor, Lattice, Recipe, Training
from sweeps.study.study import SEED_STRIDE, Study, load_study, shape_of
from sweeps.study.study_ensembles import Distill, Ensembles
from sweeps.study.yamlpos import StudyError, load_yaml

__all__ = [
    "AXES", "BASE_FILE", "SEED_STRIDE", "UNPINNED", "Base", "ClusterProfile", "Distill", "Ensembles",
    "Evals", "Executor", "Lattice", "Recipe", "Study", "StudyError", "Training", "available_profiles",
    "chunk_for_array", "load_profile", "load_study", "load_yaml", "make_executor", "max_array_size", "shape_of",
]
