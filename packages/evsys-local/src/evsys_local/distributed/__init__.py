"""One arm as a distributed job: ``num_processes`` ranks launched by torchrun, rank 0 reporting to the arm.

The process running the arm (the driver, or an executor's worker) writes a picklable description of the
arm (``spec``), launches ``python -m torch.distributed.run`` on it (``launch``) and relays what rank 0
reports to the run's log store; every rank rebuilds the arm from the description and trains it
(``worker``). Nothing here imports torch at module level.
"""
