# MOTAB-pipeline: raw problems -> synthesized trajectories -> SFT -> on-policy KD -> eval -> tables.
# `snakemake` runs the toy study locally (profiles/default); `snakemake --profile profiles/slurm all`
# runs the paper studies on a SLURM cluster. The logic lives in the `motab` package; rules are thin.
from snakemake.utils import min_version

import sys

from motab.plan import ComposeError, config_files

min_version("9.0")


# The catalogue, then one file per study (studies/<study>.yaml). Each `configfile:` merges key by key
# and Snakemake re-applies --configfile/--config after each, so the command line always wins.
# config_files() parses each first: a YAML error names its file and line, not this Snakefile's.
try:
    _config_files = config_files()
except ComposeError as _error:  # its own line(s), not a Snakemake traceback
    sys.exit(str(_error))


configfile: _config_files[0]


for _study_file in _config_files[1:]:

    configfile: _study_file


report: "report/workflow.rst"


include: "rules/common.smk"
# input functions and parameters, apart from the rules that use them
include: "rules/functions/toy.smk"
include: "rules/functions/data.smk"
include: "rules/functions/synth.smk"
include: "rules/functions/sft.smk"
include: "rules/functions/kd.smk"
include: "rules/functions/eval.smk"
include: "rules/functions/tables.smk"
include: "rules/functions/report.smk"
include: "rules/functions/download.smk"
include: "rules/toy.smk"
include: "rules/data.smk"
include: "rules/synth.smk"
include: "rules/sft.smk"
include: "rules/kd.smk"
include: "rules/eval.smk"
include: "rules/tables.smk"
include: "rules/report.smk"
include: "rules/download.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
