"""The worker process: claims runs, runs each in a trainer child, stores what the child reports.

A worker owns its devices (``backend.placement``): one GPU (``tricklab worker --gpus N``), several,
trained on together by one torchrun child per run (``--gpus 0,1,2,3``), or CPU processes
(``--procs 2``). The child prints JSON lines on stdout (under torchrun, rank 0 does, and the
launcher adds the failing rank's error); the worker upserts them fenced by its attempt, heartbeats,
polls the cancel flag, and records the end. A worker that dies takes its child with it
(PR_SET_PDEATHSIG, which torchrun's ranks set too) and leaves a stale heartbeat; the next claim
requeues the run and the new child resumes from the last checkpoint.

- ``loop``: the claim loop, and watching one attempt until its child ends;
- ``launch``: the run folder and the command an attempt's child starts with;
- ``child``: the child process, its events read from stdout and its stderr's tail;
- ``recorder``: storing an attempt's events, each write fenced by the attempt;
- ``outcome``: the status an attempt ends with;
- ``devices``: the GPUs found through NVML, what a worker reports it trains on, the CUDA probe;
- ``presence``: the worker's row in the registry, kept fresh.
"""
