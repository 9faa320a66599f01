"""Study files run end to end: load, plan, launch, collect, review.

The sub-packages are layers; each imports only the ones before it (``tests/test_layers.py``
checks this), and another layer's names only through its package (its ``__all__``):

    study      study files and what they declare: the study, its base model, cluster profiles
    runs       the run store: run directories, their states, a snapshot of them, run kinds
    planning   from a study and a snapshot to the runs wanted next; the checks before any run
    execution  launching: writing run directories, executors and workers, memory plans
    collect    the results table and run status, rebuilt from the run directories (a module)
    review     everything ``dcsl sweep plan`` prints (collect and review never import each other)
    demos      ``dcsl demo`` and ``dcsl demo --cpt``
    cli        ``dcsl sweep`` and ``dcsl demo`` (a module)

``studies/`` holds the shipped study files (YAML), not code.
"""
