"""Figures for the HTML report (`snakemake --report`): table bar charts and training curves."""
