# The download step: each pinned hub snapshot (a model, dataset or benchmark whose `path` is a hub
# id and `revision` a commit) that the selected studies read, fetched once into the hub cache on
# the machine running Snakemake (localrules: the login node, which has network), checked and
# recorded in a manifest that the jobs reading it take as input. An unpinned one (no commit
# `revision`) is fetched at its branch's current commit, which the lock records; its jobs read that
# lock. `snakemake download` fetches them ahead (docs/data.md), for clusters whose nodes have no network.


localrules:
    download_hub,
    lock_hub,
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


rule lock_hub:
    output:
        f"{HUB_CACHE}/locks/{{lock}}.json",
    log:
        "logs/download/lock-{lock}.log",
    conda:
        "../envs/synth.yaml"
    params:
        cache=lambda wc, output: Path(output[0]).parent.parent,  # <cache>/locks/<lock>.json
        kind=lambda wc: hub_lock(wc)[0],
        repo=lambda wc: hub_lock(wc)[1],
        branch=lambda wc: hub_lock(wc)[2],
    shell:
        "motab hub-download --lock --kind {params.kind} --repo {params.repo:q} --revision {params.branch:q}"
        " --cache {params.cache:q} > {log} 2>&1 && tail -n 1 {log}"


rule download:
    input:
        download_targets(),
