"""MOTAB-pipeline: distil long-chain reasoning from teacher LLMs into small students.

Every stage of the Snakemake DAG is a function here and a subcommand of `motab`.
"""

__version__ = "0.1.0"
