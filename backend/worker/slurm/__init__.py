"""Runs on a Slurm cluster (``tricklab worker --slurm``).

- ``commands``: the one adapter over Slurm's commands (sbatch, squeue, scontrol, scancel, sacct);
- ``dispatcher``: claims runs and submits each as one job, follows the jobs, ends runs with Slurm's reason;
- ``job``: inside a job, the attempt trained as a worker trains it, the warning signal and requeue.
"""
