# The download step: each pinned hub snapshot (a model, dataset or benchmark whose `path` is a hub
# id and `revision` a commit) that the selected studies read, fetched once into the hub cache on
# the machine running Snakemake (localrules: the login node, which has network), checked and
# recorded in a manifest that the jobs reading it take as input. `snakemake download` fetches them
# ahead (docs/data.md), for clusters whose compute nodes have no network.


localrules:
    download_hub,
    download,


rule download_hub:
    output:
        f"{HUB_CACHE}/manifests/{{snapshot}}.json",
    log:
        "logs/download/{snapshot}.log",
    conda:
        "../envs/synth.yaml"
    params:
        cache=lambda wc, output: Path(output[0]).parent.parent,  # <cache>/manifests/<snapshot>.json
        kind=lambda wc: hub_snapshot(wc).kind,
        repo=lambda wc: hub_snapshot(wc).repo,
        revision=lambda wc: hub_snapshot(wc).revision,
    shell:
        "motab hub-download --kind {params.kind} --repo {params.repo:q} --revision {params.revision}"
        " --cache {params.cache:q} > {log} 2>&1"


rule download:
    input:
        download_targets(),
