"""``dcsl demo``: the embedded study in miniature on this machine (``demo``), and the
continued-pretraining setting in miniature (``cptdemo``), both through the cluster code paths.
"""

from sweeps.demos.cptdemo import run_cpt_demo
from sweeps.demos.demo import run_demo

__all__ = ["run_cpt_demo", "run_demo"]
